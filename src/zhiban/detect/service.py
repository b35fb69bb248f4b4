"""Use cases of detection: record what the engine found, rules, notice destinations, reading detections.

Recording a detection enqueues `detect.sync` (one job per detection and change, by dedup key): the job
opens or joins the incident and tells the customers (incident_sync.py), so the telemetry pipeline's
thread only writes a row and a job.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from zhiban.detect.detections import DetectionEvent
from zhiban.detect.rules import MAX_RULES, Rule
from zhiban.detect.store import (
    DetectionRow,
    DetectionRuleRow,
    NoticeDestinationRow,
    destination,
    detection_by_key,
    rule_by_ref,
)
from zhiban.detect.store import (
    rules as stored_rules,
)
from zhiban.engine import enqueue
from zhiban.identity.model import Principal, Role

SYNC_JOB = "detect.sync"
MAX_PAGE = 200
SYSTEM = Principal(person_id="system", role=Role.ADMIN, organization_id=None, name="zhiban detector")


# -- apps and plans ---------------------------------------------------------------------------------------


def organization_of_app(session: Session, app_id: str) -> str | None:
    """The organization that owns an app (None for an app the desk does not know)."""
    from zhiban.apps import service as apps

    try:
        return apps.get_app(session, SYSTEM, app_id).organization_id
    except NotFound:
        return None


def plan_of_organization(session: Session, organization_id: str | None) -> str | None:
    from zhiban.identity import service as identity

    if organization_id is None:
        return None
    try:
        return identity.get_organization(session, SYSTEM, organization_id).plan
    except NotFound:
        return None


def proactive(session: Session, plan: str | None) -> bool:
    """Does the plan include proactive warnings (sla plans: Premium and Enterprise by default)?"""
    if plan is None:
        return False
    from zhiban.sla import service as sla

    try:
        return bool(sla.get_plan(session, plan).proactive_warning)
    except NotFound:
        from zhiban.sla.plans import PLANS

        known = {name.lower(): p for name, p in PLANS.items()}
        return bool(known[plan.lower()].proactive_warning) if plan.lower() in known else False


# -- recording --------------------------------------------------------------------------------------------


def record_events(session: Session, clock: Clock, events: Sequence[DetectionEvent]) -> list[DetectionRow]:
    """Store each opened, worsened or closed detection and enqueue its incident sync (idempotent by key)."""
    rows = []
    now = clock.now()
    for event in events:
        d = event.detection
        row = detection_by_key(session, d.key)
        if row is None:
            row = DetectionRow(
                key=d.key,
                app_id=d.app_id,
                organization_id=organization_of_app(session, d.app_id),
                metric=d.metric,
                direction=d.direction,
                opened_at=d.opened_at,
                detected_at=d.detected_at,
                rule=d.rule,
                trigger=d.trigger[:300],
                recorded_at=now,
                state="open",
                slice={},
                baseline=0.0,
                observed=0.0,
                sessions=0,
                severity="minor",
            )
            session.add(row)
        row.slice = dict(d.slice)
        row.baseline, row.observed, row.sessions, row.severity = d.baseline, d.observed, d.sessions, d.severity
        row.candidates = list(d.candidates)
        row.closed_at = d.closed_at
        row.state = "closed" if d.closed_at is not None else "open"
        row.updated_at = now
        session.flush()
        stage = event.kind if event.kind != "updated" else f"updated:{d.severity}"
        enqueue(
            session,
            SYNC_JOB,
            {"detection": row.id, "kind": event.kind},
            due_at=now,
            dedup_key=f"{SYNC_JOB}:{row.id}:{stage}",
        )
        rows.append(row)
    return rows


def detection_json(row: DetectionRow) -> dict[str, Any]:
    """A stored detection in the §4 form, with its id, state and incident."""

    def iso(moment: datetime | None) -> str | None:
        return None if moment is None else moment.isoformat().replace("+00:00", "Z")

    out: dict[str, Any] = {
        "id": row.id,
        "opened_at": iso(row.opened_at),
        "closed_at": iso(row.closed_at),
        "app_id": row.app_id,
        "metric": row.metric,
        "direction": row.direction,
        "slice": dict(row.slice),
        "baseline": row.baseline,
        "observed": row.observed,
        "sessions": row.sessions,
        "severity": row.severity,
        "state": row.state,
        "detected_at": iso(row.detected_at),
        "incident_id": row.incident_id,
        "detected_by": "telemetry",
    }
    if row.rule:
        out["rule"] = row.rule
    return out


def list_detections(
    session: Session, principal: Principal, *, state: str | None = None, app_id: str | None = None, limit: int = 50
) -> list[DetectionRow]:
    """Detections the caller may see, newest first: staff all, a customer its organization's apps only."""
    if state not in (None, "open", "closed"):
        raise InvalidInput("state must be open or closed")
    query = select(DetectionRow)
    if not principal.is_staff:
        if principal.organization_id is None:
            return []
        query = query.where(DetectionRow.organization_id == principal.organization_id)
    if state is not None:
        query = query.where(DetectionRow.state == state)
    if app_id is not None:
        query = query.where(DetectionRow.app_id == app_id)
    query = query.order_by(DetectionRow.opened_at.desc(), DetectionRow.id).limit(min(max(limit, 1), MAX_PAGE))
    return list(session.scalars(query))


def get_detection(session: Session, principal: Principal, detection_id: str) -> DetectionRow:
    row = session.get(DetectionRow, detection_id)
    if row is None or (not principal.is_staff and row.organization_id != principal.organization_id):
        raise NotFound(f"no detection {detection_id}")
    return row


# -- rules ------------------------------------------------------------------------------------------------

RULE_FIELDS = ("name", "metric", "comparison", "threshold", "window_seconds", "consecutive", "min_sessions", "plan",
               "app_id", "enabled")  # fmt: skip


def rule_of(row: DetectionRuleRow) -> Rule:
    return Rule(**{f: getattr(row, f) for f in RULE_FIELDS})


def active_rules(session: Session) -> list[Rule]:
    """The enabled rules, for the engine."""
    return [rule_of(r) for r in stored_rules(session) if r.enabled]


def list_rules(session: Session, principal: Principal) -> list[DetectionRuleRow]:
    principal.require_staff()
    return stored_rules(session)


def create_rule(session: Session, clock: Clock, principal: Principal, data: dict[str, Any]) -> DetectionRuleRow:
    """Add an explicit rule (admins)."""
    principal.require_admin()
    rule = Rule.from_json(data)
    if rule_by_ref(session, rule.name) is not None:
        raise Conflict(f"a rule named {rule.name!r} exists")
    if len(stored_rules(session)) >= MAX_RULES:
        raise InvalidInput(f"at most {MAX_RULES} rules")
    now = clock.now()
    row = DetectionRuleRow(**rule.to_json(), created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    return row


def update_rule(
    session: Session, clock: Clock, principal: Principal, ref: str, changes: dict[str, Any]
) -> DetectionRuleRow:
    """Change some fields of a rule (admins); the whole rule is validated again."""
    principal.require_admin()
    row = rule_by_ref(session, ref)
    if row is None:
        raise NotFound(f"no rule {ref!r}")
    merged = {f: getattr(row, f) for f in RULE_FIELDS} | changes
    rule = Rule.from_json(merged)
    if rule.name != row.name and rule_by_ref(session, rule.name) is not None:
        raise Conflict(f"a rule named {rule.name!r} exists")
    for name, value in rule.to_json().items():
        setattr(row, name, value)
    row.updated_at = clock.now()
    session.flush()
    return row


def delete_rule(session: Session, principal: Principal, ref: str) -> None:
    principal.require_admin()
    row = rule_by_ref(session, ref)
    if row is None:
        raise NotFound(f"no rule {ref!r}")
    session.delete(row)
    session.flush()


def rule_json(row: DetectionRuleRow) -> dict[str, Any]:
    return {"id": row.id, **{f: getattr(row, f) for f in RULE_FIELDS}}


# -- notice destinations ----------------------------------------------------------------------------------


def _may_manage_org(session: Session, principal: Principal, organization_id: str) -> None:
    from zhiban.identity import service as identity

    identity.get_organization(session, principal, organization_id)  # NotFound across tenants
    if not principal.is_staff and principal.organization_id != organization_id:
        raise NotFound("no such organization")
    if principal.is_staff and principal.role is not Role.ADMIN:
        raise Forbidden("an admin (or the customer itself) sets where its notices go")


def set_notice_webhook(
    session: Session, clock: Clock, principal: Principal, organization_id: str, *, url: str, secret: str
) -> NoticeDestinationRow:
    """Send this organization's proactive notices to its webhook too (signed with `secret`)."""
    from zhiban.notify.registry import check_new_destination

    _may_manage_org(session, principal, organization_id)
    config = {"url": url.strip(), "secret": secret}
    check_new_destination("webhook", config)  # refuses a bad or internal URL, a short secret, before storing
    row = destination(session, organization_id, "webhook")
    if row is None:
        row = NoticeDestinationRow(organization_id=organization_id, channel="webhook", config=config)
        session.add(row)
    row.config = config
    row.updated_at = clock.now()
    session.flush()
    return row


def get_notice_webhook(session: Session, principal: Principal, organization_id: str) -> NoticeDestinationRow | None:
    """The organization's notice webhook (staff, or the organization's own users)."""
    from zhiban.identity import service as identity

    identity.get_organization(session, principal, organization_id)  # NotFound across tenants
    return destination(session, organization_id, "webhook")


def clear_notice_webhook(session: Session, principal: Principal, organization_id: str) -> bool:
    _may_manage_org(session, principal, organization_id)
    row = destination(session, organization_id, "webhook")
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def webhook_json(row: NoticeDestinationRow | None, organization_id: str) -> dict[str, Any]:
    """The setting as shown: the URL, never the secret."""
    if row is None:
        return {"organization_id": organization_id, "url": None, "secret_set": False}
    return {"organization_id": organization_id, "url": row.config.get("url"), "secret_set": True}

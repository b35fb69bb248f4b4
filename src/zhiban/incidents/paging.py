"""The paging chain of incidents: escalation steps as durable engine timers, pages with signed ack links.

Every escalation step is a durable engine timer (`incident.escalate`, dedup key incident × generation ×
step). A step fires once in one transaction: it pages its people (one stored message per person and
contact method, keyed by `step_key`), marks itself done and arms the next step, so a worker killed at
any point either left nothing or left all of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import NotFound
from zhiban.engine import JobContext, cancel, enqueue, enqueue_many
from zhiban.identity import service as identity
from zhiban.incidents import events
from zhiban.incidents.catalog import _business_calendar, policy_of
from zhiban.incidents.escalation import (
    EscalationStep,
    Target,
    TargetKind,
    Urgency,
    next_step,
    step_key,
)
from zhiban.incidents.model import (
    IncidentStatus,
    make_ack_token,
)
from zhiban.incidents.store import (
    EscalationPolicyRow,
    EscalationStepRow,
    IncidentEventRow,
    IncidentRow,
    ServiceRow,
)

log = logging.getLogger("zhiban.incidents")

ESCALATE_JOB = "incident.escalate"
ACK_TIMEOUT_JOB = "incident.ack_timeout"
AUDIT_JOB = "incident.audit"
AUDIT_EVERY = timedelta(minutes=5)
AUDIT_GRACE = timedelta(seconds=120)
ACK_LINK_LIFETIME = timedelta(hours=24)

# --- links in pages (signed one-click acknowledge) -----------------------------------------------

_link_config: dict[str, str] = {}
# Where a process without a desk (a bare `python -m zhiban.engine` worker) takes them from: set by incidents.hooks.
_link_defaults: list[Callable[[], tuple[str, str]]] = []


def configure_links(*, secret_key: str, base_url: str) -> None:
    """Sign acknowledge links with this key and point them at this base URL (the web app sets its desk's)."""
    _link_config.update(secret_key=secret_key, base_url=base_url.rstrip("/"))


def links_default(source: Callable[[], tuple[str, str]]) -> None:
    """Where to take (secret key, base URL) from when no desk configured the links."""
    _link_defaults[:] = [source]


def _links() -> tuple[str, str]:
    # A desk hands over its key and URL at start-up (incidents.hooks.configure); a bare worker has defaults.
    if "secret_key" not in _link_config:
        if not _link_defaults:
            raise RuntimeError("acknowledge links are not configured: no desk and no incidents.hooks")
        secret_key, base_url = _link_defaults[0]()
        configure_links(secret_key=secret_key, base_url=base_url)
    return _link_config["secret_key"], _link_config["base_url"]


def ack_url(incident_id: str, person_id: str, now: datetime) -> str:
    """The signed one-click acknowledge link for this person and incident."""
    secret, base = _links()
    return f"{base}/ack/{make_ack_token(secret, incident_id, person_id, now + ACK_LINK_LIFETIME)}"


def _event(
    session: Session,
    incident_id: str,
    kind: str,
    at: datetime,
    *,
    actor_id: str | None = None,
    body: str = "",
    data: dict[str, Any] | None = None,
    internal: bool = True,
) -> None:
    session.add(
        IncidentEventRow(
            incident_id=incident_id, kind=kind, at=at, actor_id=actor_id, body=body, data=data or {}, internal=internal
        )
    )


# --- escalation -----------------------------------------------------------------------------------


def changed(
    session: Session,
    clock: Clock,
    incident: IncidentRow,
    kind: events.IncidentChangeKind,
    *,
    actor_id: str | None = None,
    paged: int = 0,
) -> None:
    """Tell the subscribed features what just happened to the incident (same transaction)."""
    change = events.IncidentChange(
        incident.id, incident.number, kind, clock.now(), incident.ticket_id, actor_id=actor_id, paged=paged
    )
    events.emit(session, clock, change)


def _resolver(session: Session, incident: IncidentRow | None = None) -> Any:
    def resolve(target: Target, at: datetime) -> Sequence[str]:
        if target.kind is TargetKind.PERSON:
            person = identity.person(session, target.ref)
            return [person.id] if person is not None and person.active else []
        if target.kind is TargetKind.TEAM:
            return [p.id for p in identity.team_members(session, target.ref) if p.active]
        try:
            from zhiban.oncall.service import on_call_now  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            log.warning("schedule target %s: on-call schedules are not available", target.ref)
            return []
        try:
            found: list[str] = on_call_now(session, target.ref, at)
        except NotFound:
            log.warning("schedule target %s: no such schedule", target.ref)
            return []
        return found

    return resolve


def _plan_next(
    session: Session,
    incident: IncidentRow,
    service: ServiceRow,
    policy_row: EscalationPolicyRow,
    previous: EscalationStep | None,
) -> EscalationStep | None:
    support = _business_calendar(service.support_country, service.support_zone)
    business = _business_calendar(policy_row.calendar_country, policy_row.calendar_zone)
    return next_step(
        policy_of(policy_row),
        previous,
        incident.triggered_at if previous is not None else _generation_start(incident),
        Urgency(incident.urgency),
        _resolver(session, incident),
        support.is_open,
        is_business_time=business.is_open,
        round_robin_offset=incident.round_robin_offset,
    )


def _generation_start(incident: IncidentRow) -> datetime:
    return incident.updated_at if incident.generation else incident.triggered_at


def _escalate_key(incident_id: str, generation: int, step_no: int) -> str:
    return f"esc:{incident_id}:{generation}:{step_no}"


def _step_row(incident: IncidentRow, step: EscalationStep) -> EscalationStepRow:
    return EscalationStepRow(
        incident_id=incident.id,
        generation=incident.generation,
        step_no=step.step_no,
        level_index=step.level_index,
        repeat=step.repeat,
        due_at=step.due_at,
        state="scheduled",
        planned_targets=list(step.targets),
        paged=[],
    )


def _schedule(session: Session, clock: Clock, incident: IncidentRow, step: EscalationStep) -> None:
    session.add(_step_row(incident, step))
    enqueue(
        session,
        ESCALATE_JOB,
        {"incident": incident.id, "generation": incident.generation, "step": step.step_no},
        due_at=step.due_at,
        dedup_key=_escalate_key(incident.id, incident.generation, step.step_no),
        max_attempts=20,
    )


def start_escalation(
    session: Session, clock: Clock, incident: IncidentRow, service: ServiceRow, *, audit: bool = True
) -> None:
    """Plan the first step of the service's policy and arm its timer (and, unless the caller did, the auditor)."""
    if audit:
        ensure_auditor(session, clock)
    if service.policy_id is None:
        _event(session, incident.id, "no_policy", clock.now(), body="the service has no escalation policy")
        return
    policy_row = session.get(EscalationPolicyRow, service.policy_id)
    assert policy_row is not None
    # Team round robins begin one further along for each incident, so the load is shared.
    incident.round_robin_offset = policy_row.round_robin_offset
    policy_row.round_robin_offset = (policy_row.round_robin_offset + 1) % 1_000_000
    step = _plan_next(session, incident, service, policy_row, None)
    if step is None:
        _event(session, incident.id, "nobody_to_page", clock.now(), body="the policy resolves to nobody")
        return
    if step.due_at > clock.now():
        _schedule(session, clock, incident, step)
        return
    # A first step due now (high urgency, no delay) pages in this very transaction: the pages are queued
    # as durably as the incident itself, without a timer to claim and the incident to load again first.
    _fire(session, clock, incident, service, policy_row, _step_row(incident, step))


def fire_step(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The `incident.escalate` timer: page this step's people and arm the next step, all in one transaction."""
    clock = ctx.clock
    with ctx.session_factory() as session, session.begin():
        incident = session.scalar(
            select(IncidentRow).where(IncidentRow.id == str(payload.get("incident"))).with_for_update()
        )
        step_row = session.scalar(
            select(EscalationStepRow).where(
                EscalationStepRow.incident_id == str(payload.get("incident")),
                EscalationStepRow.generation == int(payload.get("generation", -1)),
                EscalationStepRow.step_no == int(payload.get("step", -1)),
            )
        )
        if incident is None or step_row is None or step_row.state != "scheduled":
            ctx.finish(session)
            return
        if incident.status != IncidentStatus.TRIGGERED or incident.generation != step_row.generation:
            step_row.state = "cancelled"
            ctx.finish(session)
            return
        service = session.get(ServiceRow, incident.service_id)
        assert service is not None
        policy_row = session.get(EscalationPolicyRow, service.policy_id) if service.policy_id else None
        _fire(session, clock, incident, service, policy_row, step_row)
        ctx.finish(session)


def _fire(
    session: Session,
    clock: Clock,
    incident: IncidentRow,
    service: ServiceRow,
    policy_row: EscalationPolicyRow | None,
    step_row: EscalationStepRow,
) -> None:
    """Page a due step's people now and arm the policy's next step, in the caller's transaction."""
    now = clock.now()
    people = list(step_row.planned_targets)
    if policy_row is not None and step_row.level_index < len(policy_row.levels):
        # Whoever is on call now, not when the step was planned.
        level = policy_of(policy_row).levels[step_row.level_index]
        current: list[str] = []
        resolve = _resolver(session, incident)
        for target in level.targets:
            found = list(resolve(target, now))
            if target.round_robin and found:
                found = [found[(incident.round_robin_offset + step_row.repeat) % len(found)]]
            current.extend(p for p in found if p not in current)
        people = current or people
    paged = [p for p in people if page_person(session, clock, incident, service, p, step_row.step_no)]
    step_row.state = "done"
    step_row.fired_at = now
    step_row.paged = people
    _event(
        session,
        incident.id,
        "escalated",
        now,
        body=f"level {step_row.level_index + 1}" + (f", pass {step_row.repeat + 1}" if step_row.repeat else ""),
        data={"step": step_row.step_no, "people": people, "paged": paged},
    )
    session.add(step_row)  # a step fired as it was planned is new here: one INSERT of the finished step
    if paged:
        changed(session, clock, incident, events.IncidentChangeKind.PAGED, paged=len(paged))
    if policy_row is not None:
        previous = EscalationStep(
            step_row.step_no, step_row.level_index, step_row.repeat, step_row.due_at, tuple(people)
        )
        following = _plan_next(session, incident, service, policy_row, previous)
        if following is not None:
            _schedule(session, clock, incident, following)


def page_person(
    session: Session,
    clock: Clock,
    incident: IncidentRow,
    service: ServiceRow,
    person_id: str,
    step_no: int,
    target_prefix: str = "",
) -> bool:
    """Queue this person's pages for a step, one per notification rule; False when nothing new was queued."""
    from zhiban.notify import service as notify
    from zhiban.notify.render import IncidentNotice, render_incident

    person = identity.person(session, person_id)
    if person is None:
        return False
    now = clock.now()
    _, base = _links()
    rules = notify.paging_rules(session, person.id, incident.urgency)
    plan: list[tuple[str, str | None, dict[str, Any], int]] = [
        (method.channel, method.id, method.config, rule.delay_minutes) for rule, method in rules
    ]
    if not plan:
        # Someone with no rules is still paged: by e-mail at once.
        plan = [("email", None, {"to": [person.email]}, 0)]
    notice = IncidentNotice(
        kind="page",
        title=incident.title[:200],
        severity=incident.severity,
        service=service.name[:100],
        since=incident.triggered_at,
        timezone=person.timezone,
        ack_url=ack_url(incident.id, person.id, now),
        incident_url=f"{base}/incidents/{incident.id}",
    )
    language: Literal["zh", "en"] = "zh" if person.language == "zh" else "en"
    queued = False
    for channel, method_id, config, delay in plan:
        target = f"{target_prefix}{person.id}.{method_id or channel}"
        key = step_key(incident.id, step_no, target, incident.generation)
        message = render_incident(notice, language, key)
        _, new = notify.queue_message(
            session,
            clock,
            message=message,
            subject_kind="incident",
            subject_id=incident.id,
            channel=channel,
            config=config,
            due_at=now + timedelta(minutes=delay),
            person_id=person.id,
            contact_method_id=method_id,
        )
        queued = queued or new
    return queued


def _stop_paging(session: Session, clock: Clock, incident: IncidentRow, reason: str) -> None:
    from zhiban.notify import service as notify

    steps = list(
        session.scalars(
            select(EscalationStepRow).where(
                EscalationStepRow.incident_id == incident.id, EscalationStepRow.state == "scheduled"
            )
        )
    )
    for step in steps:
        step.state = "cancelled"
        cancel(session, _escalate_key(incident.id, step.generation, step.step_no))
    notify.cancel_pending(session, clock, "incident", incident.id, reason)


def ensure_auditor(session: Session, clock: Clock) -> None:
    now = clock.now()
    bucket = int(now.timestamp() // AUDIT_EVERY.total_seconds())
    # Insert-if-absent in one statement: every batch that opens an incident passes here.
    enqueue_many(session, [(AUDIT_JOB, {}, now + AUDIT_EVERY, f"incident.audit:{bucket + 1}")])

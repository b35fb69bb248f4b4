"""SLA targets and plans, the policy in force and its immutable versions, and organizations' calendars."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zhiban.calendars import service as calendars
from zhiban.core.clock import Clock, SystemClock
from zhiban.core.errors import InvalidInput, NotFound
from zhiban.identity import service as identity
from zhiban.identity.model import Organization
from zhiban.sla.model import (
    CALENDAR_BUSINESS,
    DEFAULT_WARNING_FRACTION,
    Metric,
    Policy,
    PolicyRule,
    Priority,
    SupportMode,
    SupportTerms,
    Target,
)
from zhiban.sla.plans import PLANS
from zhiban.sla.store import (
    OrganizationCalendarRow,
    PlanRow,
    PolicyVersionRow,
    latest_policy_version,
    plans_in_order,
    rules_in_order,
)
from zhiban.store.db import transaction_memo

OPEN_STATUSES = frozenset({"new", "open", "pending", "on_hold"})
WAITING_STATUSES = frozenset({"pending", "solved", "closed"})  # nobody owes the customer an answer now
PRIORITY_RANK = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}
NO_DUE_BASE = 4 * 10**18  # sort keys of tickets without a running clock start here (after any epoch µs)
MAX_TARGET_MINUTES = 366 * 24 * 60
MAX_RULES = 500
MAX_PLANS = 100
WARNING_JOB = "sla.warning"
BREACH_JOB = "sla.breach"


# -- targets and plans ---------------------------------------------------------------------------------


def target_from_json(data: Mapping[str, Any]) -> Target:
    """{"metric": "first_response", "minutes": 240, "calendar": "business"} → Target."""
    try:
        metric = Metric(str(data["metric"]))
    except (KeyError, ValueError) as exc:
        raise InvalidInput(f"target metric must be one of {', '.join(m.value for m in Metric)}") from exc
    minutes = data.get("minutes")
    if not isinstance(minutes, int | float) or isinstance(minutes, bool) or not 0 < minutes <= MAX_TARGET_MINUTES:
        raise InvalidInput(f"target minutes must be a number in (0, {MAX_TARGET_MINUTES}]")
    return Target(metric, timedelta(minutes=minutes), str(data.get("calendar", CALENDAR_BUSINESS)))


def target_to_json(target: Target) -> dict[str, Any]:
    minutes = target.duration / timedelta(minutes=1)
    return {
        "metric": target.metric.value,
        "minutes": int(minutes) if minutes == int(minutes) else minutes,
        "calendar": target.calendar,
    }


def clean_targets(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validated targets as stored (one per metric)."""
    if len(items) > len(Metric):
        raise InvalidInput("at most one target per metric")
    targets = [target_from_json(t) for t in items]
    PolicyRule(plan=None, priority=None, targets=tuple(targets))  # refuses two targets for one metric
    return [target_to_json(t) for t in targets]


def clean_plan_targets(targets: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for prio, items in targets.items():
        if prio not in PRIORITY_RANK:
            raise InvalidInput(f"plan targets are keyed by priority P1..P4, not {prio!r}")
        out[prio] = clean_targets(items)
    return out


def _plan_key(name: str) -> str:
    key = str(name).strip().lower()
    if not key or len(key) > 64 or not all(c.isalnum() or c in "-_." for c in key):
        raise InvalidInput("a plan key is 1-64 letters, digits, '-', '_' or '.'")
    return key


def _rule_json(plan: str | None, priority: str | None, channel: str | None, category: str | None, targets: Any) -> Any:
    return {"plan": plan, "priority": priority, "channel": channel, "category": category, "targets": targets}


def policy_from_json(name: str, rules: Iterable[Mapping[str, Any]]) -> Policy:
    """A Policy from stored rules (in order)."""
    return Policy(
        name=name,
        rules=tuple(
            PolicyRule(
                plan=r["plan"],
                priority=Priority(r["priority"]) if r["priority"] else None,
                channel=r["channel"],
                category=r["category"],
                targets=tuple(target_from_json(t) for t in r["targets"]),
            )
            for r in rules
        ),
    )


def builtin_rules() -> list[dict[str, Any]]:
    """The demo plans (sla.plans.PLANS) as stored rules, plans keyed in lower case like organizations."""
    return [
        _rule_json(plan.name.lower(), prio.value, None, None, [target_to_json(t) for t in targets])
        for plan in PLANS.values()
        for prio, targets in plan.targets
    ]


def ensure_plans(session: Session, clock: Clock | None = None) -> int:
    """Seed the plans of sla.plans.PLANS and policy version 1 on first use; returns how many plans were added."""
    if latest_policy_version(session) is not None or session.scalar(select(PlanRow.key).limit(1)) is not None:
        return 0
    now = (clock or SystemClock()).now()
    for position, plan in enumerate(PLANS.values()):
        session.add(
            PlanRow(
                key=plan.name.lower(),
                name=plan.name,
                proactive_warning=plan.proactive_warning,
                targets={p.value: [target_to_json(t) for t in ts] for p, ts in plan.targets},
                position=position,
                updated_at=now,
            )
        )
    session.flush()
    _write_policy_version(session, now)
    return len(PLANS)


def _effective_rules(session: Session) -> list[dict[str, Any]]:
    rules = [_rule_json(r.plan, r.priority, r.channel, r.category, r.targets) for r in rules_in_order(session)]
    for plan in plans_in_order(session):
        for prio in sorted(plan.targets, key=PRIORITY_RANK.__getitem__):
            if plan.targets[prio]:
                rules.append(_rule_json(plan.key, prio, None, None, plan.targets[prio]))
    return rules


def support_json(plan: PlanRow) -> dict[str, Any]:
    return {
        "mode": plan.support_mode,
        "paging_priorities": list(plan.paging_priorities or []),
        "paging_service_id": plan.paging_service_id,
        "urgent_priorities": list(plan.urgent_priorities or []),
        "urgent_per_day": plan.urgent_per_day,
    }


def terms_of(plan: PlanRow) -> SupportTerms:
    """A stored plan's support terms (as stored: a plan saved through save_plan was checked then)."""
    return SupportTerms(
        plan=plan.key,
        mode=SupportMode(plan.support_mode or SupportMode.QUEUE.value),
        paging_priorities=frozenset(Priority(p) for p in plan.paging_priorities or []),
        paging_service_id=plan.paging_service_id,
        urgent_priorities=frozenset(Priority(p) for p in plan.urgent_priorities or []),
        urgent_per_day=plan.urgent_per_day or 0,
    )


def _terms_from_json(key: str, data: Mapping[str, Any]) -> SupportTerms:
    return SupportTerms(
        plan=key,
        mode=SupportMode(data.get("mode") or SupportMode.QUEUE.value),
        paging_priorities=frozenset(Priority(p) for p in data.get("paging_priorities") or []),
        paging_service_id=data.get("paging_service_id"),
        urgent_priorities=frozenset(Priority(p) for p in data.get("urgent_priorities") or []),
        urgent_per_day=data.get("urgent_per_day") or 0,
    )


# Every change of a plan (save, delete, the first seeding) publishes a policy version holding every plan's support
# terms, and versions never change: the terms of a version are read once per process. None: a version written
# before versions carried support terms, whose plans are read from their rows.
_support: dict[tuple[str, int], dict[str, SupportTerms] | None] = {}


def _support_in(session: Session, version: int) -> dict[str, SupportTerms] | None:
    key = (str(session.get_bind().engine.url), version)
    if key not in _support:
        row = session.get(PolicyVersionRow, version)
        terms = None
        if row is not None and row.support is not None:
            terms = {plan: _terms_from_json(plan, data) for plan, data in row.support.items()}
        with _policies_lock:
            if len(_support) > 1000:
                _support.clear()
            _support[key] = terms
    return _support[key]


def support_of(session: Session, plan_key: str) -> SupportTerms:
    """The support terms in force for an organization's plan (an unknown plan is queue: nobody is woken).

    Read on every ticket filed: from the policy version in force (one small read per transaction, shared with the
    SLA context of the ticket), not the plan's row. Plans not yet seeded would be the built-in ones, all queue."""
    key = _plan_key(plan_key) if plan_key else ""
    version = latest_version(session)
    terms = _support_in(session, version) if version is not None and key else None
    if terms is not None:
        return terms.get(key) or SupportTerms(plan=plan_key)
    row = session.get(PlanRow, key) if key else None
    return terms_of(row) if row is not None else SupportTerms(plan=plan_key)


def _write_policy_version(session: Session, now: datetime) -> PolicyVersionRow:
    latest = latest_policy_version(session)
    row = PolicyVersionRow(
        version=(latest.version + 1) if latest else 1,
        rules=_effective_rules(session),
        support={plan.key: support_json(plan) for plan in plans_in_order(session)},
        warning_fraction=latest.warning_fraction if latest else DEFAULT_WARNING_FRACTION,
        created_at=now,
    )
    session.add(row)
    session.flush()
    transaction_memo(session)[_LATEST] = row.version
    return row


_LATEST = "sla.latest_policy_version"


def latest_version(session: Session) -> int | None:
    """The number of the latest policy version (None before the plans are seeded), read once per transaction."""
    memo = transaction_memo(session)
    if _LATEST not in memo:
        memo[_LATEST] = session.scalar(select(func.max(PolicyVersionRow.version)))
    version: int | None = memo[_LATEST]
    return version


# Keyed by database too: one process may serve several (tests, tools). Per process, and safe with several web
# processes: a version never changes once written.
_policies: dict[tuple[str, int], tuple[Policy, float]] = {}
_policies_lock = threading.Lock()


def policy_version(session: Session, version: int) -> tuple[Policy, float]:
    """(policy, warning fraction) of one stored version; versions never change, so they are cached."""
    key = (str(session.get_bind().engine.url), version)
    found = _policies.get(key)
    if found is None:
        row = session.get(PolicyVersionRow, version)
        if row is None:
            raise NotFound(f"no SLA policy version {version}")
        found = (policy_from_json(f"v{version}", row.rules), row.warning_fraction)
        with _policies_lock:
            if len(_policies) > 1000:
                _policies.clear()
            _policies[key] = found
    return found


def current_policy_version(session: Session, clock: Clock | None = None) -> int:
    """The version in force now (seeding the demo plans on first use)."""
    latest = latest_version(session)
    if latest is None:
        ensure_plans(session, clock)
        latest = latest_version(session)
        assert latest is not None
    return latest


# -- calendars of organizations ------------------------------------------------------------------------


def organization_calendar(session: Session, clock: Clock, org: Organization) -> tuple[str, int]:
    """(calendar id, version in force) of an organization: its assigned calendar, else its country and zone.

    Read once per transaction (a filed ticket's SLA context and its on-duty check both ask); an assignment or a
    calendar edit in the transaction forgets it."""
    memo = transaction_memo(session)
    found: tuple[str, int] | None = memo.get((_ORG_CALENDAR, org.id))
    if found is not None:
        return found
    assigned = session.get(OrganizationCalendarRow, org.id)
    if assigned is not None:
        cal = calendars.get_calendar(session, assigned.calendar_id)
    else:
        cal = calendars.ensure_country_calendar(session, clock, org.country or "CN", org.timezone or "UTC")
    found = memo[(_ORG_CALENDAR, org.id)] = (cal.id, cal.version)
    return found


_ORG_CALENDAR = "sla.organization_calendar"


def forget_organization_calendars(session: Session) -> None:
    """Calendars or their assignments changed in this transaction: the next lookup reads them again."""
    memo = transaction_memo(session)
    for key in [k for k in memo if isinstance(k, tuple) and k[0] == _ORG_CALENDAR]:
        del memo[key]


def assign_calendar(session: Session, organization_id: str, calendar_id: str) -> OrganizationCalendarRow:
    """Count an organization's new tickets on this calendar (tickets already filed keep theirs)."""
    if identity.organization(session, organization_id) is None:
        raise NotFound(f"no organization {organization_id}")
    cal = calendars.get_calendar(session, calendar_id)
    forget_organization_calendars(session)
    row = session.get(OrganizationCalendarRow, organization_id)
    if row is None:
        row = OrganizationCalendarRow(organization_id=organization_id, calendar_id=cal.id)
        session.add(row)
    else:
        row.calendar_id = cal.id
    session.flush()
    return row


def hours_at(session: Session, clock: Clock, org: Organization, at: datetime) -> str:
    """Where `at` falls on the organization's business calendar: "business", "holiday" or "off_hours"."""
    calendar_id, version = organization_calendar(session, clock, org)
    cal = calendars.calendar_version(session, calendar_id, version)
    if cal.is_open(at):
        return "business"
    return "holiday" if at.astimezone(cal.zone).date() in cal.holidays else "off_hours"


def in_business_hours(session: Session, clock: Clock, org: Organization, at: datetime) -> bool:
    """Is `at` within the organization's business hours (its calendar: holidays closed, make-up days open)?"""
    return hours_at(session, clock, org, at) == "business"

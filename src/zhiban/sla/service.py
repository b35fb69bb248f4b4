"""Use cases of SLAs: plans and policy rules in the database, clocks replayed from the ticket log, timers,
the urgency queue, what-if due times, and notifications of warnings and breaches.

The ticket event log is the truth: `recompute_ticket` replays it (plus the policy and calendar versions that
came into force since the ticket was filed) with sla.model.compute_clocks, then rewrites the ticket's rows of
`sla_clocks` and re-arms its timers. Policy and calendar edits write new immutable versions, so a replay
counts business time already used under the rules then in force.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, Row, Table, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from zhiban import engine as jobs_engine
from zhiban.calendars import service as calendars
from zhiban.calendars.model import BusinessCalendar, always_open
from zhiban.core.clock import Clock, SystemClock
from zhiban.core.errors import Forbidden, InvalidInput, NotFound
from zhiban.engine.service import cancel_many, enqueue_many
from zhiban.identity import service as identity
from zhiban.identity.model import Organization, Person, Principal, Role, Team
from zhiban.sla import notices, queries
from zhiban.sla.model import (
    CALENDAR_24X7,
    CALENDAR_BUSINESS,
    DEFAULT_WARNING_FRACTION,
    METRIC_ORDER,
    AgentReply,
    CalendarChanged,
    ClockState,
    CustomerMessage,
    Metric,
    Policy,
    PolicyChanged,
    PolicyRule,
    Priority,
    PriorityChanged,
    SlaClock,
    StatusChanged,
    Target,
    TicketCreated,
    TicketEvent,
    compute_clocks,
)
from zhiban.sla.plans import PLANS, business_calendar
from zhiban.sla.store import (
    ClockChangeRow,
    ClockRow,
    NotificationRow,
    OrganizationCalendarRow,
    PlanRow,
    PolicyRuleRow,
    PolicyVersionRow,
    SlaTicketRow,
    bulk_insert,
    bulk_update,
    clocks_of,
    history_of,
    ids_in,
    latest_policy_version,
    plans_in_order,
    rules_in_order,
)
from zhiban.tickets import service as tickets
from zhiban.tickets.model import EventKind, Status, TicketChange

OPEN_STATUSES = frozenset({"new", "open", "pending", "on_hold"})
WAITING_STATUSES = frozenset({"pending", "solved", "closed"})  # nobody owes the customer an answer now
PRIORITY_RANK = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}
NO_DUE_BASE = 4 * 10**18  # sort keys of tickets without a running clock start here (after any epoch µs)
MAX_TARGET_MINUTES = 366 * 24 * 60
MAX_RULES = 500
MAX_PLANS = 100
WARNING_JOB = "sla.warning"
BREACH_JOB = "sla.breach"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TICK = timedelta(microseconds=1)


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


def _write_policy_version(session: Session, now: datetime) -> PolicyVersionRow:
    latest = latest_policy_version(session)
    row = PolicyVersionRow(
        version=(latest.version + 1) if latest else 1,
        rules=_effective_rules(session),
        warning_fraction=latest.warning_fraction if latest else DEFAULT_WARNING_FRACTION,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


# Keyed by database too: one process may serve several (tests, tools).
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
    latest = latest_policy_version(session)
    if latest is None:
        ensure_plans(session, clock)
        latest = latest_policy_version(session)
        assert latest is not None
    return latest.version


def _policy_edited(session: Session, clock: Clock) -> PolicyVersionRow:
    """Publish the edited plans and rules as a new version and re-apply it to open tickets."""
    row = _write_policy_version(session, clock.now())
    recompute_open_tickets(session, clock)
    return row


# -- plans CRUD ----------------------------------------------------------------------------------------


def list_plans(session: Session) -> list[PlanRow]:
    ensure_plans(session)
    return plans_in_order(session)


def get_plan(session: Session, key: str) -> PlanRow:
    ensure_plans(session)
    row = session.get(PlanRow, _plan_key(key))
    if row is None:
        raise NotFound(f"no plan {key!r}")
    return row


def save_plan(
    session: Session,
    clock: Clock,
    key: str,
    *,
    name: str | None = None,
    targets: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    proactive_warning: bool | None = None,
    position: int | None = None,
) -> PlanRow:
    """Create or change a plan; the new policy version applies to open tickets from now on."""
    ensure_plans(session, clock)
    key = _plan_key(key)
    row = session.get(PlanRow, key)
    if row is None:
        if len(plans_in_order(session)) >= MAX_PLANS:
            raise InvalidInput(f"at most {MAX_PLANS} plans")
        row = PlanRow(key=key, name=key.capitalize(), targets={}, proactive_warning=False, position=MAX_PLANS)
        session.add(row)
    if name is not None:
        name = " ".join(name.split())
        if not 1 <= len(name) <= 100:
            raise InvalidInput("a plan name has 1-100 characters")
        row.name = name
    if targets is not None:
        row.targets = clean_plan_targets(targets)
    if proactive_warning is not None:
        row.proactive_warning = proactive_warning
    if position is not None:
        row.position = position
    row.updated_at = clock.now()
    session.flush()
    _policy_edited(session, clock)
    return row


def delete_plan(session: Session, clock: Clock, key: str) -> None:
    """Remove a plan: its tickets keep time used, and have no targets from now on (breaches stay)."""
    row = get_plan(session, key)
    session.delete(row)
    session.flush()
    _policy_edited(session, clock)


# -- policy rules CRUD ---------------------------------------------------------------------------------


def _clean_opt(value: str | None, what: str, allowed: Iterable[str] | None = None, size: int = 64) -> str | None:
    if value is None or value == "":
        return None
    value = value.strip()
    if len(value) > size or (allowed is not None and value not in allowed):
        raise InvalidInput(f"bad {what} {value[:70]!r}")
    return value


def list_rules(session: Session) -> list[PolicyRuleRow]:
    return rules_in_order(session)


def add_rule(
    session: Session,
    clock: Clock,
    *,
    name: str,
    targets: Sequence[Mapping[str, Any]],
    plan: str | None = None,
    priority: str | None = None,
    channel: str | None = None,
    category: str | None = None,
    position: int | None = None,
) -> PolicyRuleRow:
    """Add a rule checked before the plans' rules, at `position` (0 = first; default last)."""
    ensure_plans(session, clock)
    rules = rules_in_order(session)
    if len(rules) >= MAX_RULES:
        raise InvalidInput(f"at most {MAX_RULES} rules")
    name = " ".join(str(name).split())
    if not 1 <= len(name) <= 100:
        raise InvalidInput("a rule name has 1-100 characters")
    row = PolicyRuleRow(
        name=name,
        plan=_plan_key(plan) if plan else None,
        priority=_clean_opt(priority, "priority", PRIORITY_RANK),
        channel=_clean_opt(channel, "channel", size=16),
        category=_clean_opt(category, "category"),
        targets=clean_targets(targets),
        position=0,
        updated_at=clock.now(),
    )
    session.add(row)
    session.flush()
    at = len(rules) if position is None else max(0, min(position, len(rules)))
    _renumber([*rules[:at], row, *rules[at:]])
    _policy_edited(session, clock)
    return row


def _renumber(rows: Sequence[PolicyRuleRow]) -> None:
    for i, r in enumerate(rows):
        r.position = i


def _rule(session: Session, rule_id: int) -> PolicyRuleRow:
    row = session.get(PolicyRuleRow, rule_id)
    if row is None:
        raise NotFound(f"no SLA rule {rule_id}")
    return row


def update_rule(
    session: Session,
    clock: Clock,
    rule_id: int,
    *,
    name: str | None = None,
    targets: Sequence[Mapping[str, Any]] | None = None,
    plan: str | None = None,
    priority: str | None = None,
    channel: str | None = None,
    category: str | None = None,
) -> PolicyRuleRow:
    """Change a rule's match or targets ("" clears a match field)."""
    row = _rule(session, rule_id)
    if name is not None:
        row.name = " ".join(name.split())[:100] or row.name
    if targets is not None:
        row.targets = clean_targets(targets)
    if plan is not None:
        row.plan = _plan_key(plan) if plan else None
    if priority is not None:
        row.priority = _clean_opt(priority, "priority", PRIORITY_RANK)
    if channel is not None:
        row.channel = _clean_opt(channel, "channel", size=16)
    if category is not None:
        row.category = _clean_opt(category, "category")
    row.updated_at = clock.now()
    session.flush()
    _policy_edited(session, clock)
    return row


def delete_rule(session: Session, clock: Clock, rule_id: int) -> None:
    row = _rule(session, rule_id)
    session.delete(row)
    session.flush()
    _renumber(rules_in_order(session))
    _policy_edited(session, clock)


def reorder_rules(session: Session, clock: Clock, rule_ids: Sequence[int]) -> list[PolicyRuleRow]:
    """Put the rules in this order (every rule exactly once)."""
    rules = rules_in_order(session)
    by_id = {r.id: r for r in rules}
    if sorted(rule_ids) != sorted(by_id):
        raise InvalidInput("list every rule id exactly once")
    ordered = [by_id[i] for i in rule_ids]
    _renumber(ordered)
    session.flush()
    _policy_edited(session, clock)
    return ordered


# -- calendars of organizations ------------------------------------------------------------------------


def organization_calendar(session: Session, clock: Clock, org: Organization) -> tuple[str, int]:
    """(calendar id, version in force) of an organization: its assigned calendar, else its country and zone."""
    assigned = session.get(OrganizationCalendarRow, org.id)
    if assigned is not None:
        cal = calendars.get_calendar(session, assigned.calendar_id)
    else:
        cal = calendars.ensure_country_calendar(session, clock, org.country or "CN", org.timezone or "UTC")
    return cal.id, cal.version


def assign_calendar(session: Session, organization_id: str, calendar_id: str) -> OrganizationCalendarRow:
    """Count an organization's new tickets on this calendar (tickets already filed keep theirs)."""
    if identity.organization(session, organization_id) is None:
        raise NotFound(f"no organization {organization_id}")
    cal = calendars.get_calendar(session, calendar_id)
    row = session.get(OrganizationCalendarRow, organization_id)
    if row is None:
        row = OrganizationCalendarRow(organization_id=organization_id, calendar_id=cal.id)
        session.add(row)
    else:
        row.calendar_id = cal.id
    session.flush()
    return row


# -- replay --------------------------------------------------------------------------------------------


@dataclass
class Facts:
    """What the log says of a ticket now, besides its clocks."""

    priority: Priority = Priority.P3
    status: Status = Status.NEW
    created_at: datetime = _EPOCH


def model_events(
    st: SlaTicketRow | Row[Any],
    log: Iterable[TicketChange],
    policy_changes: Sequence[tuple[int, datetime]],
    calendar_changes: Sequence[tuple[int, datetime]],
    facts: Facts,
) -> list[TicketEvent]:
    """The SLA events of a ticket: its changes plus the policy and calendar versions since."""
    out: list[TicketEvent] = []
    created: datetime | None = None
    for change in log:
        kind, at = change.kind, change.at
        if kind == EventKind.CREATED:
            created = at
            priority = change.priority or Priority.P3
            facts.priority, facts.created_at = priority, at
            out.append(
                TicketCreated(
                    at=at,
                    priority=priority,
                    plan=st.plan,
                    channel=change.data.get("channel"),
                    category=change.data.get("category"),
                    policy=f"v{st.policy_version}",
                    business_calendar=calendars.calendar_ref(st.calendar_id, st.calendar_version),
                )
            )
        elif kind == EventKind.CUSTOMER_MESSAGE:
            out.append(CustomerMessage(at=at))
        elif kind == EventKind.AGENT_REPLY:
            out.append(AgentReply(at=at))
        elif kind == EventKind.STATUS_CHANGED and (status := change.status):
            facts.status = status
            out.append(StatusChanged(at=at, to=status))
        elif kind == EventKind.PRIORITY_CHANGED and (changed := change.priority):
            facts.priority = changed
            out.append(PriorityChanged(at=at, to=changed))
    if created is None:
        return []
    for version, at in policy_changes:
        if version > st.policy_version:
            out.append(PolicyChanged(at=max(at, created), to=f"v{version}"))
    for version, at in calendar_changes:
        if version > st.calendar_version:
            ref = calendars.calendar_ref(st.calendar_id, version)
            out.append(CalendarChanged(at=max(at, created), to=ref))
    return out


class _Resolvers:
    """Calendar and policy lookups for replays, memoized for one batch."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.calendars: dict[str, BusinessCalendar] = {CALENDAR_24X7: always_open("UTC")}
        self.policies: dict[str, Policy] = {}

    def calendar(self, name: str) -> BusinessCalendar:
        cal = self.calendars.get(name)
        if cal is None:
            cal = calendars.resolve_ref(self.session, name)
            self.calendars[name] = cal
        return cal

    def policy(self, name: str) -> Policy:
        found = self.policies.get(name)
        if found is None:
            found = self.policies[name] = policy_version(self.session, int(name.removeprefix("v")))[0]
        return found


def replay(
    resolvers: _Resolvers, events: Sequence[TicketEvent], now: datetime, warning_fraction: float
) -> list[SlaClock]:
    return compute_clocks(events, resolvers.calendar, now, resolvers.policy, warning_fraction)


# -- materializing -------------------------------------------------------------------------------------


@dataclass
class TimerOps:
    """Engine work decided by a recompute, applied after the rows are written."""

    cancel: list[str] = field(default_factory=list)
    arm: list[tuple[str, dict[str, Any], datetime, str]] = field(default_factory=list)


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def timer_key(kind: str, ticket_id: int, metric: str, cycle: int, at: datetime) -> str:
    """One timer per ticket × metric × cycle and due moment: moving the moment makes a new timer."""
    return f"{kind}:{ticket_id}:{metric}:{cycle}:{_us(at)}"


def _desired_timers(c: SlaClock) -> tuple[datetime | None, datetime | None]:
    """(warning, breach) moments a clock needs a timer for.

    A target met exactly at its due time is met, so the breach timer is set just after it.
    """
    if c.state is ClockState.ACTIVE and c.due_at is not None:
        return c.warning_at, c.due_at + _TICK
    if c.state is ClockState.BREACHED and c.fulfilled_at is None and c.breached_at is not None:
        return None, c.breached_at + _TICK  # overdue: the same timer as while it was running
    return None, None


def _arm(
    ops: TimerOps,
    kind: str,
    ticket_id: int,
    c: SlaClock,
    armed: datetime | None,
    wanted: datetime | None,
    lazy_later: bool,
) -> datetime | None:
    """Decide one timer; returns the moment it is armed at afterwards."""
    if wanted == armed:
        return armed
    if armed is not None and wanted is not None and wanted > armed and lazy_later:
        return armed  # it fires early, finds the clock not yet due, and re-arms itself at the new moment
    if armed is not None:
        ops.cancel.append(timer_key(kind, ticket_id, c.metric.value, c.cycle, armed))
    if wanted is None:
        return None
    payload = {"ticket_id": ticket_id, "metric": c.metric.value, "cycle": c.cycle}
    ops.arm.append((kind, payload, wanted, timer_key(kind, ticket_id, c.metric.value, c.cycle, wanted)))
    return wanted


def _rows_for(
    ticket_id: int,
    clocks: Sequence[SlaClock],
    old: Mapping[tuple[str, int], Mapping[str, Any]],
    now: datetime,
    reason: str,
    ops: TimerOps,
    history: list[dict[str, Any]],
    lazy_later: bool,
) -> list[dict[str, Any]]:
    """New clock rows (carrying armed timers), timer decisions and history entries for one ticket."""
    rows = []
    seen = set()
    for c in clocks:
        key = (c.metric.value, c.cycle)
        seen.add(key)
        before = old.get(key)
        warn_wanted, breach_wanted = _desired_timers(c)
        warning_timer = _arm(
            ops, WARNING_JOB, ticket_id, c, before["warning_timer_at"] if before else None, warn_wanted, lazy_later
        )
        breach_timer = _arm(
            ops, BREACH_JOB, ticket_id, c, before["breach_timer_at"] if before else None, breach_wanted, lazy_later
        )
        if before is None or before["state"] != c.state.value or before["due_at"] != c.due_at:
            history.append(
                {
                    "ticket_id": ticket_id,
                    "metric": c.metric.value,
                    "cycle": c.cycle,
                    "state": c.state.value,
                    "due_at": c.due_at,
                    "reason": reason if before is not None else "started",
                    "at": now,
                }
            )
        rows.append(
            {
                "ticket_id": ticket_id,
                "metric": c.metric.value,
                "cycle": c.cycle,
                "state": c.state.value,
                "calendar": c.target.calendar,
                "started_at": c.started_at,
                "due_at": c.due_at,
                "warning_at": c.warning_at,
                "breached_at": c.breached_at,
                "fulfilled_at": c.fulfilled_at,
                "business_seconds_used": c.business_time_used.total_seconds(),
                "target_seconds": int(c.target.duration.total_seconds()),
                "warning_timer_at": warning_timer,
                "breach_timer_at": breach_timer,
            }
        )
    for (metric, cycle), before in old.items():
        if (metric, cycle) in seen:
            continue
        for kind, col in ((WARNING_JOB, "warning_timer_at"), (BREACH_JOB, "breach_timer_at")):
            if before[col] is not None:
                ops.cancel.append(timer_key(kind, ticket_id, metric, cycle, before[col]))
        history.append(
            {
                "ticket_id": ticket_id,
                "metric": metric,
                "cycle": cycle,
                "state": "dropped",
                "due_at": None,
                "reason": reason,
                "at": now,
            }
        )
    return rows


def _urgency(rows: Sequence[Mapping[str, Any]], facts: Facts) -> dict[str, Any]:
    """The queue position: the nearest due time of a running or overdue clock, else priority then age."""
    running = facts.status not in WAITING_STATUSES
    best: Mapping[str, Any] | None = None
    for r in rows:
        live = r["state"] == ClockState.ACTIVE.value or (
            running and r["state"] == ClockState.BREACHED.value and r["fulfilled_at"] is None
        )
        if live and r["due_at"] is not None and (best is None or r["due_at"] < best["due_at"]):
            best = r
    if best is None:
        rank = PRIORITY_RANK.get(facts.priority, 5)
        key = NO_DUE_BASE + rank * 10**17 + max(_us(facts.created_at), 0)
        return {"sort_key": key, "urgent_metric": None, "urgent_cycle": None, "urgent_due_at": None}
    return {
        "sort_key": _us(best["due_at"]),
        "urgent_metric": best["metric"],
        "urgent_cycle": best["cycle"],
        "urgent_due_at": best["due_at"],
    }


def _apply_timers(session: Session, ops: TimerOps) -> None:
    for key in ops.cancel:
        jobs_engine.cancel(session, key)
    for kind, payload, due, key in ops.arm:
        jobs_engine.enqueue(session, kind, payload, due_at=due, dedup_key=key)


_CLOCKS = cast(Table, ClockRow.__table__)
_HISTORY = cast(Table, ClockChangeRow.__table__)
_SLA_TICKETS = cast(Table, SlaTicketRow.__table__)
_CLOCK_COLUMNS = [c.name for c in _CLOCKS.columns]
_URGENCY_COLUMNS = ("is_open", "computed_at", "sort_key", "urgent_metric", "urgent_cycle", "urgent_due_at")


class _Ticket(Protocol):
    """Which ticket, and whose (a `TicketRef`, or any object that says so)."""

    @property
    def id(self) -> int: ...
    @property
    def organization_id(self) -> str: ...


def _context(session: Session, clock: Clock, ticket: _Ticket) -> SlaTicketRow:
    """The ticket's SLA context, made when it is first seen: the plan, policy and calendar in force."""
    st = session.get(SlaTicketRow, ticket.id, with_for_update=True)
    if st is not None:
        return st
    org = identity.organization(session, ticket.organization_id)
    if org is None:
        raise NotFound(f"no organization for ticket #{ticket.id}")
    calendar_id, calendar_version = organization_calendar(session, clock, org)
    st = SlaTicketRow(
        ticket_id=ticket.id,
        plan=(org.plan or "").lower(),
        policy_version=current_policy_version(session, clock),
        calendar_id=calendar_id,
        calendar_version=calendar_version,
        is_open=True,
        sort_key=NO_DUE_BASE,
        computed_at=clock.now(),
    )
    session.add(st)
    session.flush()
    return st


def _policy_changes(session: Session, after: int) -> list[tuple[int, datetime]]:
    query = select(PolicyVersionRow.version, PolicyVersionRow.created_at).where(PolicyVersionRow.version > after)
    return [(v, at) for v, at in session.execute(query.order_by(PolicyVersionRow.version))]


def _calendar_changes(session: Session, calendar_id: str, after: int) -> list[tuple[int, datetime]]:
    return [(r.version, r.created_at) for r in calendars.versions_after(session, calendar_id, after)]


def recompute_ticket(
    session: Session,
    clock: Clock,
    ticket: _Ticket,
    reason: str = "recompute",
    *,
    latest: TicketChange | None = None,
    lazy_later: bool = False,
) -> list[SlaClock]:
    """Replay one ticket's changes into its clocks, rewrite its `sla_clocks` rows and re-arm its timers.

    `latest`: the change just published, which is not read back from the log.
    """
    _ticket_changed()
    now = clock.now()
    st = _context(session, clock, ticket)
    log = tickets.history(session, ticket.id, before=latest.seq if latest else None) + ([latest] if latest else [])
    facts = Facts()
    events = model_events(
        st,
        log,
        _policy_changes(session, st.policy_version),
        _calendar_changes(session, st.calendar_id, st.calendar_version),
        facts,
    )
    _, fraction = policy_version(session, _latest_version_in(events, st.policy_version))
    clocks = replay(_Resolvers(session), events, now, fraction) if events else []
    old = {(r.metric, r.cycle): {c: getattr(r, c) for c in _CLOCK_COLUMNS} for r in clocks_of(session, ticket.id)}
    ops, history = TimerOps(), list[dict[str, Any]]()
    rows = _rows_for(ticket.id, clocks, old, now, reason, ops, history, lazy_later)
    session.execute(delete(ClockRow).where(ClockRow.ticket_id == ticket.id))
    if rows:
        session.execute(insert(ClockRow), rows)
    if history:
        session.execute(insert(ClockChangeRow), history)
    for name, value in _urgency(rows, facts).items():
        setattr(st, name, value)
    st.is_open = facts.status in OPEN_STATUSES
    st.computed_at = now
    session.flush()
    # Rows were written with Core: drop stale ORM copies of this ticket's clocks.
    for r in list(session.identity_map.values()):
        if isinstance(r, ClockRow) and r.ticket_id == ticket.id:
            session.expire(r)
    _apply_timers(session, ops)
    return clocks


def _latest_version_in(events: Sequence[TicketEvent], default: int) -> int:
    version = default
    for e in events:
        if isinstance(e, PolicyChanged):
            version = max(version, int(e.to.removeprefix("v")))
    return version


@dataclass(frozen=True)
class RecomputeReport:
    """What a batch recompute did: tickets replayed, the clocks they have, what was rewritten."""

    tickets: int  # tickets replayed
    clocks: int  # clocks of the tickets replayed
    timers_armed: int
    timers_cancelled: int
    changed: int = 0  # tickets whose clocks or queue position changed: only these rows are rewritten
    clocks_written: int = 0


RECOMPUTE_CHUNK = 2000  # tickets read, replayed and written per round: memory stays bounded at any size
TIMER_FLUSH = 5000  # timer changes gathered over rounds, then written in a few statements
LAST_RECOMPUTE = "zhiban.sla.last_recompute"  # session.info key of the transaction's last RecomputeReport
# What makes a clock row changed. Business time used grows at every replay, so on its own it does not
# cause a rewrite: the stored value is a snapshot as of the ticket's last rewrite (sla_tickets.computed_at).
_COMPARED = tuple(c for c in _CLOCK_COLUMNS if c != "business_seconds_used")
_NOWHERE = datetime.max.replace(tzinfo=UTC)


def _calendar_edit_reach(session: Session, calendar_id: str) -> datetime | None:
    """From when the calendar's last edit changed its hours (None: anywhere, e.g. new weekly hours).

    The edit applies from now on and the hours before this moment are unchanged, so a running clock due
    before it keeps its due and warning times: only clocks due later need a replay.
    """
    row = calendars.get_calendar(session, calendar_id)
    try:
        before = calendars.calendar_version(session, row.id, row.version - 1)
        after = calendars.calendar_version(session, row.id, row.version)
    except NotFound:
        return None
    if before.tz != after.tz or before.weekly != after.weekly:
        return None
    special = before.holidays | after.holidays | {d for d, _ in before.workdays} | {d for d, _ in after.workdays}
    changed = [d for d in special if before.hours_on(d) != after.hours_on(d)]
    if not changed:
        return _NOWHERE
    # Hours belong to the date they start on; a day's margin also covers a zone change at midnight.
    eve = min(changed) - timedelta(days=1)
    return datetime.combine(eve, datetime.min.time(), tzinfo=after.zone).astimezone(UTC)


def recompute_open_tickets(
    session: Session, clock: Clock, calendar_id: str | None = None, reason: str | None = None
) -> RecomputeReport:
    """Re-apply the policy and calendars in force to every open ticket (or, with `calendar_id`, the calendar's
    latest edit to the open tickets counting on it).

    Batch work, in rounds of RECOMPUTE_CHUNK tickets: one query each for the tickets, their logs and their
    clocks, one replay per ticket, then bulk writes of only the tickets whose clocks changed, and the timers
    armed and cancelled in bulk. After a calendar edit only tickets with a running business-hours clock due
    after the first changed date are replayed: other clocks (24x7, paused, met, breached, due sooner) cannot
    move. Timers move at once when a due time comes earlier; when it moves later the armed timer fires
    early, finds the clock not yet due and re-arms itself, so a big edit does not rewrite every timer.
    The report is also left in session.info[LAST_RECOMPUTE].
    """
    now = clock.now()
    reason = reason or ("calendar_changed" if calendar_id else "policy_changed")
    _backfill(session, clock)
    st = _SLA_TICKETS
    scope: ColumnElement[bool] = st.c.is_open.is_(True)
    if calendar_id is not None:
        scope = scope & (st.c.calendar_id == calendar_id)
        reach = _calendar_edit_reach(session, calendar_id)
        if reach == _NOWHERE:
            return _reported(session, RecomputeReport(0, 0, 0, 0))
        running = select(_CLOCKS.c.ticket_id).where(
            _CLOCKS.c.state == ClockState.ACTIVE.value, _CLOCKS.c.calendar == CALENDAR_BUSINESS
        )
        if reach is not None:
            running = running.where(_CLOCKS.c.due_at >= reach)
        scope = scope & st.c.ticket_id.in_(running)
    batch = _Batch(session, clock, reason)
    session.flush()
    # Plain rows through the connection: no ORM result machinery for 100k-row reads.
    conn = session.connection()
    columns = [st.c[name] for name in ("ticket_id", "plan", "policy_version", "calendar_id", "calendar_version")]
    columns += [st.c[name] for name in _URGENCY_COLUMNS if name != "computed_at"]
    query = select(*columns).where(scope).order_by(st.c.ticket_id).limit(RECOMPUTE_CHUNK)
    after = 0
    while True:
        chunk = conn.execute(query.where(st.c.ticket_id > after)).all()
        if not chunk:
            break
        after = chunk[-1].ticket_id
        batch.run(conn, chunk, now)
    session.expire_all()  # rows were written with Core: drop stale ORM copies
    return _reported(session, batch.report())


def _reported(session: Session, report: RecomputeReport) -> RecomputeReport:
    if report.changed:
        _ticket_changed()
    session.info[LAST_RECOMPUTE] = report
    return report


class _Batch:
    """Replays and rewrites open tickets in rounds, with lookups shared by the whole batch."""

    def __init__(self, session: Session, clock: Clock, reason: str) -> None:
        self.session, self.reason = session, reason
        self.policy_changes = _policy_changes(session, 0)
        latest = self.policy_changes[-1][0] if self.policy_changes else current_policy_version(session, clock)
        self.fraction = policy_version(session, latest)[1]
        self.calendar_changes: dict[str, list[tuple[int, datetime]]] = {}
        self.resolvers = _Resolvers(session)
        self.ops = TimerOps()
        self.tickets = self.clocks = self.armed = self.cancelled = self.changed = self.written = 0

    def report(self) -> RecomputeReport:
        self.flush_timers()
        return RecomputeReport(self.tickets, self.clocks, self.armed, self.cancelled, self.changed, self.written)

    def run(self, conn: Connection, chunk: Sequence[Row[Any]], now: datetime) -> None:
        """Replay one round of tickets and write what changed."""
        ids = [r.ticket_id for r in chunk]
        logs = tickets.histories(self.session, ids)
        old: dict[int, dict[tuple[str, int], dict[str, Any]]] = defaultdict(dict)
        for m in conn.execute(select(_CLOCKS).where(ids_in(self.session, _CLOCKS.c.ticket_id, ids))).mappings():
            old[m["ticket_id"]][(m["metric"], m["cycle"])] = dict(m)
        ops = self.ops
        history: list[dict[str, Any]] = []
        new_rows: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for st in chunk:
            changes = self.calendar_changes.get(st.calendar_id)
            if changes is None:
                changes = self.calendar_changes[st.calendar_id] = _calendar_changes(self.session, st.calendar_id, 0)
            facts = Facts()
            events = model_events(st, logs.get(st.ticket_id, ()), self.policy_changes, changes, facts)
            clocks = replay(self.resolvers, events, now, self.fraction) if events else []
            self.clocks += len(clocks)
            before = old.get(st.ticket_id, {})
            rows = _rows_for(st.ticket_id, clocks, before, now, self.reason, ops, history, True)
            urgency = {"is_open": facts.status in OPEN_STATUSES, **_urgency(rows, facts)}
            if _unchanged(rows, before) and all(st._mapping[k] == v for k, v in urgency.items()):
                continue  # nothing to write: no history either, and its timers stay as armed
            new_rows.extend(rows)
            updates.append({"ticket_id": st.ticket_id, "computed_at": now, **urgency})
        self.tickets += len(chunk)
        self._write([u["ticket_id"] for u in updates], new_rows, history, updates)
        if len(ops.cancel) + len(ops.arm) >= TIMER_FLUSH:
            self.flush_timers()

    def flush_timers(self) -> None:
        """Cancel and arm the timers decided so far, in a few statements."""
        ops, self.ops = self.ops, TimerOps()
        self.cancelled += len(ops.cancel)
        self.armed += len(ops.arm)
        cancel_many(self.session, ops.cancel)
        enqueue_many(self.session, ops.arm)

    def _write(
        self, ids: list[int], rows: list[dict[str, Any]], history: list[dict[str, Any]], updates: list[dict[str, Any]]
    ) -> None:
        # Core bulk statements: the ORM's per-object bookkeeping would dominate at this size.
        if not ids:
            return
        session = self.session
        session.execute(delete(_CLOCKS).where(ids_in(session, _CLOCKS.c.ticket_id, ids)))
        bulk_insert(session, _CLOCKS, rows)
        bulk_insert(session, _HISTORY, history)
        bulk_update(session, _SLA_TICKETS, "ticket_id", updates)
        self.changed += len(ids)
        self.written += len(rows)


def _unchanged(rows: Sequence[Mapping[str, Any]], before: Mapping[tuple[str, int], Mapping[str, Any]]) -> bool:
    """Whether replayed clock rows say what the stored ones say (business time used aside)."""
    if len(rows) != len(before):
        return False
    for row in rows:
        old = before.get((row["metric"], row["cycle"]))
        if old is None or any(row[c] != old[c] for c in _COMPARED):
            return False
    return True


_last_backfill = [float("-inf")]


def _maybe_backfill(session: Session, clock: Clock) -> None:
    """Tickets filed while no hook listened (e.g. seeded by a script) join the queue within a minute."""
    if time.monotonic() - _last_backfill[0] < 60:
        return
    _last_backfill[0] = time.monotonic()
    _backfill(session, clock)


def _backfill(session: Session, clock: Clock) -> None:
    """Give open tickets filed before SLAs were on (no sla_tickets row) their clocks."""
    for ticket in tickets.open_tickets_missing(session, select(SlaTicketRow.ticket_id), limit=10_000):
        recompute_ticket(session, clock, ticket, "backfill")


# -- reading -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Badge:
    """A ticket's most urgent clock as the queue shows it."""

    metric: str
    state: str
    due_at: datetime
    left: timedelta  # negative when overdue; business time for business targets
    business: bool


@dataclass(frozen=True, slots=True)
class QueueTicket:
    """The fields of a ticket that the queue shows (read in the queue's one query, not as ORM objects)."""

    id: int
    subject: str
    priority: str
    status: str
    organization_id: str
    organization_name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class QueueItem:
    ticket: QueueTicket
    badge: Badge | None


class _CalendarMemo:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.latest: dict[str, BusinessCalendar] = {}

    def of(self, calendar_id: str) -> BusinessCalendar:
        cal = self.latest.get(calendar_id)
        if cal is None:
            row = calendars.get_calendar(self.session, calendar_id)
            cal = self.latest[calendar_id] = calendars.calendar_version(self.session, row.id, row.version)
        return cal


def _badge(clock_row: ClockRow | None, st: SlaTicketRow, memo: _CalendarMemo, now: datetime) -> Badge | None:
    if clock_row is None or clock_row.due_at is None:
        return None
    return _badge_of(clock_row.metric, clock_row.state, clock_row.due_at, clock_row.calendar, st.calendar_id, memo, now)


def _badge_of(
    metric: str, state: str, due: datetime, calendar: str, calendar_id: str, memo: _CalendarMemo, now: datetime
) -> Badge:
    business = calendar == CALENDAR_BUSINESS and due > now
    left = memo.of(calendar_id).business_time_between(now, due) if business else due - now
    return Badge(metric, state, due, left, business)


def queue_order(
    session: Session, principal: Principal, limit: int = 200, clock: Clock | None = None
) -> list[QueueItem]:
    """Open tickets, most urgent first: overdue clocks, then the nearest due time, then tickets without a clock."""
    principal.require_staff()
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be 1-1000")
    clock = clock or SystemClock()
    now = clock.now()
    _maybe_backfill(session, clock)
    memo = _CalendarMemo(session)
    items = []
    for tid, cal_id, subject, prio, status, org_id, created, org_name, metric, state, due, cal in queries.queue_rows(
        session, limit
    ):
        badge = _badge_of(metric, state, due, cal, cal_id, memo, now) if due is not None else None
        items.append(QueueItem(QueueTicket(tid, subject, prio, status, org_id, org_name or "", created), badge))
    return items


# The queue heading's open-ticket count: counting 100k rows costs ~20-30 ms on PostgreSQL, on every page
# view. Any SLA recompute in this process (every ticket event runs one) refreshes it; changes made by other
# processes show within OPEN_COUNT_TTL seconds.
OPEN_COUNT_TTL = 10.0
_open_counts: dict[tuple[str, str | None], tuple[float, int, int]] = {}
_open_counts_lock = threading.Lock()
_tickets_changed = [0]


def _ticket_changed() -> None:
    with _open_counts_lock:
        _tickets_changed[0] += 1


def cached_open_count(session: Session, principal: Principal, count: Callable[[Session, Principal], int]) -> int:
    """`count(session, principal)` (the open tickets the caller may see), reused for up to OPEN_COUNT_TTL seconds."""
    key = (str(session.get_bind().engine.url), None if principal.is_staff else principal.organization_id)
    found = _open_counts.get(key)
    if found is not None and found[1] == _tickets_changed[0] and time.monotonic() - found[0] < OPEN_COUNT_TTL:
        return found[2]
    generation = _tickets_changed[0]
    value = count(session, principal)
    with _open_counts_lock:
        if len(_open_counts) > 10_000:
            _open_counts.clear()
        _open_counts[key] = (time.monotonic(), generation, value)
    return value


@dataclass(frozen=True)
class TicketSla:
    """A ticket's SLA: the plan's targets for its priority, every clock cycle, and their history."""

    ticket_id: int
    plan_key: str
    plan_name: str
    priority: str
    calendar_name: str
    calendar_tz: str
    targets: list[Target]
    clocks: list[ClockRow]
    history: list[ClockChangeRow]
    badges: dict[tuple[str, int], Badge]


def ticket_sla(session: Session, principal: Principal, clock: Clock, ticket_id: int) -> TicketSla:
    """The SLA of a ticket the caller may see (a customer only its own organization's)."""
    ticket = tickets.find(session, principal, ticket_id)
    st = session.get(SlaTicketRow, ticket_id)
    if st is None:
        recompute_ticket(session, clock, ticket, "backfill")
        st = session.get(SlaTicketRow, ticket_id)
        assert st is not None
    plan = session.get(PlanRow, st.plan)
    cal = calendars.get_calendar(session, st.calendar_id)
    latest = latest_policy_version(session)
    policy = policy_version(session, latest.version if latest else st.policy_version)[0]
    targets = sorted(
        policy.targets_for(st.plan, Priority(ticket.priority), ticket.channel, ticket.category).values(),
        key=lambda t: METRIC_ORDER.index(t.metric),
    )
    rows = clocks_of(session, ticket_id)
    rows.sort(key=lambda r: (METRIC_ORDER.index(Metric(r.metric)), r.cycle))
    memo = _CalendarMemo(session)
    now = clock.now()
    badges = {}
    for r in rows:
        if r.state in (ClockState.ACTIVE.value, ClockState.BREACHED.value) and r.fulfilled_at is None:
            b = _badge(r, st, memo, now)
            if b is not None:
                badges[(r.metric, r.cycle)] = b
    return TicketSla(
        ticket_id=ticket_id,
        plan_key=st.plan,
        plan_name=plan.name if plan else st.plan,
        priority=ticket.priority,
        calendar_name=cal.name,
        calendar_tz=cal.tz,
        targets=targets,
        clocks=rows,
        history=history_of(session, ticket_id),
        badges=badges,
    )


# -- what-if -------------------------------------------------------------------------------------------


def _builtin_policy() -> Policy:
    return policy_from_json("builtin", builtin_rules())


def due_times(
    plan: str,
    priority: str,
    country: str,
    tz: str,
    at: datetime,
    session: Session | None = None,
    channel: str | None = None,
    category: str | None = None,
) -> dict[str, datetime | None]:
    """Due time of each metric for a ticket filed at `at` with no further events (None: no target).

    With a session: the plans and policy in force and the desk's calendar for that country and zone;
    without: the built-in demo plans on the country's official calendar.
    """
    if at.tzinfo is None:
        raise InvalidInput("the filing time needs a zone")
    try:
        prio = Priority(priority.upper())
    except ValueError as exc:
        raise InvalidInput("priority must be P1, P2, P3 or P4") from exc
    key = _plan_key(plan)
    zone = _zone(tz)
    business: BusinessCalendar | None = None
    if session is not None:
        policy = policy_version(session, current_policy_version(session))[0]
        row = calendars.find_calendar(session, f"{country.strip().upper()} {tz}")
        if row is not None:
            business = calendars.calendar_version(session, row.id, row.version)
    else:
        policy = _builtin_policy()
    if not any(r.plan == key for r in policy.rules):
        known = sorted({r.plan for r in policy.rules if r.plan})
        raise InvalidInput(f"unknown plan {plan!r}; known: {', '.join(known)}")
    if business is None:
        business = business_calendar(country.strip().upper(), tz)
    cal_for = business
    targets = policy.targets_for(key, prio, channel, category)
    out: dict[str, datetime | None] = {}
    for metric in METRIC_ORDER:
        target = targets.get(metric)
        if target is None:
            out[f"{metric.value}_due"] = None
            continue
        cal = always_open(tz) if target.calendar == CALENDAR_24X7 else cal_for
        out[f"{metric.value}_due"] = cal.add_business_time(at, target.duration).astimezone(zone)
    return out


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (KeyError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {tz!r}") from exc


# -- notifications -------------------------------------------------------------------------------------


class _NoticeTicket(_Ticket, Protocol):
    """A ticket whose SLA notices are told: a `TicketSummary`, or any object that says so."""

    @property
    def subject(self) -> str: ...
    @property
    def team_id(self) -> str | None: ...
    @property
    def assignee_id(self) -> str | None: ...


def _active_person(session: Session, person_id: str | None) -> Person | None:
    person = identity.person(session, person_id)
    return person if person is not None and person.active and person.role != Role.CUSTOMER else None


def _team_lead(session: Session, ticket: _NoticeTicket, assignee: Person | None) -> Person | None:
    teams: list[Team] = []
    team = identity.team(session, ticket.team_id, by_name=False)
    if team is not None:
        teams.append(team)
    if assignee is not None:
        teams.extend(identity.teams_of(session, assignee.id))
    for team in teams:
        lead = _active_person(session, team.lead_id)
        if lead is not None:
            return lead
    return None


def escalation_chain(session: Session, ticket: _NoticeTicket, kind: str) -> list[tuple[Person, str]]:
    """Who hears of a warning (the assignee, else the team lead) or a breach (assignee → team lead → manager).

    Not an incidents escalation policy, on purpose: this chain is fixed and told all at once when the clock
    breaches (no timed levels, no acknowledgement, no repeats), and its people come from the ticket (its
    assignee and team), which no policy target names. Delivery is the same as pages': notify's outbox.
    """
    assignee = _active_person(session, ticket.assignee_id)
    lead = _team_lead(session, ticket, assignee)
    chain: list[tuple[Person, str]] = []
    if assignee is not None:
        chain.append((assignee, "assignee"))
    if lead is not None and (kind == "breach" or not chain):
        chain.append((lead, "team_lead"))
    if kind == "breach":
        chain.extend((m, "manager") for m in identity.admins(session, limit=3))
    seen: set[str] = set()
    unique = []
    for person, level in chain:
        if person.id not in seen:
            seen.add(person.id)
            unique.append((person, level))
    return unique


def notify(session: Session, clock: Clock, ticket: _NoticeTicket, row: ClockRow, kind: str) -> list[NotificationRow]:
    """Record the in-app notifications of a warning or breach (once per person) and queue their mail in notify."""
    made = []
    now = clock.now()
    for person, level in escalation_chain(session, ticket, kind):
        exists = session.scalar(
            select(NotificationRow.id).where(
                NotificationRow.ticket_id == ticket.id,
                NotificationRow.metric == row.metric,
                NotificationRow.cycle == row.cycle,
                NotificationRow.kind == kind,
                NotificationRow.person_id == person.id,
            )
        )
        if exists is not None:
            continue
        note = NotificationRow(
            person_id=person.id,
            ticket_id=ticket.id,
            metric=row.metric,
            cycle=row.cycle,
            kind=kind,
            level=level,
            due_at=row.due_at,
            created_at=now,
        )
        try:
            with session.begin_nested():
                session.add(note)
                session.flush()
        except IntegrityError:
            continue  # another run recorded it first
        notices.queue_mail(session, clock, note, person, ticket.subject)
        made.append(note)
    return made


def list_notifications(
    session: Session, principal: Principal, *, unread_only: bool = False, limit: int = 50
) -> list[NotificationRow]:
    """The caller's own SLA notifications, newest first (customers have none)."""
    if not 1 <= limit <= 200:
        raise InvalidInput("limit must be 1-200")
    if not principal.is_staff:
        return []
    query = select(NotificationRow).where(NotificationRow.person_id == principal.person_id)
    if unread_only:
        query = query.where(NotificationRow.read_at.is_(None))
    return list(
        session.scalars(query.order_by(NotificationRow.created_at.desc(), NotificationRow.id.desc()).limit(limit))
    )


def mark_read(session: Session, clock: Clock, principal: Principal, notification_id: int) -> NotificationRow:
    note = session.get(NotificationRow, notification_id)
    if note is None or note.person_id != principal.person_id:
        raise NotFound(f"no notification {notification_id}")
    if note.read_at is None:
        note.read_at = clock.now()
        session.flush()
    return note


def require_admin(principal: Principal) -> None:
    """SLA and calendar settings are for admins (with the admin scope on tokens)."""
    principal.require_scope("admin")
    if principal.role is not Role.ADMIN:
        raise Forbidden("this needs an admin")

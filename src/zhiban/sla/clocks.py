"""A ticket's SLA clocks replayed from its event log, and the warning and breach timers they arm."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Row
from sqlalchemy.orm import Session

from zhiban.calendars import service as calendars
from zhiban.calendars.model import BusinessCalendar, always_open
from zhiban.engine.service import cancel_many, enqueue_many
from zhiban.sla.model import (
    CALENDAR_24X7,
    AgentReply,
    CalendarChanged,
    ClockState,
    CustomerMessage,
    Policy,
    PolicyChanged,
    Priority,
    PriorityChanged,
    SlaClock,
    StatusChanged,
    TicketCreated,
    TicketEvent,
    compute_clocks,
)
from zhiban.sla.policies import (
    BREACH_JOB,
    NO_DUE_BASE,
    PRIORITY_RANK,
    WAITING_STATUSES,
    WARNING_JOB,
    policy_version,
)
from zhiban.sla.store import (
    SlaTicketRow,
)
from zhiban.tickets.model import EventKind, Status, TicketChange

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TICK = timedelta(microseconds=1)


# -- replay --------------------------------------------------------------------------------------------


@dataclass
class Facts:
    """What the log says of a ticket now, besides its clocks."""

    priority: Priority = Priority.P3
    status: Status = Status.NEW
    created_at: datetime = _EPOCH


class SlaContext(Protocol):
    """What a replay reads of a ticket's SLA context: a `sla_tickets` row, a row of its columns, or the values
    of one being written."""

    @property
    def plan(self) -> str: ...
    @property
    def policy_version(self) -> int: ...
    @property
    def calendar_id(self) -> str: ...
    @property
    def calendar_version(self) -> int: ...


def model_events(
    st: SlaContext | SlaTicketRow | Row[Any],
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
    # One statement each for the cancelled and the armed timers (a filed ticket arms about four).
    if ops.cancel:
        cancel_many(session, ops.cancel)
    if ops.arm:
        enqueue_many(session, ops.arm)

"""Reading SLAs: the agents' urgency queue with its clock badges, and one ticket's SLA."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from zhiban.calendars import service as calendars
from zhiban.calendars.model import BusinessCalendar
from zhiban.core.clock import Clock, SystemClock
from zhiban.core.errors import InvalidInput
from zhiban.identity.model import Principal
from zhiban.sla import queries
from zhiban.sla.model import (
    CALENDAR_BUSINESS,
    METRIC_ORDER,
    ClockState,
    Metric,
    Priority,
    Target,
)
from zhiban.sla.policies import policy_version
from zhiban.sla.recompute import _maybe_backfill, recompute_ticket
from zhiban.sla.store import (
    ClockChangeRow,
    ClockRow,
    PlanRow,
    SlaTicketRow,
    clocks_of,
    history_of,
    latest_policy_version,
)
from zhiban.tickets import service as tickets

# -- reading -------------------------------------------------------------------------------------------


def tickets_due_within(hours: float, now: datetime) -> Select[int]:
    """Open tickets whose most urgent running clock falls due after now and within `hours` (ticket search's
    "breaching within N hours"; already breached ones are the queue's red badges, not this)."""
    return select(SlaTicketRow.ticket_id).where(
        SlaTicketRow.is_open.is_(True),
        SlaTicketRow.urgent_due_at > now,
        SlaTicketRow.urgent_due_at <= now + timedelta(hours=hours),
    )


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

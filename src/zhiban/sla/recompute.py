"""Recompute of tickets' clocks: one ticket on each event, or every open ticket after a policy or calendar edit."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import ColumnElement, Connection, Row, Table, delete, insert, select
from sqlalchemy.orm import Session

from zhiban.calendars import service as calendars
from zhiban.core.clock import Clock
from zhiban.core.errors import NotFound
from zhiban.engine.service import cancel_many, enqueue_many
from zhiban.identity import service as identity
from zhiban.identity.model import Principal
from zhiban.sla.clocks import Facts, TimerOps, _apply_timers, _Resolvers, _rows_for, _urgency, model_events, replay
from zhiban.sla.model import (
    CALENDAR_BUSINESS,
    ClockState,
    PolicyChanged,
    SlaClock,
    TicketEvent,
)
from zhiban.sla.policies import (
    NO_DUE_BASE,
    OPEN_STATUSES,
    current_policy_version,
    organization_calendar,
    policy_version,
)
from zhiban.sla.store import (
    ClockChangeRow,
    ClockRow,
    PolicyVersionRow,
    SlaTicketRow,
    bulk_insert,
    bulk_update,
    clocks_of,
    ids_in,
)
from zhiban.tickets import service as tickets
from zhiban.tickets.model import EventKind, TicketChange

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


def _context(session: Session, clock: Clock, ticket: _Ticket) -> tuple[SlaTicketRow, bool]:
    """The ticket's SLA context, made when it is first seen: the plan, policy and calendar in force.

    Also says whether it was made just now.
    """
    st = session.get(SlaTicketRow, ticket.id, with_for_update=True)
    if st is not None:
        return st, False
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
    return st, True


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
    # A ticket being filed: its log is this one change, and it has no clocks or timers yet to read or replace.
    if latest is not None and latest.kind == EventKind.CREATED and latest.ticket.id == ticket.id:
        return _file(session, clock, ticket, latest, now, reason)
    st, made = _context(session, clock, ticket)
    log = tickets.history(session, ticket.id, before=latest.seq if latest else None) + ([latest] if latest else [])
    facts = Facts()
    # A context made just now holds the policy and calendar versions in force: none can be newer.
    events = model_events(
        st,
        log,
        [] if made else _policy_changes(session, st.policy_version),
        [] if made else _calendar_changes(session, st.calendar_id, st.calendar_version),
        facts,
    )
    _, fraction = policy_version(session, _latest_version_in(events, st.policy_version))
    clocks = replay(_Resolvers(session), events, now, fraction) if events else []
    old = (
        {}
        if made
        else {(r.metric, r.cycle): {c: getattr(r, c) for c in _CLOCK_COLUMNS} for r in clocks_of(session, ticket.id)}
    )
    ops, history = TimerOps(), list[dict[str, Any]]()
    rows = _rows_for(ticket.id, clocks, old, now, reason, ops, history, lazy_later)
    if not made:
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


def _file(
    session: Session, clock: Clock, ticket: _Ticket, created: TicketChange, now: datetime, reason: str
) -> list[SlaClock]:
    """A ticket being filed: its SLA context (plan, policy and calendar in force), clocks and timers, each written
    in one statement. Its log is the one change; nothing else can have seen the ticket, so nothing is read back."""
    org = identity.organization(session, ticket.organization_id)
    if org is None:
        raise NotFound(f"no organization for ticket #{ticket.id}")
    calendar_id, calendar_version = organization_calendar(session, clock, org)
    version = current_policy_version(session, clock)
    context = _Context(ticket.id, (org.plan or "").lower(), version, calendar_id, calendar_version)
    facts = Facts()
    events = model_events(context, [created], [], [], facts)
    _, fraction = policy_version(session, version)
    clocks = replay(_Resolvers(session), events, now, fraction) if events else []
    ops, history = TimerOps(), list[dict[str, Any]]()
    rows = _rows_for(ticket.id, clocks, {}, now, reason, ops, history, False)
    urgency = _urgency(rows, facts)
    session.execute(
        insert(SlaTicketRow),
        [{**asdict(context), **urgency, "is_open": facts.status in OPEN_STATUSES, "computed_at": now}],
    )
    if rows:
        session.execute(insert(ClockRow), rows)
    if history:
        session.execute(insert(ClockChangeRow), history)
    _apply_timers(session, ops)
    return clocks


@dataclass(frozen=True)
class _Context:
    """What the replay reads of a ticket's SLA context (the row's columns), before the row is written."""

    ticket_id: int
    plan: str
    policy_version: int
    calendar_id: str
    calendar_version: int


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

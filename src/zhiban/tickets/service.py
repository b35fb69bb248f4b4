"""Use cases of tickets: file, list, read, comment and move, each within the caller's tenancy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select, update
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import Forbidden, InvalidInput, NotFound
from zhiban.identity import service as identity
from zhiban.identity.model import Organization, Person, Principal, Role
from zhiban.store.db import transaction_memo
from zhiban.tickets import events
from zhiban.tickets import fields as rtc_fields
from zhiban.tickets.fields import fields_of as fields_of  # re-exported: the RTC fields' reads
from zhiban.tickets.fields import lenient as lenient
from zhiban.tickets.fields import organization_zone as organization_zone
from zhiban.tickets.model import (
    Channel,
    EventKind,
    OnDuty,
    Priority,
    RtcFields,
    Status,
    TicketChange,
    TicketRef,
    TicketSummary,
    check_move,
    clean_body,
    clean_subject,
    priority_choices,
    status_after_agent_reply,
    status_after_customer_message,
)
from zhiban.tickets.store import (
    CommentRow,
    TicketEventRow,
    TicketFieldsRow,
    TicketLinkRow,
    TicketOnDutyRow,
    TicketRow,
    TicketTagRow,
    comments_of,
    events_of,
)

MAX_PAGE = 200
OPEN_STATUSES = (Status.NEW, Status.OPEN, Status.PENDING, Status.ON_HOLD)


@dataclass(frozen=True)
class TicketView:
    """A ticket with what the viewer may see of its conversation."""

    ticket: TicketRow
    comments: list[CommentRow]
    events: list[TicketEventRow]
    organization: Organization
    requester: Person
    on_duty: OnDuty | None = None

    @property
    def ref(self) -> TicketRef:
        return TicketRef(self.ticket.id, self.ticket.organization_id)


def _record(
    session: Session, clock: Clock, ticket: TicketRow, kind: EventKind, at: datetime, actor: str | None, **data: Any
) -> TicketChange:
    """Append to the ticket's event log and tell the subscribed features (same transaction)."""
    event = TicketEventRow(ticket_id=ticket.id, kind=kind.value, data=data, actor_id=actor, at=at)
    session.add(event)
    session.flush()
    change = TicketChange(TicketRef(ticket.id, ticket.organization_id), kind, at, event.id, actor, data)
    events.emit(session, clock, change)
    return change


def history(session: Session, ticket_id: int, *, before: int | None = None) -> list[TicketChange]:
    """A ticket's changes in the order they happened (only those numbered below `before`, if given)."""
    return histories(session, [ticket_id], before=before)[ticket_id]


def histories(
    session: Session, ticket_ids: Sequence[int], *, before: int | None = None
) -> dict[int, list[TicketChange]]:
    """The changes of many tickets at once, each ticket's in order under its id (for batch replays)."""
    found: dict[int, list[TicketChange]] = {i: [] for i in ticket_ids}
    query = select(
        TicketEventRow.id,
        TicketEventRow.ticket_id,
        TicketEventRow.kind,
        TicketEventRow.at,
        TicketEventRow.actor_id,
        TicketEventRow.data,
    )
    kinds = {k.value: k for k in EventKind}
    for part in _chunks(list(found)):
        owners = select(TicketRow.id, TicketRow.organization_id).where(TicketRow.id.in_(part))
        refs = {i: TicketRef(i, org) for i, org in session.execute(owners)}  # one per ticket, not per change
        where: ColumnElement[bool] = TicketEventRow.ticket_id.in_(part)
        if before is not None:
            where = where & (TicketEventRow.id < before)
        for seq, tid, kind, at, actor, data in session.execute(query.where(where).order_by(TicketEventRow.id)):
            data = MappingProxyType(data or {})  # fresh from the row: nobody else holds it
            found[tid].append(TicketChange(refs[tid], kinds[kind], at, seq, actor, data))
    return found


def changes(session: Session, seqs: Sequence[int]) -> list[TicketChange]:
    """The changes numbered `seqs` (event ids), in log order; unknown numbers are left out."""
    kinds = {k.value: k for k in EventKind}
    found: list[TicketChange] = []
    query = select(
        TicketEventRow.id,
        TicketEventRow.ticket_id,
        TicketRow.organization_id,
        TicketEventRow.kind,
        TicketEventRow.at,
        TicketEventRow.actor_id,
        TicketEventRow.data,
    ).join(TicketRow, TicketRow.id == TicketEventRow.ticket_id)
    for part in _chunks(sorted(set(seqs))):
        for seq, tid, org, kind, at, actor, data in session.execute(query.where(TicketEventRow.id.in_(part))):
            data = MappingProxyType(data or {})
            found.append(TicketChange(TicketRef(tid, org), kinds[kind], at, seq, actor, data))
    found.sort(key=lambda c: c.seq)
    return found


def _chunks(ids: list[int], size: int = 2000) -> list[list[int]]:
    """Bounded IN lists: every database accepts a few hundred parameters."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def ref(session: Session, ticket_id: int) -> TicketRef | None:
    """Which organization a ticket belongs to (None: no such ticket)."""
    organization_id = session.scalar(select(TicketRow.organization_id).where(TicketRow.id == ticket_id))
    return None if organization_id is None else TicketRef(ticket_id, organization_id)


_SUMMARY = (
    TicketRow.id,
    TicketRow.organization_id,
    TicketRow.subject,
    TicketRow.priority,
    TicketRow.status,
    TicketRow.created_at,
    TicketRow.team_id,
    TicketRow.assignee_id,
)


def summary(session: Session, ticket_id: int) -> TicketSummary | None:
    """A ticket's summary (None: no such ticket)."""
    return summaries(session, [ticket_id]).get(ticket_id)


def summaries(session: Session, ticket_ids: Sequence[int]) -> dict[int, TicketSummary]:
    """Summaries of many tickets by id, read by primary key in bounded chunks (unknown ids are left out)."""
    found: dict[int, TicketSummary] = {}
    for part in _chunks(sorted(set(ticket_ids))):
        for row in session.execute(select(*_SUMMARY).where(TicketRow.id.in_(part))):
            found[row[0]] = TicketSummary(*row)
    return found


def first_messages(session: Session, ticket_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """(subject, first message) of many tickets by id, e.g. for triage; unknown ids are left out."""
    found: dict[int, tuple[str, str]] = {}
    for part in _chunks(sorted(set(ticket_ids))):
        subjects = {
            t: subject
            for t, subject in session.execute(select(TicketRow.id, TicketRow.subject).where(TicketRow.id.in_(part)))
        }
        first = (
            select(CommentRow.ticket_id, func.min(CommentRow.id))
            .where(CommentRow.ticket_id.in_(part))
            .group_by(CommentRow.ticket_id)
        )
        comment_ids = [cid for _, cid in session.execute(first)]
        bodies: dict[int, str] = {}
        if comment_ids:
            query = select(CommentRow.ticket_id, CommentRow.body).where(CommentRow.id.in_(comment_ids))
            bodies = {t: body for t, body in session.execute(query)}
        for tid, subject in subjects.items():
            found[tid] = (subject, bodies.get(tid, ""))
    return found


def route_new(session: Session, clock: Clock, teams: dict[int, str]) -> dict[int, str]:
    """Give each ticket (id -> team id) to its team unless a team already has it: one statement per team.
    Returns the tickets it routed, which the routing listeners hear of in this transaction."""
    by_team: dict[str, list[int]] = {}
    for ticket_id, team_id in teams.items():
        by_team.setdefault(team_id, []).append(ticket_id)
    done: dict[int, str] = {}
    for team_id, ids in by_team.items():
        for part in _chunks(sorted(ids)):
            statement = (
                update(TicketRow)
                .where(TicketRow.id.in_(part), TicketRow.team_id.is_(None))
                .values(team_id=team_id)
                .returning(TicketRow.id)
            )
            routed = session.scalars(statement, execution_options={"synchronize_session": False})
            done.update((i, team_id) for i in routed)
    for ticket in session.identity_map.values():  # rows changed in SQL: drop stale ORM copies
        if isinstance(ticket, TicketRow) and ticket.id in done:
            session.expire(ticket)
    events.routed(session, clock, done)
    return done


def route(session: Session, clock: Clock, ticket_id: int, team_id: str | None, *, unless_routed: bool = False) -> None:
    """Give the ticket to a team (with `unless_routed`, only a ticket no team has yet)."""
    ticket = session.get(TicketRow, ticket_id)
    if ticket is None or (unless_routed and ticket.team_id is not None) or ticket.team_id == team_id:
        return
    ticket.team_id = team_id
    session.flush()
    if team_id is not None:
        events.routed(session, clock, {ticket_id: team_id})


def open_tickets_missing(session: Session, known: Select[tuple[int]], *, limit: int) -> list[TicketRef]:
    """Open tickets whose id is not among `known` (another feature's ids), oldest first."""
    query = select(TicketRow.id, TicketRow.organization_id).where(
        TicketRow.status.in_([s.value for s in OPEN_STATUSES]), ~TicketRow.id.in_(known)
    )
    return [TicketRef(i, o) for i, o in session.execute(query.order_by(TicketRow.id).limit(limit))]


def _priority(value: str) -> Priority:
    try:
        return Priority(value)
    except ValueError as exc:
        raise InvalidInput("priority must be P1, P2, P3 or P4") from exc


def _status(value: str) -> Status:
    try:
        return Status(value)
    except ValueError as exc:
        raise InvalidInput(f"status must be one of {', '.join(s.value for s in Status)}") from exc


def create_ticket(
    session: Session,
    clock: Clock,
    principal: Principal,
    *,
    subject: str,
    body: str,
    priority: str = "P3",
    channel: Channel = Channel.PORTAL,
    category: str | None = None,
    requester_id: str | None = None,
    fields: RtcFields | None = None,
) -> TicketRow:
    """File a ticket: a customer for its own organization, an agent on behalf of a customer user (with RTC
    `fields`, cleaned by `model.clean_fields`, if any were given)."""
    subject = clean_subject(subject)
    body = clean_body(body)
    prio = _priority(priority)
    if principal.is_staff:
        if not requester_id:
            raise InvalidInput("an agent filing a ticket names the customer user it is for (requester_id)")
        requester = identity.person(session, requester_id)
        if requester is None or requester.role != Role.CUSTOMER or requester.organization_id is None:
            raise InvalidInput("requester_id must name a customer user")
    else:
        if requester_id and requester_id != principal.person_id:
            raise Forbidden("a customer files tickets as itself")
        requester = identity.person(session, principal.person_id)
        if requester is None or requester.organization_id is None:
            raise Forbidden("no organization for this user")
    if category is not None and len(category) > 64:
        raise InvalidInput("category is at most 64 characters")
    if fields is not None and not fields.empty:
        rtc_fields.check_app(session, requester.organization_id, fields)
    now = clock.now()
    ticket = TicketRow(
        organization_id=requester.organization_id,
        requester_id=requester.id,
        subject=subject,
        status=Status.NEW.value,
        priority=prio.value,
        channel=channel.value,
        category=category,
        created_at=now,
        updated_at=now,
    )
    session.add(ticket)
    session.flush()
    session.add(CommentRow(ticket_id=ticket.id, author_id=principal.person_id, body=body, public=True, created_at=now))
    if fields is not None and not fields.empty:
        rtc_fields.save(session, ticket.id, fields)
    _record(
        session,
        clock,
        ticket,
        EventKind.CREATED,
        now,
        principal.person_id,
        priority=prio.value,
        channel=channel.value,
        category=category,
    )
    session.flush()
    return ticket


def merged_into(session: Session, ticket_id: int) -> int | None:
    """The ticket a duplicate was merged into (None: it was not merged)."""
    return session.scalar(
        select(TicketLinkRow.other_id).where(TicketLinkRow.ticket_id == ticket_id, TicketLinkRow.kind == "merged_into")
    )


def find(session: Session, principal: Principal, ticket_id: int) -> TicketRow:
    """A ticket the caller may see (NotFound otherwise: another tenant's ticket is reported as missing)."""
    return _load(session, principal, ticket_id)


def _load(session: Session, principal: Principal, ticket_id: int) -> TicketRow:
    ticket = session.get(TicketRow, ticket_id)
    # Another tenant's ticket is reported as missing: existence must not leak across tenants.
    if ticket is None or not principal.can_see_organization(ticket.organization_id):
        raise NotFound(f"no ticket #{ticket_id}")
    return ticket


def get_ticket(session: Session, principal: Principal, ticket_id: int) -> TicketView:
    ticket = _load(session, principal, ticket_id)
    org = identity.organization(session, ticket.organization_id)
    requester = identity.person(session, ticket.requester_id)
    assert org is not None and requester is not None
    events = events_of(session, ticket.id) if principal.is_staff else []
    comments = comments_of(session, ticket.id, include_internal=principal.is_staff)
    return TicketView(ticket, comments, events, org, requester, on_duty_of(session, ticket.id))


_PRIORITY_RANK = case(
    {Priority.P1.value: 1, Priority.P2.value: 2, Priority.P3.value: 3, Priority.P4.value: 4},
    value=TicketRow.priority,
    else_=5,
)


def list_tickets(
    session: Session,
    principal: Principal,
    *,
    status: str | None = None,
    open_only: bool = False,
    organization_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
    queue_order: bool = False,
    tag: str | None = None,
    app_id: str | None = None,
    sdk_version: str | None = None,
) -> list[TicketRow]:
    """Tickets the caller may see; the agent queue orders by urgency, others by recency. `tag` (agents' tags),
    `app_id` and `sdk_version` (RTC fields) narrow the list."""
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise InvalidInput(f"limit must be 1–{MAX_PAGE} and offset ≥ 0")
    query = select(TicketRow)
    if not principal.is_staff:
        query = query.where(TicketRow.organization_id == principal.organization_id)
    elif organization_id:
        query = query.where(TicketRow.organization_id == organization_id)
    if status:
        query = query.where(TicketRow.status == _status(status).value)
    elif open_only:
        query = query.where(TicketRow.status.in_([s.value for s in OPEN_STATUSES]))
    if tag and principal.is_staff:  # tags are the agents': a customer filtering by one learns nothing
        query = query.where(TicketRow.id.in_(select(TicketTagRow.ticket_id).where(TicketTagRow.tag == tag.lower())))
    elif tag:
        return []
    if app_id or sdk_version:
        having = select(TicketFieldsRow.ticket_id)
        if app_id:
            having = having.where(TicketFieldsRow.app_id == app_id)
        if sdk_version:
            having = having.where(TicketFieldsRow.sdk_version == sdk_version)
        query = query.where(TicketRow.id.in_(having))
    if queue_order:
        query = query.order_by(_PRIORITY_RANK, TicketRow.created_at, TicketRow.id)
    else:
        query = query.order_by(TicketRow.created_at.desc(), TicketRow.id.desc())
    return list(session.scalars(query.limit(limit).offset(offset)))


def count_open(session: Session, principal: Principal) -> int:
    query = select(func.count()).select_from(TicketRow).where(TicketRow.status.in_([s.value for s in OPEN_STATUSES]))
    if not principal.is_staff:
        query = query.where(TicketRow.organization_id == principal.organization_id)
    return session.scalar(query) or 0


def add_comment(
    session: Session, clock: Clock, principal: Principal, ticket_id: int, *, body: str, public: bool = True
) -> CommentRow:
    """A public reply or an internal note; a customer's message reopens a pending or solved ticket."""
    ticket = _load(session, principal, ticket_id)
    body = clean_body(body)
    if not principal.is_staff and not public:
        raise Forbidden("internal notes are for agents")
    if ticket.status == Status.CLOSED:
        raise InvalidInput("the ticket is closed; file a follow-up ticket")
    now = clock.now()
    comment = CommentRow(ticket_id=ticket.id, author_id=principal.person_id, body=body, public=public, created_at=now)
    session.add(comment)
    before = Status(ticket.status)
    if principal.is_staff:
        after = status_after_agent_reply(before) if public else before
        session.flush()  # the comment's id goes into the event, so mail can thread the exact reply
        _record(
            session,
            clock,
            ticket,
            EventKind.AGENT_REPLY if public else EventKind.INTERNAL_NOTE,
            now,
            principal.person_id,
            comment_id=comment.id,
        )
    else:
        after = status_after_customer_message(before)
        session.flush()
        _record(session, clock, ticket, EventKind.CUSTOMER_MESSAGE, now, principal.person_id, comment_id=comment.id)
    if after != before:
        ticket.status = after.value
        _record(
            session, clock, ticket, EventKind.STATUS_CHANGED, now, principal.person_id, frm=before.value, to=after.value
        )
    ticket.updated_at = now
    session.flush()
    return comment


def change_status(
    session: Session, clock: Clock, principal: Principal, ticket_id: int, status: str, *, reason: str | None = None
) -> TicketRow:
    """Move the ticket (with the `reason`, if given, kept in its log)."""
    ticket = _load(session, principal, ticket_id)
    target = _status(status)
    before = Status(ticket.status)
    check_move(before, target, is_staff=principal.is_staff)
    now = clock.now()
    ticket.status = target.value
    ticket.updated_at = now
    if target == Status.SOLVED:
        ticket.solved_at = now
    _record(
        session,
        clock,
        ticket,
        EventKind.STATUS_CHANGED,
        now,
        principal.person_id,
        frm=before.value,
        to=target.value,
        **_why(reason),
    )
    session.flush()
    return ticket


def change_priority(
    session: Session, clock: Clock, principal: Principal, ticket_id: int, priority: str, *, reason: str | None = None
) -> TicketRow:
    """Give the ticket another priority: agents any, the customer a more urgent one on an open ticket (a
    raise to a paging priority pages the engineer on duty, as any raise does)."""
    ticket = _load(session, principal, ticket_id)
    prio = _priority(priority)
    if not principal.is_staff and prio.value != ticket.priority:
        if Status(ticket.status) in (Status.SOLVED, Status.CLOSED):
            raise Forbidden("a solved or closed ticket keeps its priority; reply to reopen it first")
        if prio not in priority_choices(Priority(ticket.priority), staff=False):
            raise Forbidden(f"customers may raise a ticket's priority, not lower it (it is {ticket.priority})")
    if prio.value != ticket.priority:
        now = clock.now()
        _record(
            session,
            clock,
            ticket,
            EventKind.PRIORITY_CHANGED,
            now,
            principal.person_id,
            frm=ticket.priority,
            to=prio.value,
            **_why(reason),
        )
        ticket.priority = prio.value
        ticket.updated_at = now
        session.flush()
    return ticket


MAX_REASON = 500


def _why(reason: str | None) -> dict[str, str]:
    """The reason given for a change, for its event's data (none given: nothing added)."""
    reason = " ".join((reason or "").split())
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"a reason is at most {MAX_REASON} characters")
    return {"reason": reason} if reason else {}


def assign(
    session: Session,
    clock: Clock,
    principal: Principal,
    ticket_id: int,
    assignee_id: str | None,
    *,
    reason: str | None = None,
    how: str | None = None,
) -> TicketRow:
    """Give the ticket to an agent (None: to nobody); `how` says it was taken or given by a team's round robin."""
    principal.require_staff()
    ticket = _load(session, principal, ticket_id)
    if assignee_id is not None:
        person = identity.person(session, assignee_id)
        if person is None or person.role == Role.CUSTOMER or not person.active:
            raise InvalidInput("assignee must be an active agent or admin")
    now = clock.now()
    extra = _why(reason) | ({"how": how} if how else {})
    _record(
        session,
        clock,
        ticket,
        EventKind.ASSIGNED,
        now,
        principal.person_id,
        frm=ticket.assignee_id,
        to=assignee_id,
        **extra,
    )
    ticket.assignee_id = assignee_id
    ticket.updated_at = now
    session.flush()
    return ticket


# --- on duty: the engineer woken for a ticket ------------------------------------------------------------


def _on_duty_value(row: TicketOnDutyRow) -> OnDuty:
    return OnDuty(
        incident_id=row.incident_id,
        reason=row.reason,
        requested_at=row.requested_at,
        paged_at=row.paged_at,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        closed_at=row.closed_at,
    )


def on_duty(session: Session, ticket_ids: Sequence[int]) -> dict[int, OnDuty]:
    """The on-duty page of each ticket that has one (tickets never paged are left out)."""
    found: dict[int, OnDuty] = {}
    for part in _chunks(sorted(set(ticket_ids))):
        for row in session.scalars(select(TicketOnDutyRow).where(TicketOnDutyRow.ticket_id.in_(part))):
            found[row.ticket_id] = _on_duty_value(row)
    return found


def on_duty_of(session: Session, ticket_id: int) -> OnDuty | None:
    return on_duty(session, [ticket_id]).get(ticket_id)


_OPENED = "tickets.on_duty_opened"


def on_duty_of_filed(session: Session, ticket_id: int) -> OnDuty | None:
    """`on_duty_of` for a ticket filed in this transaction: no other transaction can have paged for it, so only a
    page opened here is looked up (most filed tickets page nobody, and cost no read)."""
    if ticket_id not in transaction_memo(session).get(_OPENED, ()):
        return None
    return on_duty_of(session, ticket_id)


def open_on_duty(session: Session, ticket_id: int, *, incident_id: str, reason: str, at: datetime) -> bool:
    """Remember the incident that pages for this ticket; False if the ticket already has one (one per ticket)."""
    if session.get(TicketOnDutyRow, ticket_id) is not None:
        return False
    session.add(TicketOnDutyRow(ticket_id=ticket_id, incident_id=incident_id, reason=reason, requested_at=at))
    session.flush()
    transaction_memo(session).setdefault(_OPENED, set()).add(ticket_id)
    return True


def _on_duty_row(session: Session, incident_id: str) -> tuple[TicketOnDutyRow, TicketRow] | None:
    row = session.scalar(select(TicketOnDutyRow).where(TicketOnDutyRow.incident_id == incident_id))
    ticket = session.get(TicketRow, row.ticket_id) if row is not None else None
    return (row, ticket) if row is not None and ticket is not None else None


def on_duty_paged(session: Session, clock: Clock, incident_id: str, at: datetime, *, paged: int) -> None:
    """A page went out for the ticket's incident: the first one (or the first after a re-trigger) is logged."""
    found = _on_duty_row(session, incident_id)
    if found is None:
        return
    row, ticket = found
    if row.paged_at is not None and row.acknowledged_at is None and row.closed_at is None:
        return  # later steps of the same escalation: the customer already knows someone was paged
    row.paged_at, row.acknowledged_at, row.acknowledged_by, row.closed_at = at, None, None, None
    _record(session, clock, ticket, EventKind.ON_DUTY_PAGED, at, None, incident_id=incident_id, paged=paged)


def on_duty_acknowledged(session: Session, clock: Clock, incident_id: str, at: datetime, *, by: Person | None) -> None:
    """The engineer on duty acknowledged the ticket's page."""
    found = _on_duty_row(session, incident_id)
    if found is None or found[0].acknowledged_at is not None:
        return
    row, ticket = found
    row.acknowledged_at, row.acknowledged_by = at, by.name if by is not None else None
    by_id = by.id if by is not None else None
    _record(session, clock, ticket, EventKind.ON_DUTY_ACKNOWLEDGED, at, by_id, incident_id=incident_id)


def on_duty_closed(session: Session, clock: Clock, incident_id: str, at: datetime) -> None:
    """The ticket's incident was resolved: paging for it has stopped."""
    found = _on_duty_row(session, incident_id)
    if found is None or found[0].closed_at is not None:
        return
    row, ticket = found
    row.closed_at = at
    _record(session, clock, ticket, EventKind.ON_DUTY_CLOSED, at, None, incident_id=incident_id)


def request_urgent(session: Session, clock: Clock, principal: Principal, ticket_id: int, *, note: str) -> TicketRow:
    """The customer asks to wake the engineer on duty: logged on the ticket (paging follows from the change)."""
    ticket = _load(session, principal, ticket_id)
    if Status(ticket.status) not in OPEN_STATUSES:
        raise InvalidInput("only an open ticket can be made urgent")
    note = " ".join(note.split())[:500]
    now = clock.now()
    _record(session, clock, ticket, EventKind.URGENT_REQUESTED, now, principal.person_id, note=note)
    ticket.updated_at = now
    session.flush()
    return ticket

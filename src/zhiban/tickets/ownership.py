"""Who has a ticket and what it is tied to: teams, taking it, a team's round robin, followers, category, tags,
links and merges, and the RTC fields after filing. Every change goes into the ticket's log with who made it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, delete, literal, null, or_, select, union_all
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import InvalidInput
from zhiban.identity import service as identity
from zhiban.identity.model import Principal
from zhiban.tickets import fields as rtc_fields
from zhiban.tickets.model import (
    FIELD_NAMES,
    MAX_TAGS,
    EventKind,
    RtcFields,
    Status,
    clean_fields,
    clean_tag,
    in_working_hours,
    next_in_rotation,
)
from zhiban.tickets.service import _load, _record, _why, assign, merged_into, route
from zhiban.tickets.store import (
    TeamRotationRow,
    TicketFollowerRow,
    TicketLinkRow,
    TicketRow,
    TicketTagRow,
    ids_in,
)

RELATED = "related"
MERGED_INTO = "merged_into"
_MERGED_FROM, _TAG, _FOLLOWER = "merged_from", "tag", "follower"  # the union's other row kinds
MAX_CATEGORY = 64


@dataclass(frozen=True, slots=True)
class Ownership:
    """What ties a ticket to people and other tickets, as the viewer may see it."""

    tags: tuple[str, ...] = ()
    followers: tuple[str, ...] = ()  # person ids
    related: tuple[int, ...] = ()
    merged_into: int | None = None
    merged_from: tuple[int, ...] = ()


def ownership(session: Session, principal: Principal, ticket_ids: Sequence[int]) -> dict[int, Ownership]:
    """Tags, followers and links of many tickets, in one read (a UNION ALL: a page of the list pays one round
    trip); tags and followers are the staff's, so a customer sees only links, and only to tickets of its own
    organization (a link never leaves one)."""
    ids = sorted(set(ticket_ids))
    tags: dict[int, list[str]] = {}
    followers: dict[int, list[str]] = {}
    related: dict[int, list[int]] = {}
    into: dict[int, int] = {}
    merged_from: dict[int, list[int]] = {}
    no_text, no_id = null().cast(String(40)), null().cast(Integer)
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        parts = [
            select(TicketLinkRow.ticket_id, TicketLinkRow.kind, no_text, TicketLinkRow.other_id).where(
                ids_in(session, TicketLinkRow.ticket_id, part)
            ),
            select(TicketLinkRow.other_id, literal(_MERGED_FROM, String(16)), no_text, TicketLinkRow.ticket_id).where(
                ids_in(session, TicketLinkRow.other_id, part), TicketLinkRow.kind == MERGED_INTO
            ),
        ]
        if principal.is_staff:
            parts += [
                select(TicketTagRow.ticket_id, literal(_TAG, String(16)), TicketTagRow.tag, no_id).where(
                    ids_in(session, TicketTagRow.ticket_id, part)
                ),
                select(
                    TicketFollowerRow.ticket_id, literal(_FOLLOWER, String(16)), TicketFollowerRow.person_id, no_id
                ).where(ids_in(session, TicketFollowerRow.ticket_id, part)),
            ]
        for tid, kind, text, other in session.execute(union_all(*parts)):
            if kind == RELATED:
                related.setdefault(tid, []).append(other)
            elif kind == MERGED_INTO:
                into[tid] = other
            elif kind == _MERGED_FROM:
                merged_from.setdefault(tid, []).append(other)
            elif kind == _TAG:
                tags.setdefault(tid, []).append(text)
            elif kind == _FOLLOWER:
                followers.setdefault(tid, []).append(text)
    return {
        t: Ownership(
            tuple(sorted(tags.get(t, ()))),
            tuple(sorted(followers.get(t, ()))),
            tuple(sorted(related.get(t, ()))),
            into.get(t),
            tuple(sorted(merged_from.get(t, ()))),
        )
        for t in ids
    }


def ownership_of(session: Session, principal: Principal, ticket_id: int) -> Ownership:
    return ownership(session, principal, [ticket_id])[ticket_id]


def _touch(ticket: TicketRow, now: datetime) -> None:
    ticket.updated_at = now


# --- people and teams ---------------------------------------------------------------------------------------


def take(session: Session, clock: Clock, principal: Principal, ticket_id: int) -> TicketRow:
    """ "Take it": the agent asking becomes the assignee."""
    principal.require_staff()
    return assign(session, clock, principal, ticket_id, principal.person_id, how="take")


def assign_team(
    session: Session, clock: Clock, principal: Principal, ticket_id: int, team_id: str | None, *, reason: str | None
) -> TicketRow:
    """Give the ticket to a team (None: to no team); the team hears of it as of a routed ticket."""
    principal.require_staff()
    ticket = _load(session, principal, ticket_id)
    team = identity.team(session, team_id, by_name=False) if team_id is not None else None
    if team_id is not None and team is None:
        raise InvalidInput(f"no team {team_id!r}")
    before = ticket.team_id
    if before == team_id:
        return ticket
    now = clock.now()
    route(session, clock, ticket.id, team_id)
    _record(
        session, clock, ticket, EventKind.TEAM_CHANGED, now, principal.person_id, frm=before, to=team_id, **_why(reason)
    )
    _touch(ticket, now)
    session.flush()
    return ticket


def auto_assign(session: Session, clock: Clock, principal: Principal, ticket_id: int) -> TicketRow:
    """Round robin inside the ticket's team: the next active agent member, in the team's stable order (by
    e-mail address), after the one who got the team's last automatic ticket, among those within their working
    hours now (Monday–Friday 09:00–18:00 in their own time zone); when none is, among every active member (a
    desk that runs around the clock must still give the ticket to someone)."""
    principal.require_staff()
    ticket = _load(session, principal, ticket_id)
    if ticket.team_id is None:
        raise InvalidInput("the ticket has no team: give it to a team first")
    members = [p for p in identity.team_members(session, ticket.team_id) if p.is_staff and p.active]
    if not members:
        raise InvalidInput("the ticket's team has no active agent")
    now = clock.now()
    in_hours = [p.id for p in members if in_working_hours(p.timezone, now)]
    # One rotation per team: its row is locked so two tickets at once go to two people.
    rotation = session.scalar(
        select(TeamRotationRow).where(TeamRotationRow.team_id == ticket.team_id).with_for_update()
    )
    order = [p.id for p in members]
    chosen = next_in_rotation(order, rotation.last_person_id if rotation else None, in_hours or order)
    assert chosen is not None  # members is not empty
    if rotation is None:
        session.add(TeamRotationRow(team_id=ticket.team_id, last_person_id=chosen, at=now))
    else:
        rotation.last_person_id, rotation.at = chosen, now
    how = "round_robin" if in_hours else "round_robin_out_of_hours"
    return assign(session, clock, principal, ticket_id, chosen, how=how)


def follow(
    session: Session, clock: Clock, principal: Principal, ticket_id: int, person_id: str | None = None
) -> TicketRow:
    """Someone on staff (the caller by default) follows the ticket."""
    principal.require_staff()
    ticket = _load(session, principal, ticket_id)
    person = identity.person(session, person_id or principal.person_id)
    if person is None or not person.is_staff or not person.active:
        raise InvalidInput("only an active agent or admin follows a ticket")
    if session.get(TicketFollowerRow, (ticket.id, person.id)) is None:
        session.add(TicketFollowerRow(ticket_id=ticket.id, person_id=person.id))
        _record(session, clock, ticket, EventKind.FOLLOWED, clock.now(), principal.person_id, person_id=person.id)
        session.flush()
    return ticket


def unfollow(
    session: Session, clock: Clock, principal: Principal, ticket_id: int, person_id: str | None = None
) -> TicketRow:
    principal.require_staff()
    ticket = _load(session, principal, ticket_id)
    row = session.get(TicketFollowerRow, (ticket.id, person_id or principal.person_id))
    if row is not None:
        session.delete(row)
        _record(session, clock, ticket, EventKind.UNFOLLOWED, clock.now(), principal.person_id, person_id=row.person_id)
        session.flush()
    return ticket


def change_category(
    session: Session, clock: Clock, principal: Principal, ticket_id: int, category: str | None, *, reason: str | None
) -> TicketRow:
    """File the ticket under another category/domain (agents)."""
    principal.require_staff()
    ticket = _load(session, principal, ticket_id)
    category = (category or "").strip() or None
    if category is not None and len(category) > MAX_CATEGORY:
        raise InvalidInput(f"category is at most {MAX_CATEGORY} characters")
    if category != ticket.category:
        now = clock.now()
        _record(
            session,
            clock,
            ticket,
            EventKind.CATEGORY_CHANGED,
            now,
            principal.person_id,
            frm=ticket.category,
            to=category,
            **_why(reason),
        )
        ticket.category = category
        _touch(ticket, now)
        session.flush()
    return ticket


# --- tags -----------------------------------------------------------------------------------------------------


def add_tags(session: Session, clock: Clock, principal: Principal, ticket_id: int, tags: Sequence[str]) -> TicketRow:
    """Tag the ticket (agents); at most MAX_TAGS tags a ticket."""
    principal.require_staff()
    ticket = _load(session, principal, ticket_id)
    wanted = list(dict.fromkeys(clean_tag(t) for t in tags))
    have = set(session.scalars(select(TicketTagRow.tag).where(TicketTagRow.ticket_id == ticket.id)))
    new = [t for t in wanted if t not in have]
    if len(have) + len(new) > MAX_TAGS:
        raise InvalidInput(f"a ticket has at most {MAX_TAGS} tags")
    if new:
        session.add_all(TicketTagRow(ticket_id=ticket.id, tag=t) for t in new)
        _record(session, clock, ticket, EventKind.TAGGED, clock.now(), principal.person_id, tags=new)
        session.flush()
    return ticket


def remove_tag(session: Session, clock: Clock, principal: Principal, ticket_id: int, tag: str) -> TicketRow:
    principal.require_staff()
    ticket = _load(session, principal, ticket_id)
    tag = clean_tag(tag)
    gone = session.execute(delete(TicketTagRow).where(TicketTagRow.ticket_id == ticket.id, TicketTagRow.tag == tag))
    if getattr(gone, "rowcount", 0):
        _record(session, clock, ticket, EventKind.UNTAGGED, clock.now(), principal.person_id, tags=[tag])
        session.flush()
    return ticket


# --- links and merges -----------------------------------------------------------------------------------------


def _pair(session: Session, principal: Principal, ticket_id: int, other_id: int) -> tuple[TicketRow, TicketRow]:
    """Two distinct tickets the caller may see, of one organization (a link never crosses tenants)."""
    if ticket_id == other_id:
        raise InvalidInput("a ticket is not linked to itself")
    ticket = _load(session, principal, ticket_id)
    other = _load(session, principal, other_id)  # another tenant's ticket: NotFound, as if it did not exist
    if ticket.organization_id != other.organization_id:
        raise InvalidInput("tickets of different organizations are not linked or merged")
    return ticket, other


def link(session: Session, clock: Clock, principal: Principal, ticket_id: int, other_id: int) -> TicketRow:
    """Mark two tickets of one organization as related (the customer may, for its own)."""
    ticket, other = _pair(session, principal, ticket_id, other_id)
    if (
        session.get(TicketLinkRow, (ticket.id, other.id)) is not None
        or session.get(TicketLinkRow, (other.id, ticket.id)) is not None
    ):
        return ticket
    now = clock.now()
    session.add_all(
        [
            TicketLinkRow(ticket_id=ticket.id, other_id=other.id, kind=RELATED),
            TicketLinkRow(ticket_id=other.id, other_id=ticket.id, kind=RELATED),
        ]
    )
    session.flush()
    _record(session, clock, ticket, EventKind.LINKED, now, principal.person_id, ticket_id=other.id)
    _record(session, clock, other, EventKind.LINKED, now, principal.person_id, ticket_id=ticket.id)
    return ticket


def unlink(session: Session, clock: Clock, principal: Principal, ticket_id: int, other_id: int) -> TicketRow:
    ticket, other = _pair(session, principal, ticket_id, other_id)
    gone = session.execute(
        delete(TicketLinkRow).where(
            TicketLinkRow.kind == RELATED,
            or_(
                (TicketLinkRow.ticket_id == ticket.id) & (TicketLinkRow.other_id == other.id),
                (TicketLinkRow.ticket_id == other.id) & (TicketLinkRow.other_id == ticket.id),
            ),
        )
    )
    if getattr(gone, "rowcount", 0):
        now = clock.now()
        _record(session, clock, ticket, EventKind.UNLINKED, now, principal.person_id, ticket_id=other.id)
        _record(session, clock, other, EventKind.UNLINKED, now, principal.person_id, ticket_id=ticket.id)
    return ticket


def merge(
    session: Session, clock: Clock, principal: Principal, duplicate_id: int, into_id: int, *, reason: str | None = None
) -> TicketRow:
    """Merge a duplicate into the ticket kept (agents): the duplicate is closed pointing at it, its conversation
    stays readable where it was, and the customer sees where it went. Returns the duplicate."""
    principal.require_staff()
    duplicate, kept = _pair(session, principal, duplicate_id, into_id)
    if merged_into(session, duplicate.id) is not None:
        raise InvalidInput(f"ticket #{duplicate.id} was already merged")
    if (further := merged_into(session, kept.id)) is not None:
        raise InvalidInput(f"ticket #{kept.id} was merged into #{further}: merge into that one")
    if Status(kept.status) == Status.CLOSED:
        raise InvalidInput(f"ticket #{kept.id} is closed")
    now = clock.now()
    why = _why(reason)
    # A merge supersedes a "related" link between the two (one row per pair and direction).
    session.execute(
        delete(TicketLinkRow).where(
            or_(
                (TicketLinkRow.ticket_id == duplicate.id) & (TicketLinkRow.other_id == kept.id),
                (TicketLinkRow.ticket_id == kept.id) & (TicketLinkRow.other_id == duplicate.id),
            )
        )
    )
    session.add(TicketLinkRow(ticket_id=duplicate.id, other_id=kept.id, kind=MERGED_INTO))
    session.flush()
    _record(session, clock, duplicate, EventKind.MERGED_INTO, now, principal.person_id, ticket_id=kept.id, **why)
    _record(session, clock, kept, EventKind.MERGED_FROM, now, principal.person_id, ticket_id=duplicate.id, **why)
    before = Status(duplicate.status)
    if before != Status.CLOSED:
        # Closed by the merge, whatever its status: its clocks stop and its page (if any) closes, as for any close.
        duplicate.status = Status.CLOSED.value
        _record(
            session,
            clock,
            duplicate,
            EventKind.STATUS_CHANGED,
            now,
            principal.person_id,
            frm=before.value,
            to=Status.CLOSED.value,
            reason=f"merged into #{kept.id}",
        )
    _touch(duplicate, now)
    _touch(kept, now)
    session.flush()
    return duplicate


# --- RTC fields after filing ----------------------------------------------------------------------------------


def set_fields(
    session: Session,
    clock: Clock,
    principal: Principal,
    ticket_id: int,
    changes: Mapping[str, Any],
) -> TicketRow:
    """Change some RTC fields (the names in `changes`; None clears one). The customer may, on its own ticket;
    the app must be one of the ticket's organization's. A time without an offset is read in the customer's zone."""
    ticket = _load(session, principal, ticket_id)
    if Status(ticket.status) == Status.CLOSED:
        raise InvalidInput("the ticket is closed")
    unknown = set(changes) - set(FIELD_NAMES)
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
    now = clock.now()
    given = clean_fields(**changes, now=now, zone=rtc_fields.organization_zone(session, ticket.organization_id))
    current = rtc_fields.fields_of(session, [ticket.id]).get(ticket.id, RtcFields())
    fields = replace(current, **{name: getattr(given, name) for name in changes})
    rtc_fields.check_app(session, ticket.organization_id, fields)
    if fields == current:
        return ticket
    rtc_fields.save(session, ticket.id, fields)
    changed = [n for n in FIELD_NAMES if getattr(fields, n) != getattr(current, n)]
    _record(
        session,
        clock,
        ticket,
        EventKind.FIELDS_CHANGED,
        now,
        principal.person_id,
        changed=changed,
        fields=fields.as_json(),
    )
    _touch(ticket, now)
    session.flush()
    return ticket

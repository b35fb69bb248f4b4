"""Saved views of the ticket list: a person's own searches, and views an agent shares with every agent.

A view keeps a `TicketQuery`'s parameters; running it runs the search as the person who runs it (their tenancy,
their "me"). A customer may keep views of its own tickets; shared views are the staff's only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from zhiban.identity.model import Principal, Role
from zhiban.tickets import search
from zhiban.tickets.model import TicketQuery
from zhiban.tickets.store import SavedViewRow, TicketRow

MAX_VIEWS_PER_PERSON = 100
MAX_NAME = 100


@dataclass(frozen=True)
class SavedView:
    id: int
    owner_id: str
    name: str
    shared: bool
    query: TicketQuery
    created_at: datetime
    updated_at: datetime


def _value(row: SavedViewRow) -> SavedView:
    return SavedView(
        row.id, row.owner_id, row.name, row.shared, TicketQuery.from_params(row.query), row.created_at, row.updated_at
    )


def _name(name: str) -> str:
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"a view's name is 1–{MAX_NAME} characters")
    return name


def list_views(session: Session, principal: Principal) -> list[SavedView]:
    """The caller's own views, and for staff the shared ones too, by name."""
    mine = SavedViewRow.owner_id == principal.person_id
    where = or_(mine, SavedViewRow.shared.is_(True)) if principal.is_staff else mine
    rows = session.scalars(select(SavedViewRow).where(where).order_by(SavedViewRow.name, SavedViewRow.id))
    return [_value(r) for r in rows]


def _visible(session: Session, principal: Principal, view_id: int) -> SavedViewRow:
    row = session.get(SavedViewRow, view_id)
    # Someone else's view is reported as missing: its name and filters are theirs.
    if row is None or not (row.owner_id == principal.person_id or (row.shared and principal.is_staff)):
        raise NotFound(f"no view #{view_id}")
    return row


def _editable(session: Session, principal: Principal, view_id: int) -> SavedViewRow:
    row = _visible(session, principal, view_id)
    if row.owner_id != principal.person_id and principal.role is not Role.ADMIN:
        raise Forbidden("a shared view is changed by its owner or an admin")
    return row


def get_view(session: Session, principal: Principal, view_id: int) -> SavedView:
    return _value(_visible(session, principal, view_id))


def create_view(
    session: Session, clock: Clock, principal: Principal, *, name: str, query: TicketQuery, shared: bool = False
) -> SavedView:
    if shared:
        principal.require_staff()
    count = session.scalar(
        select(func.count()).select_from(SavedViewRow).where(SavedViewRow.owner_id == principal.person_id)
    )
    if (count or 0) >= MAX_VIEWS_PER_PERSON:
        raise Conflict(f"at most {MAX_VIEWS_PER_PERSON} views per person; delete one first")
    now = clock.now()
    row = SavedViewRow(
        owner_id=principal.person_id,
        name=_name(name),
        shared=shared,
        query=query.to_params(),
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return _value(row)


def update_view(
    session: Session,
    clock: Clock,
    principal: Principal,
    view_id: int,
    *,
    name: str | None = None,
    query: TicketQuery | None = None,
    shared: bool | None = None,
) -> SavedView:
    row = _editable(session, principal, view_id)
    if shared:
        principal.require_staff()
    if name is not None:
        row.name = _name(name)
    if query is not None:
        row.query = query.to_params()
    if shared is not None:
        row.shared = shared
    row.updated_at = clock.now()
    session.flush()
    return _value(row)


def delete_view(session: Session, principal: Principal, view_id: int) -> None:
    session.delete(_editable(session, principal, view_id))
    session.flush()


def run_view(
    session: Session, clock: Clock, principal: Principal, view_id: int, *, limit: int = 50, offset: int = 0
) -> tuple[SavedView, list[TicketRow]]:
    """The view and the tickets it finds now, for the caller."""
    view = get_view(session, principal, view_id)
    return view, search.find_tickets(session, principal, view.query, clock.now(), limit=limit, offset=offset)


def params_of(view: SavedView) -> dict[str, Any]:
    return view.query.to_params()

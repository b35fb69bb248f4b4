"""The caller's in-app inbox over the API: list (unread first, a bounded page), mark one or all read."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from zhiban.notify import inbox
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.scopes import needs

if TYPE_CHECKING:
    from zhiban.notify.model import Notice

router = APIRouter(prefix="/api/v1/inbox", tags=["notify"])

Kind = Literal["ticket_new", "ticket_assigned", "sla_warning", "sla_breach", "page"]


class NoticeOut(BaseModel):
    id: int
    kind: str
    reason: str
    title: str
    ticket_id: int | None
    incident_id: str | None
    due_at: datetime | None
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None

    @classmethod
    def of(cls, n: Notice) -> NoticeOut:
        return cls(
            id=n.id,
            kind=n.kind,
            reason=n.reason,
            title=n.title,
            ticket_id=n.ticket_id,
            incident_id=n.incident_id,
            due_at=n.due_at,
            data=dict(n.data),
            created_at=n.created_at,
            read_at=n.read_at,
        )


class InboxOut(BaseModel):
    unread: int
    items: list[NoticeOut]


@router.get(
    "",
    response_model=InboxOut,
    summary="My notifications: new tickets for my teams, tickets assigned to me, SLA warnings and breaches, pages",
    dependencies=[needs("tickets:read")],
)
def my_inbox(
    session: DB,
    principal: CurrentPrincipal,
    unread: bool = False,
    kind: Kind | None = None,
    limit: int = Query(50, ge=1, le=inbox.MAX_PAGE),
) -> InboxOut:
    items = inbox.list_mine(session, principal, unread_only=unread, kinds=(kind,) if kind else None, limit=limit)
    return InboxOut(unread=inbox.unread_count(session, principal), items=[NoticeOut.of(n) for n in items])


@router.post(
    "/read",
    summary="Mark all my notifications read",
    dependencies=[needs("tickets:write")],
)
def read_all(session: DB, clock: ClockDep, principal: CurrentPrincipal) -> dict[str, int]:
    return {"marked": inbox.mark_all_read(session, clock, principal)}


@router.post(
    "/{notice_id}/read",
    response_model=NoticeOut,
    summary="Mark one of my notifications read",
    dependencies=[needs("tickets:write")],
)
def read_one(
    session: DB, clock: ClockDep, principal: CurrentPrincipal, notice_id: int = Path(ge=1, le=2**31 - 1)
) -> NoticeOut:
    return NoticeOut.of(inbox.mark_read(session, clock, principal, notice_id))

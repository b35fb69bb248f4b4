"""Ticket API: validate, call the service, serialize."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from zhiban.tickets import attachment_api, attachments, service
from zhiban.tickets.attachment_api import AttachmentOut
from zhiban.tickets.intake import Filing, TicketIntake, intake_for
from zhiban.tickets.model import Channel, OnDuty
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal, desk_of, reads_only, release, writes_elsewhere
from zhiban.web.fields import Ident, Limit, LongText, Offset, ShortText, TicketId
from zhiban.web.scopes import by_method

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from zhiban.tickets.store import AttachmentRow, CommentRow, TicketRow

router = APIRouter(
    prefix="/api/v1/tickets", tags=["tickets"], dependencies=[by_method("tickets:read", "tickets:write")]
)

PriorityIn = Literal["P1", "P2", "P3", "P4"]
StatusIn = Literal["new", "open", "pending", "on_hold", "solved", "closed"]


class TicketIn(BaseModel):
    subject: ShortText
    body: LongText
    priority: PriorityIn = "P3"
    category: Ident | None = None
    requester_id: Ident | None = Field(None, description="customer user the ticket is for (agents only)")


class OnDutyOut(BaseModel):
    """The engineer on duty woken for this ticket: when paged, and who acknowledged when (null until then)."""

    incident_id: str
    paged_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None = Field(description="display name of who acknowledged")

    @classmethod
    def of(cls, d: OnDuty | None) -> OnDutyOut | None:
        if d is None:
            return None
        return cls(
            incident_id=d.incident_id,
            paged_at=d.paged_at,
            acknowledged_at=d.acknowledged_at,
            acknowledged_by=d.acknowledged_by,
        )


class TicketOut(BaseModel):
    id: int
    organization_id: str
    requester_id: str
    subject: str
    status: str
    priority: str
    channel: str
    category: str | None
    assignee_id: str | None
    created_at: datetime
    updated_at: datetime
    on_duty: OnDutyOut | None = Field(description="null unless an engineer on duty was paged for this ticket")

    @classmethod
    def of(cls, t: TicketRow, on_duty: OnDuty | None = None) -> TicketOut:
        return cls(
            id=t.id,
            organization_id=t.organization_id,
            requester_id=t.requester_id,
            subject=t.subject,
            status=t.status,
            priority=t.priority,
            channel=t.channel,
            category=t.category,
            assignee_id=t.assignee_id,
            created_at=t.created_at,
            updated_at=t.updated_at,
            on_duty=OnDutyOut.of(on_duty),
        )


class CommentIn(BaseModel):
    body: LongText
    public: bool = True


class CommentOut(BaseModel):
    id: int
    author_id: str
    body: str
    public: bool
    created_at: datetime
    attachments: list[AttachmentOut] = Field(default_factory=list, description="files that came with this message")

    @classmethod
    def of(cls, c: CommentRow, files: list[AttachmentRow] | None = None) -> CommentOut:
        return cls(
            id=c.id,
            author_id=c.author_id,
            body=c.body,
            public=c.public,
            created_at=c.created_at,
            attachments=[AttachmentOut.of(f) for f in files or ()],
        )


class TicketDetail(TicketOut):
    comments: list[CommentOut]


class StatusIn_(BaseModel):
    status: StatusIn


class TicketPatch(BaseModel):
    priority: PriorityIn | None = None
    assignee_id: Ident | None = None
    unassign: bool = False


def _intake(request: Request) -> TicketIntake[TicketOut]:
    desk = desk_of(request)
    return intake_for(request.app.state, lambda: TicketIntake(desk.sessions, desk.clock, TicketOut.of))


@router.post("", status_code=201, response_model=TicketOut, summary="File a ticket")
@writes_elsewhere
def create(body: TicketIn, session: DB, request: Request, principal: CurrentPrincipal, response: Response) -> TicketOut:
    principal.require_scope("tickets:write")
    release(session)  # the caller is known; the ticket is filed in the intake's transaction, with others of a rush
    filing = Filing(
        principal,
        subject=body.subject,
        body=body.body,
        priority=body.priority,
        channel=Channel.API,
        category=body.category,
        requester_id=body.requester_id,
    )
    ticket = _intake(request).commit_blocking(filing)
    response.headers["Location"] = f"/api/v1/tickets/{ticket.id}"
    return ticket


@router.get("", response_model=list[TicketOut], summary="List the tickets the caller may see")
@reads_only
def list_(
    session: DB,
    principal: CurrentPrincipal,
    status: StatusIn | None = None,
    open_only: bool = Query(False, alias="open"),
    organization_id: Ident | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[TicketOut]:
    principal.require_scope("tickets:read")
    rows = service.list_tickets(
        session,
        principal,
        status=status,
        open_only=open_only,
        organization_id=organization_id,
        limit=limit,
        offset=offset,
    )
    on_duty = service.on_duty(session, [t.id for t in rows])
    return [TicketOut.of(t, on_duty.get(t.id)) for t in rows]


def _detail(session: Session, view: service.TicketView) -> TicketDetail:
    # Only the messages the caller may read are in the view, so only their files are listed.
    files = attachments.of_comments(session, [c.id for c in view.comments])
    return TicketDetail(
        **TicketOut.of(view.ticket, view.on_duty).model_dump(),
        comments=[CommentOut.of(c, files.get(c.id)) for c in view.comments],
    )


@router.get("/{ticket_id}", response_model=TicketDetail, summary="One ticket with its conversation")
@reads_only
def get(session: DB, principal: CurrentPrincipal, ticket_id: TicketId) -> TicketDetail:
    principal.require_scope("tickets:read")
    return _detail(session, service.get_ticket(session, principal, ticket_id))


@router.post("/{ticket_id}/comments", status_code=201, response_model=CommentOut, summary="Reply or add a note")
def comment(
    body: CommentIn, session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId
) -> CommentOut:
    principal.require_scope("tickets:write")
    return CommentOut.of(service.add_comment(session, clock, principal, ticket_id, body=body.body, public=body.public))


@router.post("/{ticket_id}/status", response_model=TicketOut, summary="Change the status")
def set_status(
    body: StatusIn_, session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId
) -> TicketOut:
    principal.require_scope("tickets:write")
    ticket = service.change_status(session, clock, principal, ticket_id, body.status)
    return TicketOut.of(ticket, service.on_duty_of(session, ticket.id))


@router.patch(
    "/{ticket_id}",
    response_model=TicketOut,
    summary="Change priority or assignee (agents; a customer may raise the priority of an open ticket)",
)
def patch(
    body: TicketPatch, session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId
) -> TicketOut:
    principal.require_scope("tickets:write")
    if body.unassign or body.assignee_id is not None:
        principal.require_staff()  # before any change: a refused request changes nothing
    ticket = service.get_ticket(session, principal, ticket_id).ticket
    if body.priority is not None:
        ticket = service.change_priority(session, clock, principal, ticket_id, body.priority)
    if body.unassign or body.assignee_id is not None:
        ticket = service.assign(session, clock, principal, ticket_id, None if body.unassign else body.assignee_id)
    return TicketOut.of(ticket, service.on_duty_of(session, ticket.id))


router.include_router(attachment_api.router)  # /{ticket_id}/attachments...: upload and download

"""Ticket pages: the ticket page and the customer portal (the agent queue, ordered by the SLA, is sla.views')."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from zhiban.core.errors import ZhibanError
from zhiban.identity import service as identity
from zhiban.tickets import attachments, service
from zhiban.tickets.attachment_api import AttachmentId, download_response, uploads_of
from zhiban.tickets.model import AGENT_MOVES, CUSTOMER_MOVES, Channel, Priority, Status, priority_choices
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal, desk_of, reads_only
from zhiban.web.fields import TicketId
from zhiban.web.scopes import by_method
from zhiban.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[by_method("tickets:read", "tickets:write")])


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
def ticket_page(request: Request, session: DB, principal: CurrentPrincipal, ticket_id: TicketId) -> Response:
    view = service.get_ticket(session, principal, ticket_id)
    author_ids = {c.author_id for c in view.comments}
    authors = identity.names_of(session, author_ids)
    moves_map = AGENT_MOVES if principal.is_staff else CUSTOMER_MOVES
    moves = sorted(s.value for s in moves_map[Status(view.ticket.status)])
    closed = Status(view.ticket.status) in (Status.SOLVED, Status.CLOSED)
    priorities = (
        []
        if closed and not principal.is_staff
        else [p.value for p in priority_choices(Priority(view.ticket.priority), staff=principal.is_staff)]
    )
    files = attachments.of_comments(session, [c.id for c in view.comments])
    return render(request, "ticket.html", view=view, authors=authors, moves=moves, priorities=priorities, files=files)


@router.post("/tickets/{ticket_id}/reply")
def reply(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    body: Annotated[str, Form(max_length=100_000)] = "",
    internal: Annotated[str | None, Form(max_length=8)] = None,
    file: Annotated[list[UploadFile] | None, File()] = None,
) -> RedirectResponse:
    # A browser sends an empty part for a file input left empty: only files with a name or bytes count.
    files = [f for f in uploads_of(file) if f.filename or f.size]
    if files:
        settings = desk_of(request).settings
        attachments.upload(
            session,
            clock,
            principal,
            ticket_id,
            files,
            store=attachments.store_of(settings),
            limits=attachments.limits_of(settings),
            body=body,
            public=not internal,
        )
    else:
        service.add_comment(session, clock, principal, ticket_id, body=body, public=not internal)
    return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)


@router.get("/tickets/{ticket_id}/attachments/{attachment_id}")
@reads_only
def download(
    request: Request, session: DB, principal: CurrentPrincipal, ticket_id: TicketId, attachment_id: AttachmentId
) -> Response:
    """The page's link to a file: the same download as the API's, with the page's sign-in and error pages."""
    row = attachments.find(session, principal, ticket_id, attachment_id)
    return download_response(row, attachments.store_of(desk_of(request).settings))


@router.post("/tickets/{ticket_id}/status")
def set_status(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    status: Annotated[str, Form(max_length=16)],
) -> RedirectResponse:
    service.change_status(session, clock, principal, ticket_id, status)
    return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)


@router.post("/tickets/{ticket_id}/priority")
def set_priority(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    priority: Annotated[str, Form(max_length=2)],
) -> RedirectResponse:
    service.change_priority(session, clock, principal, ticket_id, priority)
    return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)


@router.get("/portal", response_class=HTMLResponse)
def portal(request: Request, session: DB, principal: CurrentPrincipal) -> Response:
    tickets = service.list_tickets(session, principal, limit=200)
    return render(request, "portal_list.html", tickets=tickets)


@router.get("/portal/new", response_class=HTMLResponse)
def new_ticket_page(request: Request, principal: CurrentPrincipal) -> Response:
    return render(request, "portal_new.html")


@router.post("/portal/new")
def new_ticket(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    subject: Annotated[str, Form(max_length=200)],
    body: Annotated[str, Form(max_length=100_000)],
    priority: Annotated[str, Form(max_length=2)] = "P3",
    file: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    try:
        ticket = service.create_ticket(
            session, clock, principal, subject=subject, body=body, priority=priority, channel=Channel.PORTAL
        )
    except ZhibanError as exc:
        if exc.status != 422:
            raise
        return render(request, "portal_new.html", 422, error=exc.detail, subject=subject, body=body, priority=priority)
    files = [f for f in uploads_of(file) if f.filename or f.size]
    if files:
        settings = desk_of(request).settings
        limits = attachments.limits_of(settings)
        store = attachments.store_of(settings)
        attachments.attach_to_filed(session, clock, principal, ticket.id, files, store=store, limits=limits)
    return RedirectResponse(f"/tickets/{ticket.id}", status_code=303)

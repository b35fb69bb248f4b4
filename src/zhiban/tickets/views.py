"""Ticket pages: the ticket page and the customer portal (the agent queue, ordered by the SLA, is sla.views')."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from zhiban.core.errors import InvalidInput, ZhibanError
from zhiban.identity import service as identity
from zhiban.tickets import saved_views, search, service
from zhiban.tickets.model import (
    AGENT_MOVES,
    CUSTOMER_MOVES,
    MAX_QUERY_CHARS,
    PRESET_VIEWS,
    Channel,
    Priority,
    Status,
    TicketQuery,
    priority_choices,
)
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.fields import TicketId, ViewId
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
    return render(request, "ticket.html", view=view, authors=authors, moves=moves, priorities=priorities)


@router.post("/tickets/{ticket_id}/reply")
def reply(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    body: Annotated[str, Form(max_length=100_000)],
    internal: Annotated[str | None, Form(max_length=8)] = None,
) -> RedirectResponse:
    service.add_comment(session, clock, principal, ticket_id, body=body, public=not internal)
    return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)


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
) -> Response:
    try:
        ticket = service.create_ticket(
            session, clock, principal, subject=subject, body=body, priority=priority, channel=Channel.PORTAL
        )
    except ZhibanError as exc:
        if exc.status != 422:
            raise
        return render(request, "portal_new.html", 422, error=exc.detail, subject=subject, body=body, priority=priority)
    return RedirectResponse(f"/tickets/{ticket.id}", status_code=303)


# --- finding tickets: the agents' search page, with saved and preset views -----------------------------------

_PAGE_FILTERS = ("q", "status", "priority", "assignee")


def _page_params(q: str, status: str, priority: str, assignee: str) -> dict[str, Any]:
    return {k: v for k, v in zip(_PAGE_FILTERS, (q, status, priority, assignee), strict=True) if v}


@router.get("/agent/tickets", response_class=HTMLResponse)
def search_page(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    q: Annotated[str, Query(max_length=MAX_QUERY_CHARS)] = "",
    status: Annotated[str, Query(max_length=64)] = "",
    priority: Annotated[str, Query(max_length=16)] = "",
    assignee: Annotated[str, Query(max_length=64)] = "",
    view: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    preset: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    """Search and filter the tickets; run a saved or preset view (agents)."""
    principal.require_staff()
    current = None
    if view is not None:
        current = saved_views.get_view(session, principal, view)
        params = current.query.to_params()
    elif preset in PRESET_VIEWS:
        params = dict(PRESET_VIEWS[preset][1])
    else:
        params = _page_params(q, status, priority, assignee)
    error = None
    try:
        query = TicketQuery.from_params(params)
        tickets = search.find_tickets(session, principal, query, clock.now(), limit=100)
    except InvalidInput as exc:
        query, tickets, error = TicketQuery(), [], exc.detail
    shown = query.to_params()
    form = {k: ",".join(v) if isinstance(v, list) else str(v) for k, v in shown.items() if k in _PAGE_FILTERS}
    return render(
        request,
        "ticket_search.html",
        400 if error else 200,
        tickets=tickets,
        form=form,
        params=shown,
        error=error,
        views=saved_views.list_views(session, principal),
        presets={key: name for key, (name, _) in PRESET_VIEWS.items()},
        current=current,
        preset=preset if preset in PRESET_VIEWS else "",
        searched=query.is_search,
    )


@router.post("/agent/views")
def save_view(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    name: Annotated[str, Form(max_length=100)],
    q: Annotated[str, Form(max_length=MAX_QUERY_CHARS)] = "",
    status: Annotated[str, Form(max_length=64)] = "",
    priority: Annotated[str, Form(max_length=16)] = "",
    assignee: Annotated[str, Form(max_length=64)] = "",
    shared: Annotated[str | None, Form(max_length=8)] = None,
) -> RedirectResponse:
    principal.require_staff()
    query = TicketQuery.from_params(_page_params(q, status, priority, assignee))
    view = saved_views.create_view(session, clock, principal, name=name, query=query, shared=bool(shared))
    return RedirectResponse(f"/agent/tickets?view={view.id}", status_code=303)


@router.post("/agent/views/{view_id}/delete")
def remove_view(session: DB, principal: CurrentPrincipal, view_id: ViewId) -> RedirectResponse:
    principal.require_staff()
    saved_views.delete_view(session, principal, view_id)
    return RedirectResponse("/agent/tickets", status_code=303)

"""Ticket pages: the ticket page and the customer portal (the agent queue, ordered by the SLA, is sla.views')."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from zhiban.apps import service as apps
from zhiban.core.errors import InvalidInput, ZhibanError
from zhiban.identity import service as identity
from zhiban.identity.model import Principal
from zhiban.tickets import attachments, ownership, saved_views, search, service
from zhiban.tickets.attachment_api import AttachmentId, download_response, uploads_of
from zhiban.tickets.model import (
    AGENT_MOVES,
    CUSTOMER_MOVES,
    MAX_QUERY_CHARS,
    MAX_TAGS,
    PRESET_VIEWS,
    Channel,
    Priority,
    RtcFields,
    Status,
    TicketQuery,
    clean_fields,
    priority_choices,
)
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal, desk_of, reads_only
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
    owned = ownership.ownership_of(session, principal, ticket_id)
    fields = service.fields_of(session, [ticket_id]).get(ticket_id, RtcFields())
    staff = identity.staff(session) if principal.is_staff else []
    names = {p.id: p.name for p in staff} | identity.names_of(
        session, {view.ticket.assignee_id or "", *owned.followers}
    )
    teams = identity.teams(session) if principal.is_staff else []
    files = attachments.of_comments(session, [c.id for c in view.comments])
    return render(
        request,
        "ticket.html",
        view=view,
        files=files,
        authors=authors,
        moves=moves,
        priorities=priorities,
        owned=owned,
        fields=fields,
        staff=staff,
        names=names,
        teams=teams,
        team_name={t.id: t.name for t in teams},
        org_apps=[a.app_id for a in apps.list_apps(session, apps.SYSTEM, view.ticket.organization_id)],
        zone=service.organization_zone(session, view.ticket.organization_id),
    )


def _back(ticket_id: int) -> RedirectResponse:
    return RedirectResponse(f"/tickets/{ticket_id}", status_code=303)


Reason = Annotated[str | None, Form(max_length=500)]


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
    reason: Reason = None,
) -> RedirectResponse:
    service.change_status(session, clock, principal, ticket_id, status, reason=reason)
    return _back(ticket_id)


@router.post("/tickets/{ticket_id}/priority")
def set_priority(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    priority: Annotated[str, Form(max_length=2)],
    reason: Reason = None,
) -> RedirectResponse:
    service.change_priority(session, clock, principal, ticket_id, priority, reason=reason)
    return _back(ticket_id)


# --- ownership (agents; a customer may link its own tickets and set their RTC fields) ------------------------


@router.post("/tickets/{ticket_id}/take")
def take(session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId) -> RedirectResponse:
    ownership.take(session, clock, principal, ticket_id)
    return _back(ticket_id)


@router.post("/tickets/{ticket_id}/assign")
def assign(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    assignee_id: Annotated[str, Form(max_length=64)] = "",
    reason: Reason = None,
) -> RedirectResponse:
    service.assign(session, clock, principal, ticket_id, assignee_id or None, reason=reason)
    return _back(ticket_id)


@router.post("/tickets/{ticket_id}/team")
def team(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    team_id: Annotated[str, Form(max_length=64)] = "",
    reason: Reason = None,
) -> RedirectResponse:
    ownership.assign_team(session, clock, principal, ticket_id, team_id or None, reason=reason)
    return _back(ticket_id)


@router.post("/tickets/{ticket_id}/auto-assign")
def auto_assign(session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId) -> RedirectResponse:
    ownership.auto_assign(session, clock, principal, ticket_id)
    return _back(ticket_id)


@router.post("/tickets/{ticket_id}/follow")
def follow(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    action: Annotated[str, Form(max_length=8)] = "follow",
) -> RedirectResponse:
    if action == "unfollow":
        ownership.unfollow(session, clock, principal, ticket_id)
    else:
        ownership.follow(session, clock, principal, ticket_id)
    return _back(ticket_id)


@router.post("/tickets/{ticket_id}/category")
def category(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    category: Annotated[str, Form(max_length=64)] = "",
    reason: Reason = None,
) -> RedirectResponse:
    ownership.change_category(session, clock, principal, ticket_id, category or None, reason=reason)
    return _back(ticket_id)


@router.post("/tickets/{ticket_id}/tags")
def add_tags(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    tags: Annotated[str, Form(max_length=1000)],
) -> RedirectResponse:
    words = [t for t in re.split(r"[\s,，]+", tags) if t]
    if not words or len(words) > MAX_TAGS:
        raise InvalidInput(f"give 1–{MAX_TAGS} tags")
    ownership.add_tags(session, clock, principal, ticket_id, words)
    return _back(ticket_id)


@router.post("/tickets/{ticket_id}/tags/remove")
def remove_tag(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    tag: Annotated[str, Form(max_length=40)],
) -> RedirectResponse:
    ownership.remove_tag(session, clock, principal, ticket_id, tag)
    return _back(ticket_id)


def _ticket_number(value: str) -> int:
    number = value.strip().lstrip("#")
    if not number.isdigit() or not 1 <= int(number) < 2**31:
        raise InvalidInput("give a ticket number")
    return int(number)


@router.post("/tickets/{ticket_id}/merge")
def merge(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    into: Annotated[str, Form(max_length=12)],
    reason: Reason = None,
) -> RedirectResponse:
    ownership.merge(session, clock, principal, ticket_id, _ticket_number(into), reason=reason)
    return _back(ticket_id)


@router.post("/tickets/{ticket_id}/links")
def link(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    other: Annotated[str, Form(max_length=12)],
    action: Annotated[str, Form(max_length=8)] = "link",
) -> RedirectResponse:
    if action == "unlink":
        ownership.unlink(session, clock, principal, ticket_id, _ticket_number(other))
    else:
        ownership.link(session, clock, principal, ticket_id, _ticket_number(other))
    return _back(ticket_id)


def _form_fields(
    app_id: str | None,
    channel_name: str | None,
    user_ids: str | None,
    sdk_version: str | None,
    platform: str | None,
    occurred_at: str | None,
) -> dict[str, object]:
    """The RTC fields of a form, as given (blank clears one); the time is a datetime-local (no zone)."""
    when: datetime | None = None
    if occurred_at and occurred_at.strip():
        try:
            when = datetime.fromisoformat(occurred_at.strip())
        except ValueError as exc:
            raise InvalidInput("occurred_at must be a date and time") from exc
    return {
        "app_id": app_id or None,
        "channel_name": channel_name or None,
        "user_ids": [u for u in re.split(r"[\s,，;；、]+", user_ids or "") if u],
        "sdk_version": sdk_version or None,
        "platform": platform or None,
        "occurred_at": when,
    }


FieldForm = Annotated[str | None, Form(max_length=200)]


@router.post("/tickets/{ticket_id}/fields")
def set_fields(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    app_id: FieldForm = None,
    channel_name: FieldForm = None,
    user_ids: Annotated[str | None, Form(max_length=3000)] = None,
    sdk_version: FieldForm = None,
    platform: FieldForm = None,
    occurred_at: FieldForm = None,
) -> RedirectResponse:
    changes = _form_fields(app_id, channel_name, user_ids, sdk_version, platform, occurred_at)
    ownership.set_fields(session, clock, principal, ticket_id, changes)
    return _back(ticket_id)


@router.get("/portal", response_class=HTMLResponse)
def portal(request: Request, session: DB, principal: CurrentPrincipal) -> Response:
    tickets = service.list_tickets(session, principal, limit=200)
    return render(request, "portal_list.html", tickets=tickets)


def _my_apps(session: DB, principal: Principal) -> list[str]:
    return [a.app_id for a in apps.list_apps(session, principal)] if not principal.is_staff else []


@router.get("/portal/new", response_class=HTMLResponse)
def new_ticket_page(request: Request, session: DB, principal: CurrentPrincipal) -> Response:
    zone = service.organization_zone(session, principal.organization_id or "")
    return render(request, "portal_new.html", my_apps=_my_apps(session, principal), form={}, zone=zone)


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
    app_id: FieldForm = None,
    channel_name: FieldForm = None,
    user_ids: Annotated[str | None, Form(max_length=3000)] = None,
    sdk_version: FieldForm = None,
    platform: FieldForm = None,
    occurred_at: FieldForm = None,
) -> Response:
    form = {
        "app_id": app_id,
        "channel_name": channel_name,
        "user_ids": user_ids,
        "sdk_version": sdk_version,
        "platform": platform,
        "occurred_at": occurred_at,
    }
    try:
        given = _form_fields(app_id, channel_name, user_ids, sdk_version, platform, occurred_at)
        # A time without a zone is the customer's: read in its organization's zone.
        zone = service.organization_zone(session, principal.organization_id or "")
        fields = clean_fields(**given, now=clock.now(), zone=zone)  # type: ignore[arg-type]
        ticket = service.create_ticket(
            session,
            clock,
            principal,
            subject=subject,
            body=body,
            priority=priority,
            channel=Channel.PORTAL,
            fields=fields,
        )
    except ZhibanError as exc:
        if exc.status != 422:
            raise
        return render(
            request,
            "portal_new.html",
            422,
            error=exc.detail,
            subject=subject,
            body=body,
            priority=priority,
            my_apps=_my_apps(session, principal),
            form=form,
            zone=service.organization_zone(session, principal.organization_id or ""),
        )
    files = [f for f in uploads_of(file) if f.filename or f.size]
    if files:
        settings = desk_of(request).settings
        limits = attachments.limits_of(settings)
        store = attachments.store_of(settings)
        attachments.attach_to_filed(session, clock, principal, ticket.id, files, store=store, limits=limits)
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

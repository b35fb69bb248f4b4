"""Triage on the agent's ticket page: the panel and its correction form (htmx fragments)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from zhiban.triage import service
from zhiban.triage.model import DOMAINS
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.fields import TicketId
from zhiban.web.scopes import by_method
from zhiban.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[by_method("tickets:read", "tickets:write")])


@router.get("/agent/triage/tickets/{ticket_id}", response_class=HTMLResponse)
def panel(request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId) -> Response:
    triage = service.get_triage(session, clock, principal, ticket_id)
    return render(request, "triage/_panel.html", triage=triage, domains=DOMAINS)


@router.post("/agent/triage/tickets/{ticket_id}", response_class=HTMLResponse)
def correct(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    domain: Annotated[str, Form(max_length=32)],
) -> Response:
    triage = service.correct_triage(session, clock, principal, ticket_id, domain)
    return render(request, "triage/_panel.html", triage=triage, domains=DOMAINS)

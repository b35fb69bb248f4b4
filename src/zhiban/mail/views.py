"""The held-mail page: customer mail that did not authenticate, with release and discard buttons for agents."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from zhiban.mail import service
from zhiban.mail.model import HELD, HELD_STATES
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal, desk_of
from zhiban.web.scopes import by_method
from zhiban.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[by_method("tickets:read", "tickets:write")])
STATES = list(HELD_STATES)
HeldId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/agent/mail/held", response_class=HTMLResponse)
def held_page(
    request: Request, session: DB, principal: CurrentPrincipal, state: Annotated[str, Query(max_length=16)] = HELD
) -> Response:
    principal.require_staff()
    if state not in STATES:
        state = HELD
    rows = service.list_held_mail(session, principal, state=state, limit=200)
    return render(request, "mail/held.html", rows=rows, state=state, states=STATES)


@router.post("/agent/mail/held/{held_id}/release")
def release(
    held_id: HeldId, request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal
) -> RedirectResponse:
    principal.require_scope("tickets:write")
    outcome = service.release_held_mail(session, clock, principal, held_id, desk_of(request).settings)
    return RedirectResponse(f"/tickets/{outcome.ticket_id}", status_code=303)


@router.post("/agent/mail/held/{held_id}/discard")
def discard(held_id: HeldId, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> RedirectResponse:
    principal.require_scope("tickets:write")
    service.discard_held_mail(session, clock, principal, held_id)
    return RedirectResponse("/agent/mail/held", status_code=303)

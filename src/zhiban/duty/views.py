"""On-duty pages: the customer's "wake the engineer on duty" action on a ticket page.

The ticket page (tickets.views) shows the ticket's page from the `TicketView.on_duty` it already has; it
cannot ask duty or SLA whether the plan allows an urgent request (tickets never imports them), so the page
loads the action from here with htmx, and the action's form posts here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from zhiban.core.errors import Forbidden, InvalidInput, RateLimited, ZhibanError
from zhiban.duty import service
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.fields import TicketId
from zhiban.web.scopes import by_method
from zhiban.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[by_method("tickets:read", "tickets:write")])

# Why an urgent request was refused, as the customer reads it (the service's detail follows, smaller).
_REFUSALS: tuple[tuple[type[ZhibanError], str], ...] = (
    (Forbidden, "duty.refused.plan"),
    (RateLimited, "duty.refused.limit"),
    (InvalidInput, "duty.refused.closed"),
)


@router.get("/tickets/{ticket_id}/urgent", response_class=HTMLResponse)
def urgent_offer(
    request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId
) -> Response:
    """The urgent action of a ticket page (htmx loads it; empty when the plan does not offer it here)."""
    offer = service.urgent_offer(session, clock, principal, ticket_id)
    return render(request, "duty/urgent_offer.html", offer=offer, ticket_id=ticket_id)


@router.post("/tickets/{ticket_id}/urgent")
def urgent(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    ticket_id: TicketId,
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """The customer wakes the engineer on duty; a refusal (plan, daily limit, closed ticket) is said plainly."""
    try:
        service.request_urgent(session, clock, principal, ticket_id, note=note)
    except (Forbidden, RateLimited, InvalidInput) as exc:
        reason = next(key for kind, key in _REFUSALS if isinstance(exc, kind))
        return render(request, "duty/urgent_refused.html", exc.status, ticket_id=ticket_id, reason=reason, exc=exc)
    return RedirectResponse(f"/tickets/{ticket_id}#on-duty", status_code=303)

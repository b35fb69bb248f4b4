"""The agent's inbox page: unread first, mark one or all read; the nav's unread count (an htmx fragment)."""

from __future__ import annotations

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from zhiban.notify import inbox
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.scopes import by_method
from zhiban.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[by_method("tickets:read", "tickets:write")])

PAGE = "/agent/inbox"


@router.get(PAGE, response_class=HTMLResponse)
def inbox_page(request: Request, session: DB, principal: CurrentPrincipal, unread: bool = False) -> Response:
    """My notifications, unread first."""
    principal.require_staff()
    items = inbox.list_mine(session, principal, unread_only=unread, limit=inbox.MAX_PAGE)
    return render(
        request, "notify/inbox.html", items=items, unread=inbox.unread_count(session, principal), only_unread=unread
    )


@router.get(PAGE + "/count", response_class=HTMLResponse)
def unread_badge(request: Request, session: DB, principal: CurrentPrincipal) -> Response:
    """The nav's unread count, loaded by htmx after the page (so no page pays for it before it is shown)."""
    return render(request, "notify/inbox_count.html", unread=inbox.unread_count(session, principal))


@router.post(PAGE + "/read")
def read_all(session: DB, clock: ClockDep, principal: CurrentPrincipal) -> RedirectResponse:
    inbox.mark_all_read(session, clock, principal)
    return RedirectResponse(PAGE, status_code=303)


@router.post(PAGE + "/{notice_id}/read")
def read_one(
    session: DB, clock: ClockDep, principal: CurrentPrincipal, notice_id: int = Path(ge=1, le=2**31 - 1)
) -> RedirectResponse:
    inbox.mark_read(session, clock, principal, notice_id)
    return RedirectResponse(PAGE, status_code=303)

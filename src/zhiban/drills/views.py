"""The drills page: schedule a drill at a local time and read the results."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from zhiban.core.errors import ZhibanError
from zhiban.drills import service
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.scopes import by_method
from zhiban.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[by_method("incidents:read", "incidents:write")])


def _page(request: Request, session: DB, principal: CurrentPrincipal, status: int = 200, **extra: object) -> Response:
    from zhiban.sla import service as sla
    from zhiban.sla.model import SupportMode

    drills = service.list_drills(session, principal, limit=100)
    paging = [p.key for p in sla.list_plans(session) if sla.support_of(session, p.key).mode != SupportMode.QUEUE]
    return render(
        request,
        "drills/list.html",
        status,
        drills=drills,
        plans=paging,  # a queue plan wakes nobody: nothing to drill
        form=extra.get("form", {}),
        error=extra.get("error"),
    )


@router.get("/agent/drills", response_class=HTMLResponse)
def drills_page(request: Request, session: DB, principal: CurrentPrincipal) -> Response:
    principal.require_staff()
    return _page(request, session, principal)


@router.post("/agent/drills")
def schedule(
    request: Request,
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    plan: Annotated[str, Form(max_length=64)],
    at: Annotated[str, Form(max_length=100)],
    tz: Annotated[str, Form(max_length=64)] = "Asia/Shanghai",
    window: Annotated[int, Form(ge=5, le=1440)] = service.DEFAULT_WINDOW_MINUTES,
    expected_team: Annotated[str | None, Form(max_length=100)] = None,
    channel: Annotated[str, Form(max_length=8)] = "api",
) -> Response:
    principal.require_staff()
    try:
        service.schedule_drill(
            session, clock, principal, plan=plan, at=at, tz=tz, window_minutes=window,
            expected_team=expected_team or None, channel=channel,
        )  # fmt: skip
    except ZhibanError as exc:
        if exc.status != 422:
            raise
        form = {"plan": plan, "at": at, "tz": tz, "window": window, "channel": channel}
        return _page(request, session, principal, 422, form=form, error=exc.detail)
    return RedirectResponse("/agent/drills", status_code=303)


@router.post("/agent/drills/{drill_id}/cancel")
def cancel(session: DB, principal: CurrentPrincipal, drill_id: str) -> RedirectResponse:
    service.cancel_drill(session, principal, drill_id[:32])
    return RedirectResponse("/agent/drills", status_code=303)

"""Detection pages for staff: recent detections with their slice, severity and incident."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from zhiban.detect import service
from zhiban.web.deps import DB, CurrentPrincipal
from zhiban.web.scopes import needs
from zhiban.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[needs("telemetry:read")])


@router.get("/agent/detections", response_class=HTMLResponse)
def detections_page(request: Request, session: DB, principal: CurrentPrincipal, state: str | None = None) -> Response:
    principal.require_staff()
    chosen = state if state in ("open", "closed") else None
    rows = service.list_detections(session, principal, state=chosen, limit=200)
    return render(request, "detect/detections.html", detections=rows, state=chosen or "all")

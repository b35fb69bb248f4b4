"""The jobs page: counts per state, the dead-lettered jobs with their last error, and a retry button."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from zhiban.engine import service
from zhiban.engine.model import JobState
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.scopes import needs
from zhiban.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[needs("admin")])
STATES = [s.value for s in JobState]


@router.get("/agent/jobs", response_class=HTMLResponse)
def jobs_page(
    request: Request,
    session: DB,
    principal: CurrentPrincipal,
    state: Annotated[str, Query(max_length=16)] = JobState.DEAD.value,
) -> Response:
    principal.require_staff()
    if state not in STATES:
        state = JobState.DEAD.value
    return render(
        request,
        "engine/jobs.html",
        counts=service.job_counts(session),
        jobs=service.list_jobs(session, state=state, limit=200),
        state=state,
        states=STATES,
    )


@router.post("/agent/jobs/{job_id}/retry")
def retry(session: DB, clock: ClockDep, principal: CurrentPrincipal, job_id: str) -> RedirectResponse:
    principal.require_admin()
    service.retry_job(session, job_id, due_at=clock.now())
    return RedirectResponse("/agent/jobs", status_code=303)

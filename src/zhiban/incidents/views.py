"""Incident pages for staff (list, incident with timeline, acknowledge/resolve/note forms) and one-click ack links."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from zhiban.core.errors import ZhibanError
from zhiban.identity import service as identity
from zhiban.incidents import policy_views, service, service_views
from zhiban.incidents.model import read_ack_token
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal, desk_of
from zhiban.web.fields import Ident
from zhiban.web.scopes import by_method
from zhiban.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[by_method("incidents:read", "incidents:write")])
# Escalation policies and services are set up in the on-call area (/oncall/policies, /oncall/services).
router.include_router(policy_views.router)
router.include_router(service_views.router)


@router.get("/incidents", response_class=HTMLResponse)
def incident_list(request: Request, session: DB, principal: CurrentPrincipal, status: str | None = "open") -> Response:
    principal.require_staff()
    chosen = status if status in ("open", "triggered", "acknowledged", "resolved") else None
    rows = service.list_incidents(session, principal, status=chosen, limit=200)
    names = service.service_names(session)
    return render(request, "incidents/list.html", incidents=rows, services=names, status=chosen or "all")


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_page(request: Request, session: DB, principal: CurrentPrincipal, incident_id: Ident) -> Response:
    principal.require_staff()
    view = service.get_incident(session, principal, incident_id)
    ids = {e.actor_id for e in view.timeline if e.actor_id} | set(view.responder_ids)
    ids |= {str(e.data.get("person")) for e in view.timeline if e.data.get("person")}
    people = identity.names_of(session, ids)
    return render(request, "incidents/incident.html", view=view, people=people)


def _back(incident_id: str) -> RedirectResponse:
    return RedirectResponse(f"/incidents/{incident_id}", status_code=303)


@router.post("/incidents/{incident_id}/acknowledge")
def ack_form(session: DB, clock: ClockDep, principal: CurrentPrincipal, incident_id: Ident) -> RedirectResponse:
    service.acknowledge(session, clock, principal, incident_id, via="web")
    return _back(incident_id)


@router.post("/incidents/{incident_id}/resolve")
def resolve_form(session: DB, clock: ClockDep, principal: CurrentPrincipal, incident_id: Ident) -> RedirectResponse:
    service.resolve(session, clock, principal, incident_id, via="web")
    return _back(incident_id)


@router.post("/incidents/{incident_id}/notes")
def note_form(
    session: DB,
    clock: ClockDep,
    principal: CurrentPrincipal,
    incident_id: Ident,
    body: Annotated[str, Form(max_length=20_000)],
) -> RedirectResponse:
    service.add_note(session, clock, principal, incident_id, body)
    return _back(incident_id)


# --- one-click acknowledge: the signed token is the credential -----------------------------------


@router.get("/ack/{token}", response_class=HTMLResponse)
def ack_confirm(request: Request, session: DB, clock: ClockDep, token: str) -> Response:
    """A confirm page (a GET must not change anything: mail scanners follow links)."""
    try:
        incident_id, person_id = read_ack_token(desk_of(request).secret_key, token, clock.now())
    except ZhibanError as exc:
        return render(request, "incidents/ack.html", 400, error=exc.detail, token=token, incident=None)
    incident = service.incident_for_link(session, incident_id)
    person = identity.person(session, person_id)
    return render(request, "incidents/ack.html", token=token, incident=incident, person=person, error=None)


@router.post("/ack/{token}", response_class=HTMLResponse)
def ack_confirmed(request: Request, session: DB, clock: ClockDep, token: str) -> Response:
    try:
        incident_id, person_id = read_ack_token(desk_of(request).secret_key, token, clock.now())
        incident = service.acknowledge_as(session, clock, incident_id, person_id, via="acknowledge link")
    except ZhibanError as exc:
        return render(request, "incidents/ack.html", 400, error=exc.detail, token=token, incident=None)
    person = identity.person(session, person_id)
    return render(request, "incidents/ack.html", token=token, incident=incident, person=person, done=True, error=None)

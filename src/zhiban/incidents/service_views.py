"""Service pages: every staff member reads them; admins create and edit services and add integrations.

Integration keys are secrets (the API lists them to admins only), so only admins see them here too. Forms are
read into the API's `ServiceIn` and `IntegrationIn`, so they are checked as an API client's are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from zhiban.core.errors import InvalidInput
from zhiban.identity import service as identity
from zhiban.identity.model import Principal
from zhiban.incidents import integrations, service
from zhiban.incidents.api import IntegrationIn, IntegrationOut, ServiceIn
from zhiban.incidents.model import INTEGRATION_TYPES, URGENCY_RULES
from zhiban.oncall.editor import zone_names
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.fields import Ident
from zhiban.web.forms import RawForm, change, text
from zhiban.web.scopes import by_method
from zhiban.web.templating import render

if TYPE_CHECKING:
    from zhiban.incidents.store import ServiceRow

router = APIRouter(include_in_schema=False, dependencies=[by_method("incidents:read", "admin")])


def _default(name: str) -> str:
    return str(ServiceIn.model_fields[name].default)


@dataclass
class ServiceFields:
    name: str = ""
    description: str = ""
    policy: str = ""  # policy id; "" pages nobody
    urgency_rule: str = _default("urgency_rule")
    ack_timeout: str = _default("ack_timeout_minutes")
    support_country: str = _default("support_country")
    support_zone: str = _default("support_zone")
    organization_id: str = ""

    @classmethod
    def of(cls, form: FormData) -> ServiceFields:
        return cls(
            name=text(form, "name"),
            description=text(form, "description"),
            policy=text(form, "policy"),
            urgency_rule=text(form, "urgency_rule"),
            ack_timeout=text(form, "ack_timeout"),
            support_country=text(form, "support_country"),
            support_zone=text(form, "support_zone"),
            organization_id=text(form, "organization_id"),
        )

    @classmethod
    def of_row(cls, row: ServiceRow) -> ServiceFields:
        return cls(
            row.name,
            row.description,
            row.policy_id or "",
            row.urgency_rule,
            str(row.ack_timeout_minutes),
            row.support_country,
            row.support_zone,
            row.organization_id or "",
        )

    def to_api(self) -> ServiceIn:
        if not self.ack_timeout.isdigit():
            raise InvalidInput("the acknowledgement timeout is a whole number of minutes (0: never)")
        return ServiceIn.model_validate(
            {
                "name": self.name,
                "description": self.description,
                "policy": self.policy or None,
                "urgency_rule": self.urgency_rule,
                "ack_timeout_minutes": int(self.ack_timeout),
                "support_country": self.support_country,
                "support_zone": self.support_zone,
                "organization_id": self.organization_id or None,
            }
        )


@dataclass
class IntegrationFields:
    type: str = "events-v2"
    name: str = ""
    heartbeat_seconds: str = ""

    @classmethod
    def of(cls, form: FormData) -> IntegrationFields:
        return cls(text(form, "type"), text(form, "name"), text(form, "heartbeat_seconds"))

    def to_api(self, service_id: str) -> IntegrationIn:
        seconds = self.heartbeat_seconds
        if seconds and not seconds.isdigit():
            raise InvalidInput("the heartbeat interval is a whole number of seconds")
        every = int(seconds) if seconds else None
        return IntegrationIn.model_validate(
            {"type": self.type, "service": service_id, "name": self.name, "heartbeat_seconds": every}
        )


def _choices(session: Session) -> dict[str, object]:
    return {
        "policies": service.list_policies(session),
        "organizations": identity.organizations(session),
        "urgency_rules": URGENCY_RULES,
        "zones": zone_names(),
    }


def _service_form(
    request: Request,
    session: Session,
    fields: ServiceFields,
    *,
    status: int = 200,
    error: str | None = None,
) -> Response:
    return render(request, "incidents/service_form.html", status, fields=fields, error=error, **_choices(session))


def _service_page(
    request: Request,
    session: Session,
    principal: Principal,
    row: ServiceRow,
    *,
    fields: ServiceFields | None = None,
    new_integration: IntegrationFields | None = None,
    status: int = 200,
    error: str | None = None,
    integration_error: str | None = None,
) -> Response:
    admin = principal.role == "admin"
    hooks = integrations.list_integrations(session, row.id) if admin else []
    base = str(request.base_url).rstrip("/")
    policy = service.get_policy(session, row.policy_id) if row.policy_id else None
    organization = identity.organization(session, row.organization_id)
    return render(
        request,
        "incidents/service.html",
        status,
        service=row,
        policy=policy,
        organization=organization,
        fields=fields or ServiceFields.of_row(row),
        integrations=[(h, base + IntegrationOut.of(h).url) for h in hooks],
        integration_types=INTEGRATION_TYPES,
        new_integration=new_integration or IntegrationFields(),
        error=error,
        integration_error=integration_error,
        **_choices(session),
    )


@router.get("/oncall/services", response_class=HTMLResponse)
def service_list(request: Request, session: DB, principal: CurrentPrincipal) -> Response:
    principal.require_staff()
    policies = {p.id: p.name for p in service.list_policies(session)}
    return render(request, "incidents/services.html", services=service.list_services(session), policies=policies)


@router.get("/oncall/services/new", response_class=HTMLResponse)
def new_service(request: Request, session: DB, principal: CurrentPrincipal) -> Response:
    principal.require_admin()
    return _service_form(request, session, ServiceFields())


@router.post("/oncall/services/new")
def create_service(
    request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal, form: RawForm
) -> Response:
    principal.require_admin()
    fields = ServiceFields.of(form)
    with change(session) as outcome:
        row = service.create_service(session, clock, **fields.to_api().model_dump())
    if outcome.error:
        return _service_form(request, session, fields, status=outcome.status, error=outcome.error)
    return RedirectResponse(f"/oncall/services/{row.id}", status_code=303)


@router.get("/oncall/services/{service_id}", response_class=HTMLResponse)
def service_page(request: Request, session: DB, principal: CurrentPrincipal, service_id: Ident) -> Response:
    principal.require_staff()
    return _service_page(request, session, principal, service.get_service(session, service_id))


@router.post("/oncall/services/{service_id}")
def save_service(
    request: Request, session: DB, principal: CurrentPrincipal, service_id: Ident, form: RawForm
) -> Response:
    principal.require_admin()
    row = service.get_service(session, service_id)
    fields = ServiceFields.of(form)
    with change(session) as outcome:
        service.update_service(session, row.id, **fields.to_api().model_dump())
    if outcome.error:
        return _service_page(
            request, session, principal, row, fields=fields, status=outcome.status, error=outcome.error
        )
    return RedirectResponse(f"/oncall/services/{row.id}", status_code=303)


@router.post("/oncall/services/{service_id}/integrations")
def add_integration(
    request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal, service_id: Ident, form: RawForm
) -> Response:
    principal.require_admin()
    row = service.get_service(session, service_id)
    fields = IntegrationFields.of(form)
    with change(session) as outcome:
        body = fields.to_api(row.id)
        integrations.create_integration(
            session,
            clock,
            type_=body.type,
            service_ref=body.service,
            name=body.name,
            heartbeat_seconds=body.heartbeat_seconds,
        )
    if outcome.error:
        return _service_page(
            request,
            session,
            principal,
            row,
            new_integration=fields,
            status=outcome.status,
            integration_error=outcome.error,
        )
    return RedirectResponse(f"/oncall/services/{row.id}#integrations", status_code=303)

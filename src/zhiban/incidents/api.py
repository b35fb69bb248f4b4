"""Incident API: alert intake (Events v2, Alertmanager, webhook, heartbeats), incidents, services, policies.

`POST /v2/enqueue` answers in PagerDuty's own shape (see enqueue.py, which serves it).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from zhiban.core.errors import InvalidInput
from zhiban.identity.model import Principal
from zhiban.incidents import integrations, service
from zhiban.incidents.enqueue import MAX_EVENT_BYTES, EnqueueEndpoint, accept_event, intake_of
from zhiban.incidents.model import GroupingRule
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.fields import Ident, Limit, LongText, Offset, ShortText
from zhiban.web.limits import read_capped
from zhiban.web.scopes import PUBLIC, needs

if TYPE_CHECKING:
    from zhiban.incidents.store import EscalationPolicyRow, IncidentRow, IntegrationRow, ServiceRow

router = APIRouter(tags=["incidents"])
asgi_middleware = EnqueueEndpoint  # POST /v2/enqueue is answered before routing: alert storms are its load


async def _json_body(request: Request, limit: int | None = None) -> Any:
    # Without `limit`, the integrations' cap at the edge (web/limits.py) bounds the body.
    body = await (request.body() if limit is None else read_capped(request, limit))
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not JSON: {exc}") from exc


@router.post(
    "/v2/enqueue",
    status_code=202,
    summary="PagerDuty Events API v2: trigger, acknowledge, resolve",
    dependencies=[PUBLIC],
)
async def enqueue_event(request: Request) -> Response:
    # Documents the endpoint: in the app, EnqueueEndpoint answers this path before routing (enqueue.py).
    status, answer = await accept_event(intake_of(request.app), await request.body())
    return Response(orjson.dumps(answer), status_code=status, media_type="application/json")


@router.post(
    "/api/v1/integrations/alertmanager/{key}",
    summary="Prometheus Alertmanager webhook (version 4)",
    dependencies=[PUBLIC],
)
async def alertmanager(request: Request, key: Ident, session: DB, clock: ClockDep) -> dict[str, Any]:
    doc = await _json_body(request)
    # A storm's group is thousands of alerts: its writes run off the event loop.
    count = await run_in_threadpool(integrations.receive_alertmanager, session, clock, key, doc)
    return {"status": "success", "alerts": count}


@router.post(
    "/api/v1/integrations/webhook/{key}", status_code=202, summary="Generic JSON webhook alert", dependencies=[PUBLIC]
)
async def generic_webhook(request: Request, key: Ident, session: DB, clock: ClockDep) -> dict[str, Any]:
    doc = await _json_body(request, MAX_EVENT_BYTES)
    return {"status": "success", "dedup_key": integrations.receive_webhook(session, clock, key, doc)}


@router.post(
    "/api/v1/heartbeats/{key}", summary="Heartbeat ping: an incident opens when pings stop", dependencies=[PUBLIC]
)
def heartbeat(key: Ident, session: DB, clock: ClockDep) -> dict[str, Any]:
    row = integrations.ping(session, clock, key)
    return {"status": "success", "next_ping_due_within_seconds": row.heartbeat_seconds}


# --- incidents ------------------------------------------------------------------------------------


class IncidentOut(BaseModel):
    id: str
    number: int
    title: str
    status: str
    urgency: str
    severity: str
    service_id: str
    organization_id: str | None
    triggered_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    alert_count: int
    # How its alerts are grouped ({"rule": "service" | "fields" | "sender_group", "fields", "window_minutes"});
    # None for an incident of one alert's own.
    grouping: dict[str, Any] | None = None

    @classmethod
    def of(cls, row: IncidentRow) -> IncidentOut:
        return cls(
            id=row.id,
            number=row.number,
            title=row.title,
            status=row.status,
            urgency=row.urgency,
            severity=row.severity,
            service_id=row.service_id,
            organization_id=row.organization_id,
            triggered_at=row.triggered_at,
            acknowledged_at=row.acknowledged_at,
            resolved_at=row.resolved_at,
            alert_count=row.alert_count,
            grouping=row.grouping,
        )


class TimelineOut(BaseModel):
    at: datetime
    kind: str
    actor_id: str | None
    body: str
    data: dict[str, Any]


class IncidentDetail(IncidentOut):
    service: str
    timeline: list[TimelineOut]
    ticket_ids: list[int]
    responder_ids: list[str]


def _detail(session: Any, principal: Principal, incident_id: str) -> IncidentDetail:
    view = service.get_incident(session, principal, incident_id)
    return IncidentDetail(
        **IncidentOut.of(view.incident).model_dump(),
        service=view.service_name,
        timeline=[
            TimelineOut(at=e.at, kind=e.kind, actor_id=e.actor_id, body=e.body, data=e.data) for e in view.timeline
        ],
        ticket_ids=view.ticket_ids,
        responder_ids=view.responder_ids,
    )


@router.get(
    "/api/v1/incidents",
    response_model=list[IncidentOut],
    summary="Incidents the caller may see",
    dependencies=[needs("incidents:read")],
)
def list_incidents(
    session: DB,
    principal: CurrentPrincipal,
    status: Literal["open", "triggered", "acknowledged", "resolved"] | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[IncidentOut]:
    return [
        IncidentOut.of(r) for r in service.list_incidents(session, principal, status=status, limit=limit, offset=offset)
    ]


@router.get(
    "/api/v1/incidents/{incident_id}",
    response_model=IncidentDetail,
    summary="One incident and its timeline",
    dependencies=[needs("incidents:read")],
)
def get_incident(incident_id: Ident, session: DB, principal: CurrentPrincipal) -> IncidentDetail:
    return _detail(session, principal, incident_id)


@router.post(
    "/api/v1/incidents/{incident_id}/acknowledge",
    response_model=IncidentOut,
    summary="Acknowledge",
    dependencies=[needs("incidents:write")],
)
def acknowledge(incident_id: Ident, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> IncidentOut:
    principal.require_scope("incidents:write")
    return IncidentOut.of(service.acknowledge(session, clock, principal, incident_id, via="api"))


@router.post(
    "/api/v1/incidents/{incident_id}/resolve",
    response_model=IncidentOut,
    summary="Resolve",
    dependencies=[needs("incidents:write")],
)
def resolve(incident_id: Ident, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> IncidentOut:
    principal.require_scope("incidents:write")
    return IncidentOut.of(service.resolve(session, clock, principal, incident_id, via="api"))


class NoteIn(BaseModel):
    body: LongText


@router.post(
    "/api/v1/incidents/{incident_id}/notes",
    status_code=201,
    summary="Add an internal note",
    dependencies=[needs("incidents:write")],
)
def add_note(
    incident_id: Ident, body: NoteIn, session: DB, clock: ClockDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    principal.require_scope("incidents:write")
    row = service.add_note(session, clock, principal, incident_id, body.body)
    return {"id": row.id, "at": row.at.isoformat()}


class ResponderIn(BaseModel):
    person: ShortText = Field(description="person id or e-mail address of an agent or admin")


@router.post(
    "/api/v1/incidents/{incident_id}/responders",
    status_code=201,
    summary="Add a responder (paged at once)",
    dependencies=[needs("incidents:write")],
)
def add_responder(
    incident_id: Ident, body: ResponderIn, session: DB, clock: ClockDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    principal.require_scope("incidents:write")
    row = service.add_responder(session, clock, principal, incident_id, body.person)
    return {"incident_id": row.incident_id, "person_id": row.person_id}


# --- configuration: policies, services, integrations (admins) -------------------------------------


class TargetIn(BaseModel):
    kind: Literal["person", "team", "schedule"]
    ref: ShortText
    round_robin: bool = False


class WindowIn(BaseModel):
    start: str = Field(max_length=8)
    end: str = Field(max_length=8)
    weekdays: list[int] = Field(default_factory=lambda: list(range(7)), max_length=7)


class ConditionIn(BaseModel):
    zone: str = Field("UTC", max_length=64)
    windows: list[WindowIn] = Field(default_factory=list, max_length=20)
    business_hours: bool | None = None


class LevelIn(BaseModel):
    delay_minutes: int = Field(ge=1, le=1440)
    targets: list[TargetIn] = Field(min_length=1, max_length=50)
    condition: ConditionIn | None = None


class PolicyIn(BaseModel):
    name: ShortText
    levels: list[LevelIn] = Field(min_length=1, max_length=20)
    repeats: int = Field(0, ge=0, le=9)
    calendar_country: str = Field("CN", min_length=2, max_length=3)
    calendar_zone: str = Field("Asia/Shanghai", max_length=64)

    def fields(self) -> dict[str, Any]:
        """The policy as service.create_policy / update_policy take it."""
        return {
            "name": self.name,
            "levels": [level.model_dump(exclude_none=True) for level in self.levels],
            "repeats": self.repeats,
            "calendar_country": self.calendar_country,
            "calendar_zone": self.calendar_zone,
        }


class PolicyOut(BaseModel):
    id: str
    name: str
    levels: list[dict[str, Any]]
    repeats: int

    @classmethod
    def of(cls, row: EscalationPolicyRow) -> PolicyOut:
        return cls(id=row.id, name=row.name, levels=row.levels, repeats=row.repeats)


@router.get(
    "/api/v1/escalation-policies",
    response_model=list[PolicyOut],
    summary="Escalation policies",
    dependencies=[needs("incidents:read")],
)
def list_policies(session: DB, principal: CurrentPrincipal) -> list[PolicyOut]:
    principal.require_staff()
    return [PolicyOut.of(r) for r in service.list_policies(session)]


@router.post(
    "/api/v1/escalation-policies",
    status_code=201,
    response_model=PolicyOut,
    summary="Create a policy",
    dependencies=[needs("admin")],
)
def create_policy(body: PolicyIn, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> PolicyOut:
    principal.require_admin()
    return PolicyOut.of(service.create_policy(session, clock, **body.fields()))


@router.put(
    "/api/v1/escalation-policies/{policy_id}",
    response_model=PolicyOut,
    summary="Replace a policy (admins)",
    dependencies=[needs("admin")],
)
def replace_policy(body: PolicyIn, policy_id: Ident, session: DB, principal: CurrentPrincipal) -> PolicyOut:
    principal.require_admin()
    return PolicyOut.of(service.update_policy(session, policy_id, **body.fields()))


@router.delete(
    "/api/v1/escalation-policies/{policy_id}",
    status_code=204,
    summary="Delete an unused policy (admins)",
    dependencies=[needs("admin")],
)
def delete_policy(policy_id: Ident, session: DB, principal: CurrentPrincipal) -> Response:
    principal.require_admin()
    service.delete_policy(session, policy_id)
    return Response(status_code=204)


class GroupingIn(BaseModel):
    """Storm grouping of a service's new alerts into few incidents (model.GroupingRule)."""

    rule: Literal["off", "service", "fields"] = "off"
    fields: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list, max_length=10)
    window_minutes: int = Field(
        0, ge=0, le=1440, description="join only an incident opened this recently; 0: while open"
    )

    def value(self) -> GroupingRule:
        return GroupingRule(self.rule, tuple(self.fields), self.window_minutes)


class ServiceIn(BaseModel):
    name: ShortText
    policy: ShortText | None = None
    urgency_rule: Literal["high", "low", "severity"] = "high"
    support_country: str = Field("CN", min_length=2, max_length=3)
    support_zone: str = Field("Asia/Shanghai", max_length=64)
    ack_timeout_minutes: int = Field(30, ge=0, le=1440)
    organization_id: Ident | None = None
    description: str = Field("", max_length=1000)
    # Absent: a new service does not group; a replaced one keeps its rule.
    grouping: GroupingIn | None = None

    def fields(self) -> dict[str, Any]:
        """The service as service.create_service / update_service take it."""
        return {**self.model_dump(exclude={"grouping"}), "grouping": self.grouping.value() if self.grouping else None}


class ServiceOut(BaseModel):
    id: str
    name: str
    policy_id: str | None
    urgency_rule: str
    ack_timeout_minutes: int
    organization_id: str | None
    grouping: dict[str, Any]

    @classmethod
    def of(cls, row: ServiceRow) -> ServiceOut:
        return cls(
            id=row.id,
            name=row.name,
            policy_id=row.policy_id,
            urgency_rule=row.urgency_rule,
            ack_timeout_minutes=row.ack_timeout_minutes,
            organization_id=row.organization_id,
            grouping=service.grouping_of(row).describe(),
        )


@router.get(
    "/api/v1/incident-services",
    response_model=list[ServiceOut],
    summary="Services",
    dependencies=[needs("incidents:read")],
)
def list_services(session: DB, principal: CurrentPrincipal) -> list[ServiceOut]:
    principal.require_staff()
    return [ServiceOut.of(r) for r in service.list_services(session)]


@router.post(
    "/api/v1/incident-services",
    status_code=201,
    response_model=ServiceOut,
    summary="Create a service",
    dependencies=[needs("admin")],
)
def create_service(body: ServiceIn, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> ServiceOut:
    principal.require_admin()
    return ServiceOut.of(service.create_service(session, clock, **body.fields()))


@router.put(
    "/api/v1/incident-services/{service_id}",
    response_model=ServiceOut,
    summary="Replace a service (admins)",
    dependencies=[needs("admin")],
)
def replace_service(body: ServiceIn, service_id: Ident, session: DB, principal: CurrentPrincipal) -> ServiceOut:
    principal.require_admin()
    return ServiceOut.of(service.update_service(session, service_id, **body.fields()))


class IntegrationIn(BaseModel):
    type: Literal["events-v2", "alertmanager", "webhook", "heartbeat"]
    service: ShortText
    name: str = Field("", max_length=200)
    heartbeat_seconds: int | None = Field(None, ge=10, le=7 * 24 * 3600)


class IntegrationOut(BaseModel):
    id: str
    type: str
    name: str
    service_id: str
    key: str
    url: str

    @classmethod
    def of(cls, row: IntegrationRow) -> IntegrationOut:
        paths = {
            "events-v2": "/v2/enqueue",
            "alertmanager": f"/api/v1/integrations/alertmanager/{row.key}",
            "webhook": f"/api/v1/integrations/webhook/{row.key}",
            "heartbeat": f"/api/v1/heartbeats/{row.key}",
        }
        return cls(id=row.id, type=row.type, name=row.name, service_id=row.service_id, key=row.key, url=paths[row.type])


@router.get(
    "/api/v1/integrations",
    response_model=list[IntegrationOut],
    summary="Integrations (with their keys)",
    dependencies=[needs("admin")],
)
def list_integrations(session: DB, principal: CurrentPrincipal) -> list[IntegrationOut]:
    principal.require_admin()
    return [IntegrationOut.of(r) for r in integrations.list_integrations(session)]


@router.post(
    "/api/v1/integrations",
    status_code=201,
    response_model=IntegrationOut,
    summary="Create an integration",
    dependencies=[needs("admin")],
)
def create_integration(
    body: IntegrationIn, session: DB, clock: ClockDep, principal: CurrentPrincipal
) -> IntegrationOut:
    principal.require_admin()
    row = integrations.create_integration(
        session,
        clock,
        type_=body.type,
        service_ref=body.service,
        name=body.name,
        heartbeat_seconds=body.heartbeat_seconds,
    )
    return IntegrationOut.of(row)

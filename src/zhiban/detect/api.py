"""Detection API: detections (§4 plus state and incident), explicit rules, organizations' notice webhook,
and the live simulation's fault injection (the demo path)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, SecretStr

from zhiban.detect import service
from zhiban.detect.rules import RULE_METRICS
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal, desk_of
from zhiban.web.fields import Ident, Limit, ShortText
from zhiban.web.scopes import by_method, needs

router = APIRouter(tags=["detection"], dependencies=[by_method("telemetry:read", "telemetry:write")])

Metric = Annotated[str, Field(min_length=1, max_length=64, description=f"one of {', '.join(RULE_METRICS)}")]
PlanKey = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


@router.get("/api/v1/detections")
def list_detections(
    session: DB,
    principal: CurrentPrincipal,
    state: Literal["open", "closed"] | None = None,
    app_id: Ident | None = None,
    limit: Limit = 50,
) -> list[dict[str, Any]]:
    """Detections, newest first (a customer sees its own apps' only)."""
    rows = service.list_detections(session, principal, state=state, app_id=app_id, limit=limit)
    return [service.detection_json(r) for r in rows]


@router.get("/api/v1/detections/{detection_id}")
def get_detection(session: DB, principal: CurrentPrincipal, detection_id: Ident) -> dict[str, Any]:
    return service.detection_json(service.get_detection(session, principal, detection_id))


class RuleIn(BaseModel):
    name: ShortText = Field(max_length=100)
    metric: Metric
    comparison: Literal["below", "above"]
    threshold: float = Field(ge=-1e12, le=1e12)
    window_seconds: int = Field(60, ge=10, le=3600)
    consecutive: int = Field(2, ge=1, le=100)
    min_sessions: int = Field(20, ge=1, le=1_000_000)
    plan: PlanKey | None = None
    app_id: Ident | None = None
    enabled: bool = True


class RulePatch(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    metric: Metric | None = None
    comparison: Literal["below", "above"] | None = None
    threshold: float | None = Field(None, ge=-1e12, le=1e12)
    window_seconds: int | None = Field(None, ge=10, le=3600)
    consecutive: int | None = Field(None, ge=1, le=100)
    min_sessions: int | None = Field(None, ge=1, le=1_000_000)
    plan: PlanKey | None = None
    app_id: Ident | None = None
    enabled: bool | None = None


@router.get("/api/v1/detect/rules")
def list_rules(session: DB, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    """Explicit rules (staff)."""
    return [service.rule_json(r) for r in service.list_rules(session, principal)]


@router.post("/api/v1/detect/rules", status_code=201, dependencies=[needs("admin")])
def create_rule(body: RuleIn, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Add a rule, e.g. join_success_rate below 0.99 for 2 windows of 60 s on the enterprise plan (admins)."""
    return service.rule_json(service.create_rule(session, clock, principal, body.model_dump()))


@router.patch("/api/v1/detect/rules/{rule_id}", dependencies=[needs("admin")])
def update_rule(
    rule_id: Ident, body: RulePatch, session: DB, clock: ClockDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Change a rule (admins); only the fields sent change."""
    changes = body.model_dump(exclude_unset=True)
    return service.rule_json(service.update_rule(session, clock, principal, rule_id, changes))


@router.delete("/api/v1/detect/rules/{rule_id}", status_code=204, dependencies=[needs("admin")])
def delete_rule(rule_id: Ident, session: DB, principal: CurrentPrincipal) -> Response:
    service.delete_rule(session, principal, rule_id)
    return Response(status_code=204)


class WebhookIn(BaseModel):
    url: Annotated[str, Field(min_length=8, max_length=2000)]
    secret: SecretStr = Field(min_length=16, max_length=200)


@router.get("/api/v1/organizations/{organization_id}/notice-webhook")
def get_notice_webhook(organization_id: Ident, session: DB, principal: CurrentPrincipal) -> dict[str, Any]:
    """Where the organization's proactive notices go besides e-mail (the secret is never shown)."""
    return service.webhook_json(service.get_notice_webhook(session, principal, organization_id), organization_id)


@router.put("/api/v1/organizations/{organization_id}/notice-webhook")
def set_notice_webhook(
    organization_id: Ident, body: WebhookIn, session: DB, clock: ClockDep, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Set the organization's notice webhook (the customer itself, or an admin)."""
    row = service.set_notice_webhook(
        session, clock, principal, organization_id, url=body.url, secret=body.secret.get_secret_value()
    )
    return service.webhook_json(row, organization_id)


@router.delete("/api/v1/organizations/{organization_id}/notice-webhook", status_code=204)
def clear_notice_webhook(organization_id: Ident, session: DB, principal: CurrentPrincipal) -> Response:
    service.clear_notice_webhook(session, principal, organization_id)
    return Response(status_code=204)


class FaultIn(BaseModel):
    spec: Annotated[
        str,
        Field(
            min_length=3,
            max_length=500,
            description="kind:app:slice:start:duration[:magnitude], e.g. edge_packet_loss:liveco:edge=x:+1m:10m",
        ),
    ]


@router.post("/api/v1/simulator/faults", status_code=201, dependencies=[needs("admin")])
def inject_fault(body: FaultIn, request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    """Inject a named fault into this desk's live simulation (admins; the demo path)."""
    principal.require_admin()
    from zhiban.detect.faults import parse_fault_spec
    from zhiban.telemetry.live import inject_fault as inject

    desk = desk_of(request)
    fault = parse_fault_spec(body.spec, desk.clock.now())
    inject(desk, fault)
    return {"injected": fault.truth()}

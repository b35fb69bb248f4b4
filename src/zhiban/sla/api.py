"""SLA API: a ticket's clocks, what-if due times, plans and policy rules (admins), alerts, calendar assignment."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from zhiban.core.errors import InvalidInput
from zhiban.sla import service
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.fields import Ident, ShortText, TicketId
from zhiban.web.scopes import needs

if TYPE_CHECKING:
    from zhiban.notify.model import Notice
    from zhiban.sla.store import ClockChangeRow, ClockRow, PlanRow, PolicyRuleRow

router = APIRouter(tags=["sla"])

PriorityIn = Literal["P1", "P2", "P3", "P4"]
MetricIn = Literal["first_response", "next_response", "periodic_update", "resolution"]
PlanKey = Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")


class TargetIn(BaseModel):
    metric: MetricIn
    minutes: float = Field(gt=0, le=service.MAX_TARGET_MINUTES)
    calendar: Literal["business", "24x7"] = "business"


class TargetOut(BaseModel):
    metric: str
    minutes: float
    calendar: str


class ClockOut(BaseModel):
    metric: str
    cycle: int
    state: str
    calendar: str
    started_at: datetime
    due_at: datetime | None
    warning_at: datetime | None
    breached_at: datetime | None
    fulfilled_at: datetime | None
    business_seconds_used: float
    target_seconds: int

    @classmethod
    def of(cls, r: ClockRow) -> ClockOut:
        return cls(**{name: getattr(r, name) for name in cls.model_fields})


class ClockChangeOut(BaseModel):
    metric: str
    cycle: int
    state: str
    due_at: datetime | None
    reason: str
    at: datetime

    @classmethod
    def of(cls, r: ClockChangeRow) -> ClockChangeOut:
        return cls(**{name: getattr(r, name) for name in cls.model_fields})


class TicketSlaOut(BaseModel):
    ticket_id: int
    plan: str
    plan_name: str
    priority: str
    calendar: str
    calendar_tz: str
    targets: list[TargetOut]
    clocks: list[ClockOut]
    history: list[ClockChangeOut]


@router.get(
    "/api/v1/tickets/{ticket_id}/sla",
    response_model=TicketSlaOut,
    summary="A ticket's SLA clocks",
    dependencies=[needs("tickets:read")],
)
def ticket_sla(session: DB, clock: ClockDep, principal: CurrentPrincipal, ticket_id: TicketId) -> TicketSlaOut:
    principal.require_scope("tickets:read")
    view = service.ticket_sla(session, principal, clock, ticket_id)
    return TicketSlaOut(
        ticket_id=view.ticket_id,
        plan=view.plan_key,
        plan_name=view.plan_name,
        priority=view.priority,
        calendar=view.calendar_name,
        calendar_tz=view.calendar_tz,
        targets=[TargetOut(**service.target_to_json(t)) for t in view.targets],
        clocks=[ClockOut.of(c) for c in view.clocks],
        history=[ClockChangeOut.of(h) for h in view.history],
    )


class PreviewIn(BaseModel):
    plan: Ident
    priority: PriorityIn
    country: str = Field(min_length=2, max_length=3, pattern=r"^[A-Za-z]{2,3}$")
    tz: str = Field(min_length=1, max_length=64)
    at: datetime
    channel: Ident | None = None
    category: Ident | None = None


@router.post(
    "/api/v1/sla/preview", summary="What-if: due times of a ticket filed at `at`", dependencies=[needs("tickets:read")]
)
def preview(body: PreviewIn, session: DB, principal: CurrentPrincipal) -> dict[str, str | None]:
    if body.at.tzinfo is None:
        raise InvalidInput("`at` needs a UTC offset, e.g. 2026-10-09T17:50:00+08:00")
    dues = service.due_times(
        body.plan, body.priority, body.country, body.tz, body.at, session, body.channel, body.category
    )
    return {k: v.isoformat() if v else None for k, v in dues.items()}


class SupportIn(BaseModel):
    mode: Literal["queue", "dedicated", "standby"] | None = Field(
        None,
        description="queue: business hours, nobody woken; dedicated: a named contact in hours, paging outside "
        "them; standby: paging at any hour",
    )
    paging_priorities: list[PriorityIn] | None = Field(
        None, max_length=4, description="priorities that page (absent with a new mode: the mode's defaults)"
    )
    paging_service: ShortText | None = Field(None, description="the incident service pages go through (name or id)")
    urgent_priorities: list[PriorityIn] | None = Field(None, max_length=4)
    urgent_per_day: int | None = Field(None, ge=0, le=100, description="customer 'wake the engineer' requests a day")


class SupportOut(BaseModel):
    mode: str
    paging_priorities: list[str]
    paging_service_id: str | None
    urgent_priorities: list[str]
    urgent_per_day: int


class PlanIn(BaseModel):
    name: ShortText | None = None
    targets: dict[PriorityIn, list[TargetIn]] | None = None
    proactive_warning: bool | None = None
    position: int | None = Field(None, ge=0, le=1000)
    support: SupportIn | None = None


class PlanOut(BaseModel):
    key: str
    name: str
    proactive_warning: bool
    position: int
    targets: dict[str, list[TargetOut]]
    support: SupportOut

    @classmethod
    def of(cls, r: PlanRow) -> PlanOut:
        targets = {p: [TargetOut(**t) for t in ts] for p, ts in r.targets.items()}
        terms = service.terms_of(r)
        support = SupportOut(
            mode=terms.mode.value,
            paging_priorities=sorted(p.value for p in terms.paging_priorities),
            paging_service_id=terms.paging_service_id,
            urgent_priorities=sorted(p.value for p in terms.urgent_priorities),
            urgent_per_day=terms.urgent_per_day,
        )
        return cls(
            key=r.key,
            name=r.name,
            proactive_warning=r.proactive_warning,
            position=r.position,
            targets=targets,
            support=support,
        )


def _support(body: SupportIn | None) -> dict[str, Any] | None:
    if body is None:
        return None
    given = body.model_dump(exclude_unset=True)
    if "paging_service" in given:
        given["paging_service_id"] = given.pop("paging_service")
    return given


def _targets(items: list[TargetIn] | None) -> list[dict[str, Any]] | None:
    return None if items is None else [t.model_dump() for t in items]


@router.get(
    "/api/v1/sla/plans",
    response_model=list[PlanOut],
    summary="Support plans and their targets",
    dependencies=[needs("tickets:read")],
)
def list_plans(session: DB, principal: CurrentPrincipal) -> list[PlanOut]:
    principal.require_staff()
    return [PlanOut.of(p) for p in service.list_plans(session)]


@router.get("/api/v1/sla/plans/{key}", response_model=PlanOut, summary="One plan", dependencies=[needs("tickets:read")])
def get_plan(session: DB, principal: CurrentPrincipal, key: str = PlanKey) -> PlanOut:
    principal.require_staff()
    return PlanOut.of(service.get_plan(session, key))


@router.put(
    "/api/v1/sla/plans/{key}",
    response_model=PlanOut,
    summary="Create or change a plan (admins)",
    dependencies=[needs("admin")],
)
def put_plan(body: PlanIn, session: DB, clock: ClockDep, principal: CurrentPrincipal, key: str = PlanKey) -> PlanOut:
    service.require_admin(principal)
    targets = None if body.targets is None else {str(p): _targets(ts) or [] for p, ts in body.targets.items()}
    row = service.save_plan(
        session,
        clock,
        key,
        name=body.name,
        targets=targets,
        proactive_warning=body.proactive_warning,
        position=body.position,
        support=_support(body.support),
    )
    return PlanOut.of(row)


@router.delete(
    "/api/v1/sla/plans/{key}", status_code=204, summary="Remove a plan (admins)", dependencies=[needs("admin")]
)
def delete_plan(session: DB, clock: ClockDep, principal: CurrentPrincipal, key: str = PlanKey) -> Response:
    service.require_admin(principal)
    service.delete_plan(session, clock, key)
    return Response(status_code=204)


class RuleIn(BaseModel):
    name: ShortText
    targets: list[TargetIn] = Field(min_length=1, max_length=4)
    plan: Ident | None = None
    priority: PriorityIn | None = None
    channel: Ident | None = None
    category: Ident | None = None
    position: int | None = Field(None, ge=0, le=service.MAX_RULES)


class RulePatch(BaseModel):
    name: ShortText | None = None
    targets: list[TargetIn] | None = Field(None, min_length=1, max_length=4)
    plan: str | None = Field(None, max_length=64, description='"" clears the match')
    priority: Literal["P1", "P2", "P3", "P4", ""] | None = None
    channel: str | None = Field(None, max_length=16)
    category: str | None = Field(None, max_length=64)


class RuleOut(BaseModel):
    id: int
    position: int
    name: str
    plan: str | None
    priority: str | None
    channel: str | None
    category: str | None
    targets: list[TargetOut]

    @classmethod
    def of(cls, r: PolicyRuleRow) -> RuleOut:
        return cls(
            id=r.id,
            position=r.position,
            name=r.name,
            plan=r.plan,
            priority=r.priority,
            channel=r.channel,
            category=r.category,
            targets=[TargetOut(**t) for t in r.targets],
        )


class PolicyOut(BaseModel):
    version: int
    rules: list[RuleOut] = Field(description="checked in order before the plans' own targets")


@router.get(
    "/api/v1/sla/policy",
    response_model=PolicyOut,
    summary="Policy rules in the order they apply",
    dependencies=[needs("tickets:read")],
)
def get_policy(session: DB, principal: CurrentPrincipal) -> PolicyOut:
    principal.require_staff()
    version = service.current_policy_version(session)
    return PolicyOut(version=version, rules=[RuleOut.of(r) for r in service.list_rules(session)])


@router.post(
    "/api/v1/sla/policy/rules",
    status_code=201,
    response_model=RuleOut,
    summary="Add a rule (admins)",
    dependencies=[needs("admin")],
)
def add_rule(body: RuleIn, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> RuleOut:
    service.require_admin(principal)
    row = service.add_rule(
        session,
        clock,
        name=body.name,
        targets=_targets(body.targets) or [],
        plan=body.plan,
        priority=body.priority,
        channel=body.channel,
        category=body.category,
        position=body.position,
    )
    return RuleOut.of(row)


RuleId = Path(ge=1, le=2**31 - 1)


@router.patch(
    "/api/v1/sla/policy/rules/{rule_id}",
    response_model=RuleOut,
    summary="Change a rule (admins)",
    dependencies=[needs("admin")],
)
def patch_rule(
    body: RulePatch, session: DB, clock: ClockDep, principal: CurrentPrincipal, rule_id: int = RuleId
) -> RuleOut:
    service.require_admin(principal)
    row = service.update_rule(
        session,
        clock,
        rule_id,
        name=body.name,
        targets=_targets(body.targets),
        plan=body.plan,
        priority=body.priority,
        channel=body.channel,
        category=body.category,
    )
    return RuleOut.of(row)


@router.delete(
    "/api/v1/sla/policy/rules/{rule_id}",
    status_code=204,
    summary="Remove a rule (admins)",
    dependencies=[needs("admin")],
)
def delete_rule(session: DB, clock: ClockDep, principal: CurrentPrincipal, rule_id: int = RuleId) -> Response:
    service.require_admin(principal)
    service.delete_rule(session, clock, rule_id)
    return Response(status_code=204)


class OrderIn(BaseModel):
    rule_ids: list[int] = Field(max_length=service.MAX_RULES)


@router.put(
    "/api/v1/sla/policy/order",
    response_model=list[RuleOut],
    summary="Reorder the rules (admins)",
    dependencies=[needs("admin")],
)
def order_rules(body: OrderIn, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> list[RuleOut]:
    service.require_admin(principal)
    return [RuleOut.of(r) for r in service.reorder_rules(session, clock, body.rule_ids)]


class CalendarAssignIn(BaseModel):
    calendar_id: Ident


@router.put(
    "/api/v1/sla/organizations/{organization_id}/calendar",
    summary="Set an organization's calendar",
    dependencies=[needs("admin")],
)
def assign_calendar(
    body: CalendarAssignIn, session: DB, principal: CurrentPrincipal, organization_id: Ident
) -> dict[str, str]:
    service.require_admin(principal)
    row = service.assign_calendar(session, organization_id, body.calendar_id)
    return {"organization_id": row.organization_id, "calendar_id": row.calendar_id}


class NotificationOut(BaseModel):
    id: int
    ticket_id: int
    metric: str
    cycle: int
    kind: str
    level: str
    due_at: datetime | None
    created_at: datetime
    read_at: datetime | None
    emailed_at: datetime | None

    @classmethod
    def of(cls, r: Notice) -> NotificationOut:
        # An SLA notice of the one inbox, in the shape this route always had.
        return cls(
            id=r.id,
            ticket_id=r.ticket_id or 0,
            metric=str(r.data.get("metric", "")),
            cycle=int(r.data.get("cycle", 0)),
            kind=r.kind.removeprefix("sla_"),
            level=r.reason,
            due_at=r.due_at,
            created_at=r.created_at,
            read_at=r.read_at,
            emailed_at=r.emailed_at,
        )


@router.get(
    "/api/v1/sla/notifications",
    response_model=list[NotificationOut],
    summary="My SLA alerts (the SLA notices of my inbox, /api/v1/inbox)",
    dependencies=[needs("tickets:read")],
)
def notifications(session: DB, principal: CurrentPrincipal, unread: bool = False) -> list[NotificationOut]:
    return [NotificationOut.of(n) for n in service.list_notifications(session, principal, unread_only=unread)]


@router.post(
    "/api/v1/sla/notifications/{notification_id}/read",
    response_model=NotificationOut,
    summary="Mark an alert read",
    dependencies=[needs("tickets:write")],
)
def read_notification(
    session: DB, clock: ClockDep, principal: CurrentPrincipal, notification_id: int = Path(ge=1, le=2**31 - 1)
) -> NotificationOut:
    return NotificationOut.of(service.mark_read(session, clock, principal, notification_id))

"""Status API: the public platform page, an organization's private page, subscriptions, public updates."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from zhiban.incidents.service import get_service
from zhiban.status import service
from zhiban.status.model import StatusIncident
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal, OptionalPrincipal, check_csrf, viewer_language
from zhiban.web.fields import Ident, ShortText
from zhiban.web.scopes import PUBLIC, needs

if TYPE_CHECKING:
    from zhiban.status.store import PublishedServiceRow

router = APIRouter(prefix="/api/v1/status", tags=["status"])

Slug = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
UpdateStatus = Literal["investigating", "identified", "monitoring", "resolved", "scheduled", "in_progress", "completed"]


class UpdateOut(BaseModel):
    at: datetime
    status: str
    body: str


class IncidentOut(BaseModel):
    number: int | str
    title: str
    severity: str
    components: list[str]
    started_at: datetime
    resolved_at: datetime | None
    updates: list[UpdateOut]

    @classmethod
    def of(cls, i: StatusIncident) -> IncidentOut:
        return cls(
            number=i.incident_id,
            title=i.title,
            severity=i.severity,
            components=list(i.components),
            started_at=i.started_at,
            resolved_at=i.resolved_at,
            updates=[UpdateOut(at=u.at, status=u.status, body=u.body) for u in i.updates_newest_first()],
        )


class DayOut(BaseModel):
    day: date
    uptime_pct: float | None
    worst_severity: str


class ComponentOut(BaseModel):
    name: str
    uptime_pct: float | None
    days: list[DayOut]


class PageOut(BaseModel):
    title: str
    generated_at: datetime
    uptime_pct: float | None
    components: list[ComponentOut]
    current: list[IncidentOut]
    history: list[IncidentOut] = Field(description="incidents of the last 90 days, newest first")


def _page_out(page: service.StatusPage) -> PageOut:
    return PageOut(
        title=page.title,
        generated_at=page.now,
        uptime_pct=page.overall.uptime_pct,
        components=[
            ComponentOut(
                name=c.name,
                uptime_pct=c.uptime.uptime_pct,
                days=[
                    DayOut(day=b.day, uptime_pct=b.uptime_pct, worst_severity=b.worst_severity) for b in c.uptime.bars
                ],
            )
            for c in page.components
        ],
        current=[IncidentOut.of(i) for i in page.current],
        history=[IncidentOut.of(i) for day in page.history for i in day.incidents],
    )


@router.get(
    "", response_model=PageOut, summary="The public status page of the platform (no sign-in)", dependencies=[PUBLIC]
)
def public_page(request: Request, session: DB, clock: ClockDep, principal: OptionalPrincipal) -> PageOut:
    page = service.build_page(session, clock, None, lang=viewer_language(request), tz="UTC")
    return _page_out(page)


@router.get(
    "/organizations/{slug}",
    response_model=PageOut,
    summary="An organization's private status page",
    dependencies=[needs("incidents:read")],
)
def organization_page(
    request: Request, session: DB, clock: ClockDep, principal: CurrentPrincipal, slug: Slug
) -> PageOut:
    org = service.organization_for_page(session, principal, slug)
    page = service.build_page(session, clock, org, lang=viewer_language(request), tz=org.timezone)
    return _page_out(page)


class SubscriptionIn(BaseModel):
    organization: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")] | None = Field(
        None, description="slug of a private page; absent: the public page"
    )
    email: Annotated[str, Field(max_length=254)] | None = None
    webhook_url: Annotated[str, Field(max_length=2000)] | None = None
    webhook_secret: Annotated[str, Field(min_length=16, max_length=200)] | None = None
    language: Literal["zh", "en"] = "en"


class SubscriptionOut(BaseModel):
    id: str
    channel: str
    organization_id: str | None
    confirmed: bool


@router.post(
    "/subscriptions",
    status_code=201,
    response_model=SubscriptionOut,
    summary="Subscribe to a page",
    dependencies=[needs("incidents:read")],
)
async def subscribe(
    request: Request, body: SubscriptionIn, session: DB, clock: ClockDep, principal: OptionalPrincipal
) -> SubscriptionOut:
    await check_csrf(request)
    row = service.subscribe(
        session,
        clock,
        principal,
        organization_slug=body.organization,
        email=body.email,
        webhook_url=body.webhook_url,
        webhook_secret=body.webhook_secret,
        language=body.language,
        client=request.client.host if request.client else None,
    )
    return SubscriptionOut(
        id=row.id, channel=row.channel, organization_id=row.organization_id, confirmed=row.confirmed_at is not None
    )


class UpdateIn(BaseModel):
    status: UpdateStatus
    body: Annotated[str, Field(min_length=1, max_length=10_000)]
    components: list[ShortText] = Field(default_factory=list, max_length=20)
    severity: Literal["none", "maintenance", "minor", "major", "critical"] | None = None
    title: Annotated[str, Field(min_length=1, max_length=300)] | None = Field(
        None, description="the incident's public title from now on (pages never show its alert's summary)"
    )


class UpdateCreated(BaseModel):
    id: int
    incident_id: str
    status: str
    at: datetime


@router.post(
    "/incidents/{incident_id}/updates",
    status_code=201,
    response_model=UpdateCreated,
    summary="Post a public update",
    dependencies=[needs("incidents:write")],
)
def post_update(
    body: UpdateIn, session: DB, clock: ClockDep, principal: CurrentPrincipal, incident_id: Ident
) -> UpdateCreated:
    principal.require_scope("incidents:write")
    row = service.post_update(
        session,
        clock,
        principal,
        incident_id,
        status=body.status,
        body=body.body,
        components=list(body.components),
        severity=body.severity,
        title=body.title,
    )
    return UpdateCreated(id=row.id, incident_id=row.incident_id, status=row.status, at=row.at)


# --- publication: which services the pages show, and how ------------------------------------------


class PublishedIn(BaseModel):
    component: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description=f"a public component: {', '.join(service.PLATFORM_COMPONENTS)}"
    )
    title: Annotated[str, Field(min_length=1, max_length=300)] = Field(
        description="what the pages call this service's incidents (never the internal service or alert names)"
    )


class PublishedOut(BaseModel):
    service_id: str
    service: str
    component: str
    title: str
    updated_at: datetime

    @classmethod
    def of(cls, row: PublishedServiceRow, name: str) -> PublishedOut:
        return cls(
            service_id=row.service_id, service=name, component=row.component, title=row.title, updated_at=row.updated_at
        )


@router.get(
    "/published-services",
    response_model=list[PublishedOut],
    summary="Services the pages show (staff)",
    dependencies=[needs("incidents:read")],
)
def published_services(session: DB, principal: CurrentPrincipal) -> list[PublishedOut]:
    return [PublishedOut.of(r, name) for r, name in service.published_services(session, principal)]


@router.put(
    "/published-services/{service_ref}",
    response_model=PublishedOut,
    summary="Publish a service's incidents (admins)",
    dependencies=[needs("admin")],
)
def publish_service(
    body: PublishedIn, session: DB, clock: ClockDep, principal: CurrentPrincipal, service_ref: ShortText
) -> PublishedOut:
    row = service.publish_service(session, clock, principal, service_ref, component=body.component, title=body.title)
    return PublishedOut.of(row, get_service(session, row.service_id).name)


@router.delete(
    "/published-services/{service_ref}",
    status_code=204,
    summary="Stop publishing a service (admins)",
    dependencies=[needs("admin")],
)
def unpublish_service(session: DB, principal: CurrentPrincipal, service_ref: ShortText) -> Response:
    service.unpublish_service(session, principal, service_ref)
    return Response(status_code=204)

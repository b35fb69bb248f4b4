"""Customer apps API: list and register apps, rotate an ingest key."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from zhiban.apps import service
from zhiban.core.errors import InvalidInput
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.fields import Ident, ShortText
from zhiban.web.scopes import by_method

if TYPE_CHECKING:
    from zhiban.apps.store import CustomerAppRow

router = APIRouter(prefix="/api/v1/apps", tags=["apps"], dependencies=[by_method("telemetry:read", "telemetry:write")])
AppIdPath = Annotated[str, Path(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]{1,63}$")]


class AppIn(BaseModel):
    app_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{1,63}$", description="the app_id SDKs put in reports")
    organization_id: Ident | None = Field(None, description="owner organization (a customer's own by default)")
    name: ShortText | None = None
    timezone: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+/-]+$")


class AppOut(BaseModel):
    app_id: str
    organization_id: str
    name: str
    timezone: str
    created_at: datetime
    key_rotated_at: datetime | None

    @classmethod
    def of(cls, row: CustomerAppRow) -> AppOut:
        return cls(
            app_id=row.app_id,
            organization_id=row.organization_id,
            name=row.name,
            timezone=row.timezone,
            created_at=row.created_at,
            key_rotated_at=row.key_rotated_at,
        )


class IssuedAppOut(AppOut):
    ingest_key: str = Field(description="shown once; send it as `Authorization: Bearer …` to /api/v1/telemetry")


@router.get("", response_model=list[AppOut], summary="List the apps the caller may see")
def list_(session: DB, principal: CurrentPrincipal, organization_id: Ident | None = None) -> list[AppOut]:
    return [AppOut.of(row) for row in service.list_apps(session, principal, organization_id)]


@router.post("", status_code=201, response_model=IssuedAppOut, summary="Register an app and issue its ingest key")
def create(body: AppIn, session: DB, clock: ClockDep, principal: CurrentPrincipal, response: Response) -> IssuedAppOut:
    organization_id = body.organization_id or principal.organization_id
    if organization_id is None:
        raise InvalidInput("organization_id is required")
    issued = service.create_app(
        session,
        clock,
        principal,
        app_id=body.app_id,
        organization_id=organization_id,
        name=body.name,
        timezone=body.timezone,
    )
    response.headers["Location"] = f"/api/v1/apps/{issued.app.app_id}"
    return IssuedAppOut(**AppOut.of(issued.app).model_dump(), ingest_key=issued.ingest_key)


@router.post("/{app_id}/rotate-key", response_model=IssuedAppOut, summary="Issue a new ingest key (the old one stops)")
def rotate(app_id: AppIdPath, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> IssuedAppOut:
    issued = service.rotate_key(session, clock, principal, app_id)
    return IssuedAppOut(**AppOut.of(issued.app).model_dump(), ingest_key=issued.ingest_key)

"""Identity API: the caller, organizations, people and API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from zhiban.identity import service
from zhiban.identity.model import DEFAULT_SCOPES, SCOPES, effective_scopes
from zhiban.web.deps import DB, ClockDep, CurrentPrincipal
from zhiban.web.fields import Ident, ShortText
from zhiban.web.scopes import AUTHENTICATED, needs

if TYPE_CHECKING:
    from zhiban.identity.store import OrganizationRow, PersonRow

router = APIRouter(prefix="/api/v1", tags=["identity"])
PathId = Annotated[str, Path(max_length=64)]

Language = Literal["zh", "en"]
Scope = Literal[
    "tickets:read",
    "tickets:write",
    "incidents:read",
    "incidents:write",
    "oncall:read",
    "oncall:write",
    "kb:read",
    "kb:write",
    "telemetry:read",
    "telemetry:write",
    "reports:read",
    "admin",
]


class Me(BaseModel):
    person_id: str
    role: str
    organization_id: str | None
    name: str
    language: str
    timezone: str
    scopes: list[str]


class OrganizationIn(BaseModel):
    name: ShortText
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    plan: Ident = "basic"
    country: str = Field("CN", pattern=r"^[A-Z]{2}$")
    timezone: str = Field("Asia/Shanghai", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+/-]+$")
    language: Language = "zh"


class OrganizationOut(BaseModel):
    id: str
    name: str
    slug: str
    plan: str
    country: str
    timezone: str
    language: str
    created_at: datetime
    dedicated_contact_id: str | None = None
    backup_contact_id: str | None = None

    @classmethod
    def of(cls, o: OrganizationRow) -> OrganizationOut:
        return cls(
            id=o.id,
            name=o.name,
            slug=o.slug,
            plan=o.plan,
            country=o.country,
            timezone=o.timezone,
            language=o.language,
            created_at=o.created_at,
            dedicated_contact_id=o.dedicated_contact_id,
            backup_contact_id=o.backup_contact_id,
        )


class ContactsIn(BaseModel):
    dedicated_contact_id: Ident | None = Field(None, description="the staff member who gets the tickets in hours")
    backup_contact_id: Ident | None = None


class PersonIn(BaseModel):
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    name: ShortText
    role: Literal["admin", "agent", "customer"]
    organization_id: Ident | None = None
    password: str | None = Field(None, min_length=10, max_length=256)
    timezone: str = Field("UTC", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+/-]+$")
    language: Language = "en"
    phone: str | None = Field(
        None, max_length=32, description="E.164, e.g. +8613800138000: the hotline knows the caller"
    )


class PhoneIn(BaseModel):
    phone: str | None = Field(max_length=32, description="E.164, e.g. +8613800138000; null clears it")


class PersonOut(BaseModel):
    id: str
    email: str
    name: str
    role: str
    organization_id: str | None
    timezone: str
    language: str
    phone: str | None = None

    @classmethod
    def of(cls, p: PersonRow) -> PersonOut:
        return cls(
            id=p.id,
            email=p.email,
            name=p.name,
            role=p.role,
            organization_id=p.organization_id,
            timezone=p.timezone,
            language=p.language,
            phone=p.phone,
        )


class TokenIn(BaseModel):
    name: ShortText
    scopes: list[Scope] | None = Field(
        None, max_length=len(SCOPES), description="absent: the caller's own scopes (a session's: all but admin)"
    )


class TokenOut(BaseModel):
    id: str
    token: str = Field(description="shown once; store it now")
    scopes: list[str]


@router.get("/me", response_model=Me, summary="Who the caller is", dependencies=[AUTHENTICATED])
def me(principal: CurrentPrincipal) -> Me:
    return Me(
        person_id=principal.person_id,
        role=principal.role.value,
        organization_id=principal.organization_id,
        name=principal.name,
        language=principal.language,
        timezone=principal.timezone,
        scopes=sorted(principal.scopes),
    )


@router.get(
    "/organizations",
    response_model=list[OrganizationOut],
    summary="Organizations the caller may see",
    dependencies=[needs("tickets:read")],
)
def organizations(session: DB, principal: CurrentPrincipal) -> list[OrganizationOut]:
    return [OrganizationOut.of(o) for o in service.list_organizations(session, principal)]


@router.post(
    "/organizations",
    status_code=201,
    response_model=OrganizationOut,
    summary="Add an organization",
    dependencies=[needs("admin")],
)
def create_organization(
    body: OrganizationIn, session: DB, clock: ClockDep, principal: CurrentPrincipal
) -> OrganizationOut:
    principal.require_admin()
    org = service.create_organization(session, clock, **body.model_dump())
    return OrganizationOut.of(org)


@router.get(
    "/organizations/{organization_id}",
    response_model=OrganizationOut,
    summary="One organization",
    dependencies=[needs("tickets:read")],
)
def organization(session: DB, principal: CurrentPrincipal, organization_id: PathId) -> OrganizationOut:
    return OrganizationOut.of(service.get_organization(session, principal, organization_id))


@router.put(
    "/organizations/{organization_id}/contacts",
    response_model=OrganizationOut,
    summary="Name the dedicated contact and backup (admins)",
    dependencies=[needs("admin")],
)
def set_contacts(
    session: DB, principal: CurrentPrincipal, organization_id: PathId, body: ContactsIn
) -> OrganizationOut:
    org = service.set_dedicated_contacts(
        session, principal, organization_id, contact_id=body.dedicated_contact_id, backup_id=body.backup_contact_id
    )
    return OrganizationOut.of(org)


@router.get(
    "/people", response_model=list[PersonOut], summary="People the caller may see", dependencies=[needs("tickets:read")]
)
def people(session: DB, principal: CurrentPrincipal) -> list[PersonOut]:
    return [PersonOut.of(p) for p in service.list_people(session, principal)]


@router.post(
    "/people", status_code=201, response_model=PersonOut, summary="Add a person (admins)", dependencies=[needs("admin")]
)
def create_person(body: PersonIn, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> PersonOut:
    principal.require_admin()
    return PersonOut.of(service.create_person(session, clock, **body.model_dump()))


@router.put(
    "/people/{person_id}/phone",
    response_model=PersonOut,
    summary="Set a person's phone number, by which the hotline knows a caller (admins)",
    dependencies=[needs("admin")],
)
def set_phone(body: PhoneIn, session: DB, principal: CurrentPrincipal, person_id: PathId) -> PersonOut:
    return PersonOut.of(service.set_phone(session, principal, person_id, body.phone))


@router.post(
    "/tokens",
    status_code=201,
    response_model=TokenOut,
    summary="Mint an API token for yourself",
    dependencies=[AUTHENTICATED],
)
def create_token(body: TokenIn, session: DB, clock: ClockDep, principal: CurrentPrincipal) -> TokenOut:
    scopes = (
        tuple(body.scopes)
        if body.scopes is not None
        else tuple(sorted(set(DEFAULT_SCOPES) & effective_scopes(principal.scopes)))
    )
    issued = service.create_token(
        session, clock, person_id=principal.person_id, name=body.name, scopes=scopes, minted_by=principal
    )
    return TokenOut(id=issued.id, token=issued.plain, scopes=list(issued.scopes))


@router.delete(
    "/tokens/{token_id}",
    status_code=204,
    summary="Revoke a token",
    response_class=Response,
    dependencies=[AUTHENTICATED],
)
def revoke_token(session: DB, clock: ClockDep, principal: CurrentPrincipal, token_id: PathId) -> Response:
    service.revoke_token(session, clock, principal, token_id)
    return Response(status_code=204)

"""Use cases of customer apps: create, list, rotate the ingest key, resolve a key at ingest."""

from __future__ import annotations

import secrets
import zoneinfo
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from zhiban.apps import store
from zhiban.apps.model import KEY_PREFIX, IngestIdentity, check_app_id, digests_equal, key_digest, key_lookup
from zhiban.apps.store import CustomerAppRow
from zhiban.core.clock import Clock
from zhiban.core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from zhiban.identity import service as identity
from zhiban.identity.model import Principal, Role

# The desk itself (CLI, demo set-up, live simulation) acting with an admin's rights.
SYSTEM = Principal(person_id="system", role=Role.ADMIN, organization_id=None, name="zhiban")


@dataclass(frozen=True)
class IssuedApp:
    """An app and its ingest key in plain text: shown once (at creation or rotation), never stored."""

    app: CustomerAppRow
    ingest_key: str


def _mint_key() -> tuple[str, str, str]:
    lookup = secrets.token_hex(4)
    plain = f"{KEY_PREFIX}{lookup}_{secrets.token_urlsafe(32)}"
    return plain, lookup, key_digest(plain)


def _may_manage(principal: Principal, organization_id: str) -> None:
    """Admins manage every org's apps; a customer user only its own organization's."""
    if principal.role is Role.ADMIN or (
        principal.role is Role.CUSTOMER and principal.organization_id == organization_id
    ):
        return
    raise Forbidden("only an admin or the organization's own users manage its apps")


def organization_id_by_slug(session: Session, slug: str) -> str:
    """The id of the organization with this slug (NotFound otherwise)."""
    for org in identity.list_organizations(session, SYSTEM):
        if org.slug == slug:
            return org.id
    raise NotFound(f"no organization with slug {slug!r}")


def create_app(
    session: Session,
    clock: Clock,
    principal: Principal,
    *,
    app_id: str,
    organization_id: str,
    name: str | None = None,
    timezone: str | None = None,
) -> IssuedApp:
    """Register an app for an organization and issue its first ingest key."""
    check_app_id(app_id)
    # get_organization hides other tenants' organizations (NotFound) before any rights are checked.
    org = identity.get_organization(session, principal, organization_id)
    _may_manage(principal, org.id)
    display = (name or app_id).strip()
    if not 1 <= len(display) <= 200 or "\x00" in display:
        raise InvalidInput("app name must be 1–200 characters")
    zone = timezone or org.timezone
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {zone!r}") from exc
    if store.app_by_app_id(session, app_id) is not None:
        raise Conflict(f"an app with app_id {app_id!r} exists")
    plain, lookup, digest = _mint_key()
    row = CustomerAppRow(
        app_id=app_id,
        organization_id=org.id,
        name=display,
        timezone=zone,
        key_lookup=lookup,
        key_digest=digest,
        created_at=clock.now(),
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:  # a concurrent create of the same app_id
        raise Conflict(f"an app with app_id {app_id!r} exists") from exc
    return IssuedApp(row, plain)


def list_apps(session: Session, principal: Principal, organization_id: str | None = None) -> list[CustomerAppRow]:
    """Apps the caller may see: staff all (optionally one org's), a customer only its organization's."""
    if not principal.is_staff:
        if organization_id is not None and organization_id != principal.organization_id:
            return []
        organization_id = principal.organization_id
    return store.list_apps(session, organization_id)


def get_app(session: Session, principal: Principal, app_id: str) -> CustomerAppRow:
    """One app, if the caller may see it (another tenant's app is NotFound, not Forbidden)."""
    row = store.app_by_app_id(session, app_id)
    if row is None or not principal.can_see_organization(row.organization_id):
        raise NotFound("no such app")
    return row


def rotate_key(session: Session, clock: Clock, principal: Principal, app_id: str) -> IssuedApp:
    """Issue a new ingest key; the old one stops working at once (cached keys within seconds)."""
    row = get_app(session, principal, app_id)
    _may_manage(principal, row.organization_id)
    plain, lookup, digest = _mint_key()
    row.key_lookup, row.key_digest, row.key_rotated_at = lookup, digest, clock.now()
    session.flush()
    return IssuedApp(row, plain)


def resolve_ingest_key(session: Session, plain: str) -> IngestIdentity:
    """The app an ingest key speaks for, or Unauthorized."""
    lookup = key_lookup(plain)
    row = store.app_by_key_lookup(session, lookup) if lookup else None
    if row is None or not digests_equal(row.key_digest, key_digest(plain)):
        raise Unauthorized("invalid ingest key")
    return IngestIdentity(app_id=row.app_id, organization_id=row.organization_id)


def ensure_app(session: Session, clock: Clock, *, app_id: str, organization_slug: str) -> CustomerAppRow | None:
    """The app, created for the organization if missing; None when that organization does not exist."""
    row = store.app_by_app_id(session, app_id)
    if row is not None:
        return row
    try:
        org_id = organization_id_by_slug(session, organization_slug)
    except NotFound:
        return None
    return create_app(session, clock, SYSTEM, app_id=app_id, organization_id=org_id).app

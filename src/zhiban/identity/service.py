"""Use cases of identity: organizations, people, teams, logins, web sessions and API tokens."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
import zoneinfo
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import Conflict, InvalidInput, NotFound, Unauthorized
from zhiban.identity import secrets as zsecrets
from zhiban.identity.model import (
    DEFAULT_SCOPES,
    MissingScope,
    Organization,
    Person,
    Principal,
    Role,
    Team,
    e164,
    effective_scopes,
    validate_scopes,
)
from zhiban.identity.store import (
    ApiTokenRow,
    OrganizationRow,
    PersonRow,
    TeamRow,
    WebSessionRow,
    organization_by_slug,
    person_by_email,
)
from zhiban.store.db import is_read_only, keep

log = logging.getLogger("zhiban.identity")
SESSION_LIFETIME = timedelta(hours=12)
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[A-Za-z0-9-]{2,63}$")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
LANGUAGES = ("zh", "en")


def _check_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {name!r}") from exc
    return name


def _check_language(lang: str) -> str:
    if lang not in LANGUAGES:
        raise InvalidInput(f"language must be one of {', '.join(LANGUAGES)}")
    return lang


def principal_of(person: PersonRow | Person, scopes: frozenset[str] | None = None) -> Principal:
    """The principal acting as this person (a token narrows the scopes).

    An admin's token without the admin scope acts as an agent: every admin check, wherever it is, then needs the scope.
    """
    role = Role(person.role)
    if scopes is not None and role is Role.ADMIN and "admin" not in scopes:
        role = Role.AGENT
    p = Principal(
        person_id=person.id,
        role=role,
        organization_id=person.organization_id,
        name=person.name,
        language=person.language,
        timezone=person.timezone,
    )
    if scopes is not None:
        p = Principal(**{**p.__dict__, "scopes": scopes})
    return p


# --- organizations -----------------------------------------------------------------------------


def create_organization(
    session: Session,
    clock: Clock,
    *,
    name: str,
    slug: str,
    plan: str = "basic",
    country: str = "CN",
    timezone: str = "Asia/Shanghai",
    language: str = "zh",
    drill: bool = False,
) -> OrganizationRow:
    """Add a customer organization of the vendor (`drill`: the synthetic customer of drills)."""
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidInput("organization name must be 1–200 characters")
    if not SLUG_RE.match(slug):
        raise InvalidInput("slug must be 2–63 lowercase letters, digits or dashes")
    if not re.fullmatch(r"[A-Z]{2}", country):
        raise InvalidInput("country must be an ISO 3166 alpha-2 code such as CN or US")
    org = OrganizationRow(
        name=name,
        slug=slug,
        plan=plan,
        country=country,
        timezone=_check_timezone(timezone),
        language=_check_language(language),
        created_at=clock.now(),
        drill=drill,
    )
    session.add(org)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"an organization with slug {slug!r} exists") from exc
    return org


def get_organization(session: Session, principal: Principal, organization_id: str) -> OrganizationRow:
    org = session.get(OrganizationRow, organization_id)
    # A customer asking for another tenant learns nothing, not even that it exists.
    if org is None or not principal.can_see_organization(org.id):
        raise NotFound("no such organization")
    return org


def set_dedicated_contacts(
    session: Session, principal: Principal, organization_id: str, *, contact_id: str | None, backup_id: str | None
) -> OrganizationRow:
    """Name an organization's dedicated contact and backup (admins; active staff, two different people)."""
    principal.require_admin()
    org = get_organization(session, principal, organization_id)
    for role, person_id in (("contact", contact_id), ("backup", backup_id)):
        if person_id is None:
            continue
        row = session.get(PersonRow, person_id)
        if row is None or not row.active or Role(row.role) not in (Role.ADMIN, Role.AGENT):
            raise InvalidInput(f"the dedicated {role} must be an active agent or admin")
    if contact_id is not None and contact_id == backup_id:
        raise InvalidInput("the backup must be someone other than the dedicated contact")
    org.dedicated_contact_id, org.backup_contact_id = contact_id, backup_id
    session.flush()
    return org


def list_organizations(session: Session, principal: Principal) -> list[OrganizationRow]:
    query = select(OrganizationRow).order_by(OrganizationRow.name)
    if not principal.is_staff:
        query = query.where(OrganizationRow.id == principal.organization_id)
    return list(session.scalars(query))


# --- people and teams --------------------------------------------------------------------------


def create_person(
    session: Session,
    clock: Clock,
    *,
    email: str,
    name: str,
    role: Role | str,
    organization_id: str | None = None,
    password: str | None = None,
    timezone: str = "UTC",
    language: str = "en",
    password_hash: str | None = None,
    phone: str | None = None,
) -> PersonRow:
    """Add a person; a customer user must belong to exactly one organization, staff to none.

    `password_hash` (an argon2 hash made by identity.secrets) lets a seeder hash one password once.
    """
    email = email.strip().lower()
    if not EMAIL_RE.match(email):
        raise InvalidInput(f"not an e-mail address: {email!r}")
    try:
        role = Role(role)
    except ValueError as exc:
        raise InvalidInput("role must be admin, agent or customer") from exc
    if role is Role.CUSTOMER and not organization_id:
        raise InvalidInput("a customer user belongs to an organization")
    if role is not Role.CUSTOMER and organization_id:
        raise InvalidInput("agents and admins belong to the vendor, not to a customer organization")
    if organization_id and session.get(OrganizationRow, organization_id) is None:
        raise InvalidInput("no such organization")
    if password is not None and not zsecrets.MIN_PASSWORD <= len(password) <= zsecrets.MAX_PASSWORD:
        raise InvalidInput(f"a password has {zsecrets.MIN_PASSWORD}–{zsecrets.MAX_PASSWORD} characters")
    if not 1 <= len(name.strip()) <= 200:
        raise InvalidInput("name must be 1–200 characters")
    if person_by_email(session, email) is not None:
        raise Conflict(f"{email} already has an account")
    person = PersonRow(
        email=email,
        name=name.strip(),
        role=role.value,
        organization_id=organization_id,
        password_hash=zsecrets.hash_password(password) if password else password_hash,
        timezone=_check_timezone(timezone),
        language=_check_language(language),
        created_at=clock.now(),
        phone=e164(phone) if phone else None,
    )
    session.add(person)
    session.flush()
    return person


def set_phone(session: Session, principal: Principal, person_id: str, phone: str | None) -> PersonRow:
    """Record (or clear, with None) a person's phone number, in E.164 (admins)."""
    principal.require_admin()
    row = session.get(PersonRow, person_id)
    if row is None:
        raise NotFound(f"no person {person_id}")
    row.phone = e164(phone) if phone else None
    session.flush()
    return row


def people_with_phone(session: Session, phone: str) -> list[Person]:
    """The active people whose phone number this is (the hotline's caller id), oldest account first."""
    query = (
        select(PersonRow)
        .where(PersonRow.phone == phone, PersonRow.active.is_(True))
        .order_by(PersonRow.created_at, PersonRow.id)
        .limit(10)
    )
    return [person_value(row) for row in session.scalars(query)]


def list_people(session: Session, principal: Principal) -> list[PersonRow]:
    query = select(PersonRow).order_by(PersonRow.name)
    if not principal.is_staff:
        query = query.where(PersonRow.organization_id == principal.organization_id)
    return list(session.scalars(query))


def create_team(session: Session, *, name: str, domain: str | None = None, lead_id: str | None = None) -> TeamRow:
    if not 1 <= len(name.strip()) <= 100:
        raise InvalidInput("team name must be 1–100 characters")
    if session.scalar(select(TeamRow).where(TeamRow.name == name.strip())) is not None:
        raise Conflict(f"team {name!r} exists")
    team = TeamRow(name=name.strip(), domain=domain, lead_id=lead_id)
    session.add(team)
    session.flush()
    return team


def add_team_member(session: Session, team_id: str, person_id: str) -> None:
    team = session.get(TeamRow, team_id)
    person = session.get(PersonRow, person_id)
    if team is None or person is None:
        raise NotFound("no such team or person")
    if person.role == Role.CUSTOMER:
        raise InvalidInput("customer users do not join support teams")
    if person not in team.members:
        team.members.append(person)
        session.flush()


# --- password login and web sessions -----------------------------------------------------------


def prepare_logins() -> None:
    """Make the hash an unknown e-mail's password is checked against (once per process; see authenticate)."""
    zsecrets.dummy_hash()


def authenticate(session: Session, email: str, password: str) -> PersonRow:
    """The person whose e-mail and password match, or Unauthorized (same answer for both failures)."""
    person = person_by_email(session, email)
    if person is None or not person.active or not person.password_hash:
        zsecrets.verify_password(zsecrets.dummy_hash(), password)
        raise Unauthorized("wrong e-mail or password")
    if not zsecrets.verify_password(person.password_hash, password):
        raise Unauthorized("wrong e-mail or password")
    return person


@dataclass(frozen=True)
class NewWebSession:
    cookie_value: str
    csrf_token: str
    expires_at: datetime


def _session_key(cookie_value: str) -> str:
    return hashlib.sha256(cookie_value.encode()).hexdigest()


def open_web_session(session: Session, clock: Clock, person: PersonRow) -> NewWebSession:
    """A server-side session; the cookie holds a random secret, the table only its digest."""
    cookie_value = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    now = clock.now()
    row = WebSessionRow(
        id=_session_key(cookie_value),
        person_id=person.id,
        csrf_token=csrf,
        created_at=now,
        expires_at=now + SESSION_LIFETIME,
    )
    session.add(row)
    session.flush()
    return NewWebSession(cookie_value, csrf, row.expires_at)


def resolve_web_session(session: Session, clock: Clock, cookie_value: str) -> tuple[Principal, str] | None:
    """(principal, csrf token) for a live session cookie, else None."""
    if not cookie_value or len(cookie_value) > 128:
        return None
    row = session.get(WebSessionRow, _session_key(cookie_value))
    if row is None or row.expires_at <= clock.now():
        return None
    person = session.get(PersonRow, row.person_id)
    if person is None or not person.active:
        return None
    return principal_of(person), row.csrf_token


def close_web_session(session: Session, cookie_value: str) -> None:
    row = session.get(WebSessionRow, _session_key(cookie_value))
    if row is not None:
        session.delete(row)


# --- API tokens --------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    id: str
    plain: str
    scopes: tuple[str, ...]


def create_token(
    session: Session,
    clock: Clock,
    *,
    person_id: str,
    name: str,
    scopes: tuple[str, ...] = DEFAULT_SCOPES,
    minted_by: Principal | None = None,
) -> IssuedToken:
    """Mint a token for a person; the plain text is returned once and never stored.

    `minted_by` is the caller over the API: a token mints only within its own scopes (the CLI operator passes none).
    """
    person = session.get(PersonRow, person_id)
    if person is None:
        raise NotFound("no such person")
    if not 1 <= len(name.strip()) <= 100:
        raise InvalidInput("token name must be 1–100 characters")
    scopes = validate_scopes(scopes)
    if "admin" in scopes and person.role != Role.ADMIN:
        raise InvalidInput("only an admin's token may carry the admin scope")
    if minted_by is not None:
        wider = sorted(set(scopes) - effective_scopes(minted_by.scopes))
        if wider:
            raise MissingScope(
                f"a token cannot mint one with scopes it lacks: {', '.join(wider)}", scope=wider[0], scopes=wider
            )
    plain, prefix, digest = zsecrets.mint_token()
    row = ApiTokenRow(
        person_id=person.id,
        name=name.strip(),
        prefix=prefix,
        digest=digest,
        scopes=list(scopes),
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    return IssuedToken(row.id, plain, scopes)


TOKEN_USE_GRANULARITY = timedelta(minutes=1)
_stamper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="token-stamp")
# Per process by design: it only keeps one process from queueing the same best-effort stamp twice.
_stamping: set[str] = set()
_stamping_lock = threading.Lock()


def _stamp_later(bind: Any, token_id: str, at: datetime) -> None:
    """Record a token's use in a small transaction of its own, on a background thread (best effort)."""
    with _stamping_lock:
        if token_id in _stamping or len(_stamping) > 10_000:
            return
        _stamping.add(token_id)

    def stamp() -> None:
        try:
            with Session(bind) as apart, apart.begin():
                apart.execute(update(ApiTokenRow).where(ApiTokenRow.id == token_id).values(last_used_at=at))
        except Exception:
            log.exception("could not record the use of token %s", token_id)
        finally:
            with _stamping_lock:
                _stamping.discard(token_id)

    _stamper.submit(stamp)


def resolve_token(session: Session, clock: Clock, plain: str) -> Principal:
    """The principal of a bearer token, or Unauthorized."""
    prefix = zsecrets.token_prefix(plain)
    # The token and its person in one round trip; the person is kept, so the request's later lookups of it
    # (the ticket's requester, its organization's contacts) are answered from memory.
    found = (
        session.execute(
            select(ApiTokenRow, PersonRow)
            .join(PersonRow, PersonRow.id == ApiTokenRow.person_id)
            .where(ApiTokenRow.prefix == prefix)
        ).first()
        if prefix
        else None
    )
    row, person = (found[0], keep(session, found[1])) if found is not None else (None, None)
    if (
        row is None
        or row.revoked_at is not None
        or not zsecrets.digests_equal(row.digest, zsecrets.token_digest(plain))
    ):
        raise Unauthorized("invalid or revoked API token")
    if person is None or not person.active:
        raise Unauthorized("invalid or revoked API token")
    now = clock.now()
    # "Last used" to the minute: writing it on every request would make every read a write, and on
    # PostgreSQL queue one token's concurrent requests behind each other's row lock until they commit.
    if row.last_used_at is None or not timedelta(0) <= now - row.last_used_at < TOKEN_USE_GRANULARITY:
        if is_read_only(session):  # a read-only request never waits for a write: the stamp follows apart
            _stamp_later(session.get_bind(), row.id, now)
        else:
            row.last_used_at = now
    return principal_of(person, frozenset(row.scopes))


def revoke_token(session: Session, clock: Clock, principal: Principal, token_id: str) -> None:
    row = session.get(ApiTokenRow, token_id)
    if row is None or (row.person_id != principal.person_id and principal.role is not Role.ADMIN):
        raise NotFound("no such token")
    row.revoked_at = clock.now()


def count_people(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(PersonRow)) or 0


# --- the read interface: what other features may know of people, organizations and teams ------------


def person_value(row: PersonRow) -> Person:
    return Person(
        row.id,
        row.email,
        row.name,
        Role(row.role),
        row.organization_id,
        row.timezone,
        row.language,
        row.active,
        row.phone,
    )


def organization_value(row: OrganizationRow) -> Organization:
    return Organization(
        row.id,
        row.name,
        row.slug,
        row.plan,
        row.country,
        row.timezone,
        row.language,
        row.dedicated_contact_id,
        row.backup_contact_id,
        bool(row.drill),
    )


def team_value(row: TeamRow) -> Team:
    return Team(row.id, row.name, row.domain, row.lead_id)


def person(session: Session, person_id: str | None) -> Person | None:
    row = session.get(PersonRow, person_id) if person_id else None
    return person_value(keep(session, row)) if row is not None else None


def preload_people(session: Session, person_ids: Iterable[str]) -> None:
    """Read these people and their organizations in two statements and keep them in the session: a batch's later
    lookups of each (filing a ticket asks for its requester and the requester's organization) cost no round trip."""
    ids = sorted({i for i in person_ids if i})
    if not ids:
        return
    people = session.scalars(select(PersonRow).where(PersonRow.id.in_(ids))).all()
    for row in people:
        keep(session, row)
    org_ids = sorted({row.organization_id for row in people if row.organization_id})
    if org_ids:
        for org in session.scalars(select(OrganizationRow).where(OrganizationRow.id.in_(org_ids))):
            keep(session, org)


def find_person(session: Session, ref: str) -> Person | None:
    """A person by id or e-mail address."""
    return person_with_email(session, ref) if "@" in ref else person(session, ref)


def person_with_email(session: Session, email: str) -> Person | None:
    row = person_by_email(session, email)
    return person_value(row) if row is not None else None


def names_of(session: Session, person_ids: Iterable[str]) -> dict[str, str]:
    """People's display names by id (unknown ids are left out)."""
    ids = sorted({i for i in person_ids if i})
    query = select(PersonRow.id, PersonRow.name).where(PersonRow.id.in_(ids))
    return {i: n for i, n in session.execute(query)} if ids else {}


def staff(
    session: Session, *, ids: Iterable[str] | None = None, role: Role | None = None, limit: int = 1000
) -> list[Person]:
    """Active agents and admins (only those among `ids`, or of `role`, if given), by name."""
    query = select(PersonRow).where(
        PersonRow.role.in_((Role.ADMIN.value, Role.AGENT.value)), PersonRow.active.is_(True)
    )
    if ids is not None:
        query = query.where(PersonRow.id.in_(sorted(set(ids))))
    if role is not None:
        query = query.where(PersonRow.role == role.value)
    return [person_value(r) for r in session.scalars(query.order_by(PersonRow.name, PersonRow.id).limit(limit))]


def admins(session: Session, *, limit: int = 3) -> list[Person]:
    """Active admins, the longest-standing first (who hears of what nobody nearer answers)."""
    query = select(PersonRow).where(PersonRow.role == Role.ADMIN.value, PersonRow.active.is_(True))
    return [person_value(r) for r in session.scalars(query.order_by(PersonRow.created_at, PersonRow.id).limit(limit))]


def organization(session: Session, organization_id: str | None) -> Organization | None:
    row = session.get(OrganizationRow, organization_id) if organization_id else None
    return organization_value(keep(session, row)) if row is not None else None


def organization_with_slug(session: Session, slug: str) -> Organization | None:
    row = organization_by_slug(session, slug) if len(slug) <= 64 else None
    return organization_value(row) if row is not None else None


def organizations(session: Session, *, limit: int = 1000) -> list[Organization]:
    """Every organization, by name (staff pickers and reports' filters)."""
    query = select(OrganizationRow).order_by(OrganizationRow.name).limit(limit)
    return [organization_value(r) for r in session.scalars(query)]


def organization_ids_on_plan(plan: str) -> Select[str]:
    """The ids of the organizations on `plan`, as a subquery for another feature's filter (ticket search)."""
    return select(OrganizationRow.id).where(OrganizationRow.plan == plan.lower())


def team(session: Session, ref: str | None, *, by_name: bool = True) -> Team | None:
    """A team by id (or by name, unless `by_name` is False)."""
    if not ref:
        return None
    row = session.get(TeamRow, ref)
    if row is None and by_name:
        row = session.scalar(select(TeamRow).where(TeamRow.name == ref))
    return team_value(row) if row is not None else None


def team_named(session: Session, name: str) -> Team | None:
    row = session.scalar(select(TeamRow).where(TeamRow.name == name))
    return team_value(row) if row is not None else None


def teams(session: Session, *, domain: str | None = None, limit: int = 500) -> list[Team]:
    """Teams by name (only those answering for `domain`, if given)."""
    query = select(TeamRow)
    if domain is not None:
        query = query.where(TeamRow.domain == domain)
    return [team_value(r) for r in session.scalars(query.order_by(TeamRow.name).limit(limit))]


def team_members(session: Session, team_id: str) -> list[Person]:
    """A team's members, in a stable order (by e-mail address)."""
    row = session.get(TeamRow, team_id)
    return [person_value(p) for p in sorted(row.members, key=lambda p: (p.email, p.id))] if row is not None else []


def teams_of(session: Session, person_id: str) -> list[Team]:
    row = session.get(PersonRow, person_id)
    return [team_value(t) for t in sorted(row.teams, key=lambda t: t.name)] if row is not None else []


def lock_account(session: Session, *, person_id: str, organization_id: str | None) -> None:
    """Lock the organization (else the person) until the transaction ends: counts kept for it go one at a time."""
    if organization_id is not None:
        session.execute(select(OrganizationRow.id).where(OrganizationRow.id == organization_id).with_for_update())
    else:
        session.execute(select(PersonRow.id).where(PersonRow.id == person_id).with_for_update())


def member_ids(session: Session, organization_id: str) -> list[str]:
    """Ids of an organization's people (active or not)."""
    return list(session.scalars(select(PersonRow.id).where(PersonRow.organization_id == organization_id)))

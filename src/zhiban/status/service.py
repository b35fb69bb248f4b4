"""Use cases of status pages: what a page shows, public updates, subscriptions and their notices, Atom feeds.

Visibility: an incident of a service that belongs to an organization is private to that organization (and
to organizations whose tickets are linked to it); an incident with no organization is a platform incident,
shown on the public page and on every organization's page only once published: its service is mapped to a
public component with a public title (`publish_service`), or an agent posted a public update on it. What a
page shows of a platform incident is that public title and component, never the internal service, alert or
node names. Drills never show.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import false, func, or_, select
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import Forbidden, InvalidInput, NotFound, RateLimited
from zhiban.core.i18n import translate
from zhiban.drills.store import drill_incident_ids, drill_of_incident
from zhiban.engine import JobContext, enqueue
from zhiban.identity import ratelimit
from zhiban.identity.model import Principal
from zhiban.identity.ratelimit import Limit
from zhiban.identity.store import OrganizationRow, PersonRow, organization_by_slug
from zhiban.incidents.store import AlertRow, IncidentEventRow, IncidentRow, IncidentTicketRow, ServiceRow
from zhiban.status.atom import FeedInfo, incident_feed
from zhiban.status.model import (
    MAX_BODY,
    MAX_TITLE,
    UPDATE_STATUSES,
    HistoryDay,
    StatusIncident,
    StatusUpdate,
    UptimeChart,
    current_incidents,
    daily_uptime,
    history,
    incidents_affecting,
)
from zhiban.status.store import (
    FeedTokenRow,
    PublishedServiceRow,
    ScanCursorRow,
    StatusUpdateRow,
    SubscriptionRow,
)

PLATFORM_COMPONENTS = ("edge network", "cn-east", "cn-north", "cn-south", "us-east", "eu-central", "api")
HISTORY_DAYS = 90
MAX_INCIDENTS = 2000
MAX_COMPONENTS = 20
MAX_SUBSCRIPTIONS = 10_000  # per page
FANOUT_CHUNK = 500
SCAN_EVERY = timedelta(minutes=1)
SCAN_JOB = "status.scan"
FANOUT_JOB = "status.fanout"
FEED_MINTED = date(2026, 1, 1)  # never change: it is part of every published entry id
# Incident severities (alert vocabulary) on the status page's impact scale.
IMPACT = {"critical": "critical", "error": "major", "warning": "minor", "info": "minor"}
# Public timeline lines of an incident and the status they mean on a page.
EVENT_STATUS = {"triggered": "investigating", "acknowledged": "identified", "retriggered": "investigating",
                "resolved": "resolved"}  # fmt: skip
NOTIFY_EVENTS = ("triggered", "resolved")  # automatic notices; engineers post the rest as updates


class SubscriptionLimit(InvalidInput):
    """A person or an organization holds as many status subscriptions as the settings allow."""

    type_ = "subscription-limit"
    title = "Too many subscriptions"


_EDGE = re.compile(r"\b[a-z]{2,4}-edge-\d{1,3}\b")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[A-Za-z0-9-]{2,63}$")
# A confirmation mail goes to an address nobody has proven to own: budgets keep the form from mailing
# strangers in bulk (per client) or one stranger over and over (per mailbox, +tags folded).
SUBSCRIBE_PER_CLIENT = Limit("status.sub.client", 10, timedelta(hours=1))
CONFIRM_PER_MAILBOX = Limit("status.sub.mailbox", 1, timedelta(minutes=10))
CONFIRM_PER_MAILBOX_DAY = Limit("status.sub.mailbox.day", 5, timedelta(days=1))


def base_url() -> str:
    from zhiban.core.settings import get_settings

    return get_settings().base_url.rstrip("/")


# -- what a page shows -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    name: str
    uptime: UptimeChart


@dataclass(frozen=True)
class StatusPage:
    title: str
    organization: OrganizationRow | None
    now: datetime
    tz: str
    components: list[Component]
    overall: UptimeChart
    current: list[StatusIncident]
    history: list[HistoryDay]
    services: dict[str, str]  # incident id (number as text) → service name


def page_components(session: Session, organization: OrganizationRow | None) -> tuple[str, ...]:
    """The platform's regions and edge network; an organization's page adds its apps."""
    if organization is None:
        return PLATFORM_COMPONENTS
    from zhiban.apps.store import list_apps

    apps = tuple(a.app_id for a in list_apps(session, organization.id))[:MAX_COMPONENTS]
    return apps + PLATFORM_COMPONENTS


def _components_of(text: str, known: tuple[str, ...]) -> list[str]:
    lowered = text.lower()
    found = [c for c in known if c != "edge network" and re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", lowered)]
    if "edge network" in known and (_EDGE.search(lowered) or "edge" in lowered.split()):
        found.insert(0, "edge network")
    return found


def _published() -> Any:
    """Platform incidents published by a mapping of their service or by an agent's public update."""
    return IncidentRow.organization_id.is_(None) & or_(
        IncidentRow.service_id.in_(select(PublishedServiceRow.service_id)),
        IncidentRow.id.in_(select(StatusUpdateRow.incident_id)),
    )


def _visible(organization_id: str | None) -> Any:
    """Incidents a page shows: published platform ones, plus (for an organization) its own and those linked to it."""
    if organization_id is None:
        return _published()
    linked = select(IncidentTicketRow.incident_id).where(IncidentTicketRow.organization_id == organization_id)
    return or_(
        _published(),
        IncidentRow.organization_id == organization_id,
        # Linked to its ticket by an agent: shown to that organization (a platform one under a public title).
        IncidentRow.id.in_(linked),
    )


def _public_title(
    incident: IncidentRow, published: PublishedServiceRow | None, own: list[StatusUpdateRow], lang: str
) -> str:
    """What a page calls an incident: the latest update's title, its service's public title, else a plain phrase.

    A platform incident never shows its own title (an alert's summary, naming internal nodes); an
    organization's own incident shows it to that organization.
    """
    chosen = next((u.title for u in reversed(own) if u.title), None)
    if chosen:
        return chosen
    if published is not None:
        return published.title
    if incident.organization_id is not None:
        return incident.title[:300] or "incident"
    return translate(lang, "status.untitled")


def _auto_update(kind: str, at: datetime, title: str, lang: str) -> StatusUpdate:
    status = EVENT_STATUS[kind]
    return StatusUpdate(at, status, translate(lang, f"status.auto.{kind}", title=title))


def status_incidents(
    session: Session, now: datetime, organization_id: str | None, lang: str, known: tuple[str, ...]
) -> tuple[list[StatusIncident], dict[str, str]]:
    """The page's incidents of the last 90 days (and any still open) with their public updates."""
    since = now - timedelta(days=HISTORY_DAYS + 1)
    query = (
        select(IncidentRow, ServiceRow.name)
        .join(ServiceRow, ServiceRow.id == IncidentRow.service_id)
        .where(
            _visible(organization_id),
            IncidentRow.id.not_in(drill_incident_ids()),
            IncidentRow.triggered_at <= now,
            or_(IncidentRow.triggered_at >= since, IncidentRow.resolved_at.is_(None), IncidentRow.resolved_at >= since),
        )
        .order_by(IncidentRow.triggered_at.desc())
        .limit(MAX_INCIDENTS)
    )
    rows = list(session.execute(query).all())
    ids = [r[0].id for r in rows]
    service_ids = {r[0].service_id for r in rows}
    mapped = {
        p.service_id: p
        for p in session.scalars(select(PublishedServiceRow).where(PublishedServiceRow.service_id.in_(service_ids)))
    }
    events: dict[str, list[IncidentEventRow]] = {}
    updates: dict[str, list[StatusUpdateRow]] = {}
    alerts: dict[str, list[str]] = {}
    if ids:
        for e in session.scalars(
            select(IncidentEventRow)
            .where(IncidentEventRow.incident_id.in_(ids), IncidentEventRow.internal.is_(False))
            .order_by(IncidentEventRow.id)
        ):
            if e.kind in EVENT_STATUS:
                events.setdefault(e.incident_id, []).append(e)
        for u in session.scalars(
            select(StatusUpdateRow).where(StatusUpdateRow.incident_id.in_(ids)).order_by(StatusUpdateRow.id)
        ):
            updates.setdefault(u.incident_id, []).append(u)
        for incident_id, component, group, source, details in session.execute(
            select(AlertRow.incident_id, AlertRow.component, AlertRow.group, AlertRow.source, AlertRow.details)
            .where(AlertRow.incident_id.in_(ids))
            .limit(10_000)
        ):
            region = details.get("region") if isinstance(details, dict) else None
            words = " ".join(str(w) for w in (component, group, source, region) if w)
            alerts.setdefault(incident_id, []).append(words)
    linked_orgs: dict[str, set[str]] = {}
    if ids:
        for incident_id, org in session.execute(
            select(IncidentTicketRow.incident_id, IncidentTicketRow.organization_id).where(
                IncidentTicketRow.incident_id.in_(ids)
            )
        ):
            linked_orgs.setdefault(incident_id, set()).add(org)
    found: list[StatusIncident] = []
    services: dict[str, str] = {}
    for incident, service_name in rows:
        own = updates.get(incident.id, [])
        published = mapped.get(incident.service_id) if incident.organization_id is None else None
        title = _public_title(incident, published, own, lang)
        chosen = next((u.components for u in reversed(own) if u.components), None)
        if not chosen and published is not None:
            chosen = [published.component]
        text = " ".join([incident.title, service_name, *alerts.get(incident.id, [])])
        components = tuple(chosen) if chosen else tuple(_components_of(text, known))
        severity = next((u.severity for u in reversed(own) if u.severity), None) or IMPACT.get(
            incident.severity, "major"
        )
        timeline = [_auto_update(e.kind, e.at, title, lang) for e in events.get(incident.id, [])]
        timeline += [StatusUpdate(u.at, u.status, u.body) for u in own]
        orgs = (
            frozenset({incident.organization_id} | linked_orgs.get(incident.id, set()))
            if incident.organization_id
            else frozenset()
        )
        found.append(
            StatusIncident(
                incident_id=incident.number,
                title=title,
                severity=severity,
                components=components,
                started_at=incident.triggered_at,
                resolved_at=incident.resolved_at,
                updates=tuple(timeline[-500:]),
                organization_ids=orgs,
            )
        )
        # The service's name is internal: a platform incident is named by its public component.
        services[str(incident.number)] = service_name if incident.organization_id else ", ".join(components)
    return found, services


def build_page(
    session: Session, clock: Clock, organization: OrganizationRow | None, *, lang: str, tz: str
) -> StatusPage:
    """Everything a status page shows: uptime bars per component, current incidents, 90 days of history."""
    now = clock.now()
    known = page_components(session, organization)
    incidents, services = status_incidents(session, now, organization.id if organization else None, lang, known)
    if organization is not None:
        incidents = incidents_affecting(incidents, organization_id=organization.id)
    components = [
        Component(name, daily_uptime(incidents_affecting(incidents, component=name,
                                                         organization_id=organization.id if organization else None),
                                     now=now, tz=tz, days=HISTORY_DAYS))
        for name in known
    ]  # fmt: skip
    title = organization.name if organization is not None else translate(lang, "status.platform")
    return StatusPage(
        title=title,
        organization=organization,
        now=now,
        tz=tz,
        components=components,
        overall=daily_uptime(incidents, now=now, tz=tz, days=HISTORY_DAYS),
        current=current_incidents(incidents, now),
        history=[d for d in history(incidents, now, tz, HISTORY_DAYS)],
        services=services,
    )


def organization_for_page(session: Session, principal: Principal | None, slug: str) -> OrganizationRow:
    """The organization whose private page the caller asks for: its users and staff only (404 otherwise)."""
    org = organization_by_slug(session, slug) if len(slug) <= 64 else None
    if org is None or principal is None or not principal.can_see_organization(org.id):
        raise NotFound("no such status page")
    return org


# -- updates ----------------------------------------------------------------------------------------------------


def post_update(
    session: Session,
    clock: Clock,
    principal: Principal,
    incident_ref: str,
    *,
    status: str,
    body: str,
    components: list[str] | None = None,
    severity: str | None = None,
    title: str | None = None,
) -> StatusUpdateRow:
    """A public update on an incident (staff), which publishes it; subscribers hear of it once, through a job.

    `title` names the incident on pages from now on (a platform incident is otherwise shown under its
    service's public title, or a plain phrase: never its alert's summary).
    """
    principal.require_staff()
    from zhiban.incidents.service import find_incident_id

    incident = session.get(IncidentRow, find_incident_id(session, incident_ref))
    if incident is None:
        raise NotFound(f"no incident {incident_ref}")
    if status not in UPDATE_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(UPDATE_STATUSES)}")
    body = body.strip()
    if not 1 <= len(body) <= MAX_BODY:
        raise InvalidInput(f"an update is 1-{MAX_BODY} characters")
    if severity is not None and severity not in ("minor", "major", "critical", "maintenance", "none"):
        raise InvalidInput("severity must be none, maintenance, minor, major or critical")
    if title is not None:
        title = title.strip()
        if not 1 <= len(title) <= MAX_TITLE:
            raise InvalidInput(f"a public title is 1-{MAX_TITLE} characters")
    cleaned = [c.strip().lower()[:64] for c in components or [] if c.strip()]
    if len(cleaned) > MAX_COMPONENTS:
        raise InvalidInput(f"at most {MAX_COMPONENTS} components")
    row = StatusUpdateRow(
        incident_id=incident.id,
        status=status,
        body=body,
        components=cleaned,
        severity=severity,
        author_id=principal.person_id,
        at=clock.now(),
        title=title,
    )
    session.add(row)
    session.flush()
    if drill_of_incident(session, incident.id) is not None:
        return row  # a drill's update is never sent to subscribers
    enqueue(session, FANOUT_JOB, {"update": row.id}, due_at=clock.now(), dedup_key=f"status.fanout:update:{row.id}")
    return row


# -- publication ------------------------------------------------------------------------------------------------


def publish_service(
    session: Session, clock: Clock, principal: Principal, service_ref: str, *, component: str, title: str
) -> PublishedServiceRow:
    """Show a platform service's incidents on the status pages, on `component` under `title` (admins)."""
    principal.require_admin()
    from zhiban.incidents.service import get_service

    svc = get_service(session, service_ref)
    if svc.organization_id is not None:
        raise InvalidInput("this service belongs to an organization: its incidents show on that organization's page")
    component = component.strip().lower()
    if component not in PLATFORM_COMPONENTS:
        raise InvalidInput(f"component must be one of {', '.join(PLATFORM_COMPONENTS)}")
    title = title.strip()
    if not 1 <= len(title) <= MAX_TITLE:
        raise InvalidInput(f"a public title is 1-{MAX_TITLE} characters")
    row = session.get(PublishedServiceRow, svc.id)
    if row is None:
        row = PublishedServiceRow(service_id=svc.id)
        session.add(row)
    row.component, row.title = component, title
    row.updated_by, row.updated_at = principal.person_id, clock.now()
    session.flush()
    return row


def unpublish_service(session: Session, principal: Principal, service_ref: str) -> None:
    """Stop showing a service's incidents (admins); incidents an agent published by an update stay shown."""
    principal.require_admin()
    from zhiban.incidents.service import get_service

    row = session.get(PublishedServiceRow, get_service(session, service_ref).id)
    if row is None:
        raise NotFound(f"service {service_ref!r} is not published")
    session.delete(row)
    session.flush()


def published_services(session: Session, principal: Principal) -> list[tuple[PublishedServiceRow, str]]:
    """Every published service with its (internal) name, for staff."""
    principal.require_staff()
    query = (
        select(PublishedServiceRow, ServiceRow.name)
        .join(ServiceRow, ServiceRow.id == PublishedServiceRow.service_id)
        .order_by(ServiceRow.name)
        .limit(500)
    )
    return [(row, name) for row, name in session.execute(query).all()]


# -- subscriptions ----------------------------------------------------------------------------------------------


def _page_org(session: Session, principal: Principal | None, slug: str | None) -> OrganizationRow | None:
    return organization_for_page(session, principal, slug) if slug else None


def subscribe(
    session: Session,
    clock: Clock,
    principal: Principal | None,
    *,
    organization_slug: str | None = None,
    email: str | None = None,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    language: str = "en",
    client: str | None = None,
) -> SubscriptionRow:
    """Subscribe an e-mail address (confirmed by a mailed link) or a signed webhook (signed-in callers only).

    `client` is the caller's network address: the confirmation mails it may cause are budgeted.
    """
    org = _page_org(session, principal, organization_slug)
    if (email is None) == (webhook_url is None):
        raise InvalidInput("give either an e-mail address or a webhook URL")
    lang = "zh" if language == "zh" else "en"
    if email is not None:
        email = email.strip().lower()
        if not _EMAIL.match(email):
            raise InvalidInput("not an e-mail address")
        channel, address = "email", email
        config: dict[str, Any] = {"to": [email]}
    else:
        if principal is None:
            raise Forbidden("sign in to subscribe a webhook")
        url = (webhook_url or "").strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2000:
            raise InvalidInput("the webhook URL must be an http(s) URL")
        if not webhook_secret or not 16 <= len(webhook_secret) <= 200:
            raise InvalidInput("a webhook needs a shared secret of 16-200 characters (bodies are signed with it)")
        channel, address, config = "webhook", url, {"url": url, "secret": webhook_secret}
        from zhiban.notify.registry import check_new_destination

        check_new_destination("webhook", config)  # BlockedDestination for internal URLs
    org_id = org.id if org else None
    existing = session.scalar(
        select(SubscriptionRow).where(
            SubscriptionRow.organization_id.is_(None) if org_id is None else SubscriptionRow.organization_id == org_id,
            SubscriptionRow.channel == channel,
            SubscriptionRow.address == address,
            SubscriptionRow.unsubscribed_at.is_(None),
        )
    )
    if existing is not None:
        if channel == "webhook":
            existing.config = config
        return existing
    count_query = select(func.count()).select_from(SubscriptionRow).where(SubscriptionRow.unsubscribed_at.is_(None))
    count_query = count_query.where(
        SubscriptionRow.organization_id.is_(None) if org_id is None else SubscriptionRow.organization_id == org_id
    )
    if (session.scalar(count_query) or 0) >= MAX_SUBSCRIPTIONS:
        raise InvalidInput("this status page has too many subscribers")
    if principal is not None:
        _check_subscription_caps(session, principal)
    now = clock.now()
    row = SubscriptionRow(
        organization_id=org_id,
        channel=channel,
        address=address,
        config=config,
        token=secrets.token_urlsafe(32),
        language=lang,
        created_by=principal.person_id if principal else None,
        created_at=now,
        confirmed_at=now if channel == "webhook" else None,
    )
    session.add(row)
    session.flush()
    if channel == "email":
        _spend_confirmation_budget(session, now, address, client)
        _queue_confirmation(session, clock, row, org)
    ensure_scanner(session, clock)
    return row


def _check_subscription_caps(session: Session, principal: Principal) -> None:
    """Refuse a person's or an organization's subscription beyond the settings' caps (each one may fan out)."""
    from zhiban.core.settings import get_settings

    settings = get_settings()
    # Lock the organization (or the person) so that concurrent requests cannot slip past the count together.
    if principal.organization_id is not None:
        org_id = principal.organization_id
        session.execute(select(OrganizationRow.id).where(OrganizationRow.id == org_id).with_for_update())
    else:
        session.execute(select(PersonRow.id).where(PersonRow.id == principal.person_id).with_for_update())
    active = select(func.count()).select_from(SubscriptionRow).where(SubscriptionRow.unsubscribed_at.is_(None))
    mine = session.scalar(active.where(SubscriptionRow.created_by == principal.person_id)) or 0
    if mine >= settings.status_subscriptions_per_person:
        raise SubscriptionLimit(
            f"you hold {mine} status subscriptions, the most allowed; unsubscribe one first",
            limit=settings.status_subscriptions_per_person,
        )
    if principal.organization_id is None:
        return
    people = select(PersonRow.id).where(PersonRow.organization_id == principal.organization_id)
    ours = session.scalar(active.where(SubscriptionRow.created_by.in_(people))) or 0
    if ours >= settings.status_subscriptions_per_organization:
        raise SubscriptionLimit(
            f"your organization holds {ours} status subscriptions, the most allowed; unsubscribe one first",
            limit=settings.status_subscriptions_per_organization,
        )


def _mailbox(address: str) -> str:
    """The mailbox an address reaches: `a+x@d` and `a+y@d` land in one inbox."""
    local, _, domain = address.partition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def _spend_confirmation_budget(session: Session, now: datetime, address: str, client: str | None) -> None:
    """Count a confirmation mail against its budgets; over any, refuse (the caller's transaction undoes the count)."""
    mailbox = ratelimit.key_of(_mailbox(address))
    spent = [(CONFIRM_PER_MAILBOX, mailbox), (CONFIRM_PER_MAILBOX_DAY, mailbox)]
    if client is not None:
        spent.append((SUBSCRIBE_PER_CLIENT, ratelimit.key_of(ratelimit.client_of(client))))
    for limit, key in spent:
        if ratelimit.hit(session, limit, key, now) > limit.limit:
            raise RateLimited("too many subscriptions by e-mail; try again later")


def _page_url(org: OrganizationRow | None) -> str:
    return f"{base_url()}/status/org/{org.slug}" if org is not None else f"{base_url()}/status"


def _queue_confirmation(session: Session, clock: Clock, row: SubscriptionRow, org: OrganizationRow | None) -> None:
    from zhiban.notify import Link, Message
    from zhiban.notify import service as notify

    lang = row.language
    page = org.name if org else translate(lang, "status.platform")
    confirm = f"{base_url()}/status/subscriptions/{row.token}/confirm"
    text = translate(lang, "status.mail.confirm_text", page=page, url=confirm)
    message = Message(
        subject=translate(lang, "status.mail.confirm_subject", page=page)[:200],
        text=text,
        idempotency_key=f"status.confirm.{row.id}",
        language="zh" if lang == "zh" else "en",
        links=(Link("confirm", confirm, translate(lang, "status.confirm")[:80]),),
        event="status.subscription",
    )
    notify.queue_message(
        session, clock, message=message, subject_kind="status_subscription", subject_id=row.id,
        channel="email", config=row.config, due_at=clock.now(), destination_name="status",
    )  # fmt: skip


def _by_token(session: Session, token: str) -> SubscriptionRow:
    row = session.scalar(select(SubscriptionRow).where(SubscriptionRow.token == token)) if len(token) <= 64 else None
    if row is None:
        raise NotFound("this link is not valid")
    return row


def confirm(session: Session, clock: Clock, token: str) -> SubscriptionRow:
    """Confirm an e-mail subscription from its mailed link."""
    row = _by_token(session, token)
    if row.unsubscribed_at is None and row.confirmed_at is None:
        row.confirmed_at = clock.now()
    return row


def unsubscribe(session: Session, clock: Clock, token: str) -> SubscriptionRow:
    """Stop a subscription (the link in every notice)."""
    row = _by_token(session, token)
    if row.unsubscribed_at is None:
        row.unsubscribed_at = clock.now()
    return row


def subscription_by_token(session: Session, token: str) -> SubscriptionRow:
    return _by_token(session, token)


# -- notices ------------------------------------------------------------------------------------------------------


def ensure_scanner(session: Session, clock: Clock) -> None:
    """Arm the job that turns new incident starts and resolutions into notices (one per minute at most)."""
    cursor = session.get(ScanCursorRow, 1)
    if cursor is None:
        # Start from now: subscribers hear of what happens after they subscribed, not of old history.
        last = session.scalar(select(func.max(IncidentEventRow.id))) or 0
        session.add(ScanCursorRow(id=1, last_event_id=last, updated_at=clock.now()))
        session.flush()
    now = clock.now()
    bucket = int(now.timestamp() // SCAN_EVERY.total_seconds()) + 1
    due = datetime.fromtimestamp(bucket * SCAN_EVERY.total_seconds(), UTC)
    enqueue(session, SCAN_JOB, {}, due_at=due, dedup_key=f"status.scan:{bucket}")


def scan(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The `status.scan` job: queue a fan-out for each new public start or resolution of an incident."""
    with ctx.session_factory() as session, session.begin():
        cursor = session.scalar(select(ScanCursorRow).where(ScanCursorRow.id == 1).with_for_update())
        if cursor is None:
            ctx.finish(session)
            return
        events = list(
            session.execute(
                select(IncidentEventRow.id, IncidentEventRow.kind, IncidentEventRow.incident_id)
                .where(IncidentEventRow.id > cursor.last_event_id)
                .order_by(IncidentEventRow.id)
                .limit(FANOUT_CHUNK)
            ).all()
        )
        drills = set(session.scalars(drill_incident_ids())) if events else set()
        for event_id, kind, incident_id in events:
            if kind in NOTIFY_EVENTS and incident_id not in drills:
                enqueue(session, FANOUT_JOB, {"event": event_id}, due_at=ctx.clock.now(),
                        dedup_key=f"status.fanout:event:{event_id}")  # fmt: skip
        if events:
            cursor.last_event_id = events[-1][0]
            cursor.updated_at = ctx.clock.now()
        has_subscribers = session.scalar(
            select(SubscriptionRow.id).where(SubscriptionRow.unsubscribed_at.is_(None)).limit(1)
        )
        if has_subscribers or len(events) == FANOUT_CHUNK:
            ensure_scanner(session, ctx.clock)
        ctx.finish(session)


@dataclass(frozen=True)
class _Notice:
    key: str
    incident: IncidentRow
    status: str
    body: str | None  # None: the automatic text for `kind`
    kind: str


def _notice(session: Session, payload: dict[str, Any]) -> _Notice | None:
    if "update" in payload:
        update = session.get(StatusUpdateRow, int(payload["update"]))
        incident = session.get(IncidentRow, update.incident_id) if update else None
        if update is None or incident is None:
            return None
        return _Notice(f"u{update.id}", incident, update.status, update.body, "update")
    event = session.get(IncidentEventRow, int(payload.get("event", 0)))
    incident = session.get(IncidentRow, event.incident_id) if event else None
    if event is None or incident is None or event.kind not in EVENT_STATUS:
        return None
    return _Notice(f"e{event.id}", incident, EVENT_STATUS[event.kind], None, event.kind)


def _audience(session: Session, incident: IncidentRow, published: bool) -> Any:
    """Subscriptions that see this incident: published platform incidents reach every page, others their orgs."""
    query = select(SubscriptionRow).where(
        SubscriptionRow.unsubscribed_at.is_(None), SubscriptionRow.confirmed_at.is_not(None)
    )
    if not published:
        linked = select(IncidentTicketRow.organization_id).where(IncidentTicketRow.incident_id == incident.id)
        # An unpublished platform incident reaches only the organizations whose tickets an agent linked to it.
        own = SubscriptionRow.organization_id == incident.organization_id if incident.organization_id else false()
        query = query.where(or_(own, SubscriptionRow.organization_id.in_(linked)))
    return query.order_by(SubscriptionRow.id)


def _publication(
    session: Session, incident: IncidentRow
) -> tuple[bool, PublishedServiceRow | None, list[StatusUpdateRow]]:
    """Whether a platform incident is published, its service's mapping, and its public updates."""
    own = list(
        session.scalars(
            select(StatusUpdateRow).where(StatusUpdateRow.incident_id == incident.id).order_by(StatusUpdateRow.id)
        )
    )
    mapping = session.get(PublishedServiceRow, incident.service_id) if incident.organization_id is None else None
    return incident.organization_id is None and (mapping is not None or bool(own)), mapping, own


def fanout(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The `status.fanout` job: one message per subscriber and update, keyed so a rerun sends nothing twice."""
    from zhiban.notify import Link, Message
    from zhiban.notify import service as notify

    with ctx.session_factory() as session, session.begin():
        notice = _notice(session, payload)
        if notice is None or drill_of_incident(session, notice.incident.id) is not None:
            ctx.finish(session)
            return
        incident = notice.incident
        published, mapping, own = _publication(session, incident)
        for sub in session.scalars(_audience(session, incident, published).limit(MAX_SUBSCRIPTIONS)):
            lang: Literal["zh", "en"] = "zh" if sub.language == "zh" else "en"
            org = session.get(OrganizationRow, sub.organization_id) if sub.organization_id else None
            page = _page_url(org)
            status_word = translate(lang, f"status.update.{notice.status}")
            title = _public_title(incident, mapping, own, lang)
            body = notice.body or translate(lang, f"status.auto.{notice.kind}", title=title)
            unsubscribe_url = f"{base_url()}/status/subscriptions/{sub.token}/unsubscribe"
            text = f"{body}\n\n{translate(lang, 'status.mail.page')}: {page}"
            if sub.channel == "email":
                text += f"\n{translate(lang, 'status.unsubscribe')}: {unsubscribe_url}"
            message = Message(
                subject=f"[{status_word}] {title}"[:200].replace("\n", " "),
                text=text[:30_000],
                idempotency_key=f"status.{notice.key}.{sub.id}",
                language=lang,
                links=(Link("status", page, translate(lang, "status.title")[:80]),)
                + ((Link("unsubscribe", unsubscribe_url, translate(lang, "status.unsubscribe")[:80]),)
                   if sub.channel == "email" else ()),
                event="status.update",
                metadata={"incident": incident.number, "status": notice.status,
                          "severity": IMPACT.get(incident.severity, "major")},
            )  # fmt: skip
            notify.queue_message(
                session, ctx.clock, message=message, subject_kind="status_subscription", subject_id=sub.id,
                channel=sub.channel, config=dict(sub.config), due_at=ctx.clock.now(), destination_name="status",
            )  # fmt: skip
        ctx.finish(session)


# -- feeds ------------------------------------------------------------------------------------------------------


def feed_token(session: Session, clock: Clock, organization: OrganizationRow) -> str:
    """The organization's private feed token (made on first use)."""
    row = session.get(FeedTokenRow, organization.id)
    if row is None:
        row = FeedTokenRow(organization_id=organization.id, token=secrets.token_urlsafe(24), created_at=clock.now())
        session.add(row)
        session.flush()
    return row.token


def organization_by_feed_token(session: Session, slug: str, token: str) -> OrganizationRow:
    """The organization of a private feed URL; NotFound for a wrong slug or token."""
    org = organization_by_slug(session, slug) if len(slug) <= 64 else None
    row = session.get(FeedTokenRow, org.id) if org is not None else None
    if org is None or row is None or not token or not secrets.compare_digest(row.token, token[:64]):
        raise NotFound("no such feed")
    return org


def feed(session: Session, clock: Clock, organization: OrganizationRow | None, *, lang: str, self_url: str) -> bytes:
    """The Atom feed of a page's incidents (the private one carries its token in `self_url`)."""
    page = build_page(session, clock, organization, lang=lang, tz=organization.timezone if organization else "UTC")
    incidents = {i.incident_id: i for day in page.history for i in day.incidents}
    for i in page.current:
        incidents[i.incident_id] = i
    page_url = _page_url(organization)
    host = urlsplit(base_url()).hostname or "localhost"
    info = FeedInfo(
        title=f"{page.title} — {translate(lang, 'status.title')}",
        authority=host,
        minted=FEED_MINTED,
        self_url=self_url,
        page_url=page_url,
        lang=lang,
    )
    return incident_feed(info, incidents.values(), lambda i: f"{page_url}#incident-{i.incident_id}", clock.now())

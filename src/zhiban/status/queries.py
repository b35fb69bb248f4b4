"""The status pages' reads across features: incidents with their public events, alerts and linked tickets
(drills left out), which of them are published, and an organization's apps. The read side: these queries may
read other features' tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, false, func, or_, select
from sqlalchemy.orm import Session

from zhiban.apps.store import list_apps
from zhiban.core.i18n import translate
from zhiban.drills.store import drill_incident_ids
from zhiban.incidents.store import AlertRow, IncidentEventRow, IncidentRow, IncidentTicketRow, ServiceRow
from zhiban.status.model import StatusIncident, StatusUpdate
from zhiban.status.store import PublishedServiceRow, StatusUpdateRow, SubscriptionRow

HISTORY_DAYS = 90
MAX_INCIDENTS = 2000
# Incident severities (alert vocabulary) on the status page's impact scale.
IMPACT = {"critical": "critical", "error": "major", "warning": "minor", "info": "minor"}
# Public timeline lines of an incident and the status they mean on a page.
EVENT_STATUS = {"triggered": "investigating", "acknowledged": "identified", "retriggered": "investigating",
                "resolved": "resolved"}  # fmt: skip
_EDGE = re.compile(r"\b[a-z]{2,4}-edge-\d{1,3}\b")


def app_ids(session: Session, organization_id: str) -> tuple[str, ...]:
    """The organization's customer apps: components of its page."""
    return tuple(a.app_id for a in list_apps(session, organization_id))


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
    """Incidents a page shows: published platform ones, plus (for an organization) its own and those linked to it.

    Never a ticket's on-duty incident: it is internal (the customer sees the page on its ticket)."""
    internal = IncidentRow.ticket_id.is_(None)
    if organization_id is None:
        return internal & _published()
    linked = select(IncidentTicketRow.incident_id).where(IncidentTicketRow.organization_id == organization_id)
    return internal & or_(
        _published(),
        IncidentRow.organization_id == organization_id,
        # Linked to its ticket by an agent: shown to that organization (a platform one under a public title).
        IncidentRow.id.in_(linked),
    )


def public_title(
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
        title = public_title(incident, published, own, lang)
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


def last_incident_event(session: Session) -> int:
    """The number of the latest incident event (0: none yet)."""
    return session.scalar(select(func.max(IncidentEventRow.id))) or 0


def incident_events_after(session: Session, after: int, limit: int) -> list[tuple[int, str, str]]:
    """(event id, kind, incident id) of the incident events after `after`, oldest first."""
    query = select(IncidentEventRow.id, IncidentEventRow.kind, IncidentEventRow.incident_id)
    rows = session.execute(query.where(IncidentEventRow.id > after).order_by(IncidentEventRow.id).limit(limit))
    return [(i, kind, incident) for i, kind, incident in rows]


def drill_incidents(session: Session) -> set[str]:
    """Ids of the incidents drills opened (never announced)."""
    return set(session.scalars(drill_incident_ids()))


def incident_by_id(session: Session, incident_id: str) -> IncidentRow | None:
    return session.get(IncidentRow, incident_id)


def incident_event_by_id(session: Session, event_id: int) -> IncidentEventRow | None:
    return session.get(IncidentEventRow, event_id)


def audience(incident: IncidentRow, published: bool) -> Select[Any]:
    """Subscriptions that see this incident: published platform incidents reach every page, others their orgs."""
    query = select(SubscriptionRow).where(
        SubscriptionRow.unsubscribed_at.is_(None), SubscriptionRow.confirmed_at.is_not(None)
    )
    if incident.ticket_id is not None:
        return query.where(false())  # a ticket's on-duty page is announced to nobody
    if not published:
        linked = select(IncidentTicketRow.organization_id).where(IncidentTicketRow.incident_id == incident.id)
        # An unpublished platform incident reaches only the organizations whose tickets an agent linked to it.
        own = SubscriptionRow.organization_id == incident.organization_id if incident.organization_id else false()
        query = query.where(or_(own, SubscriptionRow.organization_id.in_(linked)))
    return query.order_by(SubscriptionRow.id)


def publication(
    session: Session, incident: IncidentRow
) -> tuple[bool, PublishedServiceRow | None, list[StatusUpdateRow]]:
    """Whether a platform incident is published, its service's mapping, and its public updates."""
    own = list(
        session.scalars(
            select(StatusUpdateRow).where(StatusUpdateRow.incident_id == incident.id).order_by(StatusUpdateRow.id)
        )
    )
    mapping = session.get(PublishedServiceRow, incident.service_id) if incident.organization_id is None else None
    public = incident.organization_id is None and incident.ticket_id is None and (mapping is not None or bool(own))
    return public, mapping, own


def published_services(session: Session) -> list[tuple[PublishedServiceRow, str]]:
    """Every published service with its (internal) name."""
    query = (
        select(PublishedServiceRow, ServiceRow.name)
        .join(ServiceRow, ServiceRow.id == PublishedServiceRow.service_id)
        .order_by(ServiceRow.name)
        .limit(500)
    )
    return [(row, name) for row, name in session.execute(query).all()]


@dataclass(frozen=True)
class Notice:
    """What a subscriber hears of: a posted update, or an incident starting or ending."""

    key: str
    incident: IncidentRow
    status: str
    body: str | None  # None: the automatic text for `kind`
    kind: str


def notice(session: Session, payload: dict[str, Any]) -> Notice | None:
    """What a fan-out job announces (None: the update or event is gone, or is not announced)."""
    if "update" in payload:
        update = session.get(StatusUpdateRow, int(payload["update"]))
        incident = incident_by_id(session, update.incident_id) if update else None
        if update is None or incident is None:
            return None
        return Notice(f"u{update.id}", incident, update.status, update.body, "update")
    event = incident_event_by_id(session, int(payload.get("event", 0)))
    incident = incident_by_id(session, event.incident_id) if event else None
    if event is None or incident is None or event.kind not in EVENT_STATUS:
        return None
    return Notice(f"e{event.id}", incident, EVENT_STATUS[event.kind], None, event.kind)

"""Alerts into incidents: opening one, and one alert's trigger, acknowledge or resolve with dedup."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.incidents.catalog import grouping_of
from zhiban.incidents.escalation import (
    Urgency,
)
from zhiban.incidents.lifecycle import _acknowledge, _resolve
from zhiban.incidents.model import (
    SENDER_GROUP,
    AlertEvent,
    GroupingRule,
    IncidentStatus,
    urgency_for,
)
from zhiban.incidents.paging import _event, start_escalation
from zhiban.incidents.store import (
    INCIDENT_NUMBERS,
    AlertRow,
    IncidentCounterRow,
    IncidentRow,
    IntegrationRow,
    ServiceRow,
)
from zhiban.store.db import new_id

# --- incidents: creation, alerts ------------------------------------------------------------------


def _reserve_numbers(session: Session, count: int) -> list[int]:
    """`count` new incident numbers, ascending: from the sequence on PostgreSQL (no lock held to the commit),
    else consecutive ones taken with one UPDATE of the counter row."""
    if count < 1:
        return []
    if session.get_bind().dialect.name == "postgresql":
        taken = select(INCIDENT_NUMBERS.next_value()).select_from(func.generate_series(1, count))
        return sorted(int(n) for n in session.scalars(taken))
    bump = (
        update(IncidentCounterRow)
        .where(IncidentCounterRow.id == 1)
        .values(last_number=IncidentCounterRow.last_number + count)
    )
    last = session.execute(bump.returning(IncidentCounterRow.last_number)).scalar()
    if last is None:
        try:
            with session.begin_nested():
                session.add(IncidentCounterRow(id=1, last_number=0))
        except IntegrityError:
            pass
        last = session.execute(bump.returning(IncidentCounterRow.last_number)).scalar()
    assert last is not None
    return list(range(int(last) - count + 1, int(last) + 1))


def _next_number(session: Session) -> int:
    return _reserve_numbers(session, 1)[0]


def _incident_row(
    service: ServiceRow,
    number: int,
    title: str,
    severity: str,
    group_key: str | None,
    urgency: Urgency | None,
    now: datetime,
) -> IncidentRow:
    return IncidentRow(
        id=new_id(),
        number=number,
        title=" ".join(title.split())[:1024] or "incident",
        service_id=service.id,
        status=IncidentStatus.TRIGGERED.value,
        urgency=(urgency or urgency_for(service.urgency_rule, severity)).value,
        severity=severity,
        organization_id=service.organization_id,
        group_key=group_key,
        triggered_at=now,
        updated_at=now,
        generation=0,
        ack_seq=0,
        round_robin_offset=0,
        alert_count=0,
    )


def open_incident(
    session: Session,
    clock: Clock,
    service: ServiceRow,
    *,
    title: str,
    severity: str = "error",
    group_key: str | None = None,
    actor_id: str | None = None,
    urgency: Urgency | None = None,
    grouping: dict[str, Any] | None = None,
) -> IncidentRow:
    """Open an incident on a service and start paging by its escalation policy (`grouping`: the rule its alerts
    are grouped by, shown with it)."""
    now = clock.now()
    incident = _incident_row(service, _next_number(session), title, severity, group_key, urgency, now)
    incident.grouping = grouping
    session.add(incident)
    session.flush()
    _event(session, incident.id, "triggered", now, actor_id=actor_id, body=incident.title, internal=False)
    start_escalation(session, clock, incident, service)
    return incident


def ingest(session: Session, clock: Clock, integration: IntegrationRow, event: AlertEvent) -> IncidentRow | None:
    """Apply one alert event: fold duplicates, group into an incident, acknowledge or resolve."""
    now = clock.now()
    if event.action == "trigger":
        # The common case under an alert storm is a repeat: one UPDATE and done.
        bumped = session.execute(
            update(AlertRow)
            .where(AlertRow.integration_id == integration.id, AlertRow.open_key == event.dedup_key)
            .values(event_count=AlertRow.event_count + 1, last_event_at=now)
            .execution_options(synchronize_session=False)
        )
        if getattr(bumped, "rowcount", 0):
            return None
        return _new_alert(session, clock, integration, event)
    alert = session.scalar(
        select(AlertRow).where(AlertRow.integration_id == integration.id, AlertRow.open_key == event.dedup_key)
    )
    if alert is None:
        return None  # Events v2 ignores an acknowledge or resolve of an unknown or closed key
    incident = session.get(IncidentRow, alert.incident_id)
    assert incident is not None
    if event.action == "acknowledge":
        if incident.status == IncidentStatus.TRIGGERED:
            _acknowledge(session, clock, incident, None, via=f"integration {integration.name}")
        return incident
    alert.open_key = None
    alert.status = "resolved"
    alert.resolved_at = now
    alert.last_event_at = now
    session.flush()
    still_open = session.scalar(
        select(func.count()).where(AlertRow.incident_id == incident.id, AlertRow.open_key.is_not(None))
    )
    if not still_open and incident.status != IncidentStatus.RESOLVED:
        _resolve(session, clock, incident, None, via=f"integration {integration.name}")
    return incident


def storm_group(service: ServiceRow, event: AlertEvent, rule: GroupingRule | None = None) -> StormGroup:
    """How a new alert is grouped on its service: the service's rule first, else the sender's own group (an
    Alertmanager groupKey), else not at all (its own incident)."""
    rule = rule or grouping_of(service)
    key = rule.group_key(event)
    if key is not None:
        return StormGroup(replace(event, group_key=key), rule.describe(), rule.window_minutes)
    if event.group_key and event.group_key != event.dedup_key:
        return StormGroup(event, dict(SENDER_GROUP), 0)
    return StormGroup(event, None, 0)


class StormGroup(NamedTuple):
    event: AlertEvent  # its group_key is the incident group it joins
    grouping: dict[str, Any] | None  # what the incident shows; None: the alert opens its own incident
    window_minutes: int  # join only an incident opened this recently (0: while it is open)


def open_incident_of_group(
    session: Session, service_id: str, group_key: str, now: datetime, window_minutes: int
) -> IncidentRow | None:
    """The open incident of this group (opened within the window, if there is one) that a new alert joins.

    On PostgreSQL the group is locked until commit, so that concurrent writers (several web processes) of one
    group's alerts open one incident between them, not one each.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"incident-group:{service_id}:{group_key}"}
        )
    query = select(IncidentRow).where(
        IncidentRow.service_id == service_id,
        IncidentRow.group_key == group_key,
        IncidentRow.status != IncidentStatus.RESOLVED,
    )
    if window_minutes:
        query = query.where(IncidentRow.triggered_at >= now - timedelta(minutes=window_minutes))
    return session.scalar(query.order_by(IncidentRow.triggered_at.desc()).limit(1))


def _new_alert(
    session: Session, clock: Clock, integration: IntegrationRow, event: AlertEvent, count: int = 1
) -> IncidentRow | None:
    """Open an alert for `count` triggers of a dedup key that has none open (a new incident, or its group's)."""
    now = clock.now()
    service = session.get(ServiceRow, integration.service_id)
    assert service is not None
    event, grouping, window = storm_group(service, event)
    incident = None
    if grouping is not None and event.group_key:
        incident = open_incident_of_group(session, service.id, event.group_key, now, window)
    try:
        with session.begin_nested():
            created = incident is None
            if incident is None:
                incident = open_incident(
                    session,
                    clock,
                    service,
                    title=event.summary,
                    severity=event.severity,
                    group_key=event.group_key,
                    grouping=grouping,
                )
            session.add(_alert_row(integration, incident, event, count, now))
            incident.alert_count += 1
            session.flush()
            if not created:
                _event(
                    session, incident.id, "alert", now, body=event.summary[:1024], data={"dedup_key": event.dedup_key}
                )
    except IntegrityError:
        # Another request opened this dedup key meanwhile: count these as its repeats.
        session.execute(
            update(AlertRow)
            .where(AlertRow.integration_id == integration.id, AlertRow.open_key == event.dedup_key)
            .values(event_count=AlertRow.event_count + count, last_event_at=now)
            .execution_options(synchronize_session=False)
        )
        return None
    return incident


def _alert_row(
    integration: IntegrationRow, incident: IncidentRow, event: AlertEvent, count: int, now: datetime
) -> AlertRow:
    return AlertRow(
        id=new_id(),
        integration_id=integration.id,
        incident_id=incident.id,
        dedup_key=event.dedup_key,
        open_key=event.dedup_key,
        status="triggered",
        summary=event.summary[:1024],
        severity=event.severity,
        source=event.source,
        component=event.component,
        group=event.group,
        class_=event.class_,
        fingerprint=event.fingerprint,
        details=dict(event.details),
        event_count=count,
        created_at=now,
        last_event_at=now,
    )

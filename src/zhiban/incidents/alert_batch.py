"""Many alert triggers at once (the group commit of the intake and the bulk Alertmanager path)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import InvalidInput
from zhiban.incidents.alerts import (
    StormGroup,
    _incident_row,
    _new_alert,
    _reserve_numbers,
    open_incident,
    open_incident_of_group,
    storm_group,
)
from zhiban.incidents.catalog import grouping_of
from zhiban.incidents.lifecycle import _resolve
from zhiban.incidents.model import (
    AlertEvent,
    GroupingRule,
    IncidentStatus,
)
from zhiban.incidents.paging import ensure_auditor, start_escalations
from zhiban.incidents.store import (
    AlertRow,
    IncidentEventRow,
    IncidentRow,
    IntegrationRow,
    ServiceRow,
)
from zhiban.store.db import new_id

# --- many triggers at once (group commit of the intake) ------------------------------------------

MAX_TRIGGER_BATCH = 1000


def ingest_triggers(session: Session, clock: Clock, triggers: Sequence[tuple[IntegrationRow, AlertEvent]]) -> None:
    """Apply many trigger events as `ingest` would one after another, with a few statements for all of them.

    Repeats of an open alert cost one row of an executemany UPDATE; new dedup keys open their incidents
    together (one counter bump, one flush). Concurrent writers of the same key (other processes) are
    handled as `ingest` does: the unique (integration, open key) decides, the loser counts as a repeat.
    """
    if len(triggers) > MAX_TRIGGER_BATCH:
        raise InvalidInput(f"at most {MAX_TRIGGER_BATCH} triggers at once")
    # (integration id, dedup key) -> [integration, first event, how many]
    folded: dict[tuple[str, str], list[Any]] = {}
    for integration, event in triggers:
        if event.action != "trigger":
            raise InvalidInput("ingest_triggers takes trigger events only")
        slot = folded.get((integration.id, event.dedup_key))
        if slot is None:
            folded[(integration.id, event.dedup_key)] = [integration, event, 1]
        else:
            slot[2] += 1
    if not folded:
        return
    now = clock.now()
    open_ids = _open_alert_ids(session, list(folded))
    bumps = [{"alert": open_ids[k], "n": slot[2]} for k, slot in folded.items() if k in open_ids]
    if bumps:
        table = cast(Table, AlertRow.__table__)
        session.connection().execute(
            update(table)
            .where(table.c.id == bindparam("alert"))
            .values(event_count=table.c.event_count + bindparam("n"), last_event_at=now),
            bumps,
        )
    fresh = [(slot[0], slot[1], slot[2]) for k, slot in folded.items() if k not in open_ids]
    # Alerts that a service's rule or their sender groups join their group's open incident (or open one);
    # the others open an incident each, together.
    single: list[tuple[IntegrationRow, StormGroup, int]] = []
    together: list[tuple[IntegrationRow, AlertEvent, int]] = []
    rules: dict[str, tuple[ServiceRow, GroupingRule]] = {}
    for integration, event, count in fresh:
        found = rules.get(integration.service_id)
        if found is None:
            service = session.get(ServiceRow, integration.service_id)
            assert service is not None
            found = rules[service.id] = (service, grouping_of(service))
        group = storm_group(found[0], event, found[1])
        if group.grouping is None:
            together.append((integration, event, count))
        else:
            single.append((integration, group, count))
    if together:
        try:
            with session.begin_nested():
                _open_together(session, clock, together)
        except IntegrityError:
            # Another process opened one of these keys meanwhile: take them one at a time.
            single = [(i, StormGroup(e, None, 0), n) for i, e, n in together] + single
    _open_grouped(session, clock, single)


def _open_grouped(session: Session, clock: Clock, fresh: list[tuple[IntegrationRow, StormGroup, int]]) -> None:
    """New alerts of a group join their group's open incident (or open one), a group at a time.

    As `_new_alert` would one by one: the group's first alert opens the incident when none is open (within
    the rule's window), every other alert joins it with an "alert" timeline event. A concurrent writer of one
    of the keys makes that group fall back to one at a time.
    """
    groups: dict[tuple[str, str], list[tuple[IntegrationRow, StormGroup, int]]] = {}
    for item in fresh:
        integration, group, count = item
        if group.grouping is not None and group.event.group_key:
            groups.setdefault((integration.service_id, group.event.group_key), []).append(item)
        else:
            _new_alert(session, clock, integration, group.event, count)
    now = clock.now()
    # In key order: PostgreSQL locks each group (open_incident_of_group), the same order in every process.
    for (service_id, group_key), members in sorted(groups.items(), key=lambda item: item[0]):
        if len(members) == 1:
            integration, group, count = members[0]
            _new_alert(session, clock, integration, group.event, count)
            continue
        service = session.get(ServiceRow, service_id)
        assert service is not None
        grouping, window = members[0][1].grouping, members[0][1].window_minutes
        try:
            with session.begin_nested():
                incident = open_incident_of_group(session, service.id, group_key, now, window)
                joining = members
                if incident is None:
                    first = members[0][1].event
                    incident = open_incident(
                        session,
                        clock,
                        service,
                        title=first.summary,
                        severity=first.severity,
                        group_key=group_key,
                        grouping=grouping,
                    )
                    joining = members[1:]
                incident.alert_count += len(members)
                session.flush()
                # Thousands of rows for one storm: bulk INSERTs, not ORM objects one by one.
                alerts = cast(Table, AlertRow.__table__)
                session.execute(insert(alerts), [_alert_values(i, incident.id, g.event, n, now) for i, g, n in members])
                if joining:
                    session.execute(
                        insert(cast(Table, IncidentEventRow.__table__)),
                        [
                            {
                                "incident_id": incident.id,
                                "kind": "alert",
                                "at": now,
                                "actor_id": None,
                                "body": g.event.summary[:1024],
                                "data": {"dedup_key": g.event.dedup_key},
                                "internal": True,
                            }
                            for _, g, _ in joining
                        ],
                    )
        except IntegrityError:
            for integration, group, count in members:
                _new_alert(session, clock, integration, group.event, count)


def _alert_values(
    integration: IntegrationRow, incident_id: str, event: AlertEvent, count: int, now: datetime
) -> dict[str, Any]:
    """The columns of `_alert_row`, for a bulk INSERT."""
    return {
        "id": new_id(),
        "integration_id": integration.id,
        "incident_id": incident_id,
        "dedup_key": event.dedup_key,
        "open_key": event.dedup_key,
        "status": "triggered",
        "summary": event.summary[:1024],
        "severity": event.severity,
        "source": event.source,
        "component": event.component,
        "group": event.group,
        "class": event.class_,
        "fingerprint": event.fingerprint,
        "details": dict(event.details),
        "event_count": count,
        "created_at": now,
        "last_event_at": now,
        "resolved_at": None,
    }


def ingest_group(session: Session, clock: Clock, integration: IntegrationRow, events: Sequence[AlertEvent]) -> None:
    """Apply a whole group of triggers and resolves (an Alertmanager notification) in a few statements each.

    The alerts of one notification have distinct keys, so triggers go first, then resolves; a key sent
    twice counts by its last status.
    """
    last: dict[str, AlertEvent] = {}
    for event in events:
        if event.action not in ("trigger", "resolve"):
            raise InvalidInput("ingest_group takes trigger and resolve events only")
        last.pop(event.dedup_key, None)  # in the order of each key's last event
        last[event.dedup_key] = event
    triggers = [(integration, e) for e in last.values() if e.action == "trigger"]
    for start in range(0, len(triggers), MAX_TRIGGER_BATCH):
        ingest_triggers(session, clock, triggers[start : start + MAX_TRIGGER_BATCH])
    _resolve_keys(session, clock, integration, [key for key, e in last.items() if e.action == "resolve"])


def _resolve_keys(session: Session, clock: Clock, integration: IntegrationRow, keys: list[str]) -> None:
    """Resolve the open alerts of these keys; an incident left with none open resolves (as `ingest` does)."""
    now = clock.now()
    touched: set[str] = set()
    for start in range(0, len(keys), MAX_TRIGGER_BATCH):
        chunk = keys[start : start + MAX_TRIGGER_BATCH]
        found = session.execute(
            select(AlertRow.id, AlertRow.incident_id).where(
                AlertRow.integration_id == integration.id, AlertRow.open_key.in_(chunk)
            )
        ).all()
        if not found:
            continue
        session.execute(
            update(AlertRow)
            .where(AlertRow.id.in_([row.id for row in found]))
            .values(open_key=None, status="resolved", resolved_at=now, last_event_at=now)
            .execution_options(synchronize_session=False)
        )
        touched.update(row.incident_id for row in found)
    if not touched:
        return
    still_open = set(
        session.scalars(
            select(AlertRow.incident_id)
            .where(AlertRow.incident_id.in_(touched), AlertRow.open_key.is_not(None))
            .distinct()
        )
    )
    for incident_id in sorted(touched - still_open):
        incident = session.get(IncidentRow, incident_id)
        if incident is not None and incident.status != IncidentStatus.RESOLVED:
            _resolve(session, clock, incident, None, via=f"integration {integration.name}")


def _open_alert_ids(session: Session, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The open alert of each (integration id, dedup key) that has one; locked on PostgreSQL until commit."""
    by_integration: dict[str, list[str]] = {}
    for integration_id, dedup_key in keys:
        by_integration.setdefault(integration_id, []).append(dedup_key)
    found: dict[tuple[str, str], str] = {}
    postgres = session.get_bind().dialect.name == "postgresql"
    for integration_id, dedup_keys in by_integration.items():
        query = (
            select(AlertRow.open_key, AlertRow.id)
            .where(AlertRow.integration_id == integration_id, AlertRow.open_key.in_(dedup_keys))
            .order_by(AlertRow.id)
        )
        if postgres:
            # Locked in id order (the same in every process): a concurrent resolve waits for our bump.
            query = query.with_for_update()
        for open_key, alert_id in session.execute(query):
            found[(integration_id, str(open_key))] = alert_id
    return found


def _open_together(session: Session, clock: Clock, fresh: list[tuple[IntegrationRow, AlertEvent, int]]) -> None:
    now = clock.now()
    numbers = _reserve_numbers(session, len(fresh))
    ensure_auditor(session, clock)
    services: dict[str, ServiceRow] = {}
    opened: list[tuple[IncidentRow, ServiceRow]] = []
    for (integration, event, _count), number in zip(fresh, numbers, strict=True):
        service = services.get(integration.service_id) or session.get(ServiceRow, integration.service_id)
        assert service is not None
        services[service.id] = service
        incident = _incident_row(service, number, event.summary, event.severity, event.group_key, None, now)
        incident.alert_count = 1
        session.add(incident)
        opened.append((incident, service))
    # Incidents first, for the foreign keys of the rest; their alerts and first timeline lines are plain
    # multi-row INSERTs (nothing reads them back as objects here), before the escalation's lines.
    session.flush()
    pairs = list(zip(fresh, opened, strict=True))
    session.execute(
        insert(cast(Table, AlertRow.__table__)),
        [
            _alert_values(integration, incident.id, event, count, now)
            for (integration, event, count), (incident, _) in pairs
        ],
    )
    session.execute(
        insert(cast(Table, IncidentEventRow.__table__)),
        [
            {"incident_id": incident.id, "kind": "triggered", "at": now, "actor_id": None, "body": incident.title,
             "data": {}, "internal": False}
            for _, (incident, _) in pairs
        ],
    )  # fmt: skip
    with session.no_autoflush:
        start_escalations(session, clock, opened, audit=False)
    session.flush()

"""Use cases of incidents: services and policies, alerts into incidents, ack/resolve, the paging chain.

Every escalation step is a durable engine timer (`incident.escalate`, dedup key incident × generation ×
step). A step fires once in one transaction: it pages its people (one stored message per person and
contact method, keyed by `step_key`), marks itself done and arms the next step, so a worker killed at
any point either left nothing or left all of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import Table, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from zhiban.engine import JobContext, cancel, enqueue, enqueue_many
from zhiban.identity import service as identity
from zhiban.identity.model import Person, Principal
from zhiban.incidents.escalation import (
    EscalationPolicy,
    EscalationStep,
    Target,
    TargetKind,
    Urgency,
    next_step,
    step_key,
)
from zhiban.incidents.model import (
    URGENCY_RULES,
    AlertEvent,
    IncidentStatus,
    make_ack_token,
    policy_from_spec,
    urgency_for,
)
from zhiban.incidents.store import (
    AlertRow,
    EscalationPolicyRow,
    EscalationStepRow,
    IncidentCounterRow,
    IncidentEventRow,
    IncidentRow,
    IncidentTicketRow,
    IntegrationRow,
    ResponderRow,
    ServiceRow,
)
from zhiban.store.db import new_id

log = logging.getLogger("zhiban.incidents")

ESCALATE_JOB = "incident.escalate"
ACK_TIMEOUT_JOB = "incident.ack_timeout"
AUDIT_JOB = "incident.audit"
AUDIT_EVERY = timedelta(minutes=5)
AUDIT_GRACE = timedelta(seconds=120)
ACK_LINK_LIFETIME = timedelta(hours=24)
MAX_NOTE = 20_000

# --- links in pages (signed one-click acknowledge) -----------------------------------------------

_link_config: dict[str, str] = {}
# Where a process without a desk (a bare `python -m zhiban.engine` worker) takes them from: set by incidents.hooks.
_link_defaults: list[Callable[[], tuple[str, str]]] = []


def configure_links(*, secret_key: str, base_url: str) -> None:
    """Sign acknowledge links with this key and point them at this base URL (the web app sets its desk's)."""
    _link_config.update(secret_key=secret_key, base_url=base_url.rstrip("/"))


def links_default(source: Callable[[], tuple[str, str]]) -> None:
    """Where to take (secret key, base URL) from when no desk configured the links."""
    _link_defaults[:] = [source]


def _links() -> tuple[str, str]:
    # A desk hands over its key and URL at start-up (incidents.hooks.configure); a bare worker has defaults.
    if "secret_key" not in _link_config:
        if not _link_defaults:
            raise RuntimeError("acknowledge links are not configured: no desk and no incidents.hooks")
        secret_key, base_url = _link_defaults[0]()
        configure_links(secret_key=secret_key, base_url=base_url)
    return _link_config["secret_key"], _link_config["base_url"]


def ack_url(incident_id: str, person_id: str, now: datetime) -> str:
    """The signed one-click acknowledge link for this person and incident."""
    secret, base = _links()
    return f"{base}/ack/{make_ack_token(secret, incident_id, person_id, now + ACK_LINK_LIFETIME)}"


# --- people ---------------------------------------------------------------------------------------


def find_person(session: Session, ref: str) -> Person | None:
    """A person by id or e-mail address."""
    return identity.find_person(session, ref)


def _staff_person(session: Session, ref: str) -> Person:
    person = find_person(session, ref)
    if person is None or person.role == "customer" or not person.active:
        raise InvalidInput(f"no active agent or admin {ref!r}")
    return person


def system_principal() -> Principal:
    """The desk itself acting (integrations, timers)."""
    from zhiban.identity.model import Role

    return Principal(person_id="system", role=Role.ADMIN, organization_id=None, name="zhiban")


# --- escalation policies and services -------------------------------------------------------------


def _normalize_levels(session: Session, levels: Any) -> list[dict[str, Any]]:
    """Validate levels and store people by id (an e-mail address in a target is looked up)."""
    policy_from_spec("check", "check", levels, 0)
    cleaned = []
    for level in levels:
        targets = []
        for target in level["targets"]:
            ref = str(target["ref"])
            if target["kind"] == TargetKind.PERSON:
                ref = _staff_person(session, ref).id
            elif target["kind"] == TargetKind.TEAM:
                team = identity.team(session, ref)
                if team is None:
                    raise InvalidInput(f"no team {ref!r}")
                ref = team.id
            elif target["kind"] == TargetKind.SCHEDULE:
                ref = _schedule_id(session, ref)
            targets.append({"kind": target["kind"], "ref": ref, "round_robin": bool(target.get("round_robin", False))})
        cleaned.append({**level, "targets": targets})
    return cleaned


def _schedule_id(session: Session, ref: str) -> str:
    """A schedule's id from its id or name: a level must not page a schedule that does not exist."""
    from zhiban.oncall import service as oncall

    found = oncall.schedule_named(session, ref)
    if found is None:
        raise InvalidInput(f"no on-call schedule {ref!r}")
    return found[0]


def _checked_policy(
    session: Session,
    *,
    name: str,
    levels: list[dict[str, Any]],
    repeats: int,
    calendar_country: str,
    calendar_zone: str,
    policy_id: str | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """(name, normalized levels) of a policy about to be saved; `policy_id` is the one being edited."""
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidInput("policy name must be 1-200 characters")
    other = session.scalar(select(EscalationPolicyRow.id).where(EscalationPolicyRow.name == name))
    if other is not None and other != policy_id:
        raise Conflict(f"escalation policy {name!r} exists")
    cleaned = _normalize_levels(session, levels)
    policy_from_spec("check", name, cleaned, repeats)
    _business_calendar(calendar_country, calendar_zone)
    return name, cleaned


def create_policy(
    session: Session,
    clock: Clock,
    *,
    name: str,
    levels: list[dict[str, Any]],
    repeats: int = 0,
    calendar_country: str = "CN",
    calendar_zone: str = "Asia/Shanghai",
) -> EscalationPolicyRow:
    """Store an escalation policy (levels as JSON: see model.level_from_spec)."""
    name, cleaned = _checked_policy(
        session,
        name=name,
        levels=levels,
        repeats=repeats,
        calendar_country=calendar_country,
        calendar_zone=calendar_zone,
    )
    row = EscalationPolicyRow(
        name=name,
        levels=cleaned,
        repeats=repeats,
        calendar_country=calendar_country.upper(),
        calendar_zone=calendar_zone,
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    return row


def update_policy(
    session: Session,
    ref: str,
    *,
    name: str,
    levels: list[dict[str, Any]],
    repeats: int,
    calendar_country: str,
    calendar_zone: str,
) -> EscalationPolicyRow:
    """Replace a policy's name, levels, repeats and calendar; incidents paging by it take the new levels next step."""
    row = get_policy(session, ref)
    name, cleaned = _checked_policy(
        session,
        name=name,
        levels=levels,
        repeats=repeats,
        calendar_country=calendar_country,
        calendar_zone=calendar_zone,
        policy_id=row.id,
    )
    row.name = name
    row.levels = cleaned
    row.repeats = repeats
    row.calendar_country = calendar_country.upper()
    row.calendar_zone = calendar_zone
    session.flush()
    return row


def delete_policy(session: Session, ref: str) -> None:
    """Delete a policy no service uses (a service without one pages nobody, so that is never done silently)."""
    row = get_policy(session, ref)
    users = list(
        session.scalars(select(ServiceRow.name).where(ServiceRow.policy_id == row.id).order_by(ServiceRow.name))
    )
    if users:
        raise Conflict(f"services use this policy: {', '.join(users[:10])}; give them another one first")
    session.delete(row)
    session.flush()


def policies_targeting_schedule(session: Session, schedule_id: str) -> list[str]:
    """Names of the policies with a level that pages this schedule."""
    return [
        row.name
        for row in list_policies(session)
        if any(
            t.get("kind") == TargetKind.SCHEDULE and t.get("ref") == schedule_id
            for level in row.levels
            for t in level.get("targets", ())
        )
    ]


def get_policy(session: Session, ref: str) -> EscalationPolicyRow:
    """A policy by id or name."""
    row = session.get(EscalationPolicyRow, ref) or session.scalar(
        select(EscalationPolicyRow).where(EscalationPolicyRow.name == ref)
    )
    if row is None:
        raise NotFound(f"no escalation policy {ref!r}")
    return row


def list_policies(session: Session) -> list[EscalationPolicyRow]:
    return list(session.scalars(select(EscalationPolicyRow).order_by(EscalationPolicyRow.name).limit(500)))


def policy_of(row: EscalationPolicyRow) -> EscalationPolicy:
    """The pure policy of a stored one."""
    return policy_from_spec(row.id, row.name, row.levels, row.repeats)


def _check_service(
    session: Session,
    *,
    name: str,
    urgency_rule: str,
    support_country: str,
    support_zone: str,
    ack_timeout_minutes: int,
    description: str,
    organization_id: str | None,
    service_id: str | None = None,
) -> str:
    """The trimmed name of a service about to be saved; `service_id` is the one being edited."""
    name = name.strip()
    if not 1 <= len(name) <= 200 or len(description) > 1000:
        raise InvalidInput("service name must be 1-200 characters, description at most 1000")
    if urgency_rule not in URGENCY_RULES:
        raise InvalidInput(f"urgency rule must be one of {URGENCY_RULES}")
    if not 0 <= ack_timeout_minutes <= 24 * 60:
        raise InvalidInput("ack timeout is 0 (never) to 1440 minutes")
    other = session.scalar(select(ServiceRow.id).where(ServiceRow.name == name))
    if other is not None and other != service_id:
        raise Conflict(f"service {name!r} exists")
    if organization_id is not None and identity.organization(session, organization_id) is None:
        raise InvalidInput(f"no organization {organization_id!r}")
    _business_calendar(support_country, support_zone)
    return name


def create_service(
    session: Session,
    clock: Clock,
    *,
    name: str,
    policy: str | None = None,
    urgency_rule: str = "high",
    support_country: str = "CN",
    support_zone: str = "Asia/Shanghai",
    ack_timeout_minutes: int = 30,
    organization_id: str | None = None,
    description: str = "",
) -> ServiceRow:
    """Store a service that alerts come in on, with its escalation policy and urgency rule."""
    name = _check_service(
        session,
        name=name,
        urgency_rule=urgency_rule,
        support_country=support_country,
        support_zone=support_zone,
        ack_timeout_minutes=ack_timeout_minutes,
        description=description,
        organization_id=organization_id,
    )
    row = ServiceRow(
        name=name,
        description=description,
        policy_id=get_policy(session, policy).id if policy else None,
        urgency_rule=urgency_rule,
        support_country=support_country.upper(),
        support_zone=support_zone,
        ack_timeout_minutes=ack_timeout_minutes,
        organization_id=organization_id,
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    return row


def update_service(
    session: Session,
    ref: str,
    *,
    name: str,
    policy: str | None,
    urgency_rule: str,
    support_country: str,
    support_zone: str,
    ack_timeout_minutes: int,
    organization_id: str | None,
    description: str,
) -> ServiceRow:
    """Replace a service's settings (no `policy`: it pages nobody); open incidents keep their urgency."""
    row = get_service(session, ref)
    checked = _check_service(
        session,
        name=name,
        urgency_rule=urgency_rule,
        support_country=support_country,
        support_zone=support_zone,
        ack_timeout_minutes=ack_timeout_minutes,
        description=description,
        organization_id=organization_id,
        service_id=row.id,
    )
    policy_id = get_policy(session, policy).id if policy else None
    row.name = checked
    row.policy_id = policy_id
    row.urgency_rule = urgency_rule
    row.support_country = support_country.upper()
    row.support_zone = support_zone
    row.ack_timeout_minutes = ack_timeout_minutes
    row.organization_id = organization_id
    row.description = description
    session.flush()
    return row


def get_service(session: Session, ref: str) -> ServiceRow:
    """A service by id or name."""
    row = session.get(ServiceRow, ref) or session.scalar(select(ServiceRow).where(ServiceRow.name == ref))
    if row is None:
        raise NotFound(f"no service {ref!r}")
    return row


def list_services(session: Session) -> list[ServiceRow]:
    return list(session.scalars(select(ServiceRow).order_by(ServiceRow.name).limit(500)))


def find_service(session: Session, service_id: str | None) -> ServiceRow | None:
    """A service by id (None: no id, or it is gone)."""
    return session.get(ServiceRow, service_id) if service_id else None


def service_names(session: Session) -> dict[str, str]:
    """Every service's name by id."""
    return {i: n for i, n in session.execute(select(ServiceRow.id, ServiceRow.name))}


def services_by_policy(session: Session, policy_id: str | None = None) -> dict[str, list[str]]:
    """The names of the services each policy pages for (only `policy_id`'s, if given), by name."""
    query = select(ServiceRow.policy_id, ServiceRow.name)
    if policy_id is not None:
        query = query.where(ServiceRow.policy_id == policy_id)
    found: dict[str, list[str]] = {}
    for policy, name in session.execute(query.order_by(ServiceRow.name)):
        if policy:
            found.setdefault(policy, []).append(name)
    return found


def _business_calendar(country: str, zone: str) -> Any:
    from zhiban.calendars import country_calendar

    return country_calendar(country, zone)


# --- incidents: creation, alerts ------------------------------------------------------------------


def _event(
    session: Session,
    incident_id: str,
    kind: str,
    at: datetime,
    *,
    actor_id: str | None = None,
    body: str = "",
    data: dict[str, Any] | None = None,
    internal: bool = True,
) -> None:
    session.add(
        IncidentEventRow(
            incident_id=incident_id, kind=kind, at=at, actor_id=actor_id, body=body, data=data or {}, internal=internal
        )
    )


def _reserve_numbers(session: Session, count: int) -> list[int]:
    """`count` consecutive incident numbers, taken with one UPDATE of the counter row."""
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
) -> IncidentRow:
    """Open an incident on a service and start paging by its escalation policy."""
    now = clock.now()
    incident = _incident_row(service, _next_number(session), title, severity, group_key, urgency, now)
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


def _new_alert(
    session: Session, clock: Clock, integration: IntegrationRow, event: AlertEvent, count: int = 1
) -> IncidentRow | None:
    """Open an alert for `count` triggers of a dedup key that has none open (a new incident, or its group's)."""
    now = clock.now()
    service = session.get(ServiceRow, integration.service_id)
    assert service is not None
    incident = None
    if event.group_key and event.group_key != event.dedup_key:
        incident = session.scalar(
            select(IncidentRow)
            .where(
                IncidentRow.service_id == service.id,
                IncidentRow.group_key == event.group_key,
                IncidentRow.status != IncidentStatus.RESOLVED,
            )
            .order_by(IncidentRow.triggered_at.desc())
            .limit(1)
        )
    try:
        with session.begin_nested():
            created = incident is None
            if incident is None:
                incident = open_incident(
                    session, clock, service, title=event.summary, severity=event.severity, group_key=event.group_key
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
    # A group key other than the dedup key joins an open incident of its group: rare, done one by one.
    single = [f for f in fresh if f[1].group_key and f[1].group_key != f[1].dedup_key]
    together = [f for f in fresh if not (f[1].group_key and f[1].group_key != f[1].dedup_key)]
    if together:
        try:
            with session.begin_nested():
                _open_together(session, clock, together)
        except IntegrityError:
            # Another process opened one of these keys meanwhile: take them one at a time.
            single = together + single
    _open_grouped(session, clock, single)


def _open_grouped(session: Session, clock: Clock, fresh: list[tuple[IntegrationRow, AlertEvent, int]]) -> None:
    """New alerts with a group key join their group's open incident (or open one), a group at a time.

    As `_new_alert` would one by one: the group's first alert opens the incident when none is open,
    every other alert joins it with an "alert" timeline event. A concurrent writer of one of the keys
    makes that group fall back to one at a time.
    """
    groups: dict[tuple[str, str], list[tuple[IntegrationRow, AlertEvent, int]]] = {}
    for item in fresh:
        integration, event, count = item
        if event.group_key and event.group_key != event.dedup_key:
            groups.setdefault((integration.service_id, event.group_key), []).append(item)
        else:
            _new_alert(session, clock, integration, event, count)
    now = clock.now()
    for (service_id, group_key), members in groups.items():
        if len(members) == 1:
            _new_alert(session, clock, *members[0])
            continue
        service = session.get(ServiceRow, service_id)
        assert service is not None
        try:
            with session.begin_nested():
                incident = _open_incident_of_group(session, service.id, group_key)
                joining = members
                if incident is None:
                    first = members[0][1]
                    incident = open_incident(
                        session, clock, service, title=first.summary, severity=first.severity, group_key=group_key
                    )
                    joining = members[1:]
                incident.alert_count += len(members)
                session.flush()
                # Thousands of rows for one storm: bulk INSERTs, not ORM objects one by one.
                alerts = cast(Table, AlertRow.__table__)
                session.execute(insert(alerts), [_alert_values(i, incident.id, e, n, now) for i, e, n in members])
                if joining:
                    session.execute(
                        insert(cast(Table, IncidentEventRow.__table__)),
                        [
                            {
                                "incident_id": incident.id,
                                "kind": "alert",
                                "at": now,
                                "actor_id": None,
                                "body": e.summary[:1024],
                                "data": {"dedup_key": e.dedup_key},
                                "internal": True,
                            }
                            for _, e, _ in joining
                        ],
                    )
        except IntegrityError:
            for integration, event, count in members:
                _new_alert(session, clock, integration, event, count)


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


def _open_incident_of_group(session: Session, service_id: str, group_key: str) -> IncidentRow | None:
    return session.scalar(
        select(IncidentRow)
        .where(
            IncidentRow.service_id == service_id,
            IncidentRow.group_key == group_key,
            IncidentRow.status != IncidentStatus.RESOLVED,
        )
        .order_by(IncidentRow.triggered_at.desc())
        .limit(1)
    )


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
    # Two flushes, each a few multi-row INSERTs: incidents first, for the foreign keys of the rest.
    session.flush()
    with session.no_autoflush:
        for (integration, event, count), (incident, service) in zip(fresh, opened, strict=True):
            _event(session, incident.id, "triggered", now, body=incident.title, internal=False)
            session.add(_alert_row(integration, incident, event, count, now))
            start_escalation(session, clock, incident, service, audit=False)
    session.flush()


# --- escalation -----------------------------------------------------------------------------------


def _resolver(session: Session, incident: IncidentRow) -> Any:
    def resolve(target: Target, at: datetime) -> Sequence[str]:
        if target.kind is TargetKind.PERSON:
            person = identity.person(session, target.ref)
            return [person.id] if person is not None and person.active else []
        if target.kind is TargetKind.TEAM:
            return [p.id for p in identity.team_members(session, target.ref) if p.active]
        try:
            from zhiban.oncall.service import on_call_now  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            log.warning("schedule target %s: on-call schedules are not available", target.ref)
            return []
        try:
            found: list[str] = on_call_now(session, target.ref, at)
        except NotFound:
            log.warning("schedule target %s: no such schedule", target.ref)
            return []
        return found

    return resolve


def _plan_next(
    session: Session,
    incident: IncidentRow,
    service: ServiceRow,
    policy_row: EscalationPolicyRow,
    previous: EscalationStep | None,
) -> EscalationStep | None:
    support = _business_calendar(service.support_country, service.support_zone)
    business = _business_calendar(policy_row.calendar_country, policy_row.calendar_zone)
    return next_step(
        policy_of(policy_row),
        previous,
        incident.triggered_at if previous is not None else _generation_start(incident),
        Urgency(incident.urgency),
        _resolver(session, incident),
        support.is_open,
        is_business_time=business.is_open,
        round_robin_offset=incident.round_robin_offset,
    )


def _generation_start(incident: IncidentRow) -> datetime:
    return incident.updated_at if incident.generation else incident.triggered_at


def _escalate_key(incident_id: str, generation: int, step_no: int) -> str:
    return f"esc:{incident_id}:{generation}:{step_no}"


def _step_row(incident: IncidentRow, step: EscalationStep) -> EscalationStepRow:
    return EscalationStepRow(
        incident_id=incident.id,
        generation=incident.generation,
        step_no=step.step_no,
        level_index=step.level_index,
        repeat=step.repeat,
        due_at=step.due_at,
        state="scheduled",
        planned_targets=list(step.targets),
        paged=[],
    )


def _schedule(session: Session, clock: Clock, incident: IncidentRow, step: EscalationStep) -> None:
    session.add(_step_row(incident, step))
    enqueue(
        session,
        ESCALATE_JOB,
        {"incident": incident.id, "generation": incident.generation, "step": step.step_no},
        due_at=step.due_at,
        dedup_key=_escalate_key(incident.id, incident.generation, step.step_no),
        max_attempts=20,
    )


def start_escalation(
    session: Session, clock: Clock, incident: IncidentRow, service: ServiceRow, *, audit: bool = True
) -> None:
    """Plan the first step of the service's policy and arm its timer (and, unless the caller did, the auditor)."""
    if audit:
        ensure_auditor(session, clock)
    if service.policy_id is None:
        _event(session, incident.id, "no_policy", clock.now(), body="the service has no escalation policy")
        return
    policy_row = session.get(EscalationPolicyRow, service.policy_id)
    assert policy_row is not None
    # Team round robins begin one further along for each incident, so the load is shared.
    incident.round_robin_offset = policy_row.round_robin_offset
    policy_row.round_robin_offset = (policy_row.round_robin_offset + 1) % 1_000_000
    step = _plan_next(session, incident, service, policy_row, None)
    if step is None:
        _event(session, incident.id, "nobody_to_page", clock.now(), body="the policy resolves to nobody")
        return
    if step.due_at > clock.now():
        _schedule(session, clock, incident, step)
        return
    # A first step due now (high urgency, no delay) pages in this very transaction: the pages are queued
    # as durably as the incident itself, without a timer to claim and the incident to load again first.
    _fire(session, clock, incident, service, policy_row, _step_row(incident, step))


def fire_step(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The `incident.escalate` timer: page this step's people and arm the next step, all in one transaction."""
    clock = ctx.clock
    with ctx.session_factory() as session, session.begin():
        incident = session.scalar(
            select(IncidentRow).where(IncidentRow.id == str(payload.get("incident"))).with_for_update()
        )
        step_row = session.scalar(
            select(EscalationStepRow).where(
                EscalationStepRow.incident_id == str(payload.get("incident")),
                EscalationStepRow.generation == int(payload.get("generation", -1)),
                EscalationStepRow.step_no == int(payload.get("step", -1)),
            )
        )
        if incident is None or step_row is None or step_row.state != "scheduled":
            ctx.finish(session)
            return
        if incident.status != IncidentStatus.TRIGGERED or incident.generation != step_row.generation:
            step_row.state = "cancelled"
            ctx.finish(session)
            return
        service = session.get(ServiceRow, incident.service_id)
        assert service is not None
        policy_row = session.get(EscalationPolicyRow, service.policy_id) if service.policy_id else None
        _fire(session, clock, incident, service, policy_row, step_row)
        ctx.finish(session)


def _fire(
    session: Session,
    clock: Clock,
    incident: IncidentRow,
    service: ServiceRow,
    policy_row: EscalationPolicyRow | None,
    step_row: EscalationStepRow,
) -> None:
    """Page a due step's people now and arm the policy's next step, in the caller's transaction."""
    now = clock.now()
    people = list(step_row.planned_targets)
    if policy_row is not None and step_row.level_index < len(policy_row.levels):
        # Whoever is on call now, not when the step was planned.
        level = policy_of(policy_row).levels[step_row.level_index]
        current: list[str] = []
        resolve = _resolver(session, incident)
        for target in level.targets:
            found = list(resolve(target, now))
            if target.round_robin and found:
                found = [found[(incident.round_robin_offset + step_row.repeat) % len(found)]]
            current.extend(p for p in found if p not in current)
        people = current or people
    paged = [p for p in people if page_person(session, clock, incident, service, p, step_row.step_no)]
    step_row.state = "done"
    step_row.fired_at = now
    step_row.paged = people
    _event(
        session,
        incident.id,
        "escalated",
        now,
        body=f"level {step_row.level_index + 1}" + (f", pass {step_row.repeat + 1}" if step_row.repeat else ""),
        data={"step": step_row.step_no, "people": people, "paged": paged},
    )
    session.add(step_row)  # a step fired as it was planned is new here: one INSERT of the finished step
    if policy_row is not None:
        previous = EscalationStep(
            step_row.step_no, step_row.level_index, step_row.repeat, step_row.due_at, tuple(people)
        )
        following = _plan_next(session, incident, service, policy_row, previous)
        if following is not None:
            _schedule(session, clock, incident, following)


def page_person(
    session: Session,
    clock: Clock,
    incident: IncidentRow,
    service: ServiceRow,
    person_id: str,
    step_no: int,
    target_prefix: str = "",
) -> bool:
    """Queue this person's pages for a step, one per notification rule; False when nothing new was queued."""
    from zhiban.notify import service as notify
    from zhiban.notify.render import IncidentNotice, render_incident

    person = identity.person(session, person_id)
    if person is None:
        return False
    now = clock.now()
    _, base = _links()
    rules = notify.paging_rules(session, person.id, incident.urgency)
    plan: list[tuple[str, str | None, dict[str, Any], int]] = [
        (method.channel, method.id, method.config, rule.delay_minutes) for rule, method in rules
    ]
    if not plan:
        # Someone with no rules is still paged: by e-mail at once.
        plan = [("email", None, {"to": [person.email]}, 0)]
    notice = IncidentNotice(
        kind="page",
        title=incident.title[:200],
        severity=incident.severity,
        service=service.name[:100],
        since=incident.triggered_at,
        timezone=person.timezone,
        ack_url=ack_url(incident.id, person.id, now),
        incident_url=f"{base}/incidents/{incident.id}",
    )
    language: Literal["zh", "en"] = "zh" if person.language == "zh" else "en"
    queued = False
    for channel, method_id, config, delay in plan:
        target = f"{target_prefix}{person.id}.{method_id or channel}"
        key = step_key(incident.id, step_no, target, incident.generation)
        message = render_incident(notice, language, key)
        _, new = notify.queue_message(
            session,
            clock,
            message=message,
            subject_kind="incident",
            subject_id=incident.id,
            channel=channel,
            config=config,
            due_at=now + timedelta(minutes=delay),
            person_id=person.id,
            contact_method_id=method_id,
        )
        queued = queued or new
    return queued


def _stop_paging(session: Session, clock: Clock, incident: IncidentRow, reason: str) -> None:
    from zhiban.notify import service as notify

    steps = list(
        session.scalars(
            select(EscalationStepRow).where(
                EscalationStepRow.incident_id == incident.id, EscalationStepRow.state == "scheduled"
            )
        )
    )
    for step in steps:
        step.state = "cancelled"
        cancel(session, _escalate_key(incident.id, step.generation, step.step_no))
    notify.cancel_pending(session, clock, "incident", incident.id, reason)


def ensure_auditor(session: Session, clock: Clock) -> None:
    now = clock.now()
    bucket = int(now.timestamp() // AUDIT_EVERY.total_seconds())
    # Insert-if-absent in one statement: every batch that opens an incident passes here.
    enqueue_many(session, [(AUDIT_JOB, {}, now + AUDIT_EVERY, f"incident.audit:{bucket + 1}")])


# --- acknowledge, resolve, re-trigger -------------------------------------------------------------


def _acknowledge(session: Session, clock: Clock, incident: IncidentRow, person_id: str | None, via: str) -> None:
    now = clock.now()
    incident.status = IncidentStatus.ACKNOWLEDGED.value
    incident.acknowledged_at = now
    incident.acknowledged_by = person_id
    incident.ack_seq += 1
    incident.updated_at = now
    _stop_paging(session, clock, incident, "acknowledged")
    _event(session, incident.id, "acknowledged", now, actor_id=person_id, body=via, internal=False)
    service = session.get(ServiceRow, incident.service_id)
    if service is not None and service.ack_timeout_minutes:
        enqueue(
            session,
            ACK_TIMEOUT_JOB,
            {"incident": incident.id, "ack_seq": incident.ack_seq},
            due_at=now + timedelta(minutes=service.ack_timeout_minutes),
            dedup_key=f"inc.acktimeout:{incident.id}:{incident.ack_seq}",
        )


def _resolve(session: Session, clock: Clock, incident: IncidentRow, person_id: str | None, via: str) -> None:
    now = clock.now()
    incident.status = IncidentStatus.RESOLVED.value
    incident.resolved_at = now
    incident.resolved_by = person_id
    incident.updated_at = now
    _stop_paging(session, clock, incident, "resolved")
    session.execute(
        update(AlertRow)
        .where(AlertRow.incident_id == incident.id, AlertRow.open_key.is_not(None))
        .values(open_key=None, status="resolved", resolved_at=now)
        .execution_options(synchronize_session=False)
    )
    _event(session, incident.id, "resolved", now, actor_id=person_id, body=via, internal=False)


def _load_for_update(session: Session, incident_id: str) -> IncidentRow:
    row = session.scalar(select(IncidentRow).where(IncidentRow.id == incident_id).with_for_update())
    if row is None:
        raise NotFound(f"no incident {incident_id}")
    return row


def acknowledge(
    session: Session, clock: Clock, principal: Principal, incident_id: str, via: str = "web"
) -> IncidentRow:
    """Acknowledge as a staff member: paging stops; an acknowledgement that times out re-triggers."""
    principal.require_staff()
    incident = _load_for_update(session, incident_id)
    if incident.status == IncidentStatus.RESOLVED:
        raise Conflict(f"incident #{incident.number} is resolved")
    if incident.status == IncidentStatus.TRIGGERED:
        _acknowledge(session, clock, incident, principal.person_id, via)
    return incident


def resolve(session: Session, clock: Clock, principal: Principal, incident_id: str, via: str = "web") -> IncidentRow:
    """Resolve as a staff member: paging stops and its alerts close."""
    principal.require_staff()
    incident = _load_for_update(session, incident_id)
    if incident.status != IncidentStatus.RESOLVED:
        _resolve(session, clock, incident, principal.person_id, via)
    return incident


def acknowledge_as(session: Session, clock: Clock, incident_id: str, person_ref: str, via: str) -> IncidentRow:
    """Acknowledge as a person named by id or e-mail (CLI, signed links)."""
    from zhiban.identity.service import principal_of

    person = _staff_person(session, person_ref)
    return acknowledge(session, clock, principal_of(person), find_incident_id(session, incident_id), via)


def owning_team(session: Session, policy_id: str | None, acknowledged_by: str | None) -> str | None:
    """Who owns an incident: the team its policy pages first (a team target, a person's team, or a schedule's
    name), else the acknowledger's first team."""
    from zhiban.oncall import service as oncall

    policy = session.get(EscalationPolicyRow, policy_id) if policy_id else None
    for level in (policy.levels or ()) if policy is not None else ():
        for target in level.get("targets", ()):
            kind, ref = target.get("kind"), str(target.get("ref", ""))
            if kind == "team" and (team := identity.team(session, ref, by_name=False)) is not None:
                return team.name
            if kind == "person" and (teams := identity.teams_of(session, ref)):
                return teams[0].name
            if kind == "schedule" and (schedule := oncall.schedule_named(session, ref)) is not None:
                return schedule[1][:200]
    teams = identity.teams_of(session, acknowledged_by) if acknowledged_by else []
    return teams[0].name if teams else None


def incident_for_link(session: Session, incident_id: str) -> IncidentRow | None:
    """The incident a signed acknowledge link names (the link is the credential: no principal)."""
    return session.get(IncidentRow, incident_id)


def find_incident_id(session: Session, ref: str) -> str:
    """An incident id from an id or a number (`42` or `#42`)."""
    text = ref.strip().lstrip("#")
    if text.isdigit() and len(text) < 10:
        found = session.scalar(select(IncidentRow.id).where(IncidentRow.number == int(text)))
        if found:
            return found
    return text


def ack_timed_out(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The `incident.ack_timeout` timer: an acknowledgement nobody followed up re-triggers the incident."""
    clock = ctx.clock
    with ctx.session_factory() as session, session.begin():
        incident = session.scalar(
            select(IncidentRow).where(IncidentRow.id == str(payload.get("incident"))).with_for_update()
        )
        if (
            incident is not None
            and incident.status == IncidentStatus.ACKNOWLEDGED
            and incident.ack_seq == int(payload.get("ack_seq", -1))
        ):
            now = clock.now()
            incident.status = IncidentStatus.TRIGGERED.value
            incident.acknowledged_at = None
            incident.acknowledged_by = None
            incident.generation += 1
            incident.updated_at = now
            _event(session, incident.id, "retriggered", now, body="acknowledgement timed out", internal=False)
            service = session.get(ServiceRow, incident.service_id)
            assert service is not None
            start_escalation(session, clock, incident, service)
        ctx.finish(session)


# --- notes, responders, tickets -------------------------------------------------------------------


def add_note(session: Session, clock: Clock, principal: Principal, incident_id: str, body: str) -> IncidentEventRow:
    """An internal note on the timeline (staff only; customers never see notes)."""
    principal.require_staff()
    body = body.strip()
    if not 1 <= len(body) <= MAX_NOTE:
        raise InvalidInput(f"a note is 1-{MAX_NOTE} characters")
    incident = session.get(IncidentRow, incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    row = IncidentEventRow(
        incident_id=incident.id,
        kind="note",
        at=clock.now(),
        actor_id=principal.person_id,
        body=body,
        data={},
        internal=True,
    )
    session.add(row)
    session.flush()
    return row


def add_responder(
    session: Session, clock: Clock, principal: Principal, incident_id: str, person_ref: str
) -> ResponderRow:
    """Add a responder by hand; while the incident is triggered they are paged at once."""
    principal.require_staff()
    incident = _load_for_update(session, incident_id)
    person = _staff_person(session, person_ref)
    existing = session.get(ResponderRow, (incident.id, person.id))
    if existing is not None:
        return existing
    now = clock.now()
    row = ResponderRow(incident_id=incident.id, person_id=person.id, added_by=principal.person_id, added_at=now)
    session.add(row)
    _event(
        session,
        incident.id,
        "responder_added",
        now,
        actor_id=principal.person_id,
        data={"person": person.id},
        body=person.name,
    )
    if incident.status != IncidentStatus.RESOLVED:
        service = session.get(ServiceRow, incident.service_id)
        assert service is not None
        page_person(session, clock, incident, service, person.id, 0, target_prefix="responder.")
    session.flush()
    return row


def link_ticket(session: Session, incident_id: str, ticket_id: int) -> bool:
    """Link a ticket to an incident (its organization then sees the incident); False if already linked."""
    if session.get(IncidentRow, incident_id) is None:
        raise NotFound(f"no incident {incident_id}")
    if session.get(IncidentTicketRow, (incident_id, ticket_id)) is not None:
        return False
    from zhiban.tickets.service import get_ticket

    ticket = get_ticket(session, system_principal(), ticket_id).ticket
    session.add(
        IncidentTicketRow(
            incident_id=incident_id,
            ticket_id=ticket.id,
            organization_id=ticket.organization_id,
            linked_at=ticket.updated_at,
        )
    )
    session.flush()
    return True


def _visible_to_org(organization_id: str) -> Any:
    linked = exists().where(
        IncidentTicketRow.incident_id == IncidentRow.id, IncidentTicketRow.organization_id == organization_id
    )
    return or_(IncidentRow.organization_id == organization_id, linked)


def open_incidents_for_org(session: Session, organization_id: str) -> list[IncidentRow]:
    """Open incidents a customer organization may see (its own service, or linked to its tickets)."""
    query = select(IncidentRow).where(IncidentRow.status != IncidentStatus.RESOLVED, _visible_to_org(organization_id))
    return list(session.scalars(query.order_by(IncidentRow.triggered_at.desc()).limit(200)))


# --- reading --------------------------------------------------------------------------------------


def list_incidents(
    session: Session, principal: Principal, *, status: str | None = None, limit: int = 50, offset: int = 0
) -> list[IncidentRow]:
    """Incidents the caller may see, newest first (customers: only those linked to their organization)."""
    query = select(IncidentRow)
    if not principal.is_staff:
        if principal.organization_id is None:
            return []
        query = query.where(_visible_to_org(principal.organization_id))
    if status is not None:
        if status == "open":
            query = query.where(IncidentRow.status != IncidentStatus.RESOLVED)
        elif status in {s.value for s in IncidentStatus}:
            query = query.where(IncidentRow.status == status)
        else:
            raise InvalidInput("status must be open, triggered, acknowledged or resolved")
    query = query.order_by(IncidentRow.triggered_at.desc(), IncidentRow.number.desc())
    return list(session.scalars(query.limit(limit).offset(offset)))


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str
    actor_id: str | None
    body: str
    data: dict[str, Any]


@dataclass(frozen=True)
class IncidentView:
    incident: IncidentRow
    service_name: str
    timeline: list[TimelineEntry]
    ticket_ids: list[int]
    responder_ids: list[str]
    alerts: list[AlertRow]


def get_incident(session: Session, principal: Principal, incident_id: str) -> IncidentView:
    """One incident with its timeline; customers get the public part only, staff also notes and pages."""
    incident = session.get(IncidentRow, incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    if not principal.is_staff:
        visible = principal.organization_id is not None and session.scalar(
            select(IncidentRow.id).where(IncidentRow.id == incident_id, _visible_to_org(principal.organization_id))
        )
        if not visible:
            raise NotFound(f"no incident {incident_id}")  # not Forbidden: its existence is not theirs to learn
    events_query = select(IncidentEventRow).where(IncidentEventRow.incident_id == incident.id)
    if not principal.is_staff:
        events_query = events_query.where(IncidentEventRow.internal.is_(False))
    timeline = [
        TimelineEntry(e.at, e.kind, e.actor_id, e.body, dict(e.data))
        for e in session.scalars(events_query.order_by(IncidentEventRow.id).limit(2000))
    ]
    alerts: list[AlertRow] = []
    if principal.is_staff:
        from zhiban.notify import service as notify

        for n in notify.notifications_of(session, "incident", incident.id):
            moment = n.finished_at or n.handed_at or n.created_at
            timeline.append(
                TimelineEntry(
                    moment,
                    f"notification_{n.state}",
                    None,
                    n.channel,
                    {"person": n.person_id, "channel": n.channel, "key": n.idempotency_key, "error": n.last_error},
                )
            )
        timeline.sort(key=lambda e: e.at)
        alerts = list(
            session.scalars(
                select(AlertRow).where(AlertRow.incident_id == incident.id).order_by(AlertRow.created_at).limit(200)
            )
        )
    tickets_query = select(IncidentTicketRow.ticket_id).where(IncidentTicketRow.incident_id == incident.id)
    if not principal.is_staff:
        tickets_query = tickets_query.where(IncidentTicketRow.organization_id == principal.organization_id)
    service = session.get(ServiceRow, incident.service_id)
    responders = list(session.scalars(select(ResponderRow.person_id).where(ResponderRow.incident_id == incident.id)))
    return IncidentView(
        incident=incident,
        service_name=service.name if service else "",
        timeline=timeline,
        ticket_ids=sorted(session.scalars(tickets_query)),
        responder_ids=responders if principal.is_staff else [],
        alerts=alerts,
    )


def require_staff_for_write(principal: Principal) -> None:
    if not principal.is_staff:
        raise Forbidden("incidents are changed by agents and admins only")

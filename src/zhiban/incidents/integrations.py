"""Integrations: where alerts come in (Events v2, Alertmanager, a generic webhook, heartbeats), and the demo set."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import InvalidInput, NotFound
from zhiban.engine import JobContext, cancel, enqueue
from zhiban.incidents import service
from zhiban.incidents.model import (
    INTEGRATION_TYPES,
    AlertEvent,
    EventRejected,
    parse_alertmanager,
    parse_events_v2,
    parse_generic,
)
from zhiban.incidents.store import EscalationPolicyRow, IncidentRow, IntegrationRow

HEARTBEAT_JOB = "incident.heartbeat"
MIN_HEARTBEAT = 10
MAX_HEARTBEAT = 7 * 24 * 3600
NOT_AN_EVENTS_V2_KEY = "'routing_key' does not name an Events API v2 integration"


def create_integration(
    session: Session,
    clock: Clock,
    *,
    type_: str,
    service_ref: str,
    name: str = "",
    heartbeat_seconds: int | None = None,
) -> IntegrationRow:
    """A new integration on a service, with a fresh secret key (the Events v2 routing key)."""
    if type_ not in INTEGRATION_TYPES:
        raise InvalidInput(f"integration type must be one of {INTEGRATION_TYPES}")
    svc = service.get_service(session, service_ref)
    if type_ == "heartbeat":
        if heartbeat_seconds is None or not MIN_HEARTBEAT <= heartbeat_seconds <= MAX_HEARTBEAT:
            raise InvalidInput(f"a heartbeat needs an interval of {MIN_HEARTBEAT} to {MAX_HEARTBEAT} seconds")
    elif heartbeat_seconds is not None:
        raise InvalidInput("only heartbeat integrations have an interval")
    if len(name) > 200:
        raise InvalidInput("name must be at most 200 characters")
    row = IntegrationRow(
        type=type_,
        name=name.strip() or f"{type_} on {svc.name}",
        service_id=svc.id,
        # 32 hex characters, the shape of a PagerDuty integration key, so existing senders accept it.
        key=secrets.token_hex(16),
        heartbeat_seconds=heartbeat_seconds,
        ping_seq=0,
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    if row.heartbeat_seconds is not None:
        # A monitor that never pings at all is missed too.
        enqueue(
            session,
            HEARTBEAT_JOB,
            {"integration": row.id, "seq": 0},
            due_at=row.created_at + timedelta(seconds=row.heartbeat_seconds),
            dedup_key=_heartbeat_key(row.id, 0),
        )
    return row


def list_integrations(session: Session, service_ref: str | None = None) -> list[IntegrationRow]:
    query = select(IntegrationRow).order_by(IntegrationRow.created_at, IntegrationRow.id).limit(500)
    if service_ref:
        query = query.where(IntegrationRow.service_id == service.get_service(session, service_ref).id)
    return list(session.scalars(query))


def by_key(session: Session, key: str, type_: str) -> IntegrationRow:
    """The integration of this type with this key; NotFound otherwise (a key of another type does not work)."""
    row = session.scalar(select(IntegrationRow).where(IntegrationRow.key == key)) if len(key) <= 64 else None
    if row is None or row.type != type_:
        raise NotFound("no integration with this key")
    return row


def receive_events_v2(session: Session, clock: Clock, doc: Any) -> str:
    """Apply a PagerDuty Events API v2 event; returns its dedup key. EventRejected / NotFound for bad ones."""
    routing_key, event = parse_events_v2(doc, uuid.uuid4().hex)
    row = session.scalar(select(IntegrationRow).where(IntegrationRow.key == routing_key))
    if row is None or row.type != "events-v2":
        raise EventRejected([NOT_AN_EVENTS_V2_KEY])
    service.ingest(session, clock, row, event)
    return event.dedup_key


def receive_events_v2_batch(
    session: Session, clock: Clock, events: Sequence[tuple[str, AlertEvent]]
) -> list[EventRejected | None]:
    """Apply parsed Events v2 events (routing key, event) in order, in the caller's transaction.

    One query finds every routing key; runs of triggers go through `service.ingest_triggers`. Returns,
    per event, None when applied or the EventRejected that refused it (an unknown routing key).
    """
    keys = {routing_key for routing_key, _ in events if len(routing_key) <= 64}
    rows = {row.key: row for row in session.scalars(select(IntegrationRow).where(IntegrationRow.key.in_(keys)))}
    outcomes: list[EventRejected | None] = []
    triggers: list[tuple[IntegrationRow, AlertEvent]] = []
    for routing_key, event in events:
        row = rows.get(routing_key)
        if row is None or row.type != "events-v2":
            outcomes.append(EventRejected([NOT_AN_EVENTS_V2_KEY]))
            continue
        outcomes.append(None)
        if event.action == "trigger":
            triggers.append((row, event))
            continue
        # An acknowledge or resolve sees every trigger before it.
        service.ingest_triggers(session, clock, triggers)
        triggers = []
        service.ingest(session, clock, row, event)
    service.ingest_triggers(session, clock, triggers)
    return outcomes


def receive_alertmanager(session: Session, clock: Clock, key: str, doc: Any) -> int:
    """Apply an Alertmanager webhook; returns how many alerts it carried."""
    row = by_key(session, key, "alertmanager")
    events = parse_alertmanager(doc)
    service.ingest_group(session, clock, row, events)
    return len(events)


def receive_webhook(session: Session, clock: Clock, key: str, doc: Any) -> str:
    """Apply a generic JSON webhook event; returns its dedup key."""
    row = by_key(session, key, "webhook")
    event = parse_generic(doc)
    service.ingest(session, clock, row, event)
    return event.dedup_key


def _heartbeat_key(integration_id: str, seq: int) -> str:
    return f"hb:{integration_id}:{seq}"


def ping(session: Session, clock: Clock, key: str) -> IntegrationRow:
    """A heartbeat ping: re-arm the missed-ping timer, and resolve a missed-heartbeat incident if one is open."""
    row = session.scalar(select(IntegrationRow).where(IntegrationRow.key == key).with_for_update())
    if row is None or row.type != "heartbeat" or row.heartbeat_seconds is None:
        raise NotFound("no heartbeat with this key")
    now = clock.now()
    cancel(session, _heartbeat_key(row.id, row.ping_seq))
    row.ping_seq += 1
    row.last_ping_at = now
    enqueue(
        session,
        HEARTBEAT_JOB,
        {"integration": row.id, "seq": row.ping_seq},
        due_at=now + timedelta(seconds=row.heartbeat_seconds),
        dedup_key=_heartbeat_key(row.id, row.ping_seq),
    )
    service.ingest(session, clock, row, AlertEvent(action="resolve", dedup_key=f"heartbeat:{row.id}"))
    return row


def heartbeat_missed(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The heartbeat timer: no ping came since the one that armed it, so raise an incident."""
    with ctx.session_factory() as session, session.begin():
        row = session.scalar(
            select(IntegrationRow).where(IntegrationRow.id == str(payload.get("integration"))).with_for_update()
        )
        if row is not None and row.ping_seq == int(payload.get("seq", -1)):
            last = row.last_ping_at.isoformat() if row.last_ping_at else "never"
            event = AlertEvent(
                action="trigger",
                dedup_key=f"heartbeat:{row.id}",
                summary=f"Heartbeat {row.name} missed: no ping within {row.heartbeat_seconds} s (last {last})",
                severity="critical",
                source="zhiban heartbeat",
                group_key=f"heartbeat:{row.id}",
            )
            service.ingest(session, ctx.clock, row, event)
        ctx.finish(session)


# --- demo -----------------------------------------------------------------------------------------

DEMO_POLICY = "Demo network on-call"
DEMO_SERVICES = ("media network cn-east", "P1 tickets", "LiveCo app")


def seed_demo_integrations(session: Session, clock: Clock) -> list[IntegrationRow]:
    """Demo escalation policy (li.na@zhiban.demo, then admin@zhiban.demo), services and two integrations.

    Idempotent: returns [] when the demo policy exists. Needs the demo people (demo.seed) first.
    """
    from zhiban.identity import service as identity

    if session.scalar(select(EscalationPolicyRow.id).where(EscalationPolicyRow.name == DEMO_POLICY)):
        return []
    policy = service.create_policy(
        session,
        clock,
        name=DEMO_POLICY,
        levels=[
            {"delay_minutes": 5, "targets": [{"kind": "person", "ref": "li.na@zhiban.demo"}]},
            {"delay_minutes": 10, "targets": [{"kind": "person", "ref": "admin@zhiban.demo"}]},
        ],
        repeats=1,
    )
    found = identity.organization_with_slug(session, "liveco")
    liveco = found.id if found is not None else None
    services = [
        service.create_service(session, clock, name=DEMO_SERVICES[0], policy=policy.id, urgency_rule="high"),
        service.create_service(session, clock, name=DEMO_SERVICES[1], policy=policy.id, urgency_rule="severity"),
        service.create_service(
            session, clock, name=DEMO_SERVICES[2], policy=policy.id, urgency_rule="severity", organization_id=liveco
        ),
    ]
    return [
        create_integration(session, clock, type_="events-v2", service_ref=services[0].id, name="Events API v2"),
        create_integration(session, clock, type_="alertmanager", service_ref=services[0].id, name="Alertmanager"),
    ]


def incident_count(session: Session) -> int:
    """How many incidents exist (benchmarks and checks)."""
    from sqlalchemy import func

    return int(session.scalar(select(func.count()).select_from(IncidentRow)) or 0)

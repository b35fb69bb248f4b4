"""Tables of services, escalation policies, integrations, alerts, incidents and their timelines.

An alert's `open_key` equals its dedup key while the alert is open and is NULL once resolved: the
unique (integration, open_key) pair lets concurrent triggers with one dedup key fold into one alert,
while a trigger after a resolve opens a new one (as PagerDuty does).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, Sequence, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from zhiban.store.db import Base, UTCDateTime, new_id

JSONType = JSON().with_variant(JSONB(), "postgresql")


class EscalationPolicyRow(Base):
    __tablename__ = "escalation_policies"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # Levels as stored JSON (see model.policy_from_spec); validated before every save.
    levels: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    repeats: Mapped[int] = mapped_column(Integer, default=0)
    # Business hours for level conditions: a country's holidays in a zone (calendars.country_calendar).
    calendar_country: Mapped[str] = mapped_column(String(3), default="CN")
    calendar_zone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    # Unused since round robins turn by incident number (escalation.rotation_of): a per-incident UPDATE of
    # this row serialized a storm's transactions. Kept so that older databases need no migration.
    round_robin_offset: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ServiceRow(Base):
    __tablename__ = "incident_services"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(String(1000), default="")
    policy_id: Mapped[str | None] = mapped_column(
        ForeignKey("escalation_policies.id", ondelete="SET NULL"), nullable=True
    )
    # high | low | severity (critical/error page now, warning/info wait for support hours).
    urgency_rule: Mapped[str] = mapped_column(String(16), default="high")
    support_country: Mapped[str] = mapped_column(String(3), default="CN")
    support_zone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    # An acknowledged incident goes back to triggered after this long (0: never).
    ack_timeout_minutes: Mapped[int] = mapped_column(Integer, default=30)
    # Incidents of a customer-facing service may be linked to that customer's organization.
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="SET NULL"), nullable=True
    )
    # Storm grouping (model.GroupingRule): off | service | fields, the fields, and the window (0: while open).
    grouping_rule: Mapped[str] = mapped_column(String(16), default="off", server_default="off")
    grouping_fields: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    grouping_window_minutes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IntegrationRow(Base):
    __tablename__ = "incident_integrations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(16))  # events-v2 | alertmanager | webhook | heartbeat
    name: Mapped[str] = mapped_column(String(200))
    service_id: Mapped[str] = mapped_column(ForeignKey("incident_services.id", ondelete="CASCADE"), index=True)
    # The routing key (Events v2) or URL key: a secret that names the integration.
    key: Mapped[str] = mapped_column(String(64), unique=True)
    heartbeat_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_ping_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Bumped by each ping: a heartbeat timer only fires for the ping that armed it.
    ping_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IncidentRow(Base):
    __tablename__ = "incidents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    title: Mapped[str] = mapped_column(String(1024))
    service_id: Mapped[str] = mapped_column(ForeignKey("incident_services.id", ondelete="RESTRICT"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    urgency: Mapped[str] = mapped_column(String(8))
    severity: Mapped[str] = mapped_column(String(16))
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="SET NULL"), nullable=True, index=True
    )
    # The ticket this internal incident pages on-duty for (one incident per ticket; never on a status page).
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL"), nullable=True, unique=True
    )
    # The alert grouping key that opened it (an Alertmanager groupKey, or an Events v2 dedup key).
    group_key: Mapped[str | None] = mapped_column(String(512), nullable=True)
    triggered_at: Mapped[datetime] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Each (re-)trigger starts a new escalation generation; older timers see the mismatch and stop.
    generation: Mapped[int] = mapped_column(Integer, default=0)
    ack_seq: Mapped[int] = mapped_column(Integer, default=0)
    round_robin_offset: Mapped[int] = mapped_column(Integer, default=0)
    alert_count: Mapped[int] = mapped_column(Integer, default=0)
    # The rule that grouped its alerts (GroupingRule.describe(), or the sender's group); None: one alert's own.
    grouping: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AlertRow(Base):
    __tablename__ = "incident_alerts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    integration_id: Mapped[str] = mapped_column(ForeignKey("incident_integrations.id", ondelete="CASCADE"))
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    dedup_key: Mapped[str] = mapped_column(String(255))
    open_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # triggered | acknowledged | resolved
    summary: Mapped[str] = mapped_column(String(1024))
    severity: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(255), default="")
    component: Mapped[str | None] = mapped_column(String(255), nullable=True)
    group: Mapped[str | None] = mapped_column(String(255), nullable=True)
    class_: Mapped[str | None] = mapped_column("class", String(255), nullable=True)
    fingerprint: Mapped[str | None] = mapped_column(String(128), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    event_count: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_event_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        UniqueConstraint("integration_id", "open_key", name="uq_incident_alerts_open"),
        Index("ix_incident_alerts_integration_dedup", "integration_id", "dedup_key"),
    )


class IncidentEventRow(Base):
    """One line of an incident's timeline; `internal` lines (notes, paging) are for staff only."""

    __tablename__ = "incident_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    body: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    internal: Mapped[bool] = mapped_column(Boolean, default=True)


class EscalationStepRow(Base):
    """A planned escalation step: its engine timer fires it once (dedup key incident × generation × step)."""

    __tablename__ = "incident_escalation_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    generation: Mapped[int] = mapped_column(Integer)
    step_no: Mapped[int] = mapped_column(Integer)
    level_index: Mapped[int] = mapped_column(Integer)
    repeat: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True)  # scheduled | done | cancelled
    planned_targets: Mapped[list[str]] = mapped_column(JSONType, default=list)
    paged: Mapped[list[str]] = mapped_column(JSONType, default=list)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (UniqueConstraint("incident_id", "generation", "step_no", name="uq_incident_steps_step"),)


class IncidentTicketRow(Base):
    __tablename__ = "incident_tickets"

    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True, index=True)
    # The ticket's organization, copied at link time: customers of it may then see the incident.
    organization_id: Mapped[str] = mapped_column(String(32), index=True)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ResponderRow(Base):
    __tablename__ = "incident_responders"

    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)
    added_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IncidentCounterRow(Base):
    """One row holding the last incident number, on SQLite (one writer at a time anyway). PostgreSQL numbers
    incidents from `INCIDENT_NUMBERS`: a counter row would be locked by each transaction that opens an incident
    until it commits, so a storm's transactions (and every paging ticket's) would open incidents one at a time."""

    __tablename__ = "incident_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


# Numbers taken by a transaction that rolls back are skipped (a gap), as with any PostgreSQL sequence.
INCIDENT_NUMBERS = Sequence("incident_numbers", metadata=Base.metadata)

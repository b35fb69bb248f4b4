"""Tables of detections, explicit rules, organizations' notice destinations, and telemetry incidents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from zhiban.store.db import Base, UTCDateTime, new_id


class DetectionRow(Base):
    """One detection (TELEMETRY.md §4), as the live engine found it; `key` makes re-emission idempotent."""

    __tablename__ = "detections"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    app_id: Mapped[str] = mapped_column(String(64), index=True)
    organization_id: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    metric: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(8))
    slice: Mapped[dict[str, str]] = mapped_column(JSON)
    baseline: Mapped[float] = mapped_column(Float)
    observed: Mapped[float] = mapped_column(Float)
    sessions: Mapped[int] = mapped_column(Integer)
    severity: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str | None] = mapped_column(String(100), nullable=True)
    trigger: Mapped[str] = mapped_column(String(300), default="")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    state: Mapped[str] = mapped_column(String(8), index=True)  # open | closed
    incident_id: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DetectionRuleRow(Base):
    """An explicit rule (detect.rules.Rule), editable through the API and the CLI."""

    __tablename__ = "detection_rules"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    metric: Mapped[str] = mapped_column(String(64))
    comparison: Mapped[str] = mapped_column(String(8))
    threshold: Mapped[float] = mapped_column(Float)
    window_seconds: Mapped[int] = mapped_column(Integer)
    consecutive: Mapped[int] = mapped_column(Integer)
    min_sessions: Mapped[int] = mapped_column(Integer)
    plan: Mapped[str | None] = mapped_column(String(64), nullable=True)
    app_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class NoticeDestinationRow(Base):
    """Where an organization wants proactive notices besides its users' e-mail: its signed webhook."""

    __tablename__ = "org_notice_destinations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # webhook
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("organization_id", "channel", name="uq_org_notice_destination"),)


class TelemetryIncidentRow(Base):
    """An incident the detector opened (detected_by = telemetry), and the cause it groups by."""

    __tablename__ = "telemetry_incidents"

    incident_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    scope: Mapped[str] = mapped_column(String(8))  # app | edge
    cause: Mapped[str] = mapped_column(String(200), index=True)  # the app id or the edge
    detected_by: Mapped[str] = mapped_column(String(16), default="telemetry")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IncidentOrganizationRow(Base):
    """Organizations a telemetry incident hurts (one platform incident may hurt many): notices, ticket links."""

    __tablename__ = "telemetry_incident_organizations"

    incident_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    app_id: Mapped[str] = mapped_column(String(64))
    since: Mapped[datetime] = mapped_column(UTCDateTime())


def detection_by_key(session: Session, key: str) -> DetectionRow | None:
    return session.scalar(select(DetectionRow).where(DetectionRow.key == key))


def rules(session: Session) -> list[DetectionRuleRow]:
    return list(session.scalars(select(DetectionRuleRow).order_by(DetectionRuleRow.name).limit(500)))


def rule_by_ref(session: Session, ref: str) -> DetectionRuleRow | None:
    return session.get(DetectionRuleRow, ref) or session.scalar(
        select(DetectionRuleRow).where(DetectionRuleRow.name == ref)
    )


def destination(session: Session, organization_id: str, channel: str) -> NoticeDestinationRow | None:
    return session.scalar(
        select(NoticeDestinationRow).where(
            NoticeDestinationRow.organization_id == organization_id, NoticeDestinationRow.channel == channel
        )
    )


def incident_organizations(session: Session, organization_id: str) -> list[IncidentOrganizationRow]:
    query = select(IncidentOrganizationRow).where(IncidentOrganizationRow.organization_id == organization_id)
    return list(session.scalars(query.order_by(IncidentOrganizationRow.since.desc()).limit(200)))

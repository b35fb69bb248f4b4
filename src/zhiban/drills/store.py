"""The drill registry: each drill, when it runs, and the ticket and incident it created (so every feature can
tell a drill from the real thing and keep it away from customers and reports)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

import zhiban.incidents.store
import zhiban.tickets.store  # noqa: F401
from zhiban.store.db import Base, UTCDateTime, new_id


class DrillRow(Base):
    __tablename__ = "drills"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    plan: Mapped[str] = mapped_column(String(64))
    service_id: Mapped[str | None] = mapped_column(
        ForeignKey("incident_services.id", ondelete="SET NULL"), nullable=True
    )
    service_name: Mapped[str] = mapped_column(String(200))
    at_label: Mapped[str] = mapped_column(String(100))  # what was asked for, e.g. "Sunday 03:00"
    tz: Mapped[str] = mapped_column(String(64))
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    window_minutes: Mapped[int] = mapped_column(Integer)
    expected_team: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # The customer's door the ticket comes through: "api" (the ticket API) or "email" (the inbound listener).
    channel: Mapped[str] = mapped_column(String(8), default="api", server_default="api")
    # While an e-mail drill files: the SHA-256 of the one-time key its mail carries (X-Zhiban-Drill), which is
    # what lets the desk's inbound mail take the drill customer's mail as authenticated; cleared once filed.
    intake_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    state: Mapped[str] = mapped_column(String(16), index=True)  # scheduled | running | done | cancelled
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL"), nullable=True, unique=True
    )
    incident_id: Mapped[str | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), nullable=True, unique=True
    )
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


def drill_ticket_ids() -> Any:
    """A subquery of every ticket id a drill created."""
    return select(DrillRow.ticket_id).where(DrillRow.ticket_id.is_not(None))


def drill_incident_ids() -> Any:
    """A subquery of every incident id a drill created."""
    return select(DrillRow.incident_id).where(DrillRow.incident_id.is_not(None))


def drill_of_ticket(session: Session, ticket_id: int) -> DrillRow | None:
    return session.scalar(select(DrillRow).where(DrillRow.ticket_id == ticket_id))


def drill_of_incident(session: Session, incident_id: str) -> DrillRow | None:
    return session.scalar(select(DrillRow).where(DrillRow.incident_id == incident_id))


def recent_drills(session: Session, limit: int = 100) -> list[DrillRow]:
    query = select(DrillRow).order_by(DrillRow.scheduled_at.desc(), DrillRow.id).limit(limit)
    return list(session.scalars(query))

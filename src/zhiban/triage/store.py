"""Tables of trained triage models and of each ticket's triage (with an agent's correction)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Float, ForeignKey, Integer, LargeBinary, String, Table, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from zhiban.store.db import Base, UTCDateTime, insert_or_skip


class TriageModelRow(Base):
    """One trained classifier; the highest id is the one in use (its id is the model version)."""

    __tablename__ = "triage_models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # SHA-256 of the training examples: a process that already trained on the same data reuses its model.
    fingerprint: Mapped[str] = mapped_column(String(64))
    examples: Mapped[int] = mapped_column(Integer)
    corrections: Mapped[int] = mapped_column(Integer)
    model: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TriageRow(Base):
    """The triage of one ticket: what the model said, where it was routed, and an agent's correction."""

    __tablename__ = "ticket_triage"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    domain: Mapped[str] = mapped_column(String(32), index=True)
    confidence: Mapped[float] = mapped_column(Float)
    suggested_priority: Mapped[str] = mapped_column(String(2))
    team_id: Mapped[str | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"), nullable=True)
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    corrected_by: Mapped[str | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), nullable=True)
    corrected_domain: Mapped[str | None] = mapped_column(String(32), nullable=True)
    corrected_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


def latest_model(session: Session) -> TriageModelRow | None:
    return session.scalar(select(TriageModelRow).order_by(TriageModelRow.id.desc()).limit(1))


def latest_model_version(session: Session) -> int | None:
    return session.scalar(select(TriageModelRow.id).order_by(TriageModelRow.id.desc()).limit(1))


def corrected_rows(session: Session) -> list[TriageRow]:
    query = select(TriageRow).where(TriageRow.corrected_domain.is_not(None)).order_by(TriageRow.ticket_id)
    return list(session.scalars(query))


def triaged_among(session: Session, ticket_ids: list[int]) -> set[int]:
    """Which of these tickets have a triage already."""
    found: set[int] = set()
    for start in range(0, len(ticket_ids), 2000):
        part = ticket_ids[start : start + 2000]
        found.update(session.scalars(select(TriageRow.ticket_id).where(TriageRow.ticket_id.in_(part))))
    return found


def add_triages(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert triage rows in bulk; a ticket triaged meanwhile (e.g. on demand by an agent) keeps its row."""
    if rows:
        session.execute(insert_or_skip(session, cast(Table, TriageRow.__table__), ["ticket_id"]), rows)

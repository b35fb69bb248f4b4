"""Tables of on-call schedules, their layers and overrides, iCal feed tokens and gap notices.

`oncall_schedules.version` goes up by one on every change to a schedule, its layers or overrides;
services key their in-process cache of compiled schedules on it, so every process sees a change
on its next lookup without any message between processes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from zhiban.store.db import Base, UTCDateTime, new_id


class ScheduleRow(Base):
    __tablename__ = "oncall_schedules"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    zone: Mapped[str] = mapped_column(String(64))
    owner_id: Mapped[str | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), nullable=True)
    # Secret part of the schedule's iCal URL; rotating it cuts off every old subscription.
    ical_token: Mapped[str] = mapped_column(String(64), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LayerRow(Base):
    __tablename__ = "oncall_layers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    schedule_id: Mapped[str] = mapped_column(ForeignKey("oncall_schedules.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # 0 is the bottom layer; higher layers win
    name: Mapped[str] = mapped_column(String(200))
    participants: Mapped[list[str]] = mapped_column(JSON)  # person ids in turn order
    rotation_start: Mapped[datetime] = mapped_column(UTCDateTime())
    turn_length: Mapped[int] = mapped_column(Integer)
    turn_unit: Mapped[str] = mapped_column(String(8))
    # [{"kind": "daily", "start": "18:00", "end": "09:00", "weekdays": [0, 1]}, {"kind": "weekly", ...}]
    restrictions: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    zone: Mapped[str | None] = mapped_column(String(64), nullable=True)
    end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (UniqueConstraint("schedule_id", "position", name="uq_oncall_layers_schedule_position"),)


class OverrideRow(Base):
    __tablename__ = "oncall_overrides"

    # Integer ids keep overrides in the order they were made: a later one wins where two overlap.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule_id: Mapped[str] = mapped_column(ForeignKey("oncall_schedules.id", ondelete="CASCADE"))
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    start: Mapped[datetime] = mapped_column(UTCDateTime())
    end: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_oncall_overrides_schedule_end", "schedule_id", "end"),)


class PersonFeedRow(Base):
    """The secret token of one person's iCal feed across every schedule."""

    __tablename__ = "oncall_person_feeds"

    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)
    ical_token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class GapNoticeRow(Base):
    """An in-app notice to a schedule's owner: nobody is on call in [start, end)."""

    __tablename__ = "oncall_gap_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule_id: Mapped[str] = mapped_column(ForeignKey("oncall_schedules.id", ondelete="CASCADE"))
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime())
    end: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    emailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    email_error: Mapped[str | None] = mapped_column(String(500), nullable=True)

    # One notice per hole: the daily check finds the same hole again and must not repeat itself.
    __table_args__ = (UniqueConstraint("schedule_id", "person_id", "start", "end", name="uq_oncall_gap_notices_hole"),)


def bump_version(session: Session, schedule_id: str, at: datetime) -> None:
    """Mark a schedule changed (atomically, so concurrent edits each count)."""
    session.execute(
        update(ScheduleRow)
        .where(ScheduleRow.id == schedule_id)
        .values(version=ScheduleRow.version + 1, updated_at=at)
        .execution_options(synchronize_session="fetch")
    )


def schedule_version(session: Session, schedule_id: str) -> int | None:
    return session.scalar(select(ScheduleRow.version).where(ScheduleRow.id == schedule_id))


def layers_of(session: Session, schedule_id: str) -> list[LayerRow]:
    query = select(LayerRow).where(LayerRow.schedule_id == schedule_id).order_by(LayerRow.position)
    return list(session.scalars(query))


def overrides_of(session: Session, schedule_id: str, *, ending_after: datetime | None = None) -> list[OverrideRow]:
    query = select(OverrideRow).where(OverrideRow.schedule_id == schedule_id)
    if ending_after is not None:
        query = query.where(OverrideRow.end > ending_after)
    return list(session.scalars(query.order_by(OverrideRow.id)))


def schedule_by_name(session: Session, name: str) -> ScheduleRow | None:
    return session.scalar(select(ScheduleRow).where(ScheduleRow.name == name))


def schedule_by_token(session: Session, token: str) -> ScheduleRow | None:
    return session.scalar(select(ScheduleRow).where(ScheduleRow.ical_token == token))


def feed_by_token(session: Session, token: str) -> PersonFeedRow | None:
    return session.scalar(select(PersonFeedRow).where(PersonFeedRow.ical_token == token))


def all_schedules(session: Session, limit: int = 500) -> list[ScheduleRow]:
    return list(session.scalars(select(ScheduleRow).order_by(ScheduleRow.name).limit(limit)))

"""Tables of business calendars and their immutable versions (clocks replay against the version in force)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from zhiban.store.db import Base, UTCDateTime, new_id


class CalendarRow(Base):
    __tablename__ = "calendars"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    tz: Mapped[str] = mapped_column(String(64))
    # ISO 3166 code whose public holidays and make-up days come from the `holidays` package; None = own dates only.
    country: Mapped[str | None] = mapped_column(String(3), nullable=True)
    # {"0": "09:00-18:00", ..., "6": ""}: Monday first.
    weekly: Mapped[dict[str, str]] = mapped_column(JSON)
    holidays_added: Mapped[list[str]] = mapped_column(JSON)
    holidays_removed: Mapped[list[str]] = mapped_column(JSON)
    workdays_added: Mapped[list[str]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CalendarVersionRow(Base):
    """A calendar as it was from `created_at` on; never changed, so it can be cached forever."""

    __tablename__ = "calendar_versions"

    calendar_id: Mapped[str] = mapped_column(ForeignKey("calendars.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


def calendar_by_name(session: Session, name: str) -> CalendarRow | None:
    return session.scalar(select(CalendarRow).where(CalendarRow.name == name))


def version_row(session: Session, calendar_id: str, version: int) -> CalendarVersionRow | None:
    return session.get(CalendarVersionRow, (calendar_id, version))


def versions_after(session: Session, calendar_id: str, version: int) -> list[CalendarVersionRow]:
    query = select(CalendarVersionRow).where(
        CalendarVersionRow.calendar_id == calendar_id, CalendarVersionRow.version > version
    )
    return list(session.scalars(query.order_by(CalendarVersionRow.version)))


def all_calendars(session: Session, limit: int) -> list[CalendarRow]:
    return list(session.scalars(select(CalendarRow).order_by(CalendarRow.name).limit(limit)))

"""The hotline's tables: support lines, calls, and each call's answered steps (so a retried webhook repeats)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

import zhiban.identity.store
import zhiban.tickets.store  # noqa: F401  (the tables our foreign keys point at)
from zhiban.store.db import Base, UTCDateTime, new_id


class HotlineLineRow(Base):
    """A number customers call, for one plan."""

    __tablename__ = "hotline_lines"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    number: Mapped[str] = mapped_column(String(16), unique=True)  # E.164
    plan: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    label: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class HotlineCallRow(Base):
    """One call to a line: who called, whom the desk took them for, and the ticket it filed."""

    __tablename__ = "hotline_calls"

    call_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the provider's (Twilio's CallSid)
    provider: Mapped[str] = mapped_column(String(16))
    line_id: Mapped[str | None] = mapped_column(ForeignKey("hotline_lines.id", ondelete="SET NULL"), nullable=True)
    language: Mapped[str] = mapped_column(String(8))  # the line's, kept: a removed line's calls still speak it
    caller: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[str | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), nullable=True)
    organization_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    identified_by: Mapped[str] = mapped_column(String(16))  # caller-id | ticket | none
    identify_tries: Mapped[int] = mapped_column(Integer, default=0)
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class HotlineStepRow(Base):
    """The answer given to one step of a call: a retried webhook gets it again and changes nothing."""

    __tablename__ = "hotline_steps"

    call_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[str] = mapped_column(String(32), primary_key=True)
    answer: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


def line_by_number(session: Session, number: str) -> HotlineLineRow | None:
    return session.scalar(select(HotlineLineRow).where(HotlineLineRow.number == number))


def lines(session: Session) -> list[HotlineLineRow]:
    return list(session.scalars(select(HotlineLineRow).order_by(HotlineLineRow.plan, HotlineLineRow.number)))

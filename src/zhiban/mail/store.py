"""The mail_messages table: every Message-ID the desk sent or received for a ticket, for threading."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

import zhiban.tickets.store  # noqa: F401  (the tables our foreign keys point at)
from zhiban.store.db import Base, UTCDateTime

INBOUND = "in"
OUTBOUND = "out"

# States of an outbound mail; inbound mail is always "received".
RECEIVED = "received"
QUEUED = "queued"
SENT = "sent"
FAILED = "failed"
LOGGED = "logged"  # no SMTP server configured: written to the log instead


class MailMessageRow(Base):
    __tablename__ = "mail_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    # Unique: a resent inbound copy is recognised, and one Message-ID never threads into two tickets.
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    direction: Mapped[str] = mapped_column(String(3))
    comment_id: Mapped[int | None] = mapped_column(ForeignKey("ticket_comments.id", ondelete="SET NULL"), nullable=True)
    address: Mapped[str] = mapped_column(String(254))  # the sender (in) or the recipient (out)
    purpose: Mapped[str] = mapped_column(String(16))  # customer, reply, confirmation
    # Outbound: one row per comment or confirmation, also the job's dedup key; NULL for inbound.
    dedup_key: Mapped[str | None] = mapped_column(String(100), unique=True, nullable=True)
    # Outbound: References frozen when queued, so a retried send is byte-for-byte the same thread.
    thread_refs: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


def by_message_id(session: Session, message_id: str) -> MailMessageRow | None:
    return session.scalar(select(MailMessageRow).where(MailMessageRow.message_id == message_id))


def by_dedup_key(session: Session, dedup_key: str) -> MailMessageRow | None:
    return session.scalar(select(MailMessageRow).where(MailMessageRow.dedup_key == dedup_key))


def tickets_of_message_ids(session: Session, message_ids: Iterable[str]) -> dict[str, int]:
    """The ticket each known Message-ID belongs to."""
    ids = list(message_ids)
    if not ids:
        return {}
    rows = session.execute(
        select(MailMessageRow.message_id, MailMessageRow.ticket_id).where(MailMessageRow.message_id.in_(ids))
    )
    return {message_id: ticket_id for message_id, ticket_id in rows}


def thread_of(session: Session, ticket_id: int) -> list[str]:
    """The ticket's Message-IDs in the order they were recorded."""
    query = select(MailMessageRow.message_id).where(MailMessageRow.ticket_id == ticket_id)
    return list(session.scalars(query.order_by(MailMessageRow.id)))


def messages_of(session: Session, ticket_id: int) -> list[MailMessageRow]:
    """Every mail row of a ticket, oldest first."""
    query = select(MailMessageRow).where(MailMessageRow.ticket_id == ticket_id)
    return list(session.scalars(query.order_by(MailMessageRow.id)))

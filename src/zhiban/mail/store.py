"""The mail tables: every Message-ID the desk sent or received for a ticket, mail held for an agent, and the
support mailboxes the desk reads over IMAP (with each one's cursor and its last success and failure)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, LargeBinary, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

import zhiban.identity.store
import zhiban.tickets.store  # noqa: F401  (the tables our foreign keys point at)

# States of a held mail: defined in the model (pages name them too), kept here under their old names.
from zhiban.mail.model import DISCARDED as DISCARDED
from zhiban.mail.model import HELD as HELD
from zhiban.mail.model import RELEASED as RELEASED
from zhiban.store.db import Base, UTCDateTime, new_id

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
    # Inbound: the IMAP mailbox it was read from (NULL: the SMTP listener). Replies on its ticket use that address.
    mailbox_id: Mapped[str | None] = mapped_column(
        ForeignKey("mail_mailboxes.id", ondelete="SET NULL"), nullable=True, default=None
    )


def by_message_id(session: Session, message_id: str) -> MailMessageRow | None:
    return session.scalar(select(MailMessageRow).where(MailMessageRow.message_id == message_id))


def by_dedup_key(session: Session, dedup_key: str) -> MailMessageRow | None:
    return session.scalar(select(MailMessageRow).where(MailMessageRow.dedup_key == dedup_key))


def tickets_of_message_ids(
    session: Session, message_ids: Iterable[str], *, direction: str | None = None
) -> dict[str, int]:
    """The ticket each known Message-ID belongs to (only those of one direction, if given)."""
    ids = list(message_ids)
    if not ids:
        return {}
    query = select(MailMessageRow.message_id, MailMessageRow.ticket_id).where(MailMessageRow.message_id.in_(ids))
    if direction is not None:
        query = query.where(MailMessageRow.direction == direction)
    rows = session.execute(query)
    return {message_id: ticket_id for message_id, ticket_id in rows}


def thread_of(session: Session, ticket_id: int) -> list[str]:
    """The ticket's Message-IDs in the order they were recorded."""
    query = select(MailMessageRow.message_id).where(MailMessageRow.ticket_id == ticket_id)
    return list(session.scalars(query.order_by(MailMessageRow.id)))


def messages_of(session: Session, ticket_id: int) -> list[MailMessageRow]:
    """Every mail row of a ticket, oldest first."""
    query = select(MailMessageRow).where(MailMessageRow.ticket_id == ticket_id)
    return list(session.scalars(query.order_by(MailMessageRow.id)))


class HeldMailRow(Base):
    """Mail from a customer's address that did not prove it came from there: kept for an agent to judge."""

    __tablename__ = "held_mail"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Not unique: a forged copy must never block the real mail with the same Message-ID.
    message_id: Mapped[str] = mapped_column(String(255), index=True)
    sender: Mapped[str] = mapped_column(String(254))  # the From: address
    envelope_sender: Mapped[str | None] = mapped_column(String(254), nullable=True)
    recipients: Mapped[str] = mapped_column(Text, default="")  # envelope recipients, one a line
    person_id: Mapped[str | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), nullable=True)
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="SET NULL"), index=True, nullable=True
    )
    subject: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(300))
    raw: Mapped[bytes] = mapped_column(LargeBinary)  # emptied once decided
    state: Mapped[str] = mapped_column(String(16), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"), nullable=True)
    # The IMAP mailbox it was read from (NULL: the SMTP listener): a released mail is filed as from there.
    mailbox_id: Mapped[str | None] = mapped_column(
        ForeignKey("mail_mailboxes.id", ondelete="SET NULL"), nullable=True, default=None
    )


def held_by_message_id(session: Session, message_id: str) -> HeldMailRow | None:
    query = select(HeldMailRow).where(HeldMailRow.message_id == message_id, HeldMailRow.state == HELD)
    return session.scalar(query.limit(1))


def count_held(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(HeldMailRow).where(HeldMailRow.state == HELD)) or 0)


def list_held(session: Session, state: str, limit: int) -> list[HeldMailRow]:
    """Held mail in one state, newest first."""
    query = select(HeldMailRow).where(HeldMailRow.state == state).order_by(HeldMailRow.id.desc())
    return list(session.scalars(query.limit(limit)))


SKIP_EXISTING = -1


class MailboxRow(Base):
    """A support mailbox the desk reads over IMAP, with its cursor: nothing below `last_uid` is read again."""

    __tablename__ = "mail_mailboxes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    address: Mapped[str] = mapped_column(String(254))  # what customers write to; replies come from it
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int] = mapped_column(Integer)
    security: Mapped[str] = mapped_column(String(8))  # tls, starttls or none
    username: Mapped[str] = mapped_column(String(254))
    # The IMAP password, kept as notify keeps channel secrets (in the row, never shown back).
    password: Mapped[str] = mapped_column(String(500))
    folder: Mapped[str] = mapped_column(String(200))
    after_filing: Mapped[str] = mapped_column(String(8))  # seen (flag \Seen) or move (to move_to)
    move_to: Mapped[str | None] = mapped_column(String(200), nullable=True)
    authserv_id: Mapped[str] = mapped_column(String(200), default="")  # the provider's trusted Authentication-Results
    poll_seconds: Mapped[int] = mapped_column(Integer)
    max_message_bytes: Mapped[int] = mapped_column(Integer)
    idle: Mapped[bool] = mapped_column(Boolean, default=True)  # wait with IDLE where the server has it
    # The cursor: the folder's UIDVALIDITY and the highest UID taken (filed, refused or ignored). Before the first
    # poll (no UIDVALIDITY yet) a last_uid of SKIP_EXISTING starts it after the mail already in the folder.
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    # The mail the desk could not take for its own trouble (4xx), and how many polls tried it: past a bound it is
    # set aside as refused, so one mail that always fails does not stop the mailbox.
    retry_uid: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    # Names the one pending poll job of the mailbox (its dedup key), one more at each run.
    poll_seq: Mapped[int] = mapped_column(Integer, default=0)
    filed: Mapped[int] = mapped_column(Integer, default=0)
    refused: Mapped[int] = mapped_column(Integer, default=0)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


def mailboxes(session: Session) -> list[MailboxRow]:
    return list(session.scalars(select(MailboxRow).order_by(MailboxRow.name)))


def mailbox_named(session: Session, name: str) -> MailboxRow | None:
    return session.scalar(select(MailboxRow).where(MailboxRow.name == name))


def mailbox_address_of_ticket(session: Session, ticket_id: int) -> str | None:
    """The address of the mailbox the ticket's first mail read over IMAP came from, if any."""
    query = (
        select(MailboxRow.address)
        .join(MailMessageRow, MailMessageRow.mailbox_id == MailboxRow.id)
        .where(MailMessageRow.ticket_id == ticket_id, MailMessageRow.direction == INBOUND)
        .order_by(MailMessageRow.id)
    )
    return session.scalar(query.limit(1))

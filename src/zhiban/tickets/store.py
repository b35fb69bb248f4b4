"""Tables of tickets, their comments, and the append-only event log every clock is derived from."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Select,
    String,
    Text,
    any_,
    func,
    literal,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Mapped, Session, mapped_column

from zhiban.store.db import Base, UTCDateTime


class TicketRow(Base):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="RESTRICT"), index=True)
    requester_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="RESTRICT"))
    subject: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True)
    priority: Mapped[str] = mapped_column(String(2))
    channel: Mapped[str] = mapped_column(String(16))
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    assignee_id: Mapped[str | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), nullable=True)
    team_id: Mapped[str | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    solved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (Index("ix_tickets_org_status", "organization_id", "status"),)


class CommentRow(Base):
    __tablename__ = "ticket_comments"

    # Integer ids keep the conversation in the order it was written, even within one second.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="RESTRICT"))
    body: Mapped[str] = mapped_column(Text)
    public: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TicketEventRow(Base):
    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    actor_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class TicketOnDutyRow(Base):
    """The one internal incident that pages the engineer on duty for a ticket (at most one per ticket)."""

    __tablename__ = "ticket_on_duty"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    incident_id: Mapped[str] = mapped_column(String(32), unique=True)
    reason: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    paged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class TicketFieldsRow(Base):
    """A ticket's RTC fields, when anyone gave some (most tickets have none: no row)."""

    __tablename__ = "ticket_fields"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    app_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    channel_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    user_ids: Mapped[list[str]] = mapped_column(JSON)
    sdk_version: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    platform: Mapped[str | None] = mapped_column(String(32), nullable=True)
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class TicketTagRow(Base):
    __tablename__ = "ticket_tags"
    __table_args__ = (PrimaryKeyConstraint("ticket_id", "tag"), Index("ix_ticket_tags_tag", "tag"))

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(40))


class TicketFollowerRow(Base):
    """Someone on staff who hears of the ticket without owning it."""

    __tablename__ = "ticket_followers"
    __table_args__ = (PrimaryKeyConstraint("ticket_id", "person_id"),)

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)


class TicketLinkRow(Base):
    """A tie between two tickets: `related` (stored both ways) or `merged_into` (the duplicate -> the one kept)."""

    __tablename__ = "ticket_links"
    __table_args__ = (PrimaryKeyConstraint("ticket_id", "other_id"),)

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    other_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))


class TeamRotationRow(Base):
    """Where a team's round robin stands: who got its last automatically assigned ticket."""

    __tablename__ = "ticket_team_rotation"

    team_id: Mapped[str] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    last_person_id: Mapped[str | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


def ids_in(session: Session, column: Any, ids: Sequence[int]) -> ColumnElement[bool]:
    """`column IN ids`, as one array parameter on PostgreSQL (a page's 200 ids: one bind, not 200 to render)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return column == any_(literal(list(ids), postgresql.ARRAY(Integer)))
    if dialect == "sqlite" and len(ids) > 8:  # one JSON text parameter, read by SQLite's json_each
        values = func.json_each(literal(json.dumps(list(ids))))
        listed: Select[Any] = select(literal_column("value")).select_from(values)
        return column.in_(listed)
    return column.in_(ids)


def comments_of(session: Session, ticket_id: int, *, include_internal: bool) -> list[CommentRow]:
    query = select(CommentRow).where(CommentRow.ticket_id == ticket_id)
    if not include_internal:
        query = query.where(CommentRow.public.is_(True))
    return list(session.scalars(query.order_by(CommentRow.id)))


def events_of(session: Session, ticket_id: int) -> list[TicketEventRow]:
    query = select(TicketEventRow).where(TicketEventRow.ticket_id == ticket_id)
    return list(session.scalars(query.order_by(TicketEventRow.id)))


def count_tickets(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(TicketRow)) or 0


class AttachmentRow(Base):
    """A file kept with one message of a ticket; its bytes are a blob named by their SHA-256 (tickets.blobs)."""

    __tablename__ = "ticket_attachments"

    # Random, never sequential: an id tells nothing about other tickets' files, and cannot be guessed.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    comment_id: Mapped[int] = mapped_column(ForeignKey("ticket_comments.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="RESTRICT"))
    position: Mapped[int] = mapped_column(Integer)  # its place among its message's files (ids are random)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))  # as sniffed from the bytes
    size: Mapped[int] = mapped_column(Integer)
    blob_key: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

"""Tables of tickets, their comments, and the append-only event log every clock is derived from."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    Boolean,
    ColumnElement,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    Select,
    String,
    Text,
    any_,
    event,
    func,
    literal,
    literal_column,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

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


class SearchVector(TypeDecorator[str]):
    """PostgreSQL's tsvector, stored (a GIN index over an expression re-parsed every hit's text on each check);
    on SQLite an unused text column (its FTS5 table does the work)."""

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(TSVECTOR() if dialect.name == "postgresql" else Text())


# What PostgreSQL stores in the vectors: the subject weighs most (weight A; FTS5's bm25 weighs its column most), and
# the organization is a term of its own ("org" + id), so a customer's search intersects its posting list in the
# index instead of filtering every hit of a common word.
_ORG_TERM = "to_tsvector('simple'::regconfig, 'org' || organization_id)"
PUBLIC_VECTOR = (
    "setweight(to_tsvector('simple'::regconfig, subject_terms), 'A'::\"char\")"
    f" || to_tsvector('simple'::regconfig, public_terms) || {_ORG_TERM}"
)
STAFF_VECTOR = f"{PUBLIC_VECTOR} || to_tsvector('simple'::regconfig, internal_terms)"


def organization_term(organization_id: str) -> str:
    """The term that stands for an organization in PostgreSQL's vectors."""
    return f"org{organization_id}"


class TicketTextRow(Base):
    """What search finds a ticket by: its subject and messages cut into terms (jieba + stems, space separated),
    kept by the `tickets.search` follower. Internal notes apart, so a customer's search never matches them."""

    __tablename__ = "ticket_texts"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    organization_id: Mapped[str] = mapped_column(String(32))  # the ticket's, a search term of its own
    subject_terms: Mapped[str] = mapped_column(Text)
    public_terms: Mapped[str] = mapped_column(Text)
    internal_terms: Mapped[str] = mapped_column(Text)
    # PostgreSQL only (NULL on SQLite): PUBLIC_VECTOR and STAFF_VECTOR, set with the terms.
    public_vector: Mapped[str | None] = mapped_column(SearchVector(), nullable=True)
    staff_vector: Mapped[str | None] = mapped_column(SearchVector(), nullable=True)
    # The last comment cut into these terms: a follower re-run appends only what came after it (idempotent).
    last_comment_id: Mapped[int] = mapped_column(Integer)
    indexed_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        # One GIN index for what customers may match, one for agents (internal notes too). SQLite gets b-trees of
        # NULLs (Alembic compares indexes on both; they cost nothing there).
        Index("ix_ticket_texts_public", "public_vector", postgresql_using="gin"),
        Index("ix_ticket_texts_staff", "staff_vector", postgresql_using="gin"),
        # PostgreSQL: terms and vectors go to TOAST early, so a search's heap scan reads small rows (210 MB -> 48 MB
        # of heap with 100,000 tickets).
        {"postgresql_with": {"toast_tuple_target": 128}},
    )


# SQLite: an FTS5 table over ticket_texts (external content: the terms are stored once), kept by triggers.
FTS_TABLE = "ticket_texts_fts"
_FTS_COLUMNS = "subject_terms, public_terms, internal_terms, organization_id"
_NEW = "new.ticket_id, new.subject_terms, new.public_terms, new.internal_terms, new.organization_id"
_OLD = "old.ticket_id, old.subject_terms, old.public_terms, old.internal_terms, old.organization_id"
SQLITE_FTS_DDL = [
    f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5({_FTS_COLUMNS},"
    " content='ticket_texts', content_rowid='ticket_id', tokenize='unicode61 remove_diacritics 0')",
    f"CREATE TRIGGER ticket_texts_ai AFTER INSERT ON ticket_texts BEGIN"
    f" INSERT INTO {FTS_TABLE}(rowid, {_FTS_COLUMNS}) VALUES ({_NEW}); END",
    f"CREATE TRIGGER ticket_texts_ad AFTER DELETE ON ticket_texts BEGIN"
    f" INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, {_FTS_COLUMNS}) VALUES ('delete', {_OLD}); END",
    # Only a change of the terms touches the FTS5 index (PostgreSQL's vectors are no concern of SQLite's).
    f"CREATE TRIGGER ticket_texts_au AFTER UPDATE OF subject_terms, public_terms, internal_terms, organization_id"
    f" ON ticket_texts BEGIN INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, {_FTS_COLUMNS}) VALUES ('delete', {_OLD});"
    f" INSERT INTO {FTS_TABLE}(rowid, {_FTS_COLUMNS}) VALUES ({_NEW}); END",
]
SQLITE_FTS_DROP = [
    "DROP TRIGGER IF EXISTS ticket_texts_au",
    "DROP TRIGGER IF EXISTS ticket_texts_ad",
    "DROP TRIGGER IF EXISTS ticket_texts_ai",
    f"DROP TABLE IF EXISTS {FTS_TABLE}",
]
for _statement in SQLITE_FTS_DDL:
    event.listen(TicketTextRow.__table__, "after_create", DDL(_statement).execute_if(dialect="sqlite"))
for _statement in SQLITE_FTS_DROP:
    event.listen(TicketTextRow.__table__, "before_drop", DDL(_statement).execute_if(dialect="sqlite"))


class SavedViewRow(Base):
    """A saved search of the ticket list: a person's own, or shared with every agent."""

    __tablename__ = "ticket_views"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    shared: Mapped[bool] = mapped_column(Boolean)
    query: Mapped[dict[str, Any]] = mapped_column(JSON)  # a TicketQuery's parameters, as the API takes them
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


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

"""Tables of knowledge-base articles, their versions, votes, deflections, and the persisted search index."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from zhiban.store.db import Base, UTCDateTime

MAX_TERM_CHARS = 200  # longer "words" (URLs, hashes) are not worth a posting
INDEX_STATE_ID = 1


class ArticleRow(Base):
    __tablename__ = "kb_articles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(300))
    language: Mapped[str] = mapped_column(String(2), index=True)
    body: Mapped[str] = mapped_column(Text)  # Markdown, rendered with raw HTML disabled
    summary: Mapped[str] = mapped_column(String(300), default="")  # plain-text opening, shown in results
    translation_key: Mapped[str | None] = mapped_column(String(500), nullable=True, index=True)
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Imported articles keep their path relative to the import root; an editor-written one has none.
    source_path: Mapped[str | None] = mapped_column(String(500), unique=True, nullable=True)
    source_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    helpful_count: Mapped[int] = mapped_column(Integer, default=0)
    not_helpful_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ArticleVersionRow(Base):
    __tablename__ = "article_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    language: Mapped[str] = mapped_column(String(2))
    body: Mapped[str] = mapped_column(Text)
    public: Mapped[bool] = mapped_column(Boolean)
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    author_id: Mapped[str | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), nullable=True)
    author_label: Mapped[str] = mapped_column(String(200))  # "import" or the editor's name, kept if they leave
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("article_id", "number"),)


class ArticleVoteRow(Base):
    """One signed-in reader's vote on an article (anonymous votes only move the counters)."""

    __tablename__ = "kb_article_votes"

    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)
    helpful: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class DeflectionRow(Base):
    """A ticket draft the customer abandoned because an article answered it."""

    __tablename__ = "kb_deflections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"), index=True)
    query: Mapped[str] = mapped_column(String(1000))
    person_id: Mapped[str | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), nullable=True)
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="SET NULL"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ArticleInsertionRow(Base):
    """An agent put a suggested article into a reply on a ticket."""

    __tablename__ = "article_insertions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"), index=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class IndexDocumentRow(Base):
    """One indexed article (SearchIndex.to_rows document row, plus who may see it)."""

    __tablename__ = "kb_index_document"

    doc_id: Mapped[str] = mapped_column(String(32), primary_key=True)  # str(article id)
    language: Mapped[str] = mapped_column(String(2))
    title: Mapped[str] = mapped_column(String(300))
    translation_key: Mapped[str] = mapped_column(String(500))
    title_length: Mapped[int] = mapped_column(Integer)
    body_length: Mapped[int] = mapped_column(Integer)
    public: Mapped[bool] = mapped_column(Boolean)


class IndexPostingRow(Base):
    __tablename__ = "kb_index_posting"

    term: Mapped[str] = mapped_column(String(MAX_TERM_CHARS), primary_key=True)
    doc_id: Mapped[str] = mapped_column(ForeignKey("kb_index_document.doc_id", ondelete="CASCADE"), primary_key=True)
    title_tf: Mapped[int] = mapped_column(Integer)
    body_tf: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_kb_index_posting_doc", "doc_id"),)


class IndexStateRow(Base):
    """The index's generation: bumped with every change so each process knows its cached copy is stale."""

    __tablename__ = "kb_index_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    # A random stamp as well: a recreated database at the same URL must not match an old cache entry.
    stamp: Mapped[str] = mapped_column(String(32))


# ---- queries -------------------------------------------------------------------------------------


def article_by_source_path(session: Session, source_path: str) -> ArticleRow | None:
    return session.scalar(select(ArticleRow).where(ArticleRow.source_path == source_path))


def articles_by_source_path(session: Session) -> dict[str, ArticleRow]:
    rows = session.scalars(select(ArticleRow).where(ArticleRow.source_path.is_not(None)))
    return {r.source_path: r for r in rows if r.source_path is not None}


def list_articles(
    session: Session, *, public_only: bool, language: str | None = None, limit: int = 200, offset: int = 0
) -> list[ArticleRow]:
    query = select(ArticleRow)
    if public_only:
        query = query.where(ArticleRow.public.is_(True))
    if language:
        query = query.where(ArticleRow.language == language)
    query = query.order_by(ArticleRow.category, ArticleRow.title, ArticleRow.id).limit(limit).offset(offset)
    return list(session.scalars(query))


def count_articles(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ArticleRow)) or 0


def articles_by_ids(session: Session, ids: Iterable[int]) -> dict[int, ArticleRow]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    return {a.id: a for a in session.scalars(select(ArticleRow).where(ArticleRow.id.in_(wanted)))}


def translations_of(session: Session, article: ArticleRow) -> list[ArticleRow]:
    if not article.translation_key:
        return []
    query = select(ArticleRow).where(ArticleRow.translation_key == article.translation_key, ArticleRow.id != article.id)
    return list(session.scalars(query.order_by(ArticleRow.language)))


def versions_of(session: Session, article_id: int) -> list[ArticleVersionRow]:
    query = select(ArticleVersionRow).where(ArticleVersionRow.article_id == article_id)
    return list(session.scalars(query.order_by(ArticleVersionRow.number.desc())))


def vote_of(session: Session, article_id: int, person_id: str) -> ArticleVoteRow | None:
    return session.get(ArticleVoteRow, (article_id, person_id))


def count_deflections(session: Session, article_id: int | None = None) -> int:
    query = select(func.count()).select_from(DeflectionRow)
    if article_id is not None:
        query = query.where(DeflectionRow.article_id == article_id)
    return session.scalar(query) or 0


def count_insertions(session: Session, ticket_id: int | None = None) -> int:
    query = select(func.count()).select_from(ArticleInsertionRow)
    if ticket_id is not None:
        query = query.where(ArticleInsertionRow.ticket_id == ticket_id)
    return session.scalar(query) or 0


# ---- the persisted index -------------------------------------------------------------------------


def index_state(session: Session) -> tuple[int, str]:
    """(version, stamp) of the stored index; (0, "") before anything was indexed."""
    row = session.get(IndexStateRow, INDEX_STATE_ID)
    return (row.version, row.stamp) if row is not None else (0, "")


def bump_index_version(session: Session) -> int:
    """Mark the stored index changed (same transaction as the change)."""
    row = session.get(IndexStateRow, INDEX_STATE_ID)
    if row is None:
        row = IndexStateRow(id=INDEX_STATE_ID, version=0, stamp="")
        session.add(row)
    row.version += 1
    row.stamp = uuid.uuid4().hex
    session.flush()
    return row.version


def delete_index_documents(session: Session, doc_ids: Sequence[str] | None = None) -> None:
    """Remove the rows of these documents (all when None); postings first, for engines without cascades."""
    if doc_ids is None:
        session.execute(delete(IndexPostingRow))
        session.execute(delete(IndexDocumentRow))
        return
    for start in range(0, len(doc_ids), 500):
        chunk = list(doc_ids[start : start + 500])
        session.execute(delete(IndexPostingRow).where(IndexPostingRow.doc_id.in_(chunk)))
        session.execute(delete(IndexDocumentRow).where(IndexDocumentRow.doc_id.in_(chunk)))


def write_index_rows(
    session: Session, documents: Sequence[dict[str, Any]], postings: Sequence[tuple[str, str, int, int]]
) -> None:
    """Insert document and posting rows as given by SearchIndex.to_rows (documents carry `public`)."""
    if documents:
        session.execute(insert(IndexDocumentRow), list(documents))
    rows = [
        {"term": term, "doc_id": doc_id, "title_tf": title_tf, "body_tf": body_tf}
        for term, doc_id, title_tf, body_tf in postings
        if len(term) <= MAX_TERM_CHARS
    ]
    for start in range(0, len(rows), 5000):
        session.execute(insert(IndexPostingRow), rows[start : start + 5000])


def read_index_rows(session: Session) -> tuple[list[dict[str, Any]], list[tuple[str, str, int, int]]]:
    """Every stored document row and posting row."""
    documents = [
        {
            "doc_id": d.doc_id,
            "language": d.language,
            "title": d.title,
            "translation_key": d.translation_key,
            "title_length": d.title_length,
            "body_length": d.body_length,
            "public": d.public,
        }
        for d in session.scalars(select(IndexDocumentRow).order_by(IndexDocumentRow.doc_id))
    ]
    postings = [
        (term, doc_id, title_tf, body_tf)
        for term, doc_id, title_tf, body_tf in session.execute(
            select(IndexPostingRow.term, IndexPostingRow.doc_id, IndexPostingRow.title_tf, IndexPostingRow.body_tf)
        )
    ]
    return documents, postings

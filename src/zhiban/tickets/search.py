"""Finding tickets: full text over subjects and messages in Chinese and English, and field filters.

The words of a ticket are cut once, by `core.text.tokenize` (jieba for Chinese, stems for English), into
`ticket_texts`, and matched by the database's own full-text machinery: PostgreSQL's GIN-indexed `tsvector`s
('simple' configuration: the terms are already cut), SQLite's FTS5. The query is cut the same way and every
term must match. Internal notes sit in a column of their own that only agents' searches read.

The terms are kept by a follower of ticket changes (`index_changes`, a `tickets.follow` batch after the change
commits): filing a ticket does not wait for jieba, and a new message is found a moment later. `index_pending`
catches up on tickets that were never cut (tickets filed before search existed; `zhiban tickets reindex`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Float, Integer, Select, func, select, text
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import InvalidInput
from zhiban.core.text import tokenize
from zhiban.identity import service as identity
from zhiban.identity.model import Principal
from zhiban.tickets.model import (
    ASSIGNEE_ME,
    MAX_QUERY_TERMS,
    NOBODY,
    EventKind,
    TicketChange,
    TicketQuery,
)
from zhiban.tickets.store import (
    FTS_TABLE,
    PUBLIC_VECTOR,
    STAFF_VECTOR,
    CommentRow,
    TicketRow,
    TicketTextRow,
)

MAX_PAGE = 200
INDEX_BATCH = 500  # tickets cut per transaction when catching up
# The changes that bring new words: a ticket filed, a message, a note.
INDEXED_KINDS = frozenset(
    {EventKind.CREATED, EventKind.CUSTOMER_MESSAGE, EventKind.AGENT_REPLY, EventKind.INTERNAL_NOTE}
)
# Weights of the subject, public messages and internal notes in FTS5's bm25 (PostgreSQL: weight A vs D).
_BM25 = "bm25(ticket_texts_fts, 4.0, 1.0, 1.0)"

# Filters that other features answer (a ticket id subquery for a value and now): SLA's "breaching within N hours".
Narrower = Callable[[Any, datetime], Select[int]]
_narrowers: dict[str, Narrower] = {}


def narrow_with(name: str, narrower: Narrower) -> Narrower:
    """Let another feature answer the filter `name` (e.g. sla: breaching_within_hours) with ticket ids."""
    _narrowers[name] = narrower
    return narrower


# --- keeping the terms ------------------------------------------------------------------------------------


def terms(text_: str) -> str:
    """Text cut into search terms, space separated (what both databases' full-text parsers split again)."""
    return " ".join(tokenize(text_))


def index_tickets(session: Session, ticket_ids: Iterable[int], now: datetime) -> int:
    """Cut what is new in these tickets (the subject once, messages after the last one cut) into their terms.
    Idempotent: a re-run finds nothing new. Returns the number of messages cut."""
    ids = sorted(set(ticket_ids))
    if not ids:
        return 0
    known = {r.ticket_id: r for r in session.scalars(select(TicketTextRow).where(TicketTextRow.ticket_id.in_(ids)))}
    subjects = dict(session.execute(select(TicketRow.id, TicketRow.subject).where(TicketRow.id.in_(ids))).all())
    since = func.coalesce(
        select(TicketTextRow.last_comment_id).where(TicketTextRow.ticket_id == CommentRow.ticket_id).scalar_subquery(),
        0,
    )
    query = (
        select(CommentRow.ticket_id, CommentRow.id, CommentRow.body, CommentRow.public)
        .where(CommentRow.ticket_id.in_(ids), CommentRow.id > since)
        .order_by(CommentRow.id)
    )
    new: dict[int, tuple[list[str], list[str], int]] = {}
    count = 0
    for ticket_id, comment_id, body, public in session.execute(query):
        public_parts, internal_parts, _ = new.setdefault(ticket_id, ([], [], 0))
        (public_parts if public else internal_parts).append(terms(body))
        new[ticket_id] = (public_parts, internal_parts, comment_id)
        count += 1
    for ticket_id, subject in subjects.items():
        row = known.get(ticket_id)
        public_parts, internal_parts, last = new.get(ticket_id, ([], [], 0))
        if row is None:
            session.add(
                TicketTextRow(
                    ticket_id=ticket_id,
                    subject_terms=terms(subject),
                    public_terms=" ".join(public_parts),
                    internal_terms=" ".join(internal_parts),
                    last_comment_id=last,
                    indexed_at=now,
                )
            )
        elif last:
            row.public_terms = _joined(row.public_terms, public_parts)
            row.internal_terms = _joined(row.internal_terms, internal_parts)
            row.last_comment_id = last
            row.indexed_at = now
    session.flush()
    return count


def _joined(before: str, parts: list[str]) -> str:
    return " ".join(p for p in (before, *parts) if p)


def index_changes(session: Session, clock: Clock, changes: Sequence[TicketChange]) -> None:
    """The follower: the tickets these changes brought words to, cut in one pass."""
    index_tickets(session, {c.ticket.id for c in changes if c.kind in INDEXED_KINDS}, clock.now())


def index_pending(session: Session, now: datetime, *, limit: int = INDEX_BATCH) -> int:
    """Cut up to `limit` tickets that have no terms yet (oldest first); returns how many it cut."""
    missing = (
        select(TicketRow.id)
        .where(~select(TicketTextRow.ticket_id).where(TicketTextRow.ticket_id == TicketRow.id).exists())
        .order_by(TicketRow.id)
        .limit(limit)
    )
    ids = list(session.scalars(missing))
    index_tickets(session, ids, now)
    return len(ids)


# --- finding ----------------------------------------------------------------------------------------------


def query_terms(q: str) -> list[str]:
    """The distinct terms of a search, in order, at most MAX_QUERY_TERMS."""
    return list(dict.fromkeys(tokenize(q)))[:MAX_QUERY_TERMS]


def _fts5_match(words: list[str], *, staff: bool) -> str:
    """An FTS5 query: every term, each a quoted string; a customer's only in the subject and public messages."""
    phrase = " AND ".join('"' + w.replace('"', '""') + '"' for w in words)
    return phrase if staff else "{subject_terms public_terms} : (" + phrase + ")"


def _hits(session: Session, words: list[str], *, staff: bool) -> Any:
    """(ticket_id, score) of the tickets every term matches; higher score ranks first."""
    if session.get_bind().dialect.name == "postgresql":
        vector = STAFF_VECTOR if staff else PUBLIC_VECTOR
        # Ranked by the subject only (then by recency, in find_tickets): ranking by the whole vector re-parses
        # every hit's messages (ts_rank reads no index), seconds for a common word in a large desk.
        sql = (
            "SELECT ticket_id, ts_rank(to_tsvector('simple'::regconfig, subject_terms), query) AS score"
            f" FROM ticket_texts, plainto_tsquery('simple'::regconfig, :words) AS query WHERE {vector} @@ query"
        )
        statement = text(sql).bindparams(words=" ".join(words))
    else:
        sql = f"SELECT rowid AS ticket_id, -{_BM25} AS score FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :match"
        statement = text(sql).bindparams(match=_fts5_match(words, staff=staff))
    return statement.columns(ticket_id=Integer, score=Float).subquery("hits")


def _where(session: Session, principal: Principal, query: TicketQuery, now: datetime) -> list[ColumnElement[bool]]:
    """The field filters, within the caller's tenancy (a customer's own organization, whatever it asked)."""
    t = TicketRow
    where: list[ColumnElement[bool]] = []
    if not principal.is_staff:
        where.append(t.organization_id == principal.organization_id)
    elif query.organization_id:
        where.append(t.organization_id == query.organization_id)
    if query.plan:
        where.append(t.organization_id.in_(identity.organization_ids_on_plan(query.plan)))
    if query.status:
        where.append(t.status.in_([s.value for s in query.status]))
    elif query.open_only:
        where.append(t.status.in_(["new", "open", "pending", "on_hold"]))
    if query.priority:
        where.append(t.priority.in_([p.value for p in query.priority]))
    if query.assignee == NOBODY:
        where.append(t.assignee_id.is_(None))
    elif query.assignee:
        where.append(t.assignee_id == (principal.person_id if query.assignee == ASSIGNEE_ME else query.assignee))
    if query.team == NOBODY:
        where.append(t.team_id.is_(None))
    elif query.team:
        team = identity.team(session, query.team)
        where.append(t.team_id == (team.id if team is not None else query.team))
    if query.channel is not None:
        where.append(t.channel == query.channel.value)
    # Here go the fields other helpers add (tags, app id, SDK version), each a condition on TicketRow.
    if query.created_from:
        where.append(t.created_at >= query.created_from)
    if query.created_to:
        where.append(t.created_at < query.created_to)
    if query.updated_from:
        where.append(t.updated_at >= query.updated_from)
    if query.updated_to:
        where.append(t.updated_at < query.updated_to)
    if query.idle_days:
        where.append(t.updated_at <= now - timedelta(days=query.idle_days))
    if query.breaching_within_hours is not None:
        where.append(t.id.in_(_narrower("breaching_within_hours")(query.breaching_within_hours, now)))
    return where


def _narrower(name: str) -> Narrower:
    found = _narrowers.get(name)
    if found is None:
        raise InvalidInput(f"the {name} filter is not available in this process")
    return found


def find_tickets(
    session: Session,
    principal: Principal,
    query: TicketQuery,
    now: datetime,
    *,
    limit: int = 50,
    offset: int = 0,
) -> list[TicketRow]:
    """Tickets the caller may see that match: best match first for words, else newest first."""
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise InvalidInput(f"limit must be 1–{MAX_PAGE} and offset ≥ 0")
    statement = select(TicketRow).where(*_where(session, principal, query, now))
    if query.is_search:
        words = query_terms(query.q or "")
        if not words:
            return []  # only stop words ("the", "问题"): nothing to look for
        hits = _hits(session, words, staff=principal.is_staff)
        statement = statement.join(hits, hits.c.ticket_id == TicketRow.id).order_by(
            hits.c.score.desc(), TicketRow.updated_at.desc(), TicketRow.id.desc()
        )
    else:
        statement = statement.order_by(TicketRow.created_at.desc(), TicketRow.id.desc())
    return list(session.scalars(statement.limit(limit).offset(offset)))

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

from sqlalchemy import ColumnElement, Select, column, false, func, literal_column, select, table, update
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
    TicketFieldsRow,
    TicketRow,
    TicketTagRow,
    TicketTextRow,
    organization_term,
)

MAX_PAGE = 200
RANKED = 1000  # a search ranks the newest RANKED tickets that match (all of them for most words)
INDEX_BATCH = 500  # tickets cut per transaction when catching up
# The changes that bring new words: a ticket filed, a message, a note.
INDEXED_KINDS = frozenset(
    {EventKind.CREATED, EventKind.CUSTOMER_MESSAGE, EventKind.AGENT_REPLY, EventKind.INTERNAL_NOTE}
)
# Weights of the subject, public messages and internal notes in FTS5's bm25 (PostgreSQL: weight A vs D).
_BM25 = "bm25(ticket_texts_fts, 4.0, 1.0, 1.0, 0.0)"

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
    tickets = {
        tid: (subject, org)
        for tid, subject, org in session.execute(
            select(TicketRow.id, TicketRow.subject, TicketRow.organization_id).where(TicketRow.id.in_(ids))
        )
    }
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
    for ticket_id, (subject, organization_id) in tickets.items():
        row = known.get(ticket_id)
        public_parts, internal_parts, last = new.get(ticket_id, ([], [], 0))
        if row is None:
            session.add(
                TicketTextRow(
                    ticket_id=ticket_id,
                    organization_id=organization_id,
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
    if session.get_bind().dialect.name == "postgresql":
        set_vectors(session, list(tickets))
    return count


def set_vectors(session: Session, ticket_ids: list[int]) -> None:
    """PostgreSQL: store the tickets' vectors from their terms (parsed once here, never at search time)."""
    for part in _chunks(ticket_ids):
        session.execute(
            update(TicketTextRow)
            .where(TicketTextRow.ticket_id.in_(part))
            .values(public_vector=literal_column(PUBLIC_VECTOR), staff_vector=literal_column(STAFF_VECTOR)),
            execution_options={"synchronize_session": False},
        )


def _chunks(ids: list[int], size: int = 2000) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


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


def _fts5_match(words: list[str], *, staff: bool, organization_id: str | None) -> str:
    """An FTS5 query: every term, each a quoted string; a customer's only in the subject and public messages;
    scoped to an organization by its column (an intersection in the index, not a filter on every hit)."""
    phrase = " AND ".join(_quoted(w) for w in words)
    match = phrase if staff else "{subject_terms public_terms} : (" + phrase + ")"
    return match if organization_id is None else f"{match} AND organization_id : {_quoted(organization_id)}"


def _quoted(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


def _hits(
    session: Session, words: list[str], *, staff: bool, organization_id: str | None, where: list[ColumnElement[bool]]
) -> Any:
    """(ticket_id, score) of the newest RANKED tickets that every term matches and the filters keep; a higher
    score ranks first. The cap bounds the ranking's cost: a common word ("卡顿") is in most tickets of a large
    desk, and scoring all of them took 0.3-0.5 s (SQLite) to 6 s (PostgreSQL) with 100,000 tickets."""
    t = TicketRow
    if session.get_bind().dialect.name == "postgresql":
        vector = TicketTextRow.staff_vector if staff else TicketTextRow.public_vector
        scope = [] if organization_id is None else [organization_term(organization_id)]
        simple: ColumnElement[Any] = literal_column("'simple'::regconfig")
        tsquery = func.plainto_tsquery(simple, " ".join([*words, *scope]))
        newest = (
            select(t.id.label("ticket_id"), TicketTextRow.subject_terms)
            .join(TicketTextRow, TicketTextRow.ticket_id == t.id)
            .where(vector.op("@@")(tsquery), *where)
            .order_by(TicketTextRow.ticket_id.desc())
            .limit(RANKED)
            .subquery("newest")
        )
        # Scored after the cap, and by the subject (then recency): ts_rank over a stored vector unpacks the whole
        # conversation, about 0.3 ms a ticket.
        # (without the organization's term, which no subject holds: ts_rank of a query not all present is ~0).
        words_only = func.plainto_tsquery(simple, " ".join(words))
        subject_score = func.ts_rank(func.to_tsvector(simple, newest.c.subject_terms), words_only)
        return select(newest.c.ticket_id, subject_score.label("score")).subquery("hits")
    fts = table(FTS_TABLE, column("rowid"))
    match = _fts5_match(words, staff=staff, organization_id=organization_id)
    statement: Any = (
        select(t.id.label("ticket_id"), (-literal_column(_BM25)).label("score"))
        .select_from(fts)
        .join(t, t.id == fts.c.rowid)
        .where(literal_column(FTS_TABLE).op("MATCH")(match), *where)
        .order_by(fts.c.rowid.desc())  # FTS5 walks its doclists newest first and stops at the cap
    )
    return statement.limit(RANKED).subquery("hits")


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
    if query.tag:
        # Tags are the agents': a customer filtering by one learns nothing (and finds nothing).
        tagged = select(TicketTagRow.ticket_id).where(TicketTagRow.tag == query.tag)
        where.append(t.id.in_(tagged) if principal.is_staff else false())
    if query.app_id or query.sdk_version:
        having = select(TicketFieldsRow.ticket_id)
        if query.app_id:
            having = having.where(TicketFieldsRow.app_id == query.app_id)
        if query.sdk_version:
            having = having.where(TicketFieldsRow.sdk_version == query.sdk_version)
        where.append(t.id.in_(having))
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


RECENT_WINDOW = 20_000  # PostgreSQL: tickets (by number) a search looks through first


def _windows(session: Session) -> list[int]:
    """The lowest ticket number of each pass: PostgreSQL looks through the newest RECENT_WINDOW tickets first and
    through all of them only if that does not fill the page. Its planner underrates how many tickets several common
    words share, and fetching 20,000 hits to keep the newest 1,000 took 0.2-0.4 s with 100,000 tickets; within the
    window the GIN bitmap is ANDed with the key range. SQLite's FTS5 walks its hits newest first anyway: one pass."""
    if session.get_bind().dialect.name != "postgresql":
        return [0]
    newest = session.scalar(select(func.max(TicketRow.id))) or 0
    return [newest - RECENT_WINDOW, 0] if newest > RECENT_WINDOW else [0]


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
    where = _where(session, principal, query, now)
    statement = select(TicketRow).where(*where)
    if query.is_search:
        words = query_terms(query.q or "")
        if not words:
            return []  # only stop words ("the", "问题"): nothing to look for
        scope = principal.organization_id if not principal.is_staff else query.organization_id
        for window in _windows(session):
            within = [*where, TicketRow.id > window] if window else where
            hits = _hits(session, words, staff=principal.is_staff, organization_id=scope, where=within)
            found = statement.join(hits, hits.c.ticket_id == TicketRow.id).order_by(
                hits.c.score.desc(), TicketRow.updated_at.desc(), TicketRow.id.desc()
            )
            rows = list(session.scalars(found.limit(limit).offset(offset)))
            if len(rows) == limit or not window:
                return rows
        return rows
    else:
        statement = statement.order_by(TicketRow.created_at.desc(), TicketRow.id.desc())
    return list(session.scalars(statement.limit(limit).offset(offset)))

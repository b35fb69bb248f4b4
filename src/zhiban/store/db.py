"""Database engine, sessions and shared column types (SQLite WAL by default, PostgreSQL by URL)."""

from __future__ import annotations

import itertools
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, MetaData, String, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every table; one metadata so Alembic sees them all."""

    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC; returns them aware (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: store aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def new_id() -> str:
    """A random, URL-safe primary key."""
    return uuid.uuid4().hex


def id_column_type() -> String:
    return String(32)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # We issue BEGIN ourselves (below); pysqlite's own deferred BEGIN would be in the way.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=60000")  # one writer at a time: wait for it, do not fail
    cur.close()


BUSY_WAIT_SECONDS = 60.0
_BUSY_NAPS = (0.0005, 0.001, 0.002)  # then 2 ms each


READ_ONLY = "zhiban_read_only"  # execution option of a session's connection: a transaction that only reads


def _sqlite_begin(conn: Any) -> None:
    # A read-only transaction begins DEFERRED: in WAL mode a reader takes no lock and waits for no writer.
    # query_only makes a write in it fail at once instead of taking the write lock behind everyone's back.
    dbapi = conn.connection.dbapi_connection
    read_only = bool(conn.get_execution_options().get(READ_ONLY))
    if read_only != conn.connection.info.get(READ_ONLY, False):
        cursor = dbapi.cursor()
        cursor.execute(f"PRAGMA query_only={1 if read_only else 0}")
        cursor.close()
        conn.connection.info[READ_ONLY] = read_only
    if read_only:
        cursor = dbapi.cursor()
        cursor.execute("BEGIN DEFERRED")
        cursor.close()
        return
    _sqlite_begin_immediate(conn)


def _sqlite_begin_immediate(conn: Any) -> None:
    # A deferred transaction that reads and then writes fails at once with "database is locked" when
    # another process writes meanwhile (the busy timeout does not apply to that upgrade). Taking the
    # write lock at BEGIN makes every transaction wait its turn instead.
    #
    # The wait is ours, not SQLite's: its busy handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50,
    # 100 ms between tries, so a writer arriving while others hold the lock for a few milliseconds at a
    # time can sleep tens of milliseconds past its turn (an alert intake's latency). Trying again every
    # 2 ms at most keeps the wait close to the lock's real hold time.
    cursor = conn.connection.dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + BUSY_WAIT_SECONDS
        for attempt in itertools.count():
            try:
                cursor.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                    raise
            time.sleep(_BUSY_NAPS[min(attempt, len(_BUSY_NAPS) - 1)])
    finally:
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for the URL: SQLite gets WAL and foreign keys; PostgreSQL uses psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql" or parsed.drivername == "postgres":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 60}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    engine = create_engine(parsed, **kwargs)
    if "pool_pre_ping" not in kwargs:
        _ping_after_idle(engine)
    return engine


IDLE_PING_SECONDS = 5.0


def _ping_after_idle(engine: Engine) -> None:
    """Check a pooled PostgreSQL connection before use only if it sat idle in the pool for a while.

    pool_pre_ping would ping at every checkout: a round trip per transaction, as much as the work of a short
    one (a job's claim, a page's state change). A connection in steady use is known to be alive; one that
    idled may have been cut by a restart, a failover or a firewall, and is replaced before it fails a request.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["zhiban_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("zhiban_idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            dbapi_connection.rollback()
        except Exception as exc:  # any failure: let the pool replace this connection
            raise DisconnectionError(f"pooled connection failed its ping: {exc}") from exc


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with factory() as session, session.begin():
        yield session


@contextmanager
def read_transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for reads only (ended by a rollback): on SQLite it begins DEFERRED, so it never queues behind
    writers, and refuses writes; on PostgreSQL it is a plain transaction (readers never wait there)."""
    with factory() as session:
        read_only(session)
        try:
            yield session
        finally:
            session.rollback()


_KEPT = "zhiban.kept_rows"
MAX_KEPT = 1000


def keep(session: Session, row: Any) -> Any:
    """Hold a loaded row for the session's life and return it.

    The identity map holds rows weakly: a row read by key and dropped by its caller is read again by the next
    `session.get` of the same key. A request that files a ticket looks up its requester, organization and plan
    from several features; kept rows answer the later lookups from memory (bounded: a long batch stops keeping).
    """
    kept = session.info.setdefault(_KEPT, [])
    if len(kept) < MAX_KEPT:
        kept.append(row)
    return row


_MEMO = "zhiban.transaction_memo"


def transaction_memo(session: Session) -> dict[Any, Any]:
    """A dict that lives as long as the session's current transaction: for values read once per transaction
    (the SLA policy version in force) that several features ask for while one ticket is filed."""
    memo: dict[Any, Any] = session.info.setdefault(_MEMO, {})
    return memo


@event.listens_for(Session, "after_transaction_end")
def _forget_kept(session: Session, transaction: Any) -> None:
    # Kept rows and memos are for one transaction: a session that begins another reads afresh what others changed.
    if transaction.parent is None:
        session.info.pop(_KEPT, None)
        session.info.pop(_MEMO, None)


def read_only(session: Session) -> None:
    """Make the session's next transaction read-only (before its first statement)."""
    session.connection(execution_options={READ_ONLY: True})


def is_read_only(session: Session) -> bool:
    """Whether the session's transaction was begun read-only."""
    return bool(session.connection().get_execution_options().get(READ_ONLY))


def insert_or_skip(session: Session, table: Table, key: list[str] | None = None) -> Any:
    """INSERT … ON CONFLICT (key) DO NOTHING in the session's dialect (rows whose key is taken are skipped)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=key)
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=key)
    raise RuntimeError(f"unsupported database dialect {dialect}")  # pragma: no cover


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def missing_table(exc: BaseException) -> str | None:
    """The table a statement found missing (a database never migrated, or migrated by an older release), else None."""
    if not isinstance(exc, DBAPIError):
        return None
    text = str(exc.orig)
    if isinstance(exc.orig, sqlite3.OperationalError) and text.startswith("no such table: "):
        return text.removeprefix("no such table: ").strip()
    if getattr(exc.orig, "sqlstate", None) == "42P01":  # PostgreSQL undefined_table
        name = text.split('"')
        return name[1] if len(name) > 2 else "?"
    return None

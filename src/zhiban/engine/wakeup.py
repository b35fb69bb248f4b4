"""Waking a worker in another process the moment a page is queued, on PostgreSQL (LISTEN/NOTIFY).

A worker polls for due jobs every `poll` seconds; in `zhiban serve` the web side wakes its in-process worker at
each commit, but a separate `zhiban worker` only heard of a page at its next poll (half a second, on average a
quarter, added to every ticket -> page). A transaction that queues work a person waits for (`urgent_kind`s: a
page's delivery, an escalation step) sends `NOTIFY zhiban_jobs` in that transaction, so it is heard at commit and
never for work that rolled back; each worker LISTENs on a connection of its own and wakes. The poll stays as the
fallback: a lost notification (a worker restarting, the listener reconnecting) delays a page by one poll, never
loses it, since the job itself is in the table.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

import psycopg
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

CHANNEL = "zhiban_jobs"  # + "_" + the schema the desk's tables are in
_URGENT: set[str] = set()
_NOTIFIED_FLAG = "zhiban.engine.notified"
log = logging.getLogger(__name__)


def urgent_kind(kind: str) -> str:
    """Declare `kind` as work a person waits for: queuing it wakes the workers of other processes. Returns it."""
    _URGENT.add(kind)
    return kind


def is_urgent(kind: str) -> bool:
    return kind in _URGENT


def announce(session: Session, kinds: Iterable[str]) -> None:
    """In the caller's transaction, tell listening workers that urgent work is queued (once per transaction)."""
    if session.info.get(_NOTIFIED_FLAG) or not any(kind in _URGENT for kind in kinds):
        return
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite: one process writes; `zhiban serve` wakes its worker through the commit listener
    # One channel per schema: desks (and test runs) sharing a database in schemas of their own never wake each
    # other's workers. The schema is the server's to name, so this costs no round trip more.
    session.execute(text("SELECT pg_notify(:channel || '_' || current_schema(), '')"), {"channel": CHANNEL})
    session.info[_NOTIFIED_FLAG] = True


def forget(session: Session) -> None:
    """A transaction ended: its next one notifies again."""
    session.info.pop(_NOTIFIED_FLAG, None)


def listen(engine: Engine, wake: Callable[[], None], stop: threading.Event) -> threading.Thread | None:
    """On PostgreSQL, a daemon thread that calls `wake` at every notification until `stop`; None elsewhere."""
    if engine.dialect.name != "postgresql":
        return None
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    thread = threading.Thread(target=_listen, args=(dsn, wake, stop), name="job-wakeup", daemon=True)
    thread.start()
    return thread


def _listen(dsn: str, wake: Callable[[], None], stop: threading.Event) -> None:
    backoff = 0.5
    while not stop.is_set():
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as conn:
                schema = conn.execute("SELECT current_schema()").fetchone()
                channel = f"{CHANNEL}_{schema[0] if schema else 'public'}"
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                log.info("wake-ups: listening on %s", channel)
                backoff = 0.5
                wake()  # whatever was queued while we were not listening
                while not stop.is_set():
                    for _ in conn.notifies(timeout=1.0, stop_after=1):
                        wake()
        except psycopg.Error as exc:
            log.warning("job wake-up listener: %s; polling only for %.1f s", exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, 30.0)

"""Group commit of Events v2 alerts: many requests, one transaction.

Under an alert storm a commit per request is what limits intake (SQLite has one writer; PostgreSQL
pays a round trip and a WAL flush each time). Request handlers hand their parsed event to the
process's intake and wait; one writer thread takes whatever has queued up meanwhile, applies it in
ONE transaction (integrations.receive_events_v2_batch) and commits, and only then answers every
waiting request. A 202 therefore still means "committed". If a batch fails, its events are applied
one per transaction so that one bad event cannot fail the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Histogram
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from zhiban.core.clock import Clock
from zhiban.core.errors import InvalidInput, RateLimited
from zhiban.core.metrics import REGISTRY
from zhiban.incidents import integrations
from zhiban.incidents.model import AlertEvent

log = logging.getLogger("zhiban.incidents.intake")

BATCH_EVENTS = Histogram(
    "zhiban_alert_intake_batch_events",
    "Alert events committed together in one intake transaction",
    registry=REGISTRY,
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
COMMIT_SECONDS = Histogram(
    "zhiban_alert_intake_commit_seconds",
    "Wall time of one intake transaction, from BEGIN to COMMIT",
    registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)

MAX_BATCH = 500
MAX_QUEUE = 20_000
IDLE_EXIT_SECONDS = 5.0
LINGER_SECONDS = 0.005


class IntakeFull(RateLimited):
    """More events wait than the intake holds: the sender should retry (Events v2 answers 429)."""


@dataclass(slots=True)
class _Waiting:
    routing_key: str
    event: AlertEvent
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


Outcome = BaseException | None


class EventsIntake:
    """One writer thread per process that commits queued events in batches; `submit` waits for the commit."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        *,
        max_batch: int = MAX_BATCH,
        max_queue: int = MAX_QUEUE,
        idle_exit: float = IDLE_EXIT_SECONDS,
        linger: float = LINGER_SECONDS,
    ) -> None:
        if not 1 <= max_batch <= 1000 or not 1 <= max_queue <= 1_000_000 or idle_exit <= 0 or not 0 <= linger <= 1:
            raise InvalidInput("max_batch 1..1000, max_queue 1..1000000, idle_exit positive, linger 0..1 s")
        self.sessions = sessions
        self._engine: Engine = sessions.kw["bind"]
        self._connection: Connection | None = None
        self.clock = clock
        self.max_batch = max_batch
        self.idle_exit = idle_exit
        self.linger = linger
        self._queue: queue.Queue[_Waiting] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.batches = 0  # committed batches, for benchmarks and tests
        self.events = 0

    async def submit(self, routing_key: str, event: AlertEvent) -> None:
        """Queue a parsed event and return once it is committed; raises EventRejected or IntakeFull."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(routing_key, event, loop, loop.create_future())
        try:
            self._queue.put_nowait(waiting)
        except queue.Full:
            raise IntakeFull("too many alert events are waiting to be stored; retry shortly") from None
        self._ensure_writer()
        await waiting.future

    # --- the writer ---------------------------------------------------------------------------

    def _ensure_writer(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="alert-intake", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.idle_exit)
            except queue.Empty:
                with self._lock:
                    # Idle: stop the thread (a desk in a test, or a quiet night); the next submit starts one.
                    if self._queue.empty():
                        self._release_connection()
                        self._thread = None
                        return
                continue
            batch = [first]
            # Linger a moment for company: each transaction costs about as much as a few dozen events in
            # it, so under a storm fuller batches keep up with less CPU; a lone alert waits `linger` more.
            until = time.monotonic() + self.linger
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, until - time.monotonic())))
                except queue.Empty:
                    break
            try:
                outcomes = self._apply(batch)
            except BaseException as exc:  # never leave a request waiting forever
                log.exception("alert intake failed")
                outcomes = [exc] * len(batch)
            _settle(batch, outcomes)

    def _apply(self, batch: list[_Waiting]) -> list[Outcome]:
        items = [(w.routing_key, w.event) for w in batch]
        try:
            started = time.perf_counter()
            found = self._commit(items)
            COMMIT_SECONDS.observe(time.perf_counter() - started)
            BATCH_EVENTS.observe(len(batch))
            self.batches += 1
            self.events += len(batch)
            return found
        except Exception:
            if len(batch) == 1:
                raise
            log.warning("a batch of %d alert events failed; applying them one by one", len(batch), exc_info=True)
        outcomes: list[Outcome] = []
        for item in items:
            try:
                outcomes.extend(self._commit([item]))
                self.batches += 1
                self.events += 1
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def _commit(self, items: list[tuple[str, AlertEvent]]) -> list[Outcome]:
        """Apply events in one transaction on the writer's own connection.

        The writer keeps its connection while busy (no pool round trip per batch). A failed batch gives the
        connection up; the next one checks out anew.
        """
        for retry in (True, False):
            if self._connection is None:
                self._connection = self._engine.connect()
            try:
                with self.sessions(bind=self._connection) as session, session.begin():
                    return list(integrations.receive_events_v2_batch(session, self.clock, items))
            except DBAPIError as exc:
                self._release_connection()
                # The database dropped the kept connection (a restart, a failover, an idle timeout): once more
                # on a fresh one, as the sender would retry anyway.
                if not (retry and exc.connection_invalidated):
                    raise
            except Exception:
                self._release_connection()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _release_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # a broken connection: the pool discards it
                connection.close()


def _settle(batch: list[_Waiting], outcomes: list[Outcome]) -> None:
    """Wake the waiting requests: one call into each event loop for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None], Outcome]]] = {}
    for waiting, outcome in zip(batch, outcomes, strict=True):
        by_loop.setdefault(waiting.loop, []).append((waiting.future, outcome))
    for loop, results in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits there any more
            loop.call_soon_threadsafe(_resolve, results)


def _resolve(results: list[tuple[asyncio.Future[None], Outcome]]) -> None:
    for future, outcome in results:
        if future.done():
            continue  # the request was cancelled (client gone); the event is stored all the same
        if outcome is None:
            future.set_result(None)
        else:
            future.set_exception(outcome)


_intakes_lock = threading.Lock()


def intake_for(owner: object, make: Callable[[], EventsIntake]) -> EventsIntake:
    """The intake of `owner` (e.g. the web app's state), made on first use."""
    found = getattr(owner, "alert_intake", None)
    if isinstance(found, EventsIntake):
        return found
    with _intakes_lock:
        found = getattr(owner, "alert_intake", None)
        if not isinstance(found, EventsIntake):
            found = make()
            setattr(owner, "alert_intake", found)  # noqa: B010 - starlette State takes any attribute
        return found

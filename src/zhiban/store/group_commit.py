"""Group commit: many requests' writes, one transaction.

Under a storm (alerts) or a rush (tickets) a transaction per request is what limits a desk: every one pays BEGIN,
COMMIT (a WAL flush on PostgreSQL; SQLite has one writer at a time) and whatever it reads once per transaction (a
plan's policy version, an organization's calendar). Request handlers hand their checked item to the process's
`GroupCommit` and wait; one writer thread takes whatever has queued up meanwhile, applies it in ONE transaction and
commits, and only then answers every waiting request, so an answer still means "committed". If a batch fails, its
items are applied one per transaction, so that one bad item cannot fail the others.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar, Union

from prometheus_client import Histogram
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from zhiban.core.errors import InvalidInput

log = logging.getLogger("zhiban.store.group_commit")

Item = TypeVar("Item")
Result = TypeVar("Result")
# What a batch gives each item: its result, or the exception that failed it alone (the others stand).
Outcome: TypeAlias = Union[Result, BaseException]  # noqa: UP007 - a generic alias of TypeVars
Apply: TypeAlias = Callable[[Session, list[Item]], Sequence[Union[Result, BaseException]]]  # noqa: UP007

MAX_BATCH = 500
MAX_QUEUE = 20_000
IDLE_EXIT_SECONDS = 5.0
LINGER_SECONDS = 0.005


@dataclass(slots=True)
class _Waiting(Generic[Item, Result]):
    item: Item
    loop: asyncio.AbstractEventLoop | None  # an async caller's loop; None: a thread waits on `done`
    future: asyncio.Future[Result] | concurrent.futures.Future[Result]


class GroupCommit(Generic[Item, Result]):
    """One writer thread per process that applies queued items in batches; `commit` waits for the commit."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        apply: Apply[Item, Result],
        *,
        name: str,
        full: Callable[[], Exception],
        max_batch: int = MAX_BATCH,
        max_queue: int = MAX_QUEUE,
        idle_exit: float = IDLE_EXIT_SECONDS,
        linger: float = LINGER_SECONDS,
        batch_sizes: Histogram | None = None,
        commit_seconds: Histogram | None = None,
    ) -> None:
        if not 1 <= max_batch <= 1000 or not 1 <= max_queue <= 1_000_000 or idle_exit <= 0 or not 0 <= linger <= 1:
            raise InvalidInput("max_batch 1..1000, max_queue 1..1000000, idle_exit positive, linger 0..1 s")
        self.sessions = sessions
        self._apply_batch = apply
        self.name = name
        self._full = full
        self._engine: Engine = sessions.kw["bind"]
        self._connection: Connection | None = None
        self.max_batch = max_batch
        self.idle_exit = idle_exit
        self.linger = linger
        self._batch_sizes = batch_sizes
        self._commit_seconds = commit_seconds
        self._queue: queue.Queue[_Waiting[Item, Result]] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.batches = 0  # committed batches, for benchmarks and tests
        self.items = 0

    async def commit(self, item: Item) -> Result:
        """Queue a checked item and return its result once it is committed; raises what failed it, or `full()`."""
        loop = asyncio.get_running_loop()
        waiting: _Waiting[Item, Result] = _Waiting(item, loop, loop.create_future())
        self._put(waiting)
        return await waiting.future  # type: ignore[misc]

    def commit_blocking(self, item: Item) -> Result:
        """`commit` for a caller in a thread (a sync request handler): blocks until the batch is committed."""
        waiting: _Waiting[Item, Result] = _Waiting(item, None, concurrent.futures.Future())
        self._put(waiting)
        assert isinstance(waiting.future, concurrent.futures.Future)
        return waiting.future.result()

    def _put(self, waiting: _Waiting[Item, Result]) -> None:
        try:
            self._queue.put_nowait(waiting)
        except queue.Full:
            raise self._full() from None
        self._ensure_writer()

    # --- the writer ---------------------------------------------------------------------------

    def _ensure_writer(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.idle_exit)
            except queue.Empty:
                with self._lock:
                    # Idle: stop the thread (a desk in a test, or a quiet night); the next commit starts one.
                    if self._queue.empty():
                        self._release_connection()
                        self._thread = None
                        return
                continue
            batch = [first]
            # Linger a moment for company: each transaction costs about as much as a few dozen items in it,
            # so under a storm fuller batches keep up with less CPU; a lone item waits `linger` more.
            until = time.monotonic() + self.linger
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, until - time.monotonic())))
                except queue.Empty:
                    break
            try:
                outcomes = self._apply(batch)
            except BaseException as exc:  # never leave a request waiting forever
                log.exception("%s failed", self.name)
                outcomes = [exc] * len(batch)
            _settle(batch, outcomes)

    def _apply(self, batch: list[_Waiting[Item, Result]]) -> list[Outcome[Result]]:
        items = [w.item for w in batch]
        try:
            started = time.perf_counter()
            found = self._commit(items)
            if self._commit_seconds is not None:
                self._commit_seconds.observe(time.perf_counter() - started)
            if self._batch_sizes is not None:
                self._batch_sizes.observe(len(batch))
            self.batches += 1
            self.items += len(batch)
            return found
        except Exception:
            if len(batch) == 1:
                raise
            log.warning("%s: a batch of %d failed; applying them one by one", self.name, len(batch), exc_info=True)
        outcomes: list[Outcome[Result]] = []
        for item in items:
            try:
                outcomes.extend(self._commit([item]))
                self.batches += 1
                self.items += 1
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def _commit(self, items: list[Item]) -> list[Outcome[Result]]:
        """Apply items in one transaction on the writer's own connection.

        The writer keeps its connection while busy (no pool round trip per batch). A failed batch gives the
        connection up; the next one checks out anew.
        """
        for retry in (True, False):
            if self._connection is None:
                self._connection = self._engine.connect()
            try:
                with self.sessions(bind=self._connection) as session, session.begin():
                    found = list(self._apply_batch(session, items))
                if len(found) != len(items):
                    raise AssertionError(f"{self.name}: {len(found)} outcomes for {len(items)} items")
                return found
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


def _settle(batch: Sequence[_Waiting[Item, Result]], outcomes: Sequence[Outcome[Result]]) -> None:
    """Wake the waiting requests: one call into each event loop for the whole batch, threads directly."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Result], Outcome[Result]]]] = {}
    for waiting, outcome in zip(batch, outcomes, strict=True):
        if waiting.loop is None:
            assert isinstance(waiting.future, concurrent.futures.Future)
            if isinstance(outcome, BaseException):
                waiting.future.set_exception(outcome)
            else:
                waiting.future.set_result(outcome)
        else:
            assert isinstance(waiting.future, asyncio.Future)
            by_loop.setdefault(waiting.loop, []).append((waiting.future, outcome))
    for loop, results in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits there any more
            loop.call_soon_threadsafe(_resolve, results)


def _resolve(results: list[tuple[asyncio.Future[Result], Outcome[Result]]]) -> None:
    for future, outcome in results:
        if future.done():
            continue  # the request was cancelled (client gone); the item is stored all the same
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


_owners_lock = threading.Lock()
T = TypeVar("T")


def kept_on(owner: object, attribute: str, kind: type[T], make: Callable[[], T]) -> T:
    """The object kept on `owner` (e.g. the web app's state) under `attribute`, made on first use."""
    found = getattr(owner, attribute, None)
    if isinstance(found, kind):
        return found
    with _owners_lock:
        found = getattr(owner, attribute, None)
        if not isinstance(found, kind):
            found = make()
            setattr(owner, attribute, found)
        return found

"""Job handlers by kind, and the context a handler receives."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from zhiban.core.clock import Clock

from . import store
from .model import check_kind


class LeaseLost(Exception):
    """This run no longer holds its job (its lease expired and another run may have it)."""


class PermanentFailure(Exception):
    """Raised by a handler when retrying cannot help: the job goes straight to `dead`."""


class JobContext:
    """What a handler gets besides its payload: sessions, the clock, and which run this is."""

    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        clock: Clock,
        job_id: str,
        kind: str,
        attempt: int,
        max_attempts: int,
        dedup_key: str | None,
        due_at: datetime,
        worker_id: str,
        heartbeat: Callable[[], bool],
        runs: list[tuple[str, int]] | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.clock = clock
        self.job_id = job_id
        self.kind = kind
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.dedup_key = dedup_key
        self.due_at = due_at
        self.worker_id = worker_id
        self._heartbeat = heartbeat
        # Every run this context finishes: one job, or the batch a batch handler was given.
        self.runs = runs or [(job_id, attempt)]
        self.finished = False
        self._finish_token: object | None = None

    def heartbeat(self) -> bool:
        """Extend this run's lease now; False means the lease was already lost (stop working)."""
        return self._heartbeat()

    def finish(self, session: Session) -> None:
        """Mark the job done inside the handler's own transaction, so its effect and `done` commit together.

        Raises LeaseLost (rolling that transaction back) when another run holds the job now.
        """
        if len(self.runs) == 1:
            held = store.mark_done(
                session, job_id=self.job_id, worker_id=self.worker_id, attempt=self.attempt, now=self.clock.now()
            )
        else:
            done = store.mark_done_many(session, worker_id=self.worker_id, runs=self.runs, now=self.clock.now())
            held = done == len(self.runs)
        if not held:
            raise LeaseLost(f"job {self.job_id} attempt {self.attempt} no longer holds its lease")
        # `finished` becomes true only once that transaction commits; if it rolls back, the worker
        # records completion itself when the handler returns.
        token = object()
        self._finish_token = token

        def committed(_session: Session) -> None:
            if self._finish_token is token:
                self.finished = True

        def rolled_back(_session: Session) -> None:
            if self._finish_token is token:
                self._finish_token = None

        event.listen(session, "after_commit", committed, once=True)
        event.listen(session, "after_rollback", rolled_back, once=True)


Handler = Callable[[JobContext, dict[str, Any]], None]
# A batch handler gets the payloads of many jobs of its kind at once; `ctx.finish` finishes them all.
BatchHandler = Callable[[JobContext, list[dict[str, Any]]], None]
MAX_BATCH = 1000


class JobRegistry:
    """Maps a job kind to the function that runs it."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._batches: dict[str, tuple[BatchHandler, int]] = {}
        self._urgent: set[str] = set()

    def handler(self, kind: str, *, urgent: bool = False) -> Callable[[Handler], Handler]:
        """Decorator: `@registry.handler("sla.breach") def on_breach(ctx, payload): ...`."""

        def register(fn: Handler) -> Handler:
            self.add(kind, fn, urgent=urgent)
            return fn

        return register

    def add(self, kind: str, fn: Handler, *, urgent: bool = False) -> None:
        """Register `fn` for `kind`; a kind has exactly one handler.

        An `urgent` kind is what a person is waiting for (a page, its next step, a message to send): a worker
        claims due jobs of urgent kinds before any other and runs them before the bookkeeping it has queued."""
        check_kind(kind)
        if kind in self._handlers and self._handlers[kind] is not fn:
            raise ValueError(f"a handler for job kind {kind!r} is already registered")
        self._handlers[kind] = fn
        if urgent:
            self._urgent.add(kind)

    def batch_handler(self, kind: str, *, max_batch: int = 500) -> Callable[[BatchHandler], BatchHandler]:
        """Decorator for kinds whose jobs are cheaper together: a worker claims up to `max_batch` due jobs of
        the kind at once and calls `fn(ctx, payloads)` in one go (in due order).

        If the batch fails, the worker runs each of its jobs alone, so one bad job fails (and retries) alone:
        the handler must be idempotent, as every handler is.
        """

        def register(fn: BatchHandler) -> BatchHandler:
            if not 1 <= max_batch <= MAX_BATCH:
                raise ValueError(f"max_batch must be 1..{MAX_BATCH}")
            self.add(kind, lambda ctx, payload: fn(ctx, [payload]))
            self._batches[kind] = (fn, max_batch)
            return fn

        return register

    def batch(self, kind: str) -> tuple[BatchHandler, int] | None:
        """The batch handler of `kind` and its largest batch (None: the kind runs a job at a time)."""
        return self._batches.get(kind)

    def include(self, other: JobRegistry) -> None:
        """Add every handler of another registry (e.g. one per feature)."""
        for kind, fn in other._handlers.items():
            self.add(kind, fn, urgent=kind in other._urgent)
        self._batches.update(other._batches)

    def get(self, kind: str) -> Handler | None:
        return self._handlers.get(kind)

    def kinds(self) -> frozenset[str]:
        """The kinds this registry runs; a worker claims only these."""
        return frozenset(self._handlers)

    def urgent_kinds(self) -> frozenset[str]:
        """The kinds a worker claims and runs first (see `add`)."""
        return frozenset(self._urgent)

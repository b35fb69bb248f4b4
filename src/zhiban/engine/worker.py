"""The worker: claims due jobs, runs their handlers on threads, keeps leases alive, records outcomes."""

from __future__ import annotations

import collections
import logging
import os
import queue
import random
import signal
import socket
import threading
import time
import traceback
from datetime import datetime, timedelta
from types import FrameType

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from zhiban.core.clock import Clock
from zhiban.core.errors import InvalidInput
from zhiban.store.db import new_id, transaction

from . import store, wakeup
from .metrics import JOB_RUN_SECONDS, JOBS_CLAIMED, JOBS_FINISHED
from .model import bounded_error, retry_delay
from .registry import JobContext, JobRegistry, LeaseLost, PermanentFailure
from .service import add_commit_listener
from .store import ClaimedJob

log = logging.getLogger("zhiban.engine")


def default_worker_id() -> str:
    """host-pid-random: unique per process, readable in the jobs table."""
    return f"{socket.gethostname()[:120]}-{os.getpid()}-{new_id()[:6]}"


class Worker:
    """Runs the jobs of `registry` from the database, at least once each, `concurrency` at a time."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        registry: JobRegistry,
        clock: Clock,
        worker_id: str | None = None,
        *,
        concurrency: int = 4,
        lease: timedelta = timedelta(seconds=60),
        poll: timedelta = timedelta(seconds=0.5),
        retry_base: timedelta = timedelta(seconds=5),
        retry_cap: timedelta = timedelta(minutes=10),
        shutdown_grace: timedelta = timedelta(seconds=10),
        rng: random.Random | None = None,
    ) -> None:
        if worker_id is not None and not 1 <= len(worker_id) <= 200:
            raise InvalidInput("worker_id must be 1..200 characters")
        if not 1 <= concurrency <= 256:
            raise InvalidInput("concurrency must be in 1..256")
        if lease < timedelta(seconds=1) or poll <= timedelta(0) or retry_base <= timedelta(0) or retry_cap < retry_base:
            raise InvalidInput("lease must be at least 1 s, poll and retry_base positive, retry_cap >= retry_base")
        self.session_factory = session_factory
        self.registry = registry
        self.clock = clock
        self.worker_id = worker_id or default_worker_id()
        self.concurrency = concurrency
        self.lease = lease
        self.poll = poll
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.shutdown_grace = shutdown_grace
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._held: dict[tuple[str, int], JobContext] = {}  # (job id, attempt) of each run in progress
        self._lost: set[tuple[str, int]] = set()
        self._inflight = 0
        self._queued: set[tuple[str, int]] = set()  # claimed runs waiting for a thread: their leases are kept too
        self._wake = threading.Event()
        self._next_bury: datetime | None = None  # when _claim next runs bury_expired (engine clock)

    # --- claiming -----------------------------------------------------------------------------

    def _claim(self, limit: int) -> list[list[ClaimedJob]]:
        """Claim up to `limit` due jobs, as units to run: one job each, or a batch of one batch kind."""
        now = self.clock.now()
        # Burying is housekeeping (the claim below already skips what it would bury): once a second will do.
        bury = self._next_bury is None or now >= self._next_bury
        if bury:
            self._next_bury = now + timedelta(seconds=1)
        with transaction(self.session_factory) as session:
            buried = store.bury_expired(session, now) if bury else 0
            # What a person waits for (a page, its next step, a message) is claimed first: in a rush its jobs
            # would otherwise wait behind every follow-up job filed before them.
            urgent = self.registry.urgent_kinds()
            claimed: list[ClaimedJob] = []
            for kinds in (urgent, self.registry.kinds() - urgent):
                if kinds and len(claimed) < limit:
                    claimed += store.claim_due(
                        session,
                        worker_id=self.worker_id,
                        kinds=kinds,
                        now=now,
                        lease_until=now + self.lease,
                        limit=limit - len(claimed),
                    )
            units: list[list[ClaimedJob]] = []
            batches: dict[str, list[ClaimedJob]] = {}
            for job in claimed:
                if self.registry.batch(job.kind) is None:
                    units.append([job])
                elif job.kind in batches:
                    batches[job.kind].append(job)
                else:
                    batches[job.kind] = [job]
                    units.append(batches[job.kind])
            for kind, batch in batches.items():
                # A rush of one batch kind: take what else is due of it now, in the same claim.
                room = self.registry.batch(kind)[1] - len(batch)  # type: ignore[index]
                if room > 0 and len(batch) >= 1:
                    batch += store.claim_due(
                        session,
                        worker_id=self.worker_id,
                        kinds=frozenset({kind}),
                        now=now,
                        lease_until=now + self.lease,
                        limit=room,
                    )
        if buried:
            log.warning("marked %d job(s) dead: lease expired on their last attempt", buried)
        for unit in units:
            for job in unit:
                JOBS_CLAIMED.labels(job.kind).inc()
        return units

    # --- leases -------------------------------------------------------------------------------

    def _extend(self, runs: list[tuple[str, int]]) -> set[tuple[str, int]]:
        """Extend the leases of `runs`; remember and return the runs whose lease was lost."""
        if not runs:
            return set()
        now = self.clock.now()
        with transaction(self.session_factory) as session:
            held = store.extend_leases(session, worker_id=self.worker_id, runs=runs, lease_until=now + self.lease)
        with self._lock:
            # A run that finished meanwhile is no longer running, not lost: only those still in hand count.
            lost = {run for run in set(runs) - held if run in self._held or run in self._queued}
            self._lost.update(lost)
        for job_id, attempt in lost:
            log.warning("job %s attempt %d: lease lost, another worker may run it", job_id, attempt)
        return lost

    def _heartbeat_one(self, job_id: str, attempt: int) -> bool:
        with self._lock:
            if (job_id, attempt) in self._lost:
                return False
        return not self._extend([(job_id, attempt)])

    def _heartbeat_all(self) -> None:
        with self._lock:
            runs = [run for run in [*self._held, *self._queued] if run not in self._lost]
        try:
            self._extend(runs)
        except Exception:
            log.exception("heartbeat failed; will try again")

    # --- running ------------------------------------------------------------------------------

    def _run(self, job: ClaimedJob) -> str:
        """Run one claimed job and record its outcome; returns done, retry, dead or lost."""
        ctx = JobContext(
            session_factory=self.session_factory,
            clock=self.clock,
            job_id=job.id,
            kind=job.kind,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            dedup_key=job.dedup_key,
            due_at=job.due_at,
            worker_id=self.worker_id,
            heartbeat=lambda: self._heartbeat_one(job.id, job.attempt),
        )
        with self._lock:
            self._queued.discard((job.id, job.attempt))
            self._held[(job.id, job.attempt)] = ctx
        started = time.monotonic()
        try:
            outcome = self._execute(ctx, job)
        finally:
            with self._lock:
                self._held.pop((job.id, job.attempt), None)
                self._lost.discard((job.id, job.attempt))
        JOB_RUN_SECONDS.labels(job.kind).observe(time.monotonic() - started)
        JOBS_FINISHED.labels(job.kind, outcome).inc()
        return outcome

    def _run_unit(self, unit: list[ClaimedJob]) -> None:
        """Run one claimed job, or a batch of one kind (alone each if the batch fails)."""
        if len(unit) == 1:
            self._run(unit[0])
            return
        runs = [(job.id, job.attempt) for job in unit]
        first = unit[0]
        ctx = JobContext(
            session_factory=self.session_factory,
            clock=self.clock,
            job_id=first.id,
            kind=first.kind,
            attempt=first.attempt,
            max_attempts=first.max_attempts,
            dedup_key=first.dedup_key,
            due_at=first.due_at,
            worker_id=self.worker_id,
            heartbeat=lambda: not self._extend(runs),
            runs=runs,
        )
        with self._lock:
            self._queued.difference_update(runs)
            for run in runs:
                self._held[run] = ctx
        started = time.monotonic()
        handler, _ = self.registry.batch(first.kind)  # type: ignore[misc]
        try:
            handler(ctx, [dict(job.payload) for job in unit])
            outcome = "done" if ctx.finished else self._record_done_many(first.kind, runs)
        except LeaseLost:
            log.warning("batch of %d %s job(s): lease lost during the run", len(unit), first.kind)
            outcome = "lost"
        except Exception as exc:
            log.warning("batch of %d %s job(s) failed (%s); running them one by one", len(unit), first.kind, exc)
            outcome = "split"
        finally:
            with self._lock:
                for run in runs:
                    self._held.pop(run, None)
                    self._lost.discard(run)
        JOB_RUN_SECONDS.labels(first.kind).observe(time.monotonic() - started)
        if outcome == "split":
            for job in unit:
                self._run(job)
            return
        JOBS_FINISHED.labels(first.kind, outcome).inc(len(unit))

    def _record_done_many(self, kind: str, runs: list[tuple[str, int]]) -> str:
        try:
            with transaction(self.session_factory) as session:
                held = store.mark_done_many(session, worker_id=self.worker_id, runs=runs, now=self.clock.now())
        except Exception:
            log.exception("batch of %d %s job(s): could not record completion", len(runs), kind)
            return "lost"
        return "done" if held == len(runs) else "lost"

    def _execute(self, ctx: JobContext, job: ClaimedJob) -> str:
        handler = self.registry.get(job.kind)
        try:
            if handler is None:
                raise PermanentFailure(f"no handler registered for job kind {job.kind!r}")
            handler(ctx, dict(job.payload))
        except LeaseLost:
            log.warning("job %s attempt %d: lease lost during the run", job.id, job.attempt)
            return "lost"
        except Exception as exc:
            error = bounded_error(traceback.format_exc())
            give_up = isinstance(exc, PermanentFailure) or job.attempt >= job.max_attempts
            now = self.clock.now()
            retry_at = None if give_up else now + retry_delay(job.attempt, self.retry_base, self.retry_cap, self._rng)
            log.warning("job %s (%s) attempt %d failed: %s", job.id, job.kind, job.attempt, exc)
            return self._record_failure(job, error, retry_at)
        if ctx.finished:
            return "done"
        return self._record_done(job)

    def _record_done(self, job: ClaimedJob) -> str:
        try:
            with transaction(self.session_factory) as session:
                held = store.mark_done(
                    session, job_id=job.id, worker_id=self.worker_id, attempt=job.attempt, now=self.clock.now()
                )
        except Exception:
            # The lease will run out and the job will be run again: handlers are idempotent.
            log.exception("job %s: could not record completion", job.id)
            return "lost"
        if not held:
            log.warning("job %s attempt %d finished after losing its lease; result not recorded", job.id, job.attempt)
            return "lost"
        return "done"

    def _record_failure(self, job: ClaimedJob, error: str, retry_at: datetime | None) -> str:
        try:
            with transaction(self.session_factory) as session:
                held = store.mark_failed(
                    session,
                    job_id=job.id,
                    worker_id=self.worker_id,
                    attempt=job.attempt,
                    error=error,
                    now=self.clock.now(),
                    retry_at=retry_at,
                )
        except Exception:
            log.exception("job %s: could not record failure", job.id)
            return "lost"
        if not held:
            return "lost"
        return "dead" if retry_at is None else "retry"

    def run_once(self, limit: int | None = None) -> int:
        """Claim the due jobs (up to `limit`, default `concurrency`) and run them here, one after another."""
        units = self._claim(limit or self.concurrency)
        for unit in units:
            self._run_unit(unit)
        return sum(len(unit) for unit in units)

    # --- the loop -----------------------------------------------------------------------------

    def notify(self) -> None:
        """Wake the loop now: new work may be due, or a slot is free."""
        self._wake.set()

    def _serve(self, jobs: _Units, urgent_only: bool = False) -> None:
        while True:
            unit = jobs.get(urgent_only=urgent_only)
            if unit is None:
                return
            try:
                self._run_unit(unit)
            except Exception:
                log.exception("job %s: unexpected error in the worker", unit[0].id)
            finally:
                with self._lock:
                    self._inflight -= 1
                self._wake.set()

    def _beat(self, done: threading.Event) -> None:
        interval = max(self.lease.total_seconds() / 3, 0.2)
        while not done.wait(interval):
            self._heartbeat_all()

    def run_forever(self, stop: threading.Event) -> None:
        """Claim and run jobs until `stop` is set; then give running jobs `shutdown_grace` and release the rest."""
        jobs = _Units(self.registry.urgent_kinds())
        threads = [
            threading.Thread(target=self._serve, args=(jobs,), name=f"job-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        if jobs.has_lane:
            threads.append(threading.Thread(target=self._serve, args=(jobs, True), name="job-urgent", daemon=True))
        beat_done = threading.Event()
        beat = threading.Thread(target=self._beat, args=(beat_done,), name="job-heartbeat", daemon=True)
        for thread in [*threads, beat]:
            thread.start()
        unsubscribe = add_commit_listener(self.notify)
        bind = self.session_factory.kw.get("bind")
        if isinstance(bind, Engine):  # other processes' pages wake this one at once (PostgreSQL)
            wakeup.listen(bind, self.notify, beat_done)
        log.info("worker %s started: kinds %s", self.worker_id, ", ".join(sorted(self.registry.kinds())))
        try:
            while not stop.is_set():
                self._wake.clear()
                with self._lock:
                    # Claimed jobs wait in a queue as deep as the pool, refilled once at most `concurrency`
                    # remain: one claim transaction then takes many jobs, not one per finished job.
                    free = 2 * self.concurrency - self._inflight if self._inflight <= self.concurrency else 0
                claimed: list[list[ClaimedJob]] = []
                if free > 0:
                    try:
                        claimed = self._claim(free)
                    except Exception:
                        log.exception("claiming jobs failed; will try again")
                for unit in claimed:  # a batch takes one slot
                    with self._lock:
                        self._inflight += 1
                        self._queued.update((job.id, job.attempt) for job in unit)
                    jobs.put(unit)
                if sum(len(unit) for unit in claimed) < free or free == 0:
                    # Nothing more is due, or the queue is full: sleep until a poll, a finished job or notify().
                    self._wake.wait(self.poll.total_seconds())
        finally:
            unsubscribe()
            self._shut_down(jobs, threads)
            beat_done.set()

    def _shut_down(self, jobs: _Units, threads: list[threading.Thread]) -> None:
        deadline = time.monotonic() + self.shutdown_grace.total_seconds()
        # Jobs still queued were claimed but not started: hand them back at once.
        unstarted: list[ClaimedJob] = []
        units = 0
        while True:
            try:
                unstarted.extend(jobs.get_nowait())
            except queue.Empty:
                break
            units += 1
        with self._lock:
            self._inflight -= units
            self._queued.difference_update((job.id, job.attempt) for job in unstarted)
        for _ in threads:
            jobs.stop()
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0))
        with self._lock:
            running = list(self._held)
        runs = [(job.id, job.attempt) for job in unstarted] + running
        if runs:
            try:
                with transaction(self.session_factory) as session:
                    released = store.release(session, worker_id=self.worker_id, runs=runs, now=self.clock.now())
                log.warning("worker %s released %d unfinished job(s) on shutdown", self.worker_id, released)
            except Exception:
                log.exception("could not release jobs on shutdown; their leases will expire")
        log.info("worker %s stopped", self.worker_id)


class _Units:
    """Claimed units waiting for a thread: urgent kinds first, then in claim order; a `stop` is taken once
    nothing is left. A lane thread (`urgent_only`) takes urgent units alone, so a page never waits for a thread
    that every long batch holds."""

    def __init__(self, urgent: frozenset[str]) -> None:
        self._urgent = urgent
        self._ready = threading.Condition()
        self._first: collections.deque[list[ClaimedJob]] = collections.deque()
        self._rest: collections.deque[list[ClaimedJob]] = collections.deque()
        self._stops = 0

    @property
    def has_lane(self) -> bool:
        return bool(self._urgent)

    def put(self, unit: list[ClaimedJob]) -> None:
        with self._ready:
            (self._first if unit[0].kind in self._urgent else self._rest).append(unit)
            self._ready.notify_all()

    def stop(self) -> None:
        with self._ready:
            self._stops += 1
            self._ready.notify_all()

    def get(self, *, urgent_only: bool = False) -> list[ClaimedJob] | None:
        with self._ready:
            while True:
                if self._first:
                    return self._first.popleft()
                if self._rest and not urgent_only:
                    return self._rest.popleft()
                if self._stops:
                    self._stops -= 1
                    return None
                self._ready.wait()

    def get_nowait(self) -> list[ClaimedJob]:
        with self._ready:
            if self._first:
                return self._first.popleft()
            if self._rest:
                return self._rest.popleft()
        raise queue.Empty


def install_signal_handlers(stop: threading.Event, worker: Worker | None = None) -> None:
    """SIGTERM and SIGINT set `stop` (and wake the worker); call from the main thread."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()
        if worker is not None:
            worker.notify()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)

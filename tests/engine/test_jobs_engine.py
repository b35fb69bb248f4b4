"""The job engine in one process: enqueue and dedup, retries and dead letters, leases and zombies."""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from tests.engine.proc_handlers import effects, insert_effect, metadata
from zhiban.core.clock import FrozenClock
from zhiban.core.errors import Conflict, InvalidInput, NotFound
from zhiban.core.metrics import REGISTRY
from zhiban.engine import (
    JobContext,
    JobRegistry,
    LeaseLost,
    PermanentFailure,
    Worker,
    add_commit_listener,
    backoff_ceiling,
    cancel,
    enqueue,
    get_job,
    job_counts,
    list_jobs,
    purge_done,
    reschedule,
    retry_delay,
    retry_job,
)
from zhiban.engine import store as job_store
from zhiban.engine.store import Job
from zhiban.store.db import session_factory, transaction

LEASE = timedelta(seconds=60)
RETRY_BASE = timedelta(seconds=5)
RETRY_CAP = timedelta(minutes=10)


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[Session]:
    metadata.create_all(engine)
    return session_factory(engine)


def make_worker(
    factory: sessionmaker[Session], registry: JobRegistry, clock: FrozenClock, worker_id: str = "w1"
) -> Worker:
    return Worker(
        factory,
        registry,
        clock,
        worker_id,
        lease=LEASE,
        retry_base=RETRY_BASE,
        retry_cap=RETRY_CAP,
        rng=random.Random(7),
    )


def add_job(factory: sessionmaker[Session], kind: str, due_at: datetime, **kwargs: Any) -> str:
    with transaction(factory) as session:
        return enqueue(session, kind, kwargs.pop("payload", {}), due_at=due_at, **kwargs)


def job(factory: sessionmaker[Session], job_id: str) -> Any:
    with factory() as session:
        return get_job(session, job_id)


# --- enqueue ---------------------------------------------------------------------------------


def test_same_dedup_key_returns_the_first_job(factory: sessionmaker[Session], clock: FrozenClock) -> None:
    first = add_job(factory, "sla.breach", clock.now(), payload={"ticket": "T1"}, dedup_key="breach:T1")
    again = add_job(factory, "sla.breach", clock.now(), payload={"ticket": "other"}, dedup_key="breach:T1")
    other = add_job(factory, "sla.breach", clock.now(), payload={"ticket": "T2"}, dedup_key="breach:T2")
    assert again == first
    assert other != first
    assert job(factory, first).payload == {"ticket": "T1"}
    with factory() as session:
        assert job_counts(session)["pending"] == 2


def test_concurrent_enqueues_with_one_key_make_one_job(factory: sessionmaker[Session], clock: FrozenClock) -> None:
    callers = 6
    barrier = threading.Barrier(callers)
    ids: list[str] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            with transaction(factory) as session:
                barrier.wait(10)
                ids.append(enqueue(session, "escalation.step", {"n": 1}, due_at=clock.now(), dedup_key="esc:I1:1"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(ids) == callers and len(set(ids)) == 1
    with factory() as session:
        assert session.execute(select(func.count()).select_from(Job)).scalar_one() == 1


def test_enqueue_is_part_of_the_callers_transaction(factory: sessionmaker[Session], clock: FrozenClock) -> None:
    with pytest.raises(RuntimeError), transaction(factory) as session:
        enqueue(session, "sla.breach", {}, due_at=clock.now(), dedup_key="k")
        raise RuntimeError("the use case failed after enqueueing")
    with factory() as session:
        assert job_counts(session) == {"pending": 0, "running": 0, "done": 0, "dead": 0}


@pytest.mark.parametrize(
    ("kind", "payload", "due_at", "extra"),
    [
        ("Bad Kind", {}, datetime(2026, 1, 1, tzinfo=UTC), {}),
        ("sla.breach", {"x": object()}, datetime(2026, 1, 1, tzinfo=UTC), {}),
        ("sla.breach", {"blob": "x" * 70_000}, datetime(2026, 1, 1, tzinfo=UTC), {}),
        ("sla.breach", {}, datetime(2026, 1, 1), {}),
        ("sla.breach", {}, datetime(2026, 1, 1, tzinfo=UTC), {"dedup_key": "k" * 201}),
        ("sla.breach", {}, datetime(2026, 1, 1, tzinfo=UTC), {"max_attempts": 0}),
    ],
    ids=["kind", "not-json", "too-large", "naive-time", "long-key", "no-attempts"],
)
def test_enqueue_refuses_bad_input(kind: str, payload: dict[str, Any], due_at: datetime, extra: dict[str, Any]) -> None:
    # Refused before any SQL: the session has no database at all.
    with pytest.raises(InvalidInput):
        enqueue(Session(), kind, payload, due_at=due_at, **extra)


def test_cancel_and_reschedule_act_on_pending_jobs_only(factory: sessionmaker[Session], clock: FrozenClock) -> None:
    registry = JobRegistry()
    ran: list[str] = []
    registry.add("sla.warning", lambda ctx, payload: ran.append(payload["ticket"]))
    worker = make_worker(factory, registry, clock)
    soon = clock.now() + timedelta(minutes=5)

    first = add_job(factory, "sla.warning", soon, payload={"ticket": "T1"}, dedup_key="warn:T1")
    with transaction(factory) as session:
        assert cancel(session, "warn:T1") is True
        assert cancel(session, "warn:T1") is False
    # The key is free again once cancelled.
    second = add_job(factory, "sla.warning", soon, payload={"ticket": "T1"}, dedup_key="warn:T1")
    assert second != first

    with transaction(factory) as session:
        assert reschedule(session, "warn:T1", due_at=soon + timedelta(hours=1)) is True
    clock.advance(timedelta(minutes=10))
    assert worker.run_once() == 0
    clock.advance(timedelta(hours=1))
    assert worker.run_once() == 1
    assert ran == ["T1"]
    with transaction(factory) as session:
        assert cancel(session, "warn:T1") is False
        assert reschedule(session, "warn:T1", due_at=clock.now()) is False
    assert job(factory, second).state == "done"


def test_commit_listeners_hear_committed_enqueues_only(factory: sessionmaker[Session], clock: FrozenClock) -> None:
    heard: list[int] = []
    remove = add_commit_listener(lambda: heard.append(1))
    try:
        with pytest.raises(RuntimeError), transaction(factory) as session:
            enqueue(session, "sla.breach", {}, due_at=clock.now())
            raise RuntimeError("rolled back")
        with transaction(factory) as session:
            session.execute(select(1))
        assert heard == []
        add_job(factory, "sla.breach", clock.now())
        assert heard == [1]
    finally:
        remove()


# --- retries and dead letters ----------------------------------------------------------------


def test_backoff_ceiling_doubles_from_base_up_to_cap() -> None:
    base, cap = timedelta(seconds=5), timedelta(minutes=10)
    ceilings = [backoff_ceiling(n, base, cap).total_seconds() for n in range(1, 10)]
    assert ceilings == [5, 10, 20, 40, 80, 160, 320, 600, 600]
    assert backoff_ceiling(10_000, base, cap) == cap
    with pytest.raises(ValueError):
        backoff_ceiling(0, base, cap)


@pytest.mark.parametrize("attempt", [1, 3, 7, 50])
def test_full_jitter_spreads_over_the_whole_window(attempt: int) -> None:
    base, cap = timedelta(seconds=2), timedelta(seconds=100)
    ceiling = backoff_ceiling(attempt, base, cap)
    rng = random.Random(attempt)
    delays = [retry_delay(attempt, base, cap, rng) for _ in range(2000)]
    assert all(timedelta(0) <= d <= ceiling for d in delays)
    # Full jitter, not "ceiling plus a little": both ends of the window are used.
    assert min(delays) < ceiling * 0.05
    assert max(delays) > ceiling * 0.95


def test_failing_job_backs_off_then_goes_dead_and_retry_job_revives_it(
    factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    registry = JobRegistry()
    healthy = threading.Event()
    attempts_seen: list[int] = []

    @registry.handler("notify.deliver")
    def deliver(ctx: JobContext, payload: dict[str, Any]) -> None:
        attempts_seen.append(ctx.attempt)
        if not healthy.is_set():
            raise ConnectionError("webhook answered 503")

    worker = make_worker(factory, registry, clock)
    job_id = add_job(factory, "notify.deliver", clock.now(), max_attempts=3)

    for attempt in (1, 2):
        failed_at = clock.now()
        assert worker.run_once() == 1
        view = job(factory, job_id)
        assert (view.state, view.attempts) == ("pending", attempt)
        assert "webhook answered 503" in (view.last_error or "")
        assert failed_at < view.due_at <= failed_at + backoff_ceiling(attempt, RETRY_BASE, RETRY_CAP)
        assert worker.run_once() == 0  # not before its retry time
        clock.set(view.due_at)

    assert worker.run_once() == 1
    view = job(factory, job_id)
    assert (view.state, view.attempts, view.finished_at) == ("dead", 3, clock.now())
    clock.advance(timedelta(days=1))
    assert worker.run_once() == 0

    with transaction(factory) as session:
        with pytest.raises(Conflict):
            retry_job(session, add_job(factory, "notify.deliver", clock.now() + timedelta(days=9)), due_at=clock.now())
        with pytest.raises(NotFound):
            retry_job(session, "no-such-job", due_at=clock.now())
        retry_job(session, job_id, due_at=clock.now())
    assert (job(factory, job_id).state, job(factory, job_id).attempts) == ("pending", 0)
    healthy.set()
    assert worker.run_once() == 1
    assert job(factory, job_id).state == "done"
    assert attempts_seen == [1, 2, 3, 1]


def test_permanent_failure_goes_dead_at_once(factory: sessionmaker[Session], clock: FrozenClock) -> None:
    registry = JobRegistry()

    @registry.handler("notify.deliver")
    def deliver(ctx: JobContext, payload: dict[str, Any]) -> None:
        raise PermanentFailure("channel deleted")

    # Due earlier than the dead job, but of a kind this worker does not run: it stays pending.
    foreign = add_job(factory, "report.export", clock.now() - timedelta(hours=1))
    job_id = add_job(factory, "notify.deliver", clock.now())
    assert make_worker(factory, registry, clock).run_once() == 1
    view = job(factory, job_id)
    assert (view.state, view.attempts) == ("dead", 1)
    assert "channel deleted" in (view.last_error or "")
    with factory() as session:
        assert [v.id for v in list_jobs(session, state="dead")] == [job_id]
        assert [v.id for v in list_jobs(session)] == [job_id, foreign]  # the dead-lettered first
        assert [v.id for v in list_jobs(session, state="pending")] == [foreign]
        assert [v.id for v in list_jobs(session, kind="notify.deliver")] == [job_id]
        assert [v.id for v in list_jobs(session, kind="report.export")] == [foreign]
        assert list_jobs(session, kind="sla.breach") == []
        with pytest.raises(InvalidInput):
            list_jobs(session, state="lost")


def test_worker_claims_only_kinds_it_has_handlers_for(factory: sessionmaker[Session], clock: FrozenClock) -> None:
    registry = JobRegistry()
    registry.add("sla.breach", lambda ctx, payload: None)
    foreign = add_job(factory, "report.export", clock.now())
    mine = add_job(factory, "sla.breach", clock.now())
    assert make_worker(factory, registry, clock).run_once(limit=10) == 1
    assert (job(factory, mine).state, job(factory, foreign).state) == ("done", "pending")


# --- leases and zombies ----------------------------------------------------------------------


def claim_as(factory: sessionmaker[Session], worker_id: str, clock: FrozenClock) -> list[job_store.ClaimedJob]:
    """Claim like a worker process would, without running anything (as if it died right after)."""
    with transaction(factory) as session:
        return job_store.claim_due(
            session,
            worker_id=worker_id,
            kinds=frozenset({"sla.breach"}),
            now=clock.now(),
            lease_until=clock.now() + LEASE,
            limit=10,
        )


def test_expired_lease_is_reclaimed_and_the_zombie_cannot_complete(
    factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    registry = JobRegistry()
    runs: list[tuple[str, int]] = []
    registry.add("sla.breach", lambda ctx, payload: runs.append((ctx.worker_id, ctx.attempt)))
    job_id = add_job(factory, "sla.breach", clock.now())
    [ghost_run] = claim_as(factory, "ghost", clock)
    survivor = make_worker(factory, registry, clock, "survivor")

    clock.advance(LEASE - timedelta(seconds=1))
    assert survivor.run_once() == 0  # the lease still holds
    clock.advance(timedelta(seconds=1))
    assert survivor.run_once() == 1
    assert runs == [("survivor", 2)]

    with transaction(factory) as session:
        now = clock.now()
        assert not job_store.mark_done(session, job_id=job_id, worker_id="ghost", attempt=ghost_run.attempt, now=now)
        assert not job_store.mark_failed(
            session, job_id=job_id, worker_id="ghost", attempt=1, error="late", now=now, retry_at=now
        )
    view = job(factory, job_id)
    assert (view.state, view.attempts, view.locked_by, view.last_error) == ("done", 2, "survivor", None)


def test_a_worker_cannot_complete_its_own_earlier_run(factory: sessionmaker[Session], clock: FrozenClock) -> None:
    job_id = add_job(factory, "sla.breach", clock.now())
    [earlier] = claim_as(factory, "w1", clock)
    clock.advance(LEASE)
    [later] = claim_as(factory, "w1", clock)
    assert (earlier.attempt, later.attempt) == (1, 2)
    with transaction(factory) as session:
        assert not job_store.mark_done(session, job_id=job_id, worker_id="w1", attempt=1, now=clock.now())
        assert job_store.mark_done(session, job_id=job_id, worker_id="w1", attempt=2, now=clock.now())


def test_lease_expiring_on_the_last_attempt_makes_the_job_dead(
    factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    job_id = add_job(factory, "sla.breach", clock.now(), max_attempts=2)
    claim_as(factory, "w1", clock)
    clock.advance(LEASE)
    claim_as(factory, "w2", clock)
    clock.advance(LEASE)
    registry = JobRegistry()
    registry.add("sla.breach", lambda ctx, payload: None)
    assert make_worker(factory, registry, clock, "w3").run_once() == 0
    view = job(factory, job_id)
    assert (view.state, view.attempts) == ("dead", 2)
    assert "lease expired" in (view.last_error or "")


def test_heartbeat_extends_the_lease_and_reports_a_lost_one(factory: sessionmaker[Session], clock: FrozenClock) -> None:
    registry = JobRegistry()
    beats: list[bool] = []
    leases: list[datetime | None] = []

    @registry.handler("sla.breach")
    def long_job(ctx: JobContext, payload: dict[str, Any]) -> None:
        clock.advance(LEASE / 2)
        beats.append(ctx.heartbeat())
        leases.append(get_job_lease(ctx))
        clock.advance(LEASE)  # this run hangs past its lease; another worker takes over
        claim_as(factory, "thief", clock)
        beats.append(ctx.heartbeat())
        with transaction(ctx.session_factory) as session:
            insert_effect(session, "breach:T1", ctx)
            ctx.finish(session)  # raises LeaseLost: the effect above is rolled back with it

    def get_job_lease(ctx: JobContext) -> datetime | None:
        with ctx.session_factory() as session:
            return get_job(session, ctx.job_id).lease_until

    job_id = add_job(factory, "sla.breach", clock.now())
    started = clock.now()
    assert make_worker(factory, registry, clock).run_once() == 1
    assert beats == [True, False]
    assert leases == [started + LEASE / 2 + LEASE]
    view = job(factory, job_id)
    assert (view.state, view.locked_by, view.attempts) == ("running", "thief", 2)
    with factory() as session:
        assert session.execute(select(func.count()).select_from(effects)).scalar_one() == 0


def test_finish_commits_the_effect_and_done_together(factory: sessionmaker[Session], clock: FrozenClock) -> None:
    registry = JobRegistry()

    @registry.handler("sla.breach")
    def breach(ctx: JobContext, payload: dict[str, Any]) -> None:
        with transaction(ctx.session_factory) as session:
            insert_effect(session, payload["ticket"], ctx)
            ctx.finish(session)
        with transaction(ctx.session_factory) as session, pytest.raises(LeaseLost):
            ctx.finish(session)  # already done: a second finish is refused

    job_id = add_job(factory, "sla.breach", clock.now(), payload={"ticket": "T9"})
    assert make_worker(factory, registry, clock).run_once() == 1
    assert job(factory, job_id).state == "done"
    with factory() as session:
        assert session.execute(select(effects.c.effect_key, effects.c.job_id)).all() == [("T9", job_id)]


def test_finish_in_a_rolled_back_transaction_leaves_completion_to_the_worker(
    factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    registry = JobRegistry()

    @registry.handler("sla.breach")
    def breach(ctx: JobContext, payload: dict[str, Any]) -> None:
        with pytest.raises(ValueError), transaction(ctx.session_factory) as session:
            ctx.finish(session)
            raise ValueError("the effect failed after finish(); the handler copes and returns")

    job_id = add_job(factory, "sla.breach", clock.now())
    assert make_worker(factory, registry, clock).run_once() == 1
    assert job(factory, job_id).state == "done"


# --- the loop --------------------------------------------------------------------------------


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def lost_runs(kind: str) -> float:
    return REGISTRY.get_sample_value("zhiban_jobs_finished_total", {"kind": kind, "outcome": "lost"}) or 0.0


def test_run_forever_runs_jobs_and_releases_unfinished_ones_on_stop(
    factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    registry = JobRegistry()
    gate = threading.Event()
    started = threading.Event()
    quick_done = threading.Event()

    @registry.handler("sla.breach")
    def quick(ctx: JobContext, payload: dict[str, Any]) -> None:
        quick_done.set()

    @registry.handler("report.export")
    def stuck(ctx: JobContext, payload: dict[str, Any]) -> None:
        started.set()
        gate.wait(30)

    worker = Worker(
        factory, registry, clock, "looper", concurrency=2, poll=timedelta(seconds=0.05), shutdown_grace=timedelta(0)
    )
    stop = threading.Event()
    loop = threading.Thread(target=worker.run_forever, args=(stop,))
    loop.start()
    try:
        stuck_id = add_job(factory, "report.export", clock.now())
        quick_id = add_job(factory, "sla.breach", clock.now())
        assert started.wait(20)
        wait_until(lambda: job(factory, quick_id).state == "done")
    finally:
        stop.set()
        loop.join(20)
    assert not loop.is_alive()
    lost_before = lost_runs("report.export")
    gate.set()  # the handler ends after the release: its completion must be refused
    wait_until(lambda: lost_runs("report.export") == lost_before + 1)

    # The stuck run is handed back, its attempt refunded; the quick one finished.
    stuck_view = job(factory, stuck_id)
    assert (stuck_view.state, stuck_view.attempts, stuck_view.locked_by) == ("pending", 0, None)
    assert job(factory, quick_id).state == "done"


# --- housekeeping ----------------------------------------------------------------------------


def test_job_counts_and_purge_done(factory: sessionmaker[Session], clock: FrozenClock) -> None:
    registry = JobRegistry()
    registry.add("sla.breach", lambda ctx, payload: None)
    for n in range(3):
        add_job(factory, "sla.breach", clock.now(), dedup_key=f"b{n}")
    add_job(factory, "sla.breach", clock.now() + timedelta(hours=1))
    make_worker(factory, registry, clock).run_once(limit=10)
    with factory() as session:
        assert job_counts(session) == {"pending": 1, "running": 0, "done": 3, "dead": 0}
    with transaction(factory) as session:
        assert purge_done(session, finished_before=clock.now()) == 0
        assert purge_done(session, finished_before=clock.now() + timedelta(seconds=1)) == 3
    with factory() as session:
        assert job_counts(session) == {"pending": 1, "running": 0, "done": 0, "dead": 0}


# --- urgent kinds ----------------------------------------------------------------------------


def test_a_page_is_claimed_and_run_before_the_bookkeeping_queued_before_it(
    factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    ran: list[str] = []
    registry = JobRegistry()
    registry.add("tickets.bookkeeping", lambda ctx, payload: ran.append(payload["n"]))
    registry.add("notify.page", lambda ctx, payload: ran.append(payload["n"]), urgent=True)
    assert registry.urgent_kinds() == {"notify.page"}
    for n in range(6):  # a rush's follow-up jobs, all due before the page
        add_job(factory, "tickets.bookkeeping", clock.now() - timedelta(seconds=10 - n), payload={"n": f"b{n}"})
    add_job(factory, "notify.page", clock.now(), payload={"n": "page"})
    worker = make_worker(factory, registry, clock)
    assert worker.run_once(limit=1) == 1
    assert ran == ["page"]  # claimed first though due last
    assert worker.run_once(limit=10) == 6
    assert ran == ["page", "b0", "b1", "b2", "b3", "b4", "b5"]  # the rest in due order

    combined = JobRegistry()
    combined.include(registry)
    assert combined.urgent_kinds() == {"notify.page"}  # kept when features' registries are combined


def test_the_loop_hands_a_queued_page_to_the_next_free_thread_and_a_lane_takes_pages_alone() -> None:
    from zhiban.engine.worker import _Units

    def unit(kind: str, job_id: str) -> list[job_store.ClaimedJob]:
        return [job_store.ClaimedJob(job_id, kind, {}, 1, 5, None, datetime(2026, 1, 1, tzinfo=UTC))]

    units = _Units(frozenset({"notify.page"}))
    assert units.has_lane and not _Units(frozenset()).has_lane
    units.put(unit("tickets.bookkeeping", "b1"))
    units.put(unit("tickets.bookkeeping", "b2"))
    units.put(unit("notify.page", "p1"))
    units.stop()
    units.put(unit("tickets.bookkeeping", "b3"))
    taken = []
    while (got := units.get()) is not None:
        taken.append(got[0].id)
    assert taken == ["p1", "b1", "b2", "b3"]  # urgent first, then claim order; stop after all of them

    # The lane thread waits for a page while bookkeeping is queued, and takes it the moment it comes.
    units.put(unit("tickets.bookkeeping", "b4"))
    lane: list[str] = []
    thread = threading.Thread(target=lambda: lane.append(units.get(urgent_only=True)[0].id))  # type: ignore[index]
    thread.start()
    time.sleep(0.1)
    assert lane == [] and thread.is_alive()
    units.put(unit("notify.page", "p2"))
    thread.join(5)
    assert lane == ["p2"]
    assert units.get_nowait()[0].id == "b4"
    with pytest.raises(queue.Empty):
        units.get_nowait()

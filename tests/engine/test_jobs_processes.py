"""Real worker processes: SIGKILL mid-job, two workers racing for 1,000 jobs, timers due while down."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

import zhiban.store.models  # noqa: F401  (registers the jobs table on Base.metadata)
from tests.engine.proc_handlers import effects, metadata, runs
from zhiban.engine import enqueue
from zhiban.engine.store import Job
from zhiban.store.db import Base, make_engine, session_factory, transaction

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
SRC = ROOT / "src"


@pytest.fixture
def db(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    Base.metadata.create_all(eng)
    metadata.create_all(eng)
    yield eng
    eng.dispose()


class WorkerProcess:
    """A `python -m zhiban.engine` subprocess whose log goes to a file."""

    def __init__(self, db_url: str, worker_id: str, log_dir: Path, *extra: str) -> None:
        self.log_path = log_dir / f"{worker_id}.log"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(SRC)]))
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "zhiban.engine",
                    "--database-url",
                    db_url,
                    "--handlers",
                    "tests.engine.proc_handlers",
                    "--worker-id",
                    worker_id,
                    "--poll",
                    "0.05",
                    *extra,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_started(self) -> None:
        wait_until(lambda: "started" in self.log(), what=f"worker start\n{self.log()}")

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        os.kill(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(15)

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.kill()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(db_url: str, worker_id: str, *extra: str) -> WorkerProcess:
        worker = WorkerProcess(db_url, worker_id, tmp_path, *extra)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.cleanup()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def scalar(eng: Engine, query: object) -> int:
    with eng.connect() as conn:
        return int(conn.execute(query).scalar_one())  # type: ignore[call-overload]


def job_states(eng: Engine) -> dict[str, tuple[str, int]]:
    with eng.connect() as conn:
        return {row.id: (row.state, row.attempts) for row in conn.execute(select(Job.id, Job.state, Job.attempts))}


def test_sigkill_mid_job_then_restart_runs_effect_exactly_once(
    db: Engine, db_url: str, spawn: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    now = datetime.now(UTC)
    with transaction(session_factory(db)) as session:
        atomic = enqueue(session, "test.effect_then_done", {"key": "A", "gate": str(gate)}, due_at=now)
        split = enqueue(session, "test.effect_then_wait", {"key": "B", "gate": str(gate)}, due_at=now)

    first = spawn(db_url, "first", "--lease", "1", "--concurrency", "2")
    # Known kill point: both handlers are blocked at the gate; B has already committed its effect.
    wait_until(
        lambda: (
            scalar(db, select(func.count()).select_from(runs)) == 2
            and scalar(db, select(func.count()).select_from(effects)) == 1
        ),
        what="both jobs to reach the gate",
    )
    first.kill()

    with db.connect() as conn:
        assert [r.effect_key for r in conn.execute(select(effects.c.effect_key))] == ["B"]
    assert job_states(db) == {atomic: ("running", 1), split: ("running", 1)}

    gate.touch()
    second = spawn(db_url, "second", "--lease", "1")
    wait_until(lambda: all(state == "done" for state, _ in job_states(db).values()), what="jobs done after restart")
    assert second.terminate() == 0

    # The expired lease made the restart a second attempt; each effect exists once.
    assert job_states(db) == {atomic: ("done", 2), split: ("done", 2)}
    with db.connect() as conn:
        assert sorted((r.effect_key, r.job_id) for r in conn.execute(select(effects))) == [("A", atomic), ("B", split)]
        finished = {(r.job_id, r.attempt, r.worker, r.ended_at is not None) for r in conn.execute(select(runs))}
    assert finished == {
        (atomic, 1, "first", False),
        (split, 1, "first", False),
        (atomic, 2, "second", True),
        (split, 2, "second", True),
    }


def test_sigterm_lets_the_running_job_finish_before_exit(
    db: Engine, db_url: str, spawn: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    with transaction(session_factory(db)) as session:
        job_id = enqueue(session, "test.effect_then_done", {"key": "A", "gate": str(gate)}, due_at=datetime.now(UTC))
    worker = spawn(db_url, "graceful", "--shutdown-grace", "20")
    wait_until(lambda: scalar(db, select(func.count()).select_from(runs)) == 1, what="the job to start")

    os.kill(worker.proc.pid, signal.SIGTERM)
    wait_until(lambda: "signal" in worker.log(), what="the worker to receive SIGTERM")
    assert worker.proc.poll() is None, "the worker must wait for its running job"
    gate.touch()
    assert worker.proc.wait(15) == 0
    assert job_states(db) == {job_id: ("done", 1)}


def test_two_workers_run_every_job_once_and_never_concurrently(
    db: Engine, db_url: str, spawn: Callable[..., WorkerProcess]
) -> None:
    # The workers' commits skip the WAL flush wait: this test is about claims, not PostgreSQL's durability.
    racer_url = db_url.replace("options=", "options=-csynchronous_commit%3Doff%20", 1)
    workers = [spawn(racer_url, f"racer-{i}", "--concurrency", "4", "--lease", "30") for i in range(2)]
    for worker in workers:
        worker.wait_started()

    # PostgreSQL is the scale-out database: the full 1,000; SQLite (one host, one writer) a smaller race.
    total = 1000 if db.dialect.name == "postgresql" else 300
    now = datetime.now(UTC)
    with transaction(session_factory(db)) as session:
        ids = {enqueue(session, "test.record", {"key": f"job-{i}"}, due_at=now) for i in range(total)}
    wait_until(
        lambda: scalar(db, select(func.count()).select_from(Job).where(Job.state == "done")) == total,
        what=f"{total} jobs done",
        timeout=45,
    )
    for worker in workers:
        assert worker.terminate() == 0, worker.log()

    by_job: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    with db.connect() as conn:
        run_rows = conn.execute(select(runs)).all()
        effect_count = conn.execute(select(func.count()).select_from(effects)).scalar_one()
    for row in run_rows:
        assert row.ended_at is not None
        by_job[row.job_id].append((row.started_at, row.ended_at))
    for spans in by_job.values():
        spans.sort()
        for (_, earlier_end), (later_start, _) in itertools.pairwise(spans):
            assert earlier_end <= later_start, "two runs of one job overlapped"
    assert set(by_job) == ids
    # No failures and 30 s leases: a second run of any job would mean two workers claimed it.
    assert all(len(spans) == 1 for spans in by_job.values())
    assert effect_count == total
    assert job_states(db) == {job_id: ("done", 1) for job_id in ids}
    assert {row.worker for row in run_rows} == {"racer-0", "racer-1"}, "both workers should have taken part"


def test_timers_that_fell_due_while_down_fire_on_start(
    db: Engine, db_url: str, spawn: Callable[..., WorkerProcess]
) -> None:
    now = datetime.now(UTC)
    with transaction(session_factory(db)) as session:
        overdue = {
            enqueue(session, "test.record", {"key": f"overdue-{i}"}, due_at=now - ago, dedup_key=f"timer-{i}")
            for i, ago in enumerate([timedelta(days=1), timedelta(hours=1), timedelta(seconds=1)])
        }
        future = enqueue(session, "test.record", {"key": "future"}, due_at=now + timedelta(hours=1), dedup_key="later")

    worker = spawn(db_url, "restarted")
    wait_until(lambda: all(job_states(db)[job_id][0] == "done" for job_id in overdue), what="overdue timers to fire")
    assert worker.terminate() == 0

    assert job_states(db)[future] == ("pending", 0)
    with db.connect() as conn:
        assert sorted(conn.execute(select(effects.c.effect_key)).scalars()) == ["overdue-0", "overdue-1", "overdue-2"]


def test_a_page_queued_in_another_process_wakes_a_worker_at_once_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    """The worker polls once a minute here; an urgent job queued by this (other) process runs within seconds, since
    its transaction NOTIFYs the listening worker at commit, while an ordinary job waits for the poll."""
    eng = make_engine(pg_url)
    Base.metadata.create_all(eng)
    metadata.create_all(eng)
    worker = WorkerProcess(pg_url, "listener", tmp_path, "--poll", "60")
    try:
        worker.wait_started()
        # Listening (its connection wakes the worker once, for what came before it), and past the first claims:
        # from here only a notification or the poll wakes the worker.
        wait_until(lambda: "wake-ups: listening on zhiban_jobs_" in worker.log(), what=f"the listener\n{worker.log()}")
        time.sleep(1.5)
        now = datetime.now(UTC)
        with transaction(session_factory(eng)) as s:
            enqueue(s, "test.urgent", {"key": "urgent"}, due_at=now)
        wait_until(lambda: scalar(eng, select(func.count()).select_from(effects)) == 1, "the urgent job", timeout=15)
        time.sleep(1.0)
        with transaction(session_factory(eng)) as s:
            enqueue(s, "test.record", {"key": "ordinary"}, due_at=datetime.now(UTC))
            # Another desk's page in another schema of the same database wakes its own workers, not this one.
            s.execute(text("SELECT pg_notify('zhiban_jobs_another_desk', '')"))
        time.sleep(3.0)
        # Not woken for bookkeeping: it waits for the next poll (a minute here).
        assert scalar(eng, select(func.count()).select_from(effects)) == 1, worker.log()
    finally:
        worker.kill()
        eng.dispose()

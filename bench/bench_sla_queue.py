"""SLA queue benchmark: the agent queue page over 100,000 open tickets, and re-applying a calendar edit.

Run: `.venv/bin/python bench/bench_sla_queue.py` (`--tickets 20000` for a quicker run, `--backends sqlite`).
Targets: GET /agent/queue (200 most urgent rows, rendered) p95 < 100 ms; recomputing the clocks of every
open ticket after a calendar edit < 10 s. Both on SQLite (WAL file) and PostgreSQL (a fresh schema at
postgresql+psycopg://postgres@127.0.0.1:5432/test, or ZHIBAN_TEST_POSTGRES_URL).

Seeding writes tickets, their `created` events and SLA context rows in bulk, then replays them all once
through sla.service.recompute_open_tickets (which arms timers in bulk). Three calendar edits are timed through
the real code path (calendars.edit_dates and the SLA hook): a holiday next Monday (due times move later; the
target), Saturday worked and the Monday holiday removed (due times move earlier: timers cancelled and re-armed),
and the rest of today closed (every running business-hours clock moves).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert, text

import zhiban.store.models  # noqa: F401  (registers every table)
from zhiban.calendars import service as calendars
from zhiban.core.clock import FrozenClock
from zhiban.core.settings import Settings
from zhiban.desk import Desk
from zhiban.features import load_hooks
from zhiban.identity import service as identity
from zhiban.identity.model import Role
from zhiban.sla import service as sla
from zhiban.sla.store import SlaTicketRow
from zhiban.store.db import Base, make_engine
from zhiban.tickets.store import TicketEventRow, TicketRow

PG_URL = os.environ.get("ZHIBAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 19, 15, 0, tzinfo=SH)  # a Thursday afternoon
PLANS = [("standard", 0.45), ("basic", 0.25), ("premium", 0.15), ("enterprise", 0.15)]
PRIORITIES = [("P1", 0.1), ("P2", 0.3), ("P3", 0.45), ("P4", 0.15)]
QUEUE_TARGET_MS = 100.0
RECOMPUTE_TARGET_S = 10.0


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    schema = "bench_" + uuid.uuid4().hex[:10]
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _pick(rng: random.Random, weighted: list[tuple[str, float]]) -> str:
    return rng.choices([k for k, _ in weighted], [w for _, w in weighted])[0]


def seed(desk: Desk, clock: FrozenClock, n: int) -> tuple[str, str]:
    """n open tickets of CN customers on all plans, filed over the last 3 days; returns (agent token, calendar id)."""
    rng = random.Random(7)
    with desk.transaction() as s:
        sla.ensure_plans(s, clock)
        orgs = {}
        for plan, _ in PLANS:
            org = identity.create_organization(s, clock, name=f"{plan} org", slug=f"{plan}-org", plan=plan)
            person = identity.create_person(
                s, clock, email=f"dev@{plan}.test", name="dev", role=Role.CUSTOMER, organization_id=org.id
            )
            orgs[plan] = (org.id, person.id)
        agent = identity.create_person(s, clock, email="agent@vendor.test", name="Agent", role=Role.AGENT)
        token = identity.create_token(s, clock, person_id=agent.id, name="bench").plain
        cal = calendars.ensure_country_calendar(s, clock, "CN", "Asia/Shanghai")
        cal_id, cal_version = cal.id, cal.version
        policy = sla.current_policy_version(s, clock)
    start = clock.now() - timedelta(days=3)
    for first in range(0, n, 10_000):
        tickets, events, contexts = [], [], []
        for i in range(first + 1, min(first + 10_000, n) + 1):
            plan = _pick(rng, PLANS)
            prio = _pick(rng, PRIORITIES)
            at = start + timedelta(seconds=rng.randrange(3 * 86400))
            org_id, person_id = orgs[plan]
            tickets.append(
                {
                    "id": i,
                    "organization_id": org_id,
                    "requester_id": person_id,
                    "subject": f"ticket {i}",
                    "status": "new",
                    "priority": prio,
                    "channel": "portal",
                    "created_at": at,
                    "updated_at": at,
                }
            )
            events.append(
                {"ticket_id": i, "kind": "created", "data": {"priority": prio, "channel": "portal"}, "at": at}
            )
            contexts.append(
                {
                    "ticket_id": i,
                    "plan": plan,
                    "policy_version": policy,
                    "calendar_id": cal_id,
                    "calendar_version": cal_version,
                    "is_open": True,
                    "sort_key": sla.NO_DUE_BASE,
                    "computed_at": at,
                }
            )
        with desk.transaction() as s:
            s.execute(insert(TicketRow), tickets)
            s.execute(insert(TicketEventRow), events)
            s.execute(insert(SlaTicketRow), contexts)
    if desk.db.dialect.name == "postgresql":
        with desk.transaction() as s:
            s.execute(text("SELECT setval(pg_get_serial_sequence('tickets', 'id'), (SELECT max(id) FROM tickets))"))
            s.execute(text("ANALYZE"))
    t0 = time.perf_counter()
    with desk.transaction() as s:
        report = sla.recompute_open_tickets(s, clock, reason="seed")
    print(
        f"  seed replay: {report.tickets:,} tickets, {report.clocks:,} clocks, {report.timers_armed:,} timers "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    if desk.db.dialect.name == "postgresql":
        with desk.transaction() as s:
            s.execute(text("ANALYZE"))
    return token, cal_id


def bench_queue(desk: Desk, token: str, requests: int) -> list[float]:
    from zhiban.web.app import create_app

    timings = []
    with TestClient(create_app(desk)) as client:
        headers = {"Authorization": f"Bearer {token}", "accept": "text/html"}
        for _ in range(3):  # warm-up: caches, the once-a-minute backfill check
            assert client.get("/agent/queue", headers=headers).status_code == 200
        for _ in range(requests):
            t0 = time.perf_counter()
            r = client.get("/agent/queue", headers=headers)
            timings.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200 and "ticket " in r.text
    return timings


def timed_edit(desk: Desk, clock: FrozenClock, cal_id: str, **edit: Any) -> tuple[float, sla.RecomputeReport | None]:
    """One calendar edit through the real code path (the SLA hook re-applies it); seconds and the SLA report."""
    t0 = time.perf_counter()
    with desk.transaction() as s:
        calendars.edit_dates(s, clock, cal_id, **edit)
        report = s.info.get(sla.LAST_RECOMPUTE)
    return time.perf_counter() - t0, report


def bench_edits(desk: Desk, clock: FrozenClock, cal_id: str) -> list[tuple[str, float, sla.RecomputeReport | None]]:
    """A typhoon closes next Monday (the target); then edits that bring due times earlier (timers cancelled and
    re-armed): Saturday worked, the Monday holiday called off; last the rest of today closed (every running
    business-hours clock moves)."""
    runs = []
    for name, edit in (
        ("holiday added next Monday", {"add_holidays": ["2026-11-23"]}),
        ("Saturday worked", {"work_on": ["2026-11-21"]}),
        ("Monday holiday removed", {"forget": ["2026-11-23"]}),
        ("rest of today closed", {"add_holidays": [NOW.date().isoformat()]}),
    ):
        clock.advance(timedelta(minutes=5))
        elapsed, report = timed_edit(desk, clock, cal_id, **edit)
        runs.append((name, elapsed, report))
    return runs


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    load_hooks()
    rows = []
    for backend in args.backends.split(","):
        with database(backend) as url:
            print(f"{backend}: seeding {args.tickets:,} open tickets …")
            engine = make_engine(url)
            Base.metadata.create_all(engine)
            clock = FrozenClock(NOW)
            settings = Settings(database_url=url, var_dir=tempfile.gettempdir(), demo=False, simulate=False)
            desk = Desk(settings=settings, clock=clock, engine=engine, secret_key="bench")
            token, cal_id = seed(desk, clock, args.tickets)
            timings = bench_queue(desk, token, args.requests)
            median, p95 = statistics.median(timings), pct(timings, 0.95)
            print(f"  queue page: median {median:.1f} ms, p95 {p95:.1f} ms over {len(timings)} requests")
            edits = bench_edits(desk, clock, cal_id)
            for name, elapsed, report in edits:
                detail = (
                    f"{report.tickets:,} tickets replayed, {report.changed:,} rewritten ({report.clocks_written:,} "
                    f"clocks), timers armed {report.timers_armed:,} cancelled {report.timers_cancelled:,}"
                    if report
                    else "no recompute ran"
                )
                print(f"  calendar edit, {name}: {elapsed:.2f} s ({detail})")
            rows.append((backend, median, p95, edits[0][1], max(e[1] for e in edits)))
            engine.dispose()
    print()
    print(
        f"{'backend':10} {'queue median':>13} {'queue p95':>10} {'p95/target':>11} {'edit s':>8} {'edit/target':>12}"
        f" {'worst edit s':>13} {'worst/target':>13}"
    )
    for backend, median, p95, edit_s, worst_s in rows:
        print(
            f"{backend:10} {median:>10.1f} ms {p95:>7.1f} ms {p95 / QUEUE_TARGET_MS:>11.2f} "
            f"{edit_s:>8.2f} {edit_s / RECOMPUTE_TARGET_S:>12.2f} "
            f"{worst_s:>13.2f} {worst_s / RECOMPUTE_TARGET_S:>13.2f}"
        )
    print(
        f"targets: queue p95 < {QUEUE_TARGET_MS:.0f} ms, recompute after a calendar edit < {RECOMPUTE_TARGET_S:.0f} s"
        " (edit s: the holiday next Monday; worst: the slowest of the four edits)"
    )
    print(f"load average while measuring: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

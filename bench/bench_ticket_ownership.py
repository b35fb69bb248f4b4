"""Ticket JSON with ownership and RTC fields: what the extra reads cost a page of the ticket list, and the filters.

Run: `.venv/bin/python bench/bench_ticket_ownership.py` (`--tickets 5000` for a quicker run, `--backends sqlite`).

Seeds `--tickets` tickets in bulk (a third with RTC fields, a quarter tagged, some followed and linked) on SQLite
(a WAL file) and PostgreSQL (a fresh schema at 127.0.0.1:5432 db `test`, or ZHIBAN_TEST_POSTGRES_URL), then times
through the API (in-process ASGI client, as an agent): GET /api/v1/tickets?limit=200 (every ticket's assignee,
fields, tags, followers, links), the same filtered by `tag`, `app_id` and `sdk_version`, and POST take / tags.
Baseline: the same page serialized as main did (the list query and on-duty reads only, no ownership or fields),
timed in-process on the same data, alternating with this branch's page; the ratio says what the extra reads cost a page.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent))
import zhiban.store.models  # noqa: F401  (registers every table)
from bench_sla_queue import NOW, database
from zhiban.core.clock import FrozenClock
from zhiban.core.settings import Settings
from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.identity.model import DEFAULT_SCOPES, Principal, Role
from zhiban.store.db import Base, make_engine
from zhiban.tickets import service as tickets
from zhiban.tickets.api import TicketOut
from zhiban.tickets.store import TicketFieldsRow, TicketFollowerRow, TicketLinkRow, TicketRow, TicketTagRow

RUNS = 200


def seed(desk: Desk, n: int) -> tuple[str, str]:
    rng = random.Random(14)
    clock = desk.clock
    with desk.transaction() as s:
        org = identity.create_organization(s, clock, name="LiveCo", slug="liveco")
        alice = identity.create_person(
            s, clock, email="a@liveco.test", name="A", role=Role.CUSTOMER, organization_id=org.id
        )
        agent = identity.create_person(s, clock, email="w@vendor.test", name="Wang", role=Role.AGENT)
        token = identity.create_token(s, clock, person_id=agent.id, name="b", scopes=DEFAULT_SCOPES).plain
        now = clock.now()
        rows = [
            {
                "id": i,
                "organization_id": org.id,
                "requester_id": alice.id,
                "subject": f"ticket {i}",
                "status": "open",
                "priority": rng.choice(["P1", "P2", "P3", "P4"]),
                "channel": "api",
                "assignee_id": agent.id if i % 3 == 0 else None,
                "created_at": now - timedelta(minutes=i),
                "updated_at": now,
            }
            for i in range(1, n + 1)
        ]
        s.execute(insert(TicketRow), rows)
        s.execute(
            insert(TicketFieldsRow),
            [
                {"ticket_id": i, "app_id": f"app-{i % 5}", "channel_name": f"room-{i}", "user_ids": [f"u{i}"],
                 "sdk_version": f"4.{i % 4}.0", "platform": "android", "occurred_at": now - timedelta(hours=1)}
                for i in range(1, n + 1, 3)
            ],
        )  # fmt: skip
        s.execute(insert(TicketTagRow), [{"ticket_id": i, "tag": f"t{i % 10}"} for i in range(1, n + 1, 4)])
        s.execute(insert(TicketFollowerRow), [{"ticket_id": i, "person_id": agent.id} for i in range(1, n + 1, 7)])
        s.execute(
            insert(TicketLinkRow),
            [{"ticket_id": i, "other_id": i + 1, "kind": "related"} for i in range(1, n, 11)]
            + [{"ticket_id": i + 1, "other_id": i, "kind": "related"} for i in range(1, n, 11)],
        )
    return token, agent.id


def timed(fn: Callable[[], Any], runs: int = RUNS) -> tuple[float, float]:
    fn()  # warm
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1]


def timed_pair(a: Callable[[], Any], b: Callable[[], Any], runs: int = RUNS) -> tuple[tuple[float, float], ...]:
    a(), b()  # warm
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(runs):
        for fn, out in ((a, times[0]), (b, times[1])):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1000)
    return tuple((statistics.median(t), sorted(t)[int(len(t) * 0.95) - 1]) for t in times)


def run(backend: str, n: int) -> None:
    with database(backend) as url:
        engine = make_engine(url)
        Base.metadata.create_all(engine)
        clock = FrozenClock(NOW)
        desk = Desk(settings=Settings(database_url=url, demo=False, simulate=False), clock=clock, engine=engine)
        token, agent_id = seed(desk, n)
        from zhiban.web.app import create_app

        client = TestClient(create_app(desk))
        headers = {"Authorization": f"Bearer {token}"}

        def get(path: str) -> Callable[[], Any]:
            def call() -> Any:
                r = client.get(path, headers=headers)
                assert r.status_code == 200, r.text
                return r

            return call

        staff = Principal(person_id=agent_id, role=Role.AGENT, organization_id=None)

        def baseline() -> None:  # main's page: the list query, on-duty reads, serialization
            with desk.read_transaction() as s:
                rows = tickets.list_tickets(s, staff, limit=200)
                on_duty = tickets.on_duty(s, [t.id for t in rows])
                [TicketOut.of(t, on_duty.get(t.id)).model_dump(mode="json") for t in rows]

        def extras() -> None:  # this branch's page, in-process the same way
            from zhiban.tickets.api import _outs

            with desk.read_transaction() as s:
                rows = tickets.list_tickets(s, staff, limit=200)
                [o.model_dump(mode="json") for o in _outs(s, staff, rows)]

        print(f"\n{backend}: {n:,} tickets")
        base, new = timed_pair(baseline, extras)  # alternated: a machine's load drifts alike for both
        print(f"  page of 200, in-process   main-style p50 {base[0]:7.2f} ms  p95 {base[1]:7.2f} ms")
        ratio = new[0] / base[0]
        print(f"  page of 200, in-process   with extras p50 {new[0]:7.2f} ms  p95 {new[1]:7.2f} ms  ratio {ratio:.2f}x")
        for label, path in (
            ("GET list limit=200", "/api/v1/tickets?limit=200"),
            ("GET ?tag=t3", "/api/v1/tickets?tag=t3&limit=200"),
            ("GET ?app_id=app-2", "/api/v1/tickets?app_id=app-2&limit=200"),
            ("GET ?sdk_version=4.1.0", "/api/v1/tickets?sdk_version=4.1.0&limit=200"),
        ):
            p50, p95 = timed(get(path))
            print(f"  {label:<26} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms")
        ids = iter(range(1, n + 1))

        def take() -> None:
            r = client.post(f"/api/v1/tickets/{next(ids)}/take", headers=headers)
            assert r.status_code == 200, r.text

        def tag() -> None:
            r = client.post(f"/api/v1/tickets/{next(ids)}/tags", json={"tags": ["bench"]}, headers=headers)
            assert r.status_code == 200, r.text

        for label, fn in (("POST take", take), ("POST tags", tag)):
            p50, p95 = timed(fn, runs=min(RUNS, n // 3))
            print(f"  {label:<26} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms")
        client.close()
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        run(backend, args.tickets)


if __name__ == "__main__":
    main()

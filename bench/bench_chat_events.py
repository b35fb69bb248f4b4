"""Chat events filed as tickets: a Slack mention (signature check, group, dedup claims, ticket) against the
baseline of the same ticket filed through the API, in process (ASGI), on a SQLite file.

    .venv/bin/python bench/bench_chat_events.py [--count 200]

Prints p50/p95 per request of each path and the ratio chat / API (what the Slack door costs over the API's own
filing). Also a refused event (bad signature) and an unbound group's event, which must be cheap.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]


def _timed(call, count: int) -> list[float]:  # type: ignore[no-untyped-def]
    taken = []
    for n in range(count):
        started = time.perf_counter()
        call(n)
        taken.append((time.perf_counter() - started) * 1000)
    return taken


def _line(name: str, taken: list[float]) -> str:
    ordered = sorted(taken)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"{name:<28} p50 {statistics.median(taken):7.2f} ms   p95 {p95:7.2f} ms   n={len(taken)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    from fastapi.testclient import TestClient

    import zhiban.store.models  # noqa: F401
    from tests.chat.chat_kit import SLACK_BOT, setup, slack_event, slack_post
    from tests.tenancy import bearer
    from zhiban.core.clock import FrozenClock
    from zhiban.core.settings import Settings
    from zhiban.desk import Desk
    from zhiban.store.db import Base, make_engine
    from zhiban.web.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        engine = make_engine(url)
        Base.metadata.create_all(engine)
        settings = Settings(database_url=url, var_dir=tmp, demo=False, simulate=False)
        clock = FrozenClock(datetime(2026, 11, 20, 19, 0, tzinfo=UTC))
        desk = Desk(settings=settings, clock=clock, engine=engine, secret_key="bench")
        with TestClient(create_app(desk)) as client:
            chat = setup(client, desk)
            alice = bearer(chat.world.alice_token)

            def api_ticket(n: int) -> None:
                made = client.post(
                    "/api/v1/tickets",
                    json={"subject": f"推流失败 {n}", "body": "room-8812", "priority": "P3"},
                    headers=alice,
                )
                assert made.status_code == 201

            serial = iter(range(1_000_000))

            def slack_ticket(_: int) -> None:
                n = next(serial)
                clock.advance(timedelta(seconds=2.1))  # under the group's 30 a minute
                event = slack_event(f"EvB{n}", f"<@{SLACK_BOT}> 推流失败 {n}\nroom-8812", f"1763665200.{n:06d}")
                assert slack_post(client, desk, event).json()["action"] == "created"

            def refused(n: int) -> None:
                body = json.dumps(slack_event(f"EvR{n}", "x", f"1763665300.{n:06d}")).encode()
                assert slack_post(client, desk, body, secret="wrong").status_code == 401

            def unbound(n: int) -> None:
                event = slack_event(f"EvU{n}", f"<@{SLACK_BOT}> x", f"1763665400.{n:06d}", channel="C0NOBODY")
                assert slack_post(client, desk, event).json()["action"] == "unbound"

            _timed(api_ticket, 10)  # warm up both paths
            _timed(slack_ticket, 10)
            api = _timed(api_ticket, args.count)
            slack = _timed(slack_ticket, args.count)
            bad = _timed(refused, args.count)
            stranger = _timed(unbound, args.count)
        engine.dispose()
    print("db=sqlite")
    print(_line("API ticket (baseline)", api))
    print(_line("Slack mention -> ticket", slack))
    print(_line("bad signature (401)", bad))
    print(_line("unbound group (200)", stranger))
    print(f"ratio Slack/API p50: {statistics.median(slack) / statistics.median(api):.2f}")


if __name__ == "__main__":
    main()

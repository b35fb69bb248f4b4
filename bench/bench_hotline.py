"""The hotline's "press 1" against its baseline, a P1 ticket filed through the API, in one desk process.

    uv run --frozen python bench/bench_hotline.py [--calls 200]

An Enterprise customer on a standby plan at 03:00 Saturday (so every P1 pages the engineer on duty) either
rings the support line and presses 1 (two Twilio webhooks, each signed by twilio's RequestValidator and checked by
the desk: the call's row, its answered steps, the ticket and its page) or files a P1 ticket with POST
/api/v1/tickets (the ticket and its page). Both go through the same ASGI app in this process (Starlette's
TestClient, no network), one request at a time, on a fresh SQLite file (PostgreSQL: not measured here).
Printed: the median and p95 of each flow and the ratio hotline / API. The baseline is named:
`POST /api/v1/tickets P1` on the same desk.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASE = "https://desk.example.com"
TOKEN = "f00dfeedf00dfeedf00dfeedf00dfeed"
VOICE = "/api/v1/hotline/twilio/voice"


def _desk(tmp: Path):  # type: ignore[no-untyped-def]
    import zhiban.store.models  # noqa: F401  (every table)
    from zhiban.core.clock import FrozenClock
    from zhiban.core.settings import Settings
    from zhiban.desk import Desk
    from zhiban.store.db import Base, make_engine

    url = f"sqlite:///{tmp / 'bench.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    settings = Settings(
        database_url=url,
        var_dir=str(tmp / "var"),
        demo=False,
        simulate=False,
        base_url=BASE,
        twilio_url=f"twilio://AC{'5' * 32}:{TOKEN}@api.twilio.com?from=%2B15550109999",
    )
    clock = FrozenClock(datetime(2026, 11, 20, 19, 0, tzinfo=UTC))  # Saturday 03:00 in Shanghai
    return Desk(settings=settings, clock=clock, engine=engine, secret_key="bench-secret-key")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()

    from fastapi.testclient import TestClient
    from twilio.request_validator import RequestValidator

    from tests.incidents.incident_kit import build as build_paging
    from tests.tenancy import bearer, build_world
    from zhiban.web.app import create_app

    validator = RequestValidator(TOKEN)
    with tempfile.TemporaryDirectory() as tmp:
        desk = _desk(Path(tmp))
        with TestClient(create_app(desk)) as client:
            world = build_world(desk)
            build_paging(desk)
            admin = bearer(world.admin_token)
            support = {"mode": "standby", "paging_service": "media network cn-east"}
            assert client.put("/api/v1/sla/plans/enterprise", json={"support": support}, headers=admin).is_success
            assert client.put(
                "/api/v1/hotline/lines/%2B15550100001", json={"plan": "enterprise"}, headers=admin
            ).is_success
            assert client.put(f"/api/v1/people/{world.alice_id}/phone", json={"phone": "+8613800138000"},
                              headers=admin).is_success  # fmt: skip

            def signed(path: str, params: dict[str, str]) -> None:
                sig = validator.compute_signature(BASE + path, params)
                answer = client.post(path, data=params, headers={"X-Twilio-Signature": sig})
                assert answer.status_code == 200, answer.text

            def hotline(i: int) -> float:
                sid = f"CA{i:032d}"
                start = time.perf_counter()
                signed(VOICE, {"CallSid": sid, "From": "+8613800138000", "To": "+15550100001"})
                signed(f"{VOICE}/menu", {"CallSid": sid, "Digits": "1"})
                return time.perf_counter() - start

            def api(i: int) -> float:
                start = time.perf_counter()
                made = client.post("/api/v1/tickets", json={"subject": f"down {i}", "body": "room", "priority": "P1"},
                                   headers=bearer(world.alice_token))  # fmt: skip
                assert made.status_code == 201 and made.json()["on_duty"] is not None, made.text
                return time.perf_counter() - start

            for i in range(20):  # warm-up, interleaved
                hotline(10_000_000 + i)
                api(i)
            times: dict[str, list[float]] = {"hotline press 1": [], "POST /api/v1/tickets P1": []}
            for i in range(args.calls):  # interleaved, so both see the same database size and machine load
                times["hotline press 1"].append(hotline(i))
                times["POST /api/v1/tickets P1"].append(api(i))

    print(f"db=sqlite calls={args.calls} (each pages the engineer on duty)")
    medians = {}
    for name, values in times.items():
        values.sort()
        medians[name] = statistics.median(values)
        p95 = values[int(len(values) * 0.95) - 1]
        print(f"{name:26s} median {medians[name] * 1000:7.2f} ms   p95 {p95 * 1000:7.2f} ms")
    ratio = medians["hotline press 1"] / medians["POST /api/v1/tickets P1"]
    print(f"ratio hotline / baseline (POST /api/v1/tickets P1): {ratio:.2f}x")


if __name__ == "__main__":
    main()

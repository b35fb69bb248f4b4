"""Customer apps and the ingest API over HTTP: keys, tenancy, partial acceptance, duplicates, limits, gzip."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.tenancy import World, bearer, build_world
from zhiban.desk import Desk
from zhiban.telemetry import service, store
from zhiban.telemetry.live import TelemetryRuntime, runtime_for

T0 = datetime(2026, 11, 20, 19, 0, tzinfo=UTC)
FIXTURE = Path(__file__).parent / "fixtures" / "webrtc_getstats_session.json"


def report(session_id: str, seconds: float, app_id: str = "liveco", **extra: Any) -> dict[str, Any]:
    ts = T0 + timedelta(seconds=seconds)
    return {
        "v": 1,
        "app_id": app_id,
        "ts": int(ts.timestamp() * 1000),
        "session_id": session_id,
        "region": "cn-east",
        "video": {"active_ms": 10000, "freeze_ms": 100},
        **extra,
    }


def ndjson(reports: list[Any]) -> bytes:
    return b"\n".join(orjson.dumps(r) for r in reports) + b"\n"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """HTTP behaviour does not depend on the database: SQLite only (the service tests cover PostgreSQL)."""
    return f"sqlite:///{tmp_path / 'zhiban.db'}"


@pytest.fixture
def world(desk: Desk) -> World:
    return build_world(desk)


@pytest.fixture
def key(client: TestClient, world: World) -> str:
    made = client.post("/api/v1/apps", json={"app_id": "liveco"}, headers=bearer(world.alice_token))
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["organization_id"] == world.liveco and body["ingest_key"].startswith("zbi_")
    return str(body["ingest_key"])


@pytest.fixture
def runtime(desk: Desk) -> TelemetryRuntime:
    return runtime_for(desk)


def post(client: TestClient, key: str, body: bytes, **headers: str) -> Any:
    return client.post("/api/v1/telemetry", content=body, headers={**bearer(key), **headers})


def stored_reports(desk: Desk) -> int:
    with desk.transaction() as s:
        windows = s.scalar(
            select(func.coalesce(func.sum(store.WindowRow.reports), 0)).where(
                store.WindowRow.window_seconds == 10, store.WindowRow.dimension == ""
            )
        )
        raw = s.scalar(select(func.count()).select_from(store.RawReportRow))
    return int(windows or 0) + int(raw or 0)


def test_apps_are_seen_by_their_own_organization_and_staff(client: TestClient, world: World, key: str) -> None:
    assert [a["app_id"] for a in client.get("/api/v1/apps", headers=bearer(world.alice_token)).json()] == ["liveco"]
    assert client.get("/api/v1/apps", headers=bearer(world.bob_token)).json() == []
    assert [a["app_id"] for a in client.get("/api/v1/apps", headers=bearer(world.agent_token)).json()] == ["liveco"]
    listed = client.get("/api/v1/apps", headers=bearer(world.admin_token)).json()
    assert "ingest_key" not in listed[0]  # the key is shown once, at creation
    # Bob cannot register an app for LiveCo; an agent is not an admin; the same app_id twice conflicts.
    evil = {"app_id": "evil", "organization_id": world.liveco}
    assert client.post("/api/v1/apps", json=evil, headers=bearer(world.bob_token)).status_code == 404
    assert client.post("/api/v1/apps", json=evil, headers=bearer(world.agent_token)).status_code == 403
    again = client.post(
        "/api/v1/apps", json={"app_id": "liveco", "organization_id": world.liveco}, headers=bearer(world.admin_token)
    )
    assert again.status_code == 409
    assert client.post("/api/v1/apps", json={"app_id": "Bad Id!"}, headers=bearer(world.alice_token)).status_code == 422


def test_rotating_the_key_retires_the_old_one(
    client: TestClient, world: World, key: str, runtime: TelemetryRuntime
) -> None:
    assert client.post("/api/v1/apps/liveco/rotate-key", headers=bearer(world.bob_token)).status_code == 404
    rotated = client.post("/api/v1/apps/liveco/rotate-key", headers=bearer(world.alice_token))
    assert rotated.status_code == 200
    new_key = rotated.json()["ingest_key"]
    runtime._keys.clear()  # the few-second key cache of this process
    assert post(client, key, ndjson([report("s1", 1)])).status_code == 401
    assert post(client, new_key, ndjson([report("s1", 1)])).status_code == 202


def test_a_bad_key_is_401_and_an_api_token_is_not_an_ingest_key(client: TestClient, world: World, key: str) -> None:
    body = ndjson([report("s1", 1)])
    assert post(client, key[:-2] + "xx", body).status_code == 401
    assert post(client, world.alice_token, body).status_code == 401
    assert client.post("/api/v1/telemetry", content=body).status_code == 401


def test_bad_reports_are_refused_by_index_and_the_good_ones_kept(
    client: TestClient, desk: Desk, key: str, runtime: TelemetryRuntime
) -> None:
    batch = [
        report("s1", 1),
        {"v": 1, "app_id": "liveco", "session_id": "s2"},  # no ts
        report("s3", 2, video={"active_ms": 100, "freeze_ms": 500}),  # freeze longer than active
        report("s4", 3, app_id="classmate"),  # another app than the key's
        report("s5", 4),
    ]
    answer = post(client, key, ndjson(batch))
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["accepted"] == 2 and body["duplicates"] == 0
    assert [r["index"] for r in body["rejected"]] == [1, 2, 3]
    assert "ts" in body["rejected"][0]["reason"] and "classmate" in body["rejected"][2]["reason"]
    runtime.drain(flush=True)
    with desk.transaction() as s:
        timeline = service.session_timeline(s, "liveco", "s5", T0, T0 + timedelta(minutes=1))
        assert len(timeline) == 1 and service.session_timeline(s, "liveco", "s3", T0, T0 + timedelta(minutes=1)) == []
        assert store.count_reports(s, "liveco") == 2


def test_the_same_batch_twice_counts_once(client: TestClient, desk: Desk, key: str, runtime: TelemetryRuntime) -> None:
    batch = ndjson([report(f"s{i}", 1 + i / 10) for i in range(20)])
    assert post(client, key, batch).json() == {"accepted": 20, "rejected": [], "duplicates": 0}
    assert post(client, key, batch).json() == {"accepted": 0, "rejected": [], "duplicates": 20}
    # Overlapping batches: only the new reports go on.
    overlap = ndjson([report(f"s{i}", 1 + i / 10) for i in range(15, 25)])
    assert post(client, key, overlap).json() == {"accepted": 5, "rejected": [], "duplicates": 5}
    runtime.drain(flush=True)
    with desk.transaction() as s:
        assert store.count_reports(s, "liveco") == 25


def test_over_the_size_limit_is_413_and_nothing_is_stored(
    client: TestClient, desk: Desk, key: str, runtime: TelemetryRuntime
) -> None:
    runtime.settings.max_body_bytes = 50_000
    big = ndjson([report(f"s{i}", 1, padding="x" * 100) for i in range(400)])
    assert len(big) > 50_000
    answer = post(client, key, big)
    assert answer.status_code == 413
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["type"].endswith("/payload-too-large")

    # A lying Content-Length does not help: the body is counted as it streams in.
    def chunks() -> Any:
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    streamed = client.post("/api/v1/telemetry", content=chunks(), headers=bearer(key))
    assert streamed.status_code == 413
    # A gzip bomb: small on the wire, too large once inflated (over the contract's 10,000 reports).
    bomb = gzip.compress(ndjson([report(f"s{i}", 1) for i in range(10_001)]))
    runtime.settings.max_body_bytes = 16 * 1024 * 1024
    assert post(client, key, bomb, **{"Content-Encoding": "gzip"}).status_code == 413
    runtime.drain(flush=True)
    assert stored_reports(desk) == 0


def test_gzip_ndjson_and_json_arrays_are_accepted(
    client: TestClient, desk: Desk, key: str, runtime: TelemetryRuntime
) -> None:
    compressed = gzip.compress(ndjson([report(f"g{i}", 1) for i in range(30)]))
    assert post(client, key, compressed, **{"Content-Encoding": "gzip"}).json()["accepted"] == 30
    # gzip recognized by its magic bytes even without the header
    assert post(client, key, gzip.compress(ndjson([report("m", 2)]))).json()["accepted"] == 1
    assert post(client, key, orjson.dumps([report("a1", 3), report("a2", 3)])).json()["accepted"] == 2
    assert post(client, key, b"not gzip", **{"Content-Encoding": "gzip"}).status_code == 422
    assert post(client, key, b"[]", **{"Content-Encoding": "br"}).status_code == 415
    runtime.drain(flush=True)
    with desk.transaction() as s:
        assert store.count_reports(s, "liveco") == 33


def test_webrtc_stats_snapshots_become_reports_after_priming(
    client: TestClient, desk: Desk, key: str, runtime: TelemetryRuntime
) -> None:
    snapshots = orjson.loads(FIXTURE.read_bytes())
    first = post(client, key, ndjson(snapshots[:1])).json()
    assert first["accepted"] == 1 and not first["rejected"]
    # The third snapshot is of a new peer connection (counters went back): it primes again.
    assert post(client, key, ndjson(snapshots[1:])).json()["accepted"] == 3
    runtime.drain(flush=True)
    start = datetime.fromtimestamp(snapshots[0]["ts"] / 1000, UTC)
    with desk.transaction() as s:
        assert store.count_reports(s, "liveco") == 2
        timeline = service.session_timeline(s, "liveco", "s-9f1c", start, start + timedelta(minutes=1))
    assert [r["ts"] for r in timeline] == [snapshots[1]["ts"], snapshots[3]["ts"]]
    first_interval = timeline[0]
    assert first_interval["video"]["loss_pct"] == pytest.approx(100 * 12 / 1012)  # (22-10) / (22-10 + 9000-8000)
    assert first_interval["video"]["active_ms"] == 10_000 and first_interval["region"] == "cn-east"

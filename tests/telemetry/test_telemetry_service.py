"""Telemetry in the desk, on SQLite and PostgreSQL: pipeline → closed windows → rollups, queries, pruning."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from tests.tenancy import build_world
from zhiban.apps import service as apps
from zhiban.desk import Desk
from zhiban.telemetry import service, store
from zhiban.telemetry.bus import MemoryBus
from zhiban.telemetry.live import TelemetryRuntime, TelemetrySettings
from zhiban.telemetry.pipeline import PipelineOptions

T0 = datetime(2026, 11, 20, 19, 0, tzinfo=UTC)  # the desk fixture's clock
REGIONS = ("cn-east", "cn-north")


def report(session_id: str, ts: datetime, *, region: str = "cn-east", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "v": 1,
        "app_id": "liveco",
        "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "session_id": session_id,
        "region": region,
        "platform": "android",
    }
    body.update(extra)
    return body


def random_report(rng: random.Random, session_id: str, ts: datetime, region: str) -> dict[str, Any]:
    freeze = rng.choice([0, 0, 0, 200, 900]) if region == "cn-east" else rng.choice([0, 0, 0, 0, 100])
    events = (
        [{"type": "join", "ok": rng.random() > 0.2, "latency_ms": rng.randint(300, 2000)}] if rng.random() < 0.5 else []
    )
    return report(
        session_id,
        ts,
        region=region,
        events=events,
        video={"active_ms": 10000, "freeze_ms": freeze, "e2e_delay_ms": rng.randint(100, 400)},
        audio={"active_ms": 10000, "freeze_ms": 0, "jitter_ms": rng.randint(1, 40), "loss_pct": rng.random() * 3},
        net={"rtt_ms": rng.randint(20, 200)},
    )


@pytest.fixture
def runtime(desk: Desk) -> TelemetryRuntime:
    world = build_world(desk)
    with desk.transaction() as s:
        apps.create_app(s, desk.clock, apps.SYSTEM, app_id="liveco", organization_id=world.liveco)
    return TelemetryRuntime(
        desk,
        settings=TelemetrySettings(partitions=2),
        bus=MemoryBus(partitions=2),
        pipeline_options=PipelineOptions(prune_every_seconds=1e9),
    )


def send(runtime: TelemetryRuntime, reports: list[dict[str, Any]]) -> None:
    result = runtime.ingestor.ingest_reports("liveco", reports)
    assert result.accepted == len(reports) and not result.rejected


def windows(desk: Desk, seconds: int = 10, dimension: str = "") -> list[store.WindowRow]:
    with desk.transaction() as s:
        rows = s.scalars(
            select(store.WindowRow)
            .where(store.WindowRow.window_seconds == seconds, store.WindowRow.dimension == dimension)
            .order_by(store.WindowRow.window_start, store.WindowRow.value)
        )
        return list(rows)


def expected_mos(rtt: float, jitter: float, loss: float) -> float:
    """TELEMETRY.md §3, written out again here."""
    le = rtt + 2 * jitter + 10
    r = 94.768 - le / 40 if le < 160 else 94.768 - (le - 120) / 10
    r = min(100.0, max(0.0, r - 2.5 * loss))
    return min(4.5, max(1.0, 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r)))


def nearest_rank_p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.95 * (len(ordered) - 1))]


def test_a_window_closes_by_watermark_and_persists_correct_metrics(desk: Desk, runtime: TelemetryRuntime) -> None:
    rng = random.Random(5)
    first = [
        random_report(rng, f"s{i}", T0 + timedelta(seconds=rng.uniform(0, 9.9)), REGIONS[i % 2]) for i in range(60)
    ]
    send(runtime, first)
    runtime.drain()
    assert windows(desk) == []  # nothing is closed before the watermark passes the window's end
    # Reports 40 s later move the watermark (newest − 30 s lateness) past the first window only.
    send(runtime, [random_report(rng, "later", T0 + timedelta(seconds=41), "cn-east")])
    runtime.drain()
    [row] = windows(desk)
    assert row.window_start == T0 and row.window_seconds == 10 and row.reports == 60
    assert row.sessions == 60
    freeze = sum(r["video"]["freeze_ms"] for r in first) / sum(r["video"]["active_ms"] for r in first)
    assert row.video_freeze_rate == pytest.approx(freeze)
    joins = [e for r in first for e in r["events"]]
    assert row.join_success_rate == pytest.approx(sum(e["ok"] for e in joins) / len(joins))
    mos = [expected_mos(r["net"]["rtt_ms"], r["audio"]["jitter_ms"], r["audio"]["loss_pct"]) for r in first]
    assert row.mos == pytest.approx(sum(mos) / len(mos))
    rtt_p95 = nearest_rank_p95([r["net"]["rtt_ms"] for r in first])
    assert row.rtt_p95_ms == pytest.approx(rtt_p95, rel=0.021)  # the sketch's 1 % bins, either side
    east = [w for w in windows(desk, dimension="region") if w.value == "cn-east"]
    assert east[0].reports == 30
    east_reports = [r for r in first if r["region"] == "cn-east"]
    assert east[0].video_freeze_rate == pytest.approx(
        sum(r["video"]["freeze_ms"] for r in east_reports) / (10000 * len(east_reports))
    )
    # The parts decode to the same metrics the columns hold.
    decoded = store.window_of(row).metrics()
    assert decoded["mos"] == pytest.approx(row.mos) and decoded["sessions"] == row.sessions
    # Every batch that fed a persisted window is acknowledged; the open window's batch waits.
    assert runtime.pipeline.held == 1


def test_a_redelivered_batch_counts_once(desk: Desk, runtime: TelemetryRuntime) -> None:
    bus = runtime.bus
    assert isinstance(bus, MemoryBus)
    bus.ack_wait_s = 0.0  # every unacknowledged message is due again at once
    send(runtime, [report(f"s{i}", T0 + timedelta(seconds=1)) for i in range(10)])
    consumer = bus.consumer([0, 1])
    first = consumer.fetch(10, timeout=0)
    runtime.pipeline.handle(first)  # counted, not acked (its window is open)
    again = consumer.fetch(10, timeout=0)
    assert [m.msg_id for m in again] == [m.msg_id for m in first] and again[0].deliveries == 2
    runtime.pipeline.handle(again)
    runtime.pipeline.tick(flush=True)
    assert [w.reports for w in windows(desk)] == [10]
    assert runtime.pipeline.stats.duplicates == 10


def test_a_restarted_pipeline_does_not_count_persisted_windows_again(desk: Desk, runtime: TelemetryRuntime) -> None:
    send(runtime, [report(f"s{i}", T0 + timedelta(seconds=2)) for i in range(5)])
    runtime.drain(flush=True)
    # A new process (fresh memory) gets the same reports again, e.g. a redelivery after a crash.
    fresh = TelemetryRuntime(desk, settings=TelemetrySettings(partitions=2), bus=MemoryBus(partitions=2))
    fresh.ingestor.ingest_reports("liveco", [report(f"s{i}", T0 + timedelta(seconds=2)) for i in range(5)])
    fresh.drain(flush=True)
    assert [w.reports for w in windows(desk)] == [5]


def test_six_ten_second_windows_roll_up_to_the_minute_computed_directly(desk: Desk, runtime: TelemetryRuntime) -> None:
    rng = random.Random(11)
    minute = [
        random_report(
            rng, f"s{rng.randint(0, 40)}", T0 + timedelta(seconds=10 * k + rng.uniform(0, 9.9)), REGIONS[k % 2]
        )
        for k in range(6)
        for _ in range(25)
    ]
    # Duplicate (session, ts) pairs would be dropped by dedup: make the identities unique.
    seen: set[tuple[str, str]] = set()
    minute = [r for r in minute if (r["session_id"], r["ts"]) not in seen and not seen.add((r["session_id"], r["ts"]))]
    send(runtime, minute)
    runtime.drain(flush=True)
    assert len(windows(desk)) == 6
    [rolled] = windows(desk, 60)
    assert rolled.window_start == T0 and rolled.reports == len(minute)
    # The same reports aggregated straight into one 60 s window.
    from zhiban.telemetry.aggregate import Aggregator
    from zhiban.telemetry.parse import parse_batch

    aggregator = Aggregator(window_seconds=60)
    aggregator.add(parse_batch(b"\n".join(map(orjson.dumps, minute))).batch)
    expected = {w.key: w for w in aggregator.flush()}
    for row in windows(desk, 60) + windows(desk, 60, "region") + windows(desk, 60, "platform"):
        window = store.window_of(row)
        want = expected[window.key]
        assert window.counters == pytest.approx(dict(want.counters))
        assert (window.session_registers == want.session_registers).all()
        for name, sketch in want.sketches.items():
            assert window.sketches[name].quantile(0.95) == sketch.quantile(0.95)
        assert row.sessions == want.sessions
    # A full hour is rolled up too once it is complete.
    send(runtime, [report("tail", T0 + timedelta(hours=1, seconds=45))])
    runtime.drain(flush=True)
    [hour] = windows(desk, 3600)
    assert hour.window_start == T0 and hour.reports == len(minute)


def test_series_breakdown_timeline_and_summary(desk: Desk, runtime: TelemetryRuntime) -> None:
    rng = random.Random(3)
    sent = []
    for k in range(12):  # two minutes
        for i in range(20):
            sent.append(random_report(rng, f"s{i}", T0 + timedelta(seconds=10 * k + 1), REGIONS[i % 2]))
    sent.append(
        report("s0", T0 + timedelta(seconds=135), channel="room-1", video={"active_ms": 10000, "freeze_ms": 5000})
    )
    send(runtime, sent)
    runtime.drain(flush=True)
    with desk.transaction() as s:
        points = service.series(s, "liveco", "reports", T0, T0 + timedelta(minutes=3), timedelta(minutes=1))
        assert [p.value for p in points] == [120.0, 120.0, 1.0]
        fine = service.series(s, "liveco", "video_freeze_rate", T0, T0 + timedelta(seconds=30), timedelta(seconds=10))
        first_window = [r for r in sent if r["ts"].startswith("2026-11-20T19:00:01")]
        assert fine[0].value == pytest.approx(sum(r["video"]["freeze_ms"] for r in first_window) / (10000 * 20))
        east = service.series(
            s, "liveco", "sessions", T0, T0 + timedelta(minutes=2), timedelta(minutes=2), "region", "cn-east"
        )
        assert east[0].value == 10 and east[0].reports == 120
        ranked = service.breakdown(s, "liveco", "video_freeze_rate", T0, T0 + timedelta(minutes=2), "region")
        assert [r.value for r in ranked] == ["cn-east", "cn-north"]  # cn-east freezes more: it hurts most
        assert ranked[0].impact > 0 and ranked[1].impact == 0
        timeline = service.session_timeline(s, "liveco", "s0", T0, T0 + timedelta(minutes=5))
        assert [t["ts"] for t in timeline] == sorted(t["ts"] for t in timeline) and len(timeline) == 13
        assert timeline[-1]["channel"] == "room-1"
        summary = service.quality_summary(s, "liveco", T0, T0 + timedelta(minutes=5))
        assert summary.overall["liveco"]["sessions"] == 20
        assert summary.worst and summary.worst[0].key.value == "cn-east"
        one_channel = service.quality_summary(s, "liveco", T0, T0 + timedelta(minutes=5), channel="room-1")
        assert one_channel.overall["liveco"]["video_freeze_rate"] == pytest.approx(0.5)
        as_json = orjson.dumps(service.summary_to_dict(summary))
        assert b"cn-east" in as_json
        with pytest.raises(Exception, match="unknown metric"):
            service.series(s, "liveco", "nope", T0, T0 + timedelta(minutes=1), timedelta(minutes=1))
        with pytest.raises(Exception, match="at most"):
            service.series(s, "liveco", "mos", T0, T0 + timedelta(days=30), timedelta(seconds=10))


def test_prune_keeps_each_resolution_for_its_retention(desk: Desk, runtime: TelemetryRuntime) -> None:
    send(runtime, [report("s1", T0 + timedelta(seconds=1))])
    send(runtime, [report("s1", T0 + timedelta(hours=1, seconds=1))])
    runtime.drain(flush=True)
    with desk.transaction() as s:
        counts = {
            sec: s.scalar(select(func.count()).where(store.WindowRow.window_seconds == sec)) for sec in (10, 60, 3600)
        }
        assert counts[10] and counts[60] and counts[3600]
        deleted = service.prune(s, T0 + timedelta(days=3))
        assert deleted["windows_10s"] > 0 and deleted["windows_60s"] == 0 and deleted["raw_reports"] == 2
        assert service.prune(s, T0 + timedelta(days=15))["windows_60s"] > 0
        assert service.prune(s, T0 + timedelta(days=15))["windows_3600s"] == 0
        assert math.isclose(service.prune(s, T0 + timedelta(days=401))["windows_3600s"], counts[3600])

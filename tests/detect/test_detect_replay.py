"""Live and replay give the same detections: the same simulated batches go through the desk's ingest →
bus → pipeline → detection path (as `zhiban serve` runs it) and through `replay`."""

from __future__ import annotations

import io
import zlib
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from tests.detect.test_detect_faults import detect, simulate
from zhiban.apps import service as apps
from zhiban.desk import Desk
from zhiban.detect import service
from zhiban.detect.live import live_for
from zhiban.identity import service as identity
from zhiban.telemetry.batch import ReportBatch
from zhiban.telemetry.live import TelemetryRuntime
from zhiban.telemetry.simulator_faults import Fault

START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def tiny_edges(chunk: bytes) -> bytes:
    """Every report moved to one of 60 edges of a few sessions each: no edge ever learns a baseline."""
    reports = [orjson.loads(line) for line in chunk.split(b"\n")]
    for report in reports:
        report["edge"] = f"tiny-edge-{zlib.crc32(report['session_id'].encode()) % 60}"
    return b"\n".join(map(orjson.dumps, reports))


@pytest.mark.parametrize("edges", ["simulated", "all too small for a baseline"])
def test_live_and_replay_find_the_same_detections(desk: Desk, edges: str) -> None:
    with desk.transaction() as s:
        identity.create_organization(s, desk.clock, name="LiveCo", slug="liveco", plan="enterprise")
        apps.ensure_app(s, desk.clock, app_id="liveco", organization_slug="liveco")
    faults = [
        Fault("isp_congestion", "liveco", START + timedelta(minutes=4), timedelta(minutes=1), {"isp": "china-mobile"})
    ]
    chunks = simulate(faults, peak=400, minutes=6.5, start=START, apps=("liveco",))
    if edges != "simulated":  # issue 16: localization met a dimension with no baseline at all and divided by 0
        chunks = [tiny_edges(chunk) for chunk in chunks]
    runtime = TelemetryRuntime(desk)
    for chunk in chunks:  # one batch per tick, as the live simulation posts them
        runtime.ingestor.ingest("liveco", chunk)
        runtime.drain()
    runtime.drain(flush=True)
    live_open = [d.to_json() for d in live_for(runtime.pipeline).engine.open_detections()]
    with desk.transaction() as s:
        stored = service.list_detections(s, service.SYSTEM, limit=200)
        live = sorted(
            [
                {k: v for k, v in service.detection_json(r).items() if k not in ("id", "state", "detected_at",
                                                                                "incident_id", "detected_by")}
                for r in stored
            ],
            key=lambda d: (d["opened_at"], d["metric"]),
        )  # fmt: skip
    replayed = sorted([d.to_json() for d in detect(chunks)], key=lambda d: (d["opened_at"], d["metric"]))
    assert replayed, "the fault is found"
    assert any(d["slice"] == {"isp": "china-mobile"} for d in replayed)
    assert len(live) == len(replayed)
    for a, b in zip(live, replayed, strict=True):
        for name in ("baseline", "observed"):  # the §4 line rounds to 6 significant digits
            assert a.pop(name) == pytest.approx(b.pop(name), rel=1e-5)
        assert a == b
    assert all(d["closed_at"] is not None for d in replayed) or live_open
    assert not live_for(runtime.pipeline).engine.failures


def test_a_recording_replays_the_same_in_big_chunks_as_tick_by_tick_with_few_windows_open() -> None:
    """`zhiban detect replay` reads 10k lines at a time; a quiet recording's chunk spans many windows. It is
    counted in spans of event time so windows close as the live ticks close them: the same detections as
    batch by batch, and never more than a few windows open per app (issue 16: 3.2 GB on a sparse day)."""
    from zhiban.detect.engine import DetectionEngine
    from zhiban.detect.replay import Replayer, read_chunks

    faults = [
        Fault("isp_congestion", "liveco", START + timedelta(minutes=4), timedelta(minutes=1), {"isp": "china-mobile"})
    ]
    ticks = simulate(faults, peak=400, minutes=6.5, start=START, apps=("liveco",))

    def replayed(chunks: list[bytes]) -> tuple[list[dict[str, object]], int]:
        replayer = Replayer(DetectionEngine())
        aggregator, add = replayer.aggregator, replayer.aggregator.add
        most_open = 0

        def counted(batch: ReportBatch) -> int:  # windows open right after counting, before any close
            nonlocal most_open
            n = add(batch)
            most_open = max(most_open, aggregator.open_windows)
            return n

        aggregator.add = counted  # type: ignore[method-assign]
        for chunk in chunks:
            replayer.feed(chunk)
        replayer.flush()
        found = replayer.summary.detections + replayer.engine.open_detections()
        return sorted((d.to_json() for d in found), key=lambda d: (d["opened_at"], d["metric"])), most_open

    by_tick, _ = replayed(ticks)
    lines = io.BytesIO(b"\n".join(ticks) + b"\n")
    whole, most_open = replayed(list(read_chunks(lines)))  # (10k lines: a chunk spans ~20 windows here)
    assert any(d["slice"] == {"isp": "china-mobile"} for d in by_tick), "the fault is found"
    assert whole == by_tick
    assert most_open <= 9  # the lateness (3 windows) and a span (4 to 5), not the ~20 windows of a chunk

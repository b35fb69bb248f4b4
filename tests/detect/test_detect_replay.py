"""Live and replay give the same detections: the same simulated batches go through the desk's ingest →
bus → pipeline → detection path (as `zhiban serve` runs it) and through `replay`."""

from __future__ import annotations

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

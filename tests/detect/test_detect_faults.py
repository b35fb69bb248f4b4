"""Every fault of the simulator's catalogue is detected, on the right slice, within a minute; benign
traffic changes and night-time trickles raise nothing. Short seeded runs of the real simulator, replayed
through the same parse → aggregate → detect steps as the desk."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from zhiban.detect.detections import Detection
from zhiban.detect.replay import replay_chunks
from zhiban.telemetry.simulator import Simulator, demo_apps
from zhiban.telemetry.simulator_faults import FAULT_KINDS, Fault

# 02:00 UTC on a Friday: ClassMate's morning class, LiveCo's late morning, Hiyo's American evening.
START = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
FAULT_AT = START + timedelta(minutes=4)  # after the 3-minute warm-up of every key
FAULT_FOR = timedelta(minutes=2)


def simulate(faults: Sequence[Fault], *, peak: int, minutes: float, start: datetime = START, seed: int = 11,
             apps: Sequence[str] = ("liveco", "classmate", "hiyo")) -> list[bytes]:  # fmt: skip
    """The simulator's reports, one NDJSON batch per 10 s tick."""
    chosen = [a for a in demo_apps(peak_sessions=peak) if a.app_id in apps]
    sim = Simulator(chosen, faults, seed=seed, start=start)
    return [b"\n".join(map(orjson.dumps, batch)) for batch in sim.run(start + timedelta(minutes=minutes))]


def detect(chunks: Sequence[bytes], **options: Any) -> list[Detection]:
    found: list[Detection] = []
    replay_chunks(chunks, found.append, **options)
    return found


# One fault per app per run, so two runs cover the catalogue.
RUNS: dict[str, list[Fault]] = {
    "first": [
        Fault("edge_packet_loss", "liveco", FAULT_AT, FAULT_FOR, {"edge": "sh-edge-07"}),
        Fault("isp_congestion", "classmate", FAULT_AT, FAULT_FOR, {"isp": "china-mobile"}),
        Fault("av_sync_drift", "hiyo", FAULT_AT, FAULT_FOR, {"platform": "ios"}),
    ],
    "second": [
        Fault("app_outage", "liveco", FAULT_AT, FAULT_FOR, {"region": "cn-north"}),
        Fault("edge_overload", "classmate", FAULT_AT, FAULT_FOR, {"edge": "bj-edge-02"}),
        Fault("sdk_release_join_failure", "hiyo", FAULT_AT, FAULT_FOR, {"sdk_version": "5.1.0"}),
    ],
}
BY_KIND = {f.kind: (run, f) for run, faults in RUNS.items() for f in faults}

# The module's runs are simulated once per process (`found`): one worker takes every test of the module, or each
# worker that got one of them would simulate and replay both runs again (~1.5 min of CPU on a loaded machine).
pytestmark = pytest.mark.xdist_group("detect-faults")


# Joins are rare next to reports (a session joins once in ~8 minutes): the second run needs more traffic
# for a join failure on one release to be certain within a minute.
PEAKS = {"first": 700, "second": 1400}


@pytest.fixture(scope="module")
def found() -> dict[str, list[Detection]]:
    return {run: detect(simulate(faults, peak=PEAKS[run], minutes=7.5)) for run, faults in RUNS.items()}


def test_the_runs_cover_the_whole_fault_catalogue() -> None:
    assert set(BY_KIND) == set(FAULT_KINDS)


def _of_fault(found: dict[str, list[Detection]], kind: str) -> tuple[Fault, list[Detection]]:
    run, fault = BY_KIND[kind]
    return fault, [d for d in found[run] if d.app_id == fault.app_id]


@pytest.mark.parametrize("kind", sorted(FAULT_KINDS))
def test_each_fault_is_detected_within_a_minute(found: dict[str, list[Detection]], kind: str) -> None:
    fault, mine = _of_fault(found, kind)
    expected_metrics = set(FAULT_KINDS[kind][2])
    assert any(d.metric in expected_metrics for d in mine), f"{kind}: {[d.to_json() for d in mine]}"
    first = min(mine, key=lambda d: d.detected_at)
    assert first.detected_at - fault.start <= timedelta(seconds=60), first.to_json()
    # Nothing before the fault; once it is over its detections close (3 clean windows). A slice an outage
    # emptied stays open until its sessions are back or it has been silent for 5 minutes.
    assert all(d.opened_at >= fault.start - timedelta(seconds=20) for d in mine)
    closed = [d for d in mine if d.closed_at is not None]
    assert closed and all(d.closed_at <= fault.end + timedelta(minutes=2) for d in closed)  # type: ignore[operator]


@pytest.mark.parametrize("kind", sorted(FAULT_KINDS))
def test_each_fault_is_localized_to_its_slice(found: dict[str, list[Detection]], kind: str) -> None:
    fault, mine = _of_fault(found, kind)
    # The slice names the injected dimension value (it may add the region that holds an edge).
    named = [d for d in mine if set(fault.slice.items()) <= set(d.slice.items())]
    assert named, [d.to_json() for d in mine]
    # Sparse evidence (join failures of one release) may name it only after the detection: while the fault is
    # still on, and the detection keeps the time it was first detected at.
    for d in named:
        assert d.refined_at is None or d.detected_at < d.refined_at <= fault.end


def test_faults_stay_in_their_app(found: dict[str, list[Detection]]) -> None:
    for run, faults in RUNS.items():
        for detection in found[run]:
            fault = next(f for f in faults if f.app_id == detection.app_id)
            assert fault.start - timedelta(seconds=20) <= detection.opened_at <= fault.end, detection.to_json()


def test_benign_traffic_changes_raise_nothing() -> None:
    at = START + timedelta(minutes=4)
    benign = [
        Fault("festival_surge", "liveco", at, timedelta(minutes=3)),
        Fault("evening_ramp", "classmate", at, timedelta(minutes=3), magnitude=1.0),
        Fault("sdk_rollout", "hiyo", at, timedelta(minutes=3), {"platform": "android", "sdk_version": "5.2.0"}),
    ]
    assert detect(simulate(benign, peak=700, minutes=8, seed=5)) == []


def test_night_time_trickle_pages_nobody() -> None:
    # A few sessions at night, a traffic drop on top: windows below the minimum volume say nothing.
    night = START.replace(hour=19)  # 03:00 in Shanghai
    drop = [Fault("night_low_volume", "liveco", night + timedelta(minutes=4), timedelta(minutes=3))]
    chunks = simulate(drop, peak=150, minutes=8, start=night, apps=("liveco",))
    assert detect(chunks) == []

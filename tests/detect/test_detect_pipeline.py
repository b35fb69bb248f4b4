"""The per-window detector on synthetic windows (step, low volume, seasonal, bounded state), and the
desk's telemetry pipeline handing its closed windows to detection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tests.detect.test_detect_faults import simulate
from zhiban.desk import Desk
from zhiban.detect import service
from zhiban.detect.detections import Detection
from zhiban.detect.engine import DetectionEngine, EngineOptions
from zhiban.detect.seasonal import DetectorOptions
from zhiban.detect.store import DetectionRow
from zhiban.telemetry.live import TelemetryRuntime
from zhiban.telemetry.simulator_faults import Fault
from zhiban.telemetry.sketch import QuantileSketch, hll_registers
from zhiban.telemetry.window import COUNTED, SKETCHED, SliceKey, WindowAggregate

T0 = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)  # a Monday


def freeze_window(start: datetime, rate: float, *, sessions: int = 400, rng: np.random.Generator) -> WindowAggregate:
    """An app-wide window whose video freezes are Poisson clumps of ~1 s around `rate` of active time."""
    active = sessions * 10_000.0
    freeze = float(rng.poisson(active * rate / 1000.0) * 1000.0)
    counters = dict.fromkeys(COUNTED, 0.0)
    counters.update(reports=float(sessions), video_freeze_ms=freeze, video_active_ms=active)
    registers = hll_registers(rng.integers(0, 2**63, sessions, dtype=np.uint64))
    return WindowAggregate(
        SliceKey("liveco"), start, 10, counters, dict.fromkeys(SKETCHED, QuantileSketch.empty()), registers
    )


def run(engine: DetectionEngine, rates: list[float], *, start: datetime = T0, sessions: int = 400, seed: int = 1):
    rng = np.random.default_rng(seed)
    events = []
    for n, rate in enumerate(rates):
        at = start + timedelta(seconds=10 * n)
        events += [(n, e) for e in engine.process([freeze_window(at, rate, sessions=sessions, rng=rng)])]
    return events


def test_a_step_is_caught_within_a_few_windows_and_closes_after_three_clean() -> None:
    engine = DetectionEngine()
    events = run(engine, [0.01] * 40 + [0.03] * 12 + [0.01] * 10)
    kinds = [(n, e.kind, e.detection.metric) for n, e in events]
    assert kinds[0][1:] == ("opened", "video_freeze_rate") and 41 <= kinds[0][0] <= 45
    # Closing pools a few windows too (rare events), then needs 3 clean ones: about a minute and a half.
    assert kinds[-1][1] == "closed" and 54 <= kinds[-1][0] <= 61
    detection = events[0][1].detection
    assert detection.opened_at >= T0 + timedelta(seconds=390) and detection.slice == {}
    assert 0.008 < detection.baseline < 0.012 and detection.observed > 0.02


def test_the_same_step_in_a_trickle_of_sessions_is_not_news() -> None:
    # 12 sessions: below the minimum volume, whatever the rate does.
    assert run(DetectionEngine(), [0.01] * 40 + [0.05] * 12, sessions=12) == []


def test_noise_alone_raises_nothing() -> None:
    assert run(DetectionEngine(), [0.01] * 400, seed=3) == []


def test_an_evening_that_is_always_worse_is_not_news_once_history_shows_it() -> None:
    # Every day from 20:00 to 21:00 the freeze rate doubles: a recent baseline alone calls it a step.
    def day(engine: DetectionEngine, d: int) -> list[object]:
        start = T0 + timedelta(days=d, hours=19, minutes=40)
        rates = [0.01] * 120 + [0.02] * 360 + [0.01] * 30  # 19:40 normal, 20:00-21:00 the usual evening
        return run(engine, rates, start=start, seed=d)

    engine = DetectionEngine()
    assert day(engine, 0), "without history the evening step is flagged"
    day(engine, 1)
    day(engine, 2)  # Monday to Wednesday teach the hour
    assert day(engine, 3) == []  # Thursday: same kind of day, same hour, nothing new


def join_windows(start: datetime, failure: dict[str, float], *, rng: np.random.Generator) -> list[WindowAggregate]:
    """One window of an app whose ~15 joins split 60/40 over two releases and evenly over two platforms."""
    n = int(rng.poisson(15.0))
    columns = {
        "sdk_version": np.where(rng.random(n) < 0.6, "new", "old"),
        "platform": np.where(rng.random(n) < 0.5, "android", "ios"),
    }
    failed = rng.random(n) < np.array([failure[v] for v in columns["sdk_version"]])
    shares = {("sdk_version", "new"): 0.6, ("sdk_version", "old"): 0.4, ("platform", "android"): 0.5,
              ("platform", "ios"): 0.5}  # fmt: skip
    rows = {SliceKey("hiyo"): (np.ones(n, dtype=bool), 1.0)}
    rows |= {SliceKey("hiyo", d, v): (columns[d] == v, share) for (d, v), share in shares.items()}
    windows = []
    for key, (mine, share) in rows.items():
        sessions = int(400 * share)
        counters = dict.fromkeys(COUNTED, 0.0)
        counters.update(reports=float(sessions), join_attempts=float(mine.sum()),
                        join_successes=float((mine & ~failed).sum()))  # fmt: skip
        registers = hll_registers(rng.integers(0, 2**63, sessions, dtype=np.uint64))
        windows.append(
            WindowAggregate(key, start, 10, counters, dict.fromkeys(SKETCHED, QuantileSketch.empty()), registers)
        )
    return windows


def run_joins(fault: dict[str, float], seed: int) -> list[tuple[int, str, dict[str, str], Detection]]:
    """4 minutes of 0.5 % failed joins, 2 minutes of `fault` per release, then 3 minutes clean again: per event,
    its window, kind and the slice as it was then (the engine updates its detections in place)."""
    rng = np.random.default_rng(seed)
    clean = {"new": 0.005, "old": 0.005}
    engine = DetectionEngine()
    events = []
    for n, failure in enumerate([clean] * 24 + [fault] * 12 + [clean] * 18):
        for e in engine.process(join_windows(T0 + timedelta(seconds=10 * n), failure, rng=rng)):
            events.append((n, e.kind, dict(e.detection.slice), e.detection))
    return events


@pytest.mark.parametrize("seed", range(4))
def test_sparse_join_failures_of_a_release_are_found_app_wide_then_sharpened_to_it(seed: int) -> None:
    # 60 % of the joins on the broken release, ~3 failures a window: enough to detect, too few to name the
    # release at once (that all of 6 failures fall on 60 % of the joins happens by chance 5 % of the time).
    events = run_joins({"new": 0.35, "old": 0.005}, seed)
    assert [kind for _, kind, _, _ in events] == ["opened", "updated", "closed"]
    (opened, _, first_slice, detection), (sharpened, _, sharper, _) = events[0], events[1]
    assert 24 <= opened <= 30 and first_slice == {}  # found within a minute, not yet localized
    assert sharper == detection.slice == {"sdk_version": "new"} and sharpened - opened <= 9  # within 90 s more
    # The time to detect stays that of the first detection; the refinement has its own time.
    assert detection.detected_at == T0 + timedelta(seconds=10 * (opened + 1))
    assert detection.refined_at == T0 + timedelta(seconds=10 * (sharpened + 1))
    assert detection.sessions < 300 and detection.observed < 0.8  # the release's sessions and join rate now
    assert detection.closed_at is not None


@pytest.mark.parametrize("fault", [{"new": 0.35, "old": 0.35}, {"new": 0.2, "old": 0.1}])
def test_a_release_that_only_carries_the_joins_is_never_named(fault: dict[str, float]) -> None:
    # Every release fails alike (or the bigger one merely somewhat more): no slice, however long it lasts.
    for seed in range(3):
        events = run_joins(fault, seed)
        assert events and all(slice_ == {} and d.refined_at is None for _, _, slice_, d in events)


def test_key_state_is_bounded() -> None:
    engine = DetectionEngine(EngineOptions(max_keys=16, detector=DetectorOptions()))
    rng = np.random.default_rng(0)
    for n in range(40):
        w = freeze_window(T0, 0.01, rng=rng)
        engine.process([WindowAggregate(SliceKey(f"app{n}"), w.window_start, 10, w.counters, w.sketches,
                                        w.session_registers)])  # fmt: skip
    assert len(engine.keys) == 16 and engine.evicted == 24


def test_the_desk_pipeline_hands_closed_windows_to_detection(desk: Desk) -> None:
    from zhiban.apps import service as apps
    from zhiban.identity import service as identity

    with desk.transaction() as s:
        identity.create_organization(s, desk.clock, name="LiveCo", slug="liveco", plan="enterprise")
        apps.ensure_app(s, desk.clock, app_id="liveco", organization_slug="liveco")
    start = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    fault = Fault(
        "edge_packet_loss", "liveco", start + timedelta(minutes=4), timedelta(minutes=2), {"edge": "sh-edge-07"}
    )
    runtime = TelemetryRuntime(desk)
    for chunk in simulate([fault], peak=500, minutes=6, start=start, apps=("liveco",)):
        runtime.ingestor.ingest("liveco", chunk)
        runtime.drain()
    runtime.drain(flush=True)
    with desk.transaction() as s:
        rows = service.list_detections(s, service.SYSTEM)
        assert rows and all(isinstance(r, DetectionRow) for r in rows)
        assert any(r.slice.get("edge") == "sh-edge-07" for r in rows)
        assert {r.app_id for r in rows} == {"liveco"} and rows[0].organization_id is not None


def test_admins_inject_a_named_fault_into_the_live_simulation(desk: Desk) -> None:
    from fastapi.testclient import TestClient

    from tests.tenancy import bearer, build_world
    from zhiban.telemetry.live import runtime_for
    from zhiban.telemetry.simulator import Simulator, demo_apps
    from zhiban.web.app import create_app

    w = build_world(desk)
    with TestClient(create_app(desk)) as client:
        spec = {"spec": "edge_packet_loss:liveco:edge=sh-edge-07:+1m:10m"}
        # No live simulation in this process: nothing to inject into.
        assert client.post("/api/v1/simulator/faults", json=spec, headers=bearer(w.admin_token)).status_code == 404
        simulator = Simulator(demo_apps(peak_sessions=50), seed=1, start=desk.clock.now())
        runtime_for(desk).simulator = simulator
        made = client.post("/api/v1/simulator/faults", json=spec, headers=bearer(w.admin_token))
        assert made.status_code == 201, made.text
        assert made.json()["injected"]["slice"] == {"edge": "sh-edge-07"}
        assert [(f.kind, f.start - desk.clock.now()) for f in simulator.faults] == [
            ("edge_packet_loss", timedelta(minutes=1))
        ]
        wrong = {"spec": "edge_packet_loss:liveco:edge=no-such-edge:+1m:10m"}
        assert client.post("/api/v1/simulator/faults", json=wrong, headers=bearer(w.admin_token)).status_code == 422
        assert client.post("/api/v1/simulator/faults", json=spec, headers=bearer(w.agent_token)).status_code == 403

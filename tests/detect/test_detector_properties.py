"""The detectors never die: generated windows (empty, zero, NaN/inf counters, single reports, huge counts,
slices that appear and vanish, dimensions with no baseline at all) and generated series go through the
per-window engine, its key tests and the streaming NAB detector without an exception, with finite numbers,
and without the engine having to isolate anything (a swallowed exception would still be a bug)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zhiban.core.errors import InvalidInput
from zhiban.detect.core import Detector, DetectorParams
from zhiban.detect.engine import DetectionEngine
from zhiban.detect.extremes import SeenRange
from zhiban.detect.rules import Rule
from zhiban.detect.seasonal import z_score
from zhiban.detect.surprise import SurpriseTests, gaussian_surprise
from zhiban.telemetry.sketch import QuantileSketch, hll_registers
from zhiban.telemetry.window import COUNTED, SKETCHED, SliceKey, WindowAggregate

T0 = datetime(2026, 11, 16, 2, 30, tzinfo=UTC)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ODD = [math.nan, math.inf, -math.inf, -1.0, 0.0, 1e15]
RULES = [
    Rule("freeze", "video_freeze_rate", "above", 0.02, window_seconds=20, consecutive=1, min_sessions=1),
    Rule("joins", "join_success_rate", "below", 0.99, window_seconds=10, consecutive=2, min_sessions=1),
    Rule("delay", "e2e_delay_p95_ms", "above", 100.0, window_seconds=30, consecutive=1, min_sessions=1),
    Rule("mos", "mos", "below", 4.0, window_seconds=10, consecutive=1, min_sessions=1),
]


@dataclass(frozen=True)
class Slice:
    dimension: str
    value: str
    born: int  # first window with traffic (a brand-new slice when > 0)
    dies: int  # first window without (a vanishing slice when before the end)
    sessions: int
    bad_from: int  # window from which its badness steps up (a fault; past the end: none)


def window(key: SliceKey, at: int, sessions: int, bad: float, rng: np.random.Generator,
           odd: dict[str, float]) -> WindowAggregate:  # fmt: skip
    """One window of `sessions` sessions (one report each) whose badness is scaled by `bad`."""
    reports = sessions
    active = reports * 10_000.0
    attempts = float(rng.binomial(reports, 0.2)) if reports else 0.0
    failures = float(rng.binomial(int(attempts), min(1.0, 0.01 * bad)))
    counters = dict.fromkeys(COUNTED, 0.0)
    counters.update(
        reports=float(reports),
        join_attempts=attempts,
        join_successes=attempts - failures,
        video_freeze_ms=float(rng.poisson(active * min(1.0, 0.01 * bad) / 1000.0) * 1000.0),
        video_active_ms=active,
        audio_freeze_ms=float(rng.poisson(active * min(1.0, 0.005 * bad) / 500.0) * 500.0),
        audio_active_ms=active,
        mos_sum=reports * max(1.0, 4.2 - 0.2 * bad),
        mos_count=float(reports),
    )
    counters.update(odd)
    empty = QuantileSketch.empty()
    sketches = {
        name: QuantileSketch.from_values(rng.gamma(4.0, 20.0 * bad, size=reports)) if reports else empty
        for name in SKETCHED
    }
    registers = hll_registers(rng.integers(0, 2**63, sessions, dtype=np.uint64))
    return WindowAggregate(key, T0 + timedelta(seconds=10 * at), 10, counters, sketches, registers)


@st.composite
def traffic(draw: st.DrawFn) -> tuple[int, int, list[Slice], int, dict[int, dict[str, float]], int]:
    windows = draw(st.integers(20, 45))
    app_sessions = draw(st.sampled_from([0, 1, 25, 400]))
    slices = []
    for d, dimension in enumerate(draw(st.lists(st.sampled_from(["edge", "isp", "sdk_version"]), max_size=2,
                                                unique=True))):  # fmt: skip
        for v in range(draw(st.integers(1, 3))):
            born = draw(st.sampled_from([0, 0, windows // 2, windows - 1]))
            dies = draw(st.sampled_from([windows, windows, born + 1, windows - 3]))
            sessions = draw(st.sampled_from([1, 5, 40, 300]))  # a dimension of small values has no baseline
            slices.append(Slice(dimension, f"{dimension[0]}{d}{v}", born, dies, sessions,
                                draw(st.sampled_from([windows, 22, born]))))  # fmt: skip
    app_bad_from = draw(st.sampled_from([windows, 20, 25]))
    odd = draw(st.dictionaries(st.integers(0, windows - 1), st.dictionaries(st.sampled_from(COUNTED),
                                                                             st.sampled_from(ODD), max_size=3),
                               max_size=3))  # fmt: skip
    return windows, app_sessions, slices, app_bad_from, odd, draw(st.integers(0, 2**16))


def run_engine(windows: int, app_sessions: int, slices: list[Slice], app_bad_from: int,
               odd: dict[int, dict[str, float]], seed: int, rules: Sequence[Rule] = ()) -> DetectionEngine:  # fmt: skip
    rng = np.random.default_rng(seed)
    engine = DetectionEngine(rules=rules)
    for t in range(windows):
        batch = [window(SliceKey("app"), t, app_sessions, 4.0 if t >= app_bad_from else 1.0, rng, odd.get(t, {}))]
        for s in slices:
            if s.born <= t < s.dies:
                bad = 6.0 if t >= s.bad_from else 1.0
                batch.append(window(SliceKey("app", s.dimension, s.value), t, s.sessions, bad, rng, odd.get(t, {})))
        for event in engine.process(batch):
            d = event.detection
            assert all(math.isfinite(x) for x in (d.baseline, d.observed)), d
            assert d.sessions >= 0
            known = {(s.dimension, s.value) for s in slices}
            assert all((dim, value) in known for dim, value in d.slice.items())
    return engine


@SETTINGS
@given(traffic())
def test_the_engine_never_raises_on_generated_traffic(case: tuple) -> None:  # type: ignore[type-arg]
    engine = run_engine(*case, rules=RULES)  # the explicit rules run beside the detectors, on the same windows
    assert not engine.failures, engine.failures  # nothing had to be isolated: no hidden exception either


def test_a_dimension_with_no_baseline_at_all_does_not_crash_the_detection() -> None:
    # Issue 16's crash: every edge is too small to learn a baseline; the whole app steps up: localization
    # sees a dimension whose baseline is empty everywhere.
    slices = [Slice("edge", f"e{v}", 0, 40, 5, 40) for v in range(4)] + [Slice("isp", "cm", 0, 40, 300, 40)]
    engine = run_engine(40, 400, slices, 22, {}, seed=7)
    assert not engine.failures
    opened = engine.open_detections()
    assert opened, "the app-wide step is detected"
    assert all("edge" not in d.slice for d in opened)  # no edge has a baseline to depart from


def test_a_brand_new_tiny_slice_never_alarms_on_its_own() -> None:
    # A release first seen at window 30 with a handful of sessions, all bad, in a clean app.
    slices = [Slice("sdk_version", "9.9.9", 30, 45, 5, 30), Slice("sdk_version", "4.3.2", 0, 45, 300, 45)]
    engine = run_engine(45, 400, slices, 45, {}, seed=3)
    assert engine.open_detections() == [] and not engine.failures


def test_nan_and_infinite_counters_read_as_not_measured() -> None:
    odd = {t: {"video_freeze_ms": math.nan, "video_active_ms": math.inf, "mos_sum": -1.0} for t in range(25, 30)}
    engine = run_engine(40, 400, [], 40, odd, seed=1)
    assert engine.open_detections() == [] and not engine.failures


@pytest.mark.parametrize(
    "odd",
    [{"video_freeze_ms": math.inf}, {"video_active_ms": math.nan}, {"mos_sum": math.inf}, {"join_attempts": -5.0}],
)
def test_the_rules_read_odd_counters_as_not_measured_too(odd: dict[str, float]) -> None:
    engine = run_engine(10, 400, [], 40, {5: odd}, seed=3, rules=RULES)
    assert not engine.failures
    assert all(math.isfinite(d.observed) for d in engine.open_detections())
    assert not any(d.rule == "freeze" for d in engine.open_detections())  # 1 % freezes: under the rule's 2 %


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0, 1e18), st.floats(0, 1e18), st.floats(0, 1e6), st.floats(1e-3, 1e6)
)  # fmt: skip
def test_the_window_z_score_is_finite(num: float, den: float, p0: float, dispersion: float) -> None:
    assert math.isfinite(z_score(num, den, p0, dispersion))


values = st.one_of(st.floats(-1e12, 1e12), st.sampled_from([0.0, 1.0, -1.0, 1e12, 5e-324]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(values, min_size=1, max_size=400), st.booleans())
def test_the_streaming_detector_scores_any_finite_series_within_0_and_1(series: list[float], flat: bool) -> None:
    detector = Detector(DetectorParams(warmup_rows=20, long_window=50, baseline_rows=20))
    for n, x in enumerate([series[0]] * 60 + series if flat else series):  # a flat history first, sometimes
        score = detector.update(1_700_000_000 + 300 * n, x)
        assert 0.0 <= score <= 1.0
        assert math.isfinite(detector.deviation) and math.isfinite(detector.surprise)


def test_the_streaming_detector_refuses_non_finite_values_as_invalid_input() -> None:
    detector = Detector()
    for bad in (math.nan, math.inf, -math.inf):
        try:
            detector.update(1_700_000_000, bad)
        except InvalidInput:
            continue
        raise AssertionError(f"{bad} accepted")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e9), values), min_size=1, max_size=300))
def test_tail_tests_and_extremes_stay_finite(rows: list[tuple[float, float]]) -> None:
    tests = SurpriseTests(long_window=20, short_window=3, min_history=5, max_season_rows=100)
    seen = SeenRange(0.02)
    for t, x in rows:
        assert 0.0 <= tests.update(t, x) <= 300.0 * 1.3
        seen.beyond(x)
        seen.add(x)
    assert math.isfinite(seen.span)


@given(st.floats(allow_nan=False))
def test_gaussian_surprise_is_a_finite_non_negative_number(z: float) -> None:
    assert 0.0 <= gaussian_surprise(z) <= 300.0

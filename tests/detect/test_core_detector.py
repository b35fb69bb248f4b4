"""Streaming detector behaviour: steps, learned patterns, rest period, no look-ahead, bounds, bad input."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from zhiban.core.errors import InvalidInput
from zhiban.detect.context import ContextMemory, ContextNovelty
from zhiban.detect.core import Detector, DetectorParams
from zhiban.detect.extremes import SeenRange
from zhiban.detect.rest import AlarmRest

START = datetime(2026, 1, 1, tzinfo=UTC)
FIVE_MIN = timedelta(minutes=5)


def noisy(n: int, seed: int = 7, level: float = 10.0, sigma: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.gauss(0.0, sigma) for _ in range(n)]


def daily(n: int, period: int = 48) -> list[float]:
    return [10.0 + 5.0 * math.sin(2 * math.pi * i / period) for i in range(n)]


def feed(detector: Detector, values: list[float], step: timedelta = FIVE_MIN) -> list[float]:
    return [detector.update(START + i * step, v) for i, v in enumerate(values)]


def test_scores_are_in_unit_interval_and_zero_while_warming_up() -> None:
    params = DetectorParams()
    scores = feed(Detector(params), noisy(2000))
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert all(s == 0.0 for s in scores[: params.warmup_rows])


def test_step_change_scores_high_at_once_and_only_once() -> None:
    values = noisy(1500, sigma=0.5)
    values[1000:] = [v + 15.0 for v in values[1000:]]
    scores = feed(Detector(), values)
    level = DetectorParams().alarm_level
    # Within a few rows the step reaches the top score and alarms.
    first = next(i for i in range(1000, 1500) if scores[i] >= level)
    assert first - 1000 < 5
    assert scores[first] == max(scores)
    # The quiet stretch alarms seldom: only on the odd new record of the noise.
    assert sum(s >= level for s in scores[300:1000]) <= 3
    # The rest period keeps the new level from being reported again and again.
    rest = DetectorParams().rest_rows
    assert all(s == 0.0 for s in scores[first + 1 : first + rest + 1])


def test_constant_series_stays_quiet() -> None:
    scores = feed(Detector(), [42.0] * 1000)
    assert max(scores) < 0.05  # far below any alarm


def test_periodic_series_stays_quiet_once_learned_and_a_missing_peak_is_seen() -> None:
    values = daily(3000)
    scores = feed(Detector(), values)
    assert max(scores[1000:]) < DetectorParams().alarm_level  # the cycle is known by then: no alarm
    flat = values[:2000] + [10.0] * 60 + values[2060:]  # the cycle stops at its mean level
    flat_scores = feed(Detector(), flat)
    assert max(flat_scores[2000:2060]) > 0.5


def test_scores_of_a_prefix_do_not_depend_on_later_rows() -> None:
    values = noisy(1200, seed=3)
    values[900:] = [v * 3 for v in values[900:]]
    full = feed(Detector(), values)
    prefix = feed(Detector(), values[:700])
    assert prefix == full[:700]


def test_prefix_scores_hold_across_refits_and_new_extremes() -> None:
    # The range widens twice after the cut (refits, new extremes): nothing of it leaks backwards.
    values = noisy(1500, seed=5)
    values[600:] = [10.0 + 3.0 * (v - 10.0) for v in values[600:]]
    values[1100:] = [v + 40.0 for v in values[1100:]]
    detector = Detector()
    full = feed(detector, values)
    assert detector.refits >= 2
    for cut in (599, 601, 1100):
        assert feed(Detector(), values[:cut]) == full[:cut]


def test_a_spike_beyond_the_seen_range_scores_one_unless_the_rule_is_off() -> None:
    values = daily(1000)
    values[800] = 20.0  # the cycle spans 5..15: 50 % of its range above it
    # Without the tail tests, which would also call this spike extreme, only the rule differs.
    scores = feed(Detector(DetectorParams(surprise_scale=0.0)), values)
    assert scores[800] == 1.0
    assert max(scores[400:800]) < DetectorParams().alarm_level
    off = Detector(DetectorParams(surprise_scale=0.0, extreme_margin=-1.0))
    assert feed(off, values[:801])[800] < 1.0  # only its contextual novelty
    assert not off.extreme


def test_seen_range_flags_values_beyond_its_margin_on_either_side() -> None:
    seen = SeenRange(margin=0.1)
    assert not seen.beyond(5.0)  # nothing seen: no scale yet
    seen.add(5.0)
    assert not seen.beyond(500.0)  # a flat history has no scale either
    seen.add(15.0)
    assert not seen.beyond(15.9) and not seen.beyond(4.1)  # within 10 % of the span of 10
    assert seen.beyond(16.1) and seen.beyond(3.9)
    seen.add(16.1)
    assert seen.span == pytest.approx(11.1)


def test_rest_counts_from_every_high_raw_score_reported_or_not() -> None:
    rest = AlarmRest(rows=3, level=0.75)
    raws = [0.9, 0.8, 0.2, 0.2, 0.2, 0.3, 0.2, 0.2, 0.2, 0.95]
    reported = [rest.report(row, raw) for row, raw in enumerate(raws, start=1)]
    # Row 1 alarms; row 2 is high but resting and extends the rest to row 5; row 6 is reported.
    assert reported == [0.9, 0.0, 0.0, 0.0, 0.0, 0.3, 0.2, 0.2, 0.2, 0.95]


def test_same_input_gives_the_same_scores() -> None:
    values = noisy(800, seed=11)
    assert feed(Detector(), values) == feed(Detector(), values)


def test_expected_and_deviation_follow_the_series() -> None:
    detector = Detector()
    feed(detector, noisy(800, level=50.0))
    assert detector.expected == pytest.approx(50.0, abs=0.5)
    assert abs(detector.deviation) < 4
    detector.update(START + 801 * FIVE_MIN, 90.0)
    assert detector.expected == pytest.approx(50.0, abs=0.5)
    assert detector.deviation > 20


def test_memory_stays_bounded_on_a_series_that_never_repeats() -> None:
    params = DetectorParams(max_contexts=500, baseline_rows=100, long_window=200)
    detector = Detector(params)
    feed(detector, noisy(3000, sigma=5.0))
    assert detector.novelty is not None
    assert len(detector.novelty.memory) <= 500
    assert len(detector.baseline) <= 100
    assert detector.tests is not None
    assert len(detector.tests.level.baseline) <= 200
    assert len(detector.tests.history) <= 288


def test_values_beyond_the_warmup_range_get_facts_never_seen_inside_it() -> None:
    novelty = ContextNovelty(0.0, 7.0)
    inside = {f for v in range(8) for f in novelty.facts_of(float(v))}
    assert set(novelty.facts_of(20.0)) - inside
    assert set(novelty.facts_of(-3.0)) - inside
    assert novelty.facts_of(1e300)  # a wild value is still a bounded set of facts


def test_range_is_refitted_online_once_the_values_outgrow_it() -> None:
    params = DetectorParams()
    # A calm warm-up fixes a narrow range; then the series swings far wider, for good.
    values = noisy(params.warmup_rows, sigma=0.1) + daily(3000)
    detector = Detector(params)
    scores = feed(detector, values)
    assert detector.refits >= 2
    seen = detector.seen_high - detector.seen_low
    assert seen > 9.0  # the swing spans 10
    # The fitted range follows it within the growth allowed before a refit.
    assert seen / (1.0 + params.rebin_growth) <= detector.fitted_span <= seen
    assert max(scores[2000:]) < params.alarm_level  # and once relearned, the cycle is quiet


def test_without_refits_the_warmup_range_stays() -> None:
    params = DetectorParams(rebin_growth=0.0)
    detector = Detector(params)
    feed(detector, noisy(params.warmup_rows, sigma=0.1) + daily(600))
    assert detector.refits == 1
    assert detector.novelty is not None
    assert len(detector.novelty.facts_of(15.0)) > params.value_bits  # far beyond the warm-up range


def test_each_side_counts_the_present_facts_like_a_plain_set_intersection() -> None:
    rng = random.Random(5)
    memory = ContextMemory(max_left_facts=7, max_contexts=1000)
    sides = [tuple(sorted(rng.sample(range(40), rng.randint(1, 8)))) for _ in range(200)]
    for k, left in enumerate(sides):
        memory.add(left, (k,), zero_level=False)
    for _ in range(20):
        facts = tuple(sorted(rng.sample(range(40), 12)))
        counts = memory.lefts.present(facts)
        ids = memory.lefts.ids
        assert all(counts[ids[side]] == len(set(side) & set(facts)) for side in sides)


def test_a_repeated_cycle_is_foreseen_and_counts_stay_consistent() -> None:
    novelty = ContextNovelty(0.0, 7.0)
    cycle = [0.0, 3.0, 6.0, 2.0, 5.0, 1.0]
    scores = [novelty.update(v) for v in cycle * 30]
    assert all(s == 0.0 for s in scores[-len(cycle) * 5 :])
    assert novelty.update(7.0) > 0.0  # a value that never followed this context
    memory = novelty.memory
    n = len(memory)
    assert (memory.confirmed[:n] <= memory.expected[:n]).all()
    assert (memory.activations[:n] <= memory.confirmed[:n]).all()


def test_float_timestamps_give_the_same_scores_as_datetimes() -> None:
    values = noisy(600)
    values[500] += 12
    a = feed(Detector(), values)
    detector = Detector()
    b = [detector.update((START + i * FIVE_MIN).timestamp(), v) for i, v in enumerate(values)]
    assert a == b


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_values_are_refused(value: float) -> None:
    with pytest.raises(InvalidInput):
        Detector().update(START, value)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(InvalidInput):
        DetectorParams(warmup_rows=1)
    with pytest.raises(InvalidInput):
        DetectorParams(alarm_level=0.0)
    with pytest.raises(InvalidInput):
        DetectorParams(max_contexts=0)
    with pytest.raises(InvalidInput):
        DetectorParams(value_bits=0)
    with pytest.raises(InvalidInput):
        DetectorParams(rebin_growth=-1.0)
    with pytest.raises(InvalidInput):
        DetectorParams(replay_rows=0)


def test_counts_above_a_p95_bin_read_off_the_sketch_equal_the_histograms() -> None:
    """The engine reads a window's reports above the baseline p95 bin straight off its sketch (sketch_above):
    the same count as the coarse histogram it used to build for every window."""
    import numpy as np

    from zhiban.detect.seasonal import HIST_BINS, sketch_above, sketch_counts, sketch_histogram
    from zhiban.telemetry.sketch import QuantileSketch

    rng = np.random.default_rng(2)
    for _ in range(300):
        values = np.concatenate([rng.lognormal(rng.uniform(-3, 8), rng.uniform(0.1, 2), rng.integers(0, 3000)),
                                 np.zeros(rng.integers(0, 3))])  # fmt: skip
        sketch = QuantileSketch.from_values(values.tolist())
        hist = sketch_histogram(sketch)
        for threshold in [0, 1, *rng.integers(0, HIST_BINS, 5).tolist(), HIST_BINS - 1]:
            assert sketch_above(sketch, threshold) == float(hist[threshold + 1 :].sum())
            app = int(rng.integers(0, HIST_BINS))
            assert sketch_counts(sketch, threshold, app) == (
                float(hist.sum()),
                float(hist[threshold + 1 :].sum()),
                float(hist[app + 1 :].sum()),
            )
            assert sketch_counts(sketch, threshold, None)[2] == float(hist[threshold + 1 :].sum())

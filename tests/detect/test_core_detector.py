"""Streaming detector behaviour: steps, seasonality, bounds, bad input."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from zhiban.core.errors import InvalidInput
from zhiban.detect.core import Detector, DetectorParams, gaussian_surprise

START = datetime(2026, 1, 1, tzinfo=UTC)
FIVE_MIN = timedelta(minutes=5)


def noisy(n: int, seed: int = 7, level: float = 10.0) -> list[float]:
    rng = random.Random(seed)
    return [level + rng.gauss(0.0, 1.0) for _ in range(n)]


def feed(detector: Detector, values: list[float], step: timedelta = FIVE_MIN) -> list[float]:
    return [detector.update(START + i * step, v) for i, v in enumerate(values)]


def test_gaussian_surprise_matches_known_tails() -> None:
    assert gaussian_surprise(0.0) == pytest.approx(0.30103, abs=1e-4)  # Q(0) = 1/2
    assert gaussian_surprise(3.090232) == pytest.approx(3.0, abs=1e-4)  # Q(3.09) = 0.001
    assert gaussian_surprise(40.0) > gaussian_surprise(30.0) > 100  # no underflow to inf or 0


def test_scores_are_in_unit_interval_and_zero_while_learning() -> None:
    params = DetectorParams()
    scores = feed(Detector(params), noisy(3000))
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert all(s == 0.0 for s in scores[: params.min_history])


def test_step_change_is_reported_at_once_and_once() -> None:
    values = noisy(1500)
    values[1000:] = [v + 15.0 for v in values[1000:]]
    scores = feed(Detector(), values)
    quiet_max = max(scores[200:1000])
    # The step is the largest score of the series, within the short window of its start.
    first = next(i for i in range(1000, 1500) if scores[i] > quiet_max)
    assert first - 1000 < DetectorParams().short_window
    assert max(scores[1000:1010]) == max(scores)
    # The rest period keeps the shifted level from being reported again and again.
    assert sum(1 for s in scores[1000:1150] if s > quiet_max) <= 3


def test_expected_and_deviation_follow_the_series() -> None:
    detector = Detector()
    feed(detector, noisy(800, level=50.0))
    assert detector.expected == pytest.approx(50.0, abs=0.5)
    assert abs(detector.deviation) < 4
    detector.update(START + 801 * FIVE_MIN, 90.0)
    assert detector.deviation > 4


def test_daily_period_is_learned_from_timestamps() -> None:
    five_min = Detector()
    feed(five_min, noisy(100))
    assert five_min.season_rows == 288
    seven_min = Detector()
    feed(seven_min, noisy(100), step=timedelta(minutes=7))  # 1440/7 is not whole: no daily lag
    assert seven_min.season_rows == 0


def test_memory_stays_bounded() -> None:
    params = DetectorParams(long_window=200, rest_rows=50)
    detector = Detector(params)
    feed(detector, noisy(5000))
    assert len(detector.level.baseline) <= 200
    assert len(detector.history) <= 288
    assert len(detector.recent_max) <= 50


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
        DetectorParams(short_window=0)
    with pytest.raises(InvalidInput):
        DetectorParams(long_window=5)
    with pytest.raises(InvalidInput):
        DetectorParams(rest_ratio=0.5)

"""Localization never dies: generated slice stats with empty, zero, brand-new and vanishing values, zero
baselines, single events and huge counts give a finite answer (or a documented refusal), never an exception."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from zhiban.core.errors import InvalidInput
from zhiban.detect.localize import (
    MAX_CONCENTRATION,
    MAX_COUNT,
    SliceStats,
    binomial_tail_z,
    localize,
    score_values,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Counts as the engine produces them, with the edges weighted in: nothing at all, a single event, a sliver
# left by a decayed baseline, and amounts far beyond any real window.
count = st.one_of(
    st.just(0.0),
    st.just(1.0),
    st.floats(min_value=0.0, max_value=1e-6),
    st.floats(min_value=0.0, max_value=1e4),
    st.floats(min_value=0.0, max_value=MAX_COUNT),
)


@st.composite
def slice_stats(draw: st.DrawFn) -> list[SliceStats]:
    """Up to 3 dimensions of up to 5 values; a value may be brand new (no baseline), vanished (no
    observation), empty, or a dimension may have no baseline at all."""
    stats = []
    for d in range(draw(st.integers(0, 3))):
        no_baseline = draw(st.booleans())  # every value of the dimension too small to have learned one
        for v in range(draw(st.integers(1, 5))):
            shape = draw(st.sampled_from(["any", "new", "vanished", "empty"]))
            base_den = 0.0 if no_baseline or shape in ("new", "empty") else draw(count)
            base_num = 0.0 if base_den == 0 and draw(st.booleans()) else draw(count)
            obs_den = 0.0 if shape in ("vanished", "empty") else draw(count)
            obs_num = draw(st.one_of(count, st.floats(0.0, 1.0).map(lambda share, den=obs_den: share * den)))
            stats.append(SliceStats(f"d{d}", f"v{v}", base_num, base_den, obs_num, obs_den))
    return stats


def finite_scores(stats: list[SliceStats], **options: object) -> None:
    for direction in ("up", "down"):
        for kind in ("ratio", "additive"):
            scored = score_values(stats, direction, kind)  # type: ignore[arg-type]
            assert all(math.isfinite(x) for x in (scored.expected, scored.excess, scored.expected_rate))
            for values in scored.by_dimension.values():
                for v in values:
                    numbers = (v.expected, v.observed, v.excess, v.explanatory_power, v.surprise,
                               v.concentration, v.rest_expected, v.rest_excess, v.expected_rate, v.rest_observed,
                               v.relative_change)  # fmt: skip
                    assert all(math.isfinite(x) for x in numbers), v
                    assert 0 <= v.concentration <= MAX_CONCENTRATION or v.concentration < 0
                    assert 0 <= v.surprise <= 1 + 1e-9
            found = localize(stats, direction, kind=kind, **options)  # type: ignore[arg-type]
            assert math.isfinite(found.relative_change) and math.isfinite(found.surprise)
            assert 0 <= found.explanatory_power <= 1
            assert all(math.isfinite(c.explanatory_power) and math.isfinite(c.surprise) for c in found.candidates)
            assert len(found.slice) <= 2
            known = {(s.dimension, s.value) for s in stats}
            assert all((d, v) in known for d, v in found.slice.items())


@SETTINGS
@given(slice_stats(), st.floats(0.01, 1.0), st.sampled_from([1.0, 3000.0]))
@example([SliceStats("edge", "a", 0, 0, 5, 100), SliceStats("region", "r", 1, 100, 5, 100)], 0.67, 1.0)
@example([SliceStats("edge", "a", 0, 0, 5, 100)], 0.67, 1.0)
@example([SliceStats("edge", "a", 0, 5e-324, 5, 100), SliceStats("edge", "b", 1e18, 5e-324, 1e18, 1e18)], 0.5, 1.0)
def test_localization_never_raises_and_every_score_is_finite(
    stats: list[SliceStats], threshold: float, event_size: float
) -> None:
    finite_scores(stats, threshold=threshold, event_size=event_size)


def test_a_dimension_with_no_baseline_borrows_the_population_rate_instead_of_dividing_by_zero() -> None:
    # The crash of issue 16: every edge is too small to have a baseline, the overall rate is 0.
    rows = [
        SliceStats("edge", "e1", 0.0, 0.0, 40.0, 100.0),
        SliceStats("edge", "e2", 0.0, 0.0, 1.0, 900.0),
        SliceStats("region", "east", 10.0, 10_000.0, 41.0, 1000.0),
    ]
    scored = score_values(rows)
    e1 = next(v for v in scored.by_dimension["edge"] if v.value == "e1")
    assert e1.expected == pytest.approx(100 * 11 / 10_000, rel=0.5)  # the region's rate, not infinity
    assert localize(rows).slice == {"edge": "e1"}  # the other edge is the evidence that e1 departed


def test_with_no_baseline_anywhere_nothing_is_localized() -> None:
    rows = [SliceStats("edge", "e1", 0.0, 0.0, 40.0, 100.0), SliceStats("edge", "e2", 0.0, 0.0, 0.0, 900.0)]
    found = localize(rows)
    assert not found.found and found.relative_change == 0.0


@SETTINGS
@given(st.integers(0, 5).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_a_brand_new_value_with_a_tiny_volume_is_never_the_slice(joins: tuple[int, int]) -> None:
    # A release first seen now, a handful of joins, among a big clean population with a baseline.
    failures, attempts = joins
    rows = [
        SliceStats("sdk_version", "9.9.9", 0.0, 0.0, float(failures), float(attempts)),
        SliceStats("sdk_version", "4.3.2", 50.0, 50_000.0, 5.0, 5000.0),
    ]
    assert localize(rows).slice == {}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, 2 * MAX_COUNT])
def test_counts_outside_the_domain_are_refused_as_invalid_input(bad: float) -> None:
    with pytest.raises(InvalidInput):
        SliceStats("edge", "e1", bad, 1.0, 1.0, 1.0)


@SETTINGS
@given(st.floats(-10, 1e6), st.floats(-10, 1e6), st.floats(-1, 2))
def test_the_binomial_tail_is_a_number_never_an_exception(k: float, n: float, p: float) -> None:
    z = binomial_tail_z(k, n, p)
    assert not math.isnan(z) and z >= 0
    assert math.isfinite(z) or p <= 0  # +inf only where the hit is impossible under the hypothesis

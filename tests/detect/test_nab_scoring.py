"""NAB scoring rules checked against hand arithmetic (S(y) = 2/(1+e^(5y)) - 1 = -tanh(5y/2))."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zhiban.core.errors import InvalidInput
from zhiban.detect.nab_scoring import PROFILES, Profile, best_threshold, layout_file, probationary_rows, tally_file

STANDARD, LOW_FP, LOW_FN = PROFILES
N_ROWS = 40  # probation: floor(0.15 * 40) = 6 rows
WINDOW = (10, 13)  # width 4


def s_hand(y: float) -> float:
    """NAB's scaled sigmoid written another way: 2/(1+e^(5y)) - 1 == tanh(-5y/2)."""
    return -1.0 if y >= 3 else math.tanh(-2.5 * y)


def scores_with(*rows: int, value: float = 1.0) -> np.ndarray:
    s = np.zeros(N_ROWS)
    s[list(rows)] = value
    return s


def test_probationary_length_follows_nab_rule() -> None:
    assert probationary_rows(40) == 6
    assert probationary_rows(4032) == 604
    assert probationary_rows(22695) == 750


def test_detection_at_left_edge_earns_full_tp_weight() -> None:
    layout = layout_file(N_ROWS, [WINDOW])
    tally = tally_file(layout, scores_with(10), 0.5, STANDARD)
    assert (tally.tp, tally.fn, tally.fp) == (1, 0, 0)
    assert tally.raw == pytest.approx(1.0)


def test_later_detection_in_window_earns_sigmoid_share() -> None:
    layout = layout_file(N_ROWS, [WINDOW])
    # Row 12 of window 10..13: y = -(13 - 12 + 1) / 4 = -0.5.
    expected = math.tanh(1.25) / math.tanh(2.5)
    assert tally_file(layout, scores_with(12), 0.5, STANDARD).raw == pytest.approx(expected)
    # Only the earliest detection in a window counts.
    assert tally_file(layout, scores_with(12, 13), 0.5, STANDARD).raw == pytest.approx(expected)
    # Last row: y = -1/4.
    assert tally_file(layout, scores_with(13), 0.5, STANDARD).raw == pytest.approx(math.tanh(0.625) / math.tanh(2.5))


def test_false_positive_after_window_costs_sigmoid_of_distance() -> None:
    layout = layout_file(N_ROWS, [WINDOW])
    # Row 15: y = (15 - 13) / (4 - 1) = 2/3; the window itself is missed (-1).
    tally = tally_file(layout, scores_with(15), 0.5, STANDARD)
    assert (tally.tp, tally.fn, tally.fp) == (0, 1, 1)
    assert tally.raw == pytest.approx(-1.0 + 0.11 * s_hand(2 / 3))
    # Far past the window (y = 20/3 > 3): the full -fpWeight.
    assert tally_file(layout, scores_with(33), 0.5, LOW_FP).raw == pytest.approx(-1.0 - 0.22)


def test_false_positive_exactly_three_widths_past_a_window_costs_full_fp_weight() -> None:
    # Row 22 of a file whose window ends at 13 with width 4: y = 9 / 3 = 3, where NAB's S gives -1.
    layout = layout_file(N_ROWS, [WINDOW])
    assert layout.worth[22] == -1.0
    assert -1.0 < layout.worth[21] < -0.999  # y = 8/3: still the sigmoid
    assert tally_file(layout, scores_with(10, 22), 0.5, STANDARD).raw == pytest.approx(1.0 - 0.11, rel=0, abs=1e-12)


def test_false_positive_before_any_window_costs_full_fp_weight() -> None:
    layout = layout_file(N_ROWS, [WINDOW])
    assert tally_file(layout, scores_with(8, 10), 0.5, STANDARD).raw == pytest.approx(1.0 - 0.11)


def test_missed_window_costs_fn_weight() -> None:
    layout = layout_file(N_ROWS, [WINDOW])
    assert tally_file(layout, np.zeros(N_ROWS), 0.5, STANDARD).raw == pytest.approx(-1.0)
    assert tally_file(layout, np.zeros(N_ROWS), 0.5, LOW_FN).raw == pytest.approx(-2.0)


def test_probationary_rows_are_ignored() -> None:
    layout = layout_file(N_ROWS, [WINDOW])
    tally = tally_file(layout, scores_with(0, 3, 5, 10), 0.5, STANDARD)
    assert (tally.fp, tally.raw) == (0, pytest.approx(1.0))


def test_normalization_gives_100_for_perfect_and_0_for_null() -> None:
    windows = [WINDOW, (25, 28)]
    layout = layout_file(N_ROWS, windows)
    for profile in PROFILES:
        perfect = best_threshold([layout], [scores_with(10, 25)], profile)
        assert perfect.normalized == pytest.approx(100.0)
        assert perfect.null == pytest.approx(-2 * profile.fn_weight)
        # Every threshold is worse than never detecting (one FP at 1.0; at 0 every row of a long
        # file is a detection, hundreds of FPs): the best is the null score, 0.
        long_layout = layout_file(400, [(200, 203)])
        fp_only = np.zeros(400)
        fp_only[100] = 1.0
        null = best_threshold([long_layout], [fp_only], profile)
        assert null.normalized == pytest.approx(0.0)
        assert null.threshold == math.inf


def test_corpus_threshold_is_the_best_total_over_all_files() -> None:
    a = layout_file(N_ROWS, [WINDOW])
    b = layout_file(N_ROWS, [(20, 23)])
    # File a: window found at its left edge with 0.9; an FP before the window with 0.8.
    # File b: window found at its left edge with 0.6 only; an FP far after nothing with 0.7.
    sa = np.zeros(N_ROWS)
    sa[[10, 8]] = [0.9, 0.8]
    sb = np.zeros(N_ROWS)
    sb[[20, 15]] = [0.6, 0.7]
    # Hand totals per threshold (standard): 0.9 -> 1 - 1 = 0; 0.8 -> 0 - 0.11;
    # 0.7 -> -0.22; 0.6 -> 1 + 1 - 0.22 = 1.78 (best); 0 -> everything is a detection, much worse.
    result = best_threshold([a, b], [sa, sb], STANDARD)
    assert result.threshold == pytest.approx(0.6)
    assert result.raw == pytest.approx(1.78)
    assert result.normalized == pytest.approx(100 * (1.78 + 2) / 4)
    # With fp weight 1.5 the two FPs cost more than the second window earns: stop at 0.9.
    harsh = Profile("harsh", 1.0, 1.0, 1.5)
    assert best_threshold([a, b], [sa, sb], harsh).threshold == pytest.approx(0.9)


def test_bad_windows_and_shapes_are_refused() -> None:
    with pytest.raises(InvalidInput):
        layout_file(10, [(5, 12)])
    with pytest.raises(InvalidInput):
        layout_file(30, [(10, 15), (14, 20)])
    layout = layout_file(N_ROWS, [WINDOW])
    with pytest.raises(InvalidInput):
        best_threshold([layout], [np.zeros(5)], STANDARD)

"""NAB v1.1 scoring rules: window weights, corpus-wide threshold sweep, normalization (pure, numpy)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from zhiban.core.errors import InvalidInput

# Rows outside every window and before the first one: the worst FP worth.
NO_PRECEDING_WINDOW = -1.0
# Marks in the per-row window index.
OUTSIDE = -1


@dataclass(frozen=True)
class Profile:
    """One NAB cost matrix."""

    name: str
    tp_weight: float
    fn_weight: float
    fp_weight: float


PROFILES: tuple[Profile, ...] = (
    Profile("standard", 1.0, 1.0, 0.11),
    Profile("reward_low_FP_rate", 1.0, 1.0, 0.22),
    Profile("reward_low_FN_rate", 1.0, 2.0, 0.11),
)


def scaled_sigmoid(y: float) -> float:
    """NAB's S(y) = 2/(1+e^(5y)) - 1, and -1 from three widths past a window on (NAB: y >= 3)."""
    if y >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def probationary_rows(n_rows: int) -> int:
    """Rows at the start of a file that are not scored: min(floor(0.15 n), 750)."""
    return min(math.floor(0.15 * n_rows), 750)


@dataclass(frozen=True)
class FileLayout:
    """Per-row scoring facts of one file, independent of the detector.

    `window[i]` is the index of the window holding row i (or OUTSIDE); `worth[i]` is the
    unweighted worth S(.)/S(-1) inside a window, S(.) (or -1) outside it; `scored[i]` is False
    for probationary rows.
    """

    window: np.ndarray
    worth: np.ndarray
    scored: np.ndarray
    n_windows: int


def layout_file(n_rows: int, windows: Sequence[tuple[int, int]]) -> FileLayout:
    """Lay out a file of `n_rows` with inclusive (left, right) row windows, sorted and disjoint."""
    window = np.full(n_rows, OUTSIDE, dtype=np.int64)
    worth = np.full(n_rows, NO_PRECEDING_WINDOW, dtype=np.float64)
    s_left = scaled_sigmoid(-1.0)
    prev_right = -1
    for k, (left, right) in enumerate(windows):
        if not 0 <= left <= right < n_rows or left <= prev_right:
            raise InvalidInput(f"window {k} ({left}, {right}) is out of order or outside {n_rows} rows")
        width = right - left + 1
        for i in range(left, right + 1):
            window[i] = k
            worth[i] = scaled_sigmoid(-(right - i + 1) / width) / s_left
        # Rows after this window, up to the next one, are FPs weighted by their distance to it.
        end = windows[k + 1][0] if k + 1 < len(windows) else n_rows
        for i in range(right + 1, end):
            # A one-row window would divide by zero; NAB's labels never have one, treat as far away.
            worth[i] = scaled_sigmoid((i - right) / (width - 1)) if width > 1 else -1.0
        prev_right = right
    scored = np.arange(n_rows) >= probationary_rows(n_rows)
    counted = {int(w) for w in window[scored] if w != OUTSIDE}
    return FileLayout(window=window, worth=worth, scored=scored, n_windows=len(counted))


@dataclass(frozen=True)
class ProfileScore:
    """Best corpus threshold for one profile and the scores it gives."""

    profile: str
    threshold: float
    raw: float
    null: float
    perfect: float

    @property
    def normalized(self) -> float:
        """NAB score: 0 for the null detector, 100 for the perfect one."""
        if self.perfect == self.null:
            return 0.0
        return 100.0 * (self.raw - self.null) / (self.perfect - self.null)


@dataclass(frozen=True)
class Tally:
    """Counts at one threshold for one file: windows found, windows missed, false positives."""

    tp: int
    fn: int
    fp: int
    raw: float


def _corpus_arrays(
    layouts: Sequence[FileLayout], scores: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Concatenate the scored rows of all files, giving windows corpus-wide ids."""
    if len(layouts) != len(scores):
        raise InvalidInput("one score array per file is needed")
    all_scores, all_window, all_worth = [], [], []
    offset = 0
    for layout, s in zip(layouts, scores, strict=True):
        s = np.asarray(s, dtype=np.float64)
        if s.shape != layout.window.shape:
            raise InvalidInput(f"{s.shape[0]} scores for a file of {layout.window.shape[0]} rows")
        keep = layout.scored
        w = layout.window[keep]
        all_window.append(np.where(w == OUTSIDE, OUTSIDE, w + offset))
        all_worth.append(layout.worth[keep])
        all_scores.append(s[keep])
        offset += int(layout.window.max(initial=-1)) + 1
    return np.concatenate(all_scores), np.concatenate(all_window), np.concatenate(all_worth), offset


def best_threshold(layouts: Sequence[FileLayout], scores: Sequence[np.ndarray], profile: Profile) -> ProfileScore:
    """Sweep every distinct score as threshold over the whole corpus and keep the best total.

    Rows are sorted once by score (descending); lowering the threshold past a row adds its
    change to the total: fpWeight*worth for an FP, and for a window row the rise of the window's
    best (earliest) detection, the first one also cancelling the window's -fnWeight.
    """
    s, win, worth, _ = _corpus_arrays(layouts, scores)
    n_windows = sum(layout.n_windows for layout in layouts)
    null = -profile.fn_weight * n_windows
    perfect = profile.tp_weight * n_windows
    if s.size == 0:
        return ProfileScore(profile.name, math.inf, null, null, perfect)
    order = np.argsort(-s, kind="stable")
    s, win, worth = s[order], win[order], worth[order]
    delta = np.where(win == OUTSIDE, profile.fp_weight * worth, 0.0)
    in_window = np.flatnonzero(win != OUTSIDE)
    if in_window.size:
        # Group window rows by window keeping the score order; running max of worth per window.
        grouped = in_window[np.argsort(win[in_window], kind="stable")]
        gw = win[grouped]
        starts = np.flatnonzero(np.r_[True, gw[1:] != gw[:-1]])
        ends = np.r_[starts[1:], gw.size]
        for a, b in zip(starts, ends, strict=True):
            rows = grouped[a:b]
            best = np.maximum.accumulate(worth[rows])
            step = np.diff(best, prepend=0.0) * profile.tp_weight
            step[0] = profile.tp_weight * best[0] + profile.fn_weight
            delta[rows] = step
    total = null + np.cumsum(delta)
    # Only the last row of a run of equal scores is a reachable threshold.
    last_of_run = np.r_[s[1:] != s[:-1], True]
    candidates = np.flatnonzero(last_of_run)
    k = int(candidates[np.argmax(total[candidates])])
    if total[k] <= null:
        return ProfileScore(profile.name, math.inf, null, null, perfect)
    return ProfileScore(profile.name, float(s[k]), float(total[k]), null, perfect)


def tally_file(layout: FileLayout, scores: np.ndarray, threshold: float, profile: Profile) -> Tally:
    """Score one file at a fixed threshold (the per-file breakdown of a corpus result)."""
    s = np.asarray(scores, dtype=np.float64)
    hit = (s >= threshold) & layout.scored
    outside = hit & (layout.window == OUTSIDE)
    raw = profile.fp_weight * float(layout.worth[outside].sum())
    tp = fn = 0
    counted = {int(w) for w in layout.window[layout.scored] if w != OUTSIDE}
    for w in sorted(counted):
        rows = np.flatnonzero(hit & (layout.window == w))
        if rows.size:
            tp += 1
            raw += profile.tp_weight * float(layout.worth[rows[0]])
        else:
            fn += 1
            raw -= profile.fn_weight
    return Tally(tp=tp, fn=fn, fp=int(outside.sum()), raw=raw)

"""Streaming univariate anomaly detector: one score in [0, 1] per point, no look-ahead.

The score is contextual novelty (see zhiban.detect.context): values are quantized on the range
seen so far, the detector learns which short contexts follow which, and a row scores by how
unforeseen it was. The range is learned online, never looked ahead: first fitted after the warm-up,
then refitted whenever the values seen have spread over `1 + rebin_growth` times the fitted range;
a refit relearns the last `replay_rows` rows silently (the row that widened the range has already
been scored as beyond it). So a series is quantized much as on its whole range once its extremes
have been seen, which is what the published CAD OSE result used by reading each file's min/max.

Gaussian tail tests (zhiban.detect.surprise: level, change, daily deviation) run beside it, scaled
to [0, 1]; the larger of the two is the raw score. After a reported score at or above
`alarm_level`, the next `rest_rows` rows score 0 unless clearly stronger (`rest_break`): NAB
rewards the earliest detection in a window and charges every later false positive, and a pager
wants one alert per incident.

Beside the score, a plain rolling baseline (mean and standard deviation of recent values) gives
`expected` and `deviation`, which callers use to describe a step change.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from zhiban.core.errors import InvalidInput
from zhiban.detect.context import ContextNovelty
from zhiban.detect.surprise import RollingStats, SurpriseTests

MAX_WARMUP_ROWS = 10_000
MAX_CONTEXTS = 1_000_000
MIN_ROWS_BETWEEN_REFITS = 50


@dataclass(frozen=True)
class DetectorParams:
    """One parameter set for every series."""

    warmup_rows: int = 300  # rows before the first range fit; they score 0 and are then learned
    rest_rows: int = 150  # rows kept quiet after a reported score reached alarm_level
    alarm_level: float = 0.75  # a reported score this high starts a rest period
    rest_break: float = 0.1  # a score this much above the alarm's is reported even while resting
    value_bits: int = 3  # the fitted range is cut into 2**bits - 1 bins
    max_left_facts: int = 7  # longest left side of a generalized context
    max_active: int = 15  # active contexts carried into the next row's left side
    max_contexts: int = 5_000  # bounded memory (and time per row) for series that never repeat
    range_margin: float = 0.25  # the fitted range is widened by this share of it on each side
    rebin_growth: float = 1.0  # refit when the seen range outgrew the fitted one by this share; 0 = never
    replay_rows: int = 600  # recent rows learned again after a refit
    baseline_rows: int = 500  # rows behind `expected` and `deviation`
    # Gaussian tail tests (zhiban.detect.surprise) beside the novelty: a surprise of
    # `surprise_scale` (-log10 p) counts as novelty 1.0; 0 turns them off.
    surprise_scale: float = 40.0
    long_window: int = 5000
    short_window: int = 5
    max_season_rows: int = 20_000  # bounded memory: 1 day of 10-s windows is 8640 rows

    def __post_init__(self) -> None:
        if not 2 <= self.warmup_rows <= MAX_WARMUP_ROWS:
            raise InvalidInput(f"warmup_rows must be within 2..{MAX_WARMUP_ROWS}")
        if self.rest_rows < 0 or not 0.0 < self.alarm_level <= 1.0 or self.rest_break < 0:
            raise InvalidInput("rest_rows >= 0, 0 < alarm_level <= 1 and rest_break >= 0 are required")
        if not 1 <= self.value_bits <= 8 or self.max_left_facts < 1 or self.max_active < 0:
            raise InvalidInput("need 1 <= value_bits <= 8, max_left_facts >= 1, max_active >= 0")
        if not 1 <= self.max_contexts <= MAX_CONTEXTS:
            raise InvalidInput(f"max_contexts must be within 1..{MAX_CONTEXTS}")
        if self.baseline_rows < 2 or not 0.0 <= self.range_margin <= 100.0 or self.surprise_scale < 0:
            raise InvalidInput("need baseline_rows >= 2, 0 <= range_margin <= 100, surprise_scale >= 0")
        if self.long_window < 10 or not 1 <= self.short_window <= self.long_window:
            raise InvalidInput("need 1 <= short_window <= long_window and long_window >= 10")
        if self.rebin_growth < 0 or not 1 <= self.replay_rows <= MAX_WARMUP_ROWS:
            raise InvalidInput(f"need rebin_growth >= 0 and 1 <= replay_rows <= {MAX_WARMUP_ROWS}")
        if not 0 <= self.max_season_rows <= 200_000:
            raise InvalidInput("max_season_rows is bounded to 200000")


class Detector:
    """Streaming detector: `update(timestamp, value)` returns an anomaly score in [0, 1]."""

    def __init__(self, params: DetectorParams | None = None) -> None:
        self.params = p = params or DetectorParams()
        self.count = 0
        # The recent rows, learned again whenever the quantization range is refitted.
        self.recent: deque[float] = deque(maxlen=max(p.warmup_rows, p.replay_rows))
        self.seen_low, self.seen_high = math.inf, -math.inf
        self.fitted_span = 0.0
        self.fitted_at = 0  # row of the last fit
        self.novelty: ContextNovelty | None = None
        self.baseline = RollingStats(self.params.baseline_rows)
        self.last_alarm = -(10**18)  # row of the last reported score at alarm_level
        self.alarm_raw = 0.0  # and that score
        self.novelty_raw = 0.0  # the last row's contextual novelty
        self.surprise = 0.0  # the last row's largest tail-test surprise (-log10 p)
        self.refits = 0  # how often the quantization range was refitted (the first fit included)
        self.raw = 0.0  # score of the last row before the rest period was applied
        self.score = 0.0
        self.expected = 0.0  # baseline mean before the last row was added
        self.deviation = 0.0  # last row's distance from `expected`, in baseline standard deviations
        self.tests = (
            SurpriseTests(p.long_window, p.short_window, p.warmup_rows, p.max_season_rows)
            if p.surprise_scale > 0
            else None
        )

    def update(self, timestamp: datetime | float, value: float) -> float:
        """Feed one point (in time order); return its anomaly score in [0, 1]."""
        t = timestamp.timestamp() if isinstance(timestamp, datetime) else float(timestamp)
        x = float(value)
        if not math.isfinite(x) or not math.isfinite(t):
            raise InvalidInput("timestamp and value must be finite numbers")
        self.count += 1
        self._track_baseline(x)
        raw = self.novelty_raw = self._novelty(x)
        p = self.params
        if self.tests is not None:
            surprise = self.surprise = self.tests.update(t, x)
            if self.novelty is not None:
                raw = max(raw, min(1.0, surprise / p.surprise_scale))
        self.raw = raw
        resting = self.count - self.last_alarm <= p.rest_rows and raw < self.alarm_raw + p.rest_break
        self.score = 0.0 if resting else raw
        # Only a reported alarm starts a rest period: a suppressed one must not extend it, or steady
        # noise could keep a real step quiet. For the same reason a clearly stronger score breaks
        # the rest: a noise alarm must not hide the step that follows it.
        if self.score >= p.alarm_level:
            self.last_alarm = self.count
            self.alarm_raw = raw
        return self.score

    def _track_baseline(self, x: float) -> None:
        base = self.baseline
        n = len(base.values)
        # RollingStats.mean() and .std(), inlined: this runs on every row.
        m = base.total / n if n else 0.0
        self.expected = m + (base.origin or 0.0) if n else x
        variance = base.total_sq / n - m * m if n else 0.0
        spread = math.sqrt(variance) if n >= 2 and variance > 0.0 else 0.0
        # A floor on the spread: a perfectly flat history must not make every wiggle infinite.
        floor = 1e-9 * (abs(self.expected) + 1.0)
        self.deviation = (x - self.expected) / max(spread, floor) if n >= 2 else 0.0
        base.push(x)

    def _novelty(self, x: float) -> float:
        p = self.params
        self.recent.append(x)
        self.seen_low, self.seen_high = min(self.seen_low, x), max(self.seen_high, x)
        if self.novelty is None:
            if self.count >= p.warmup_rows:
                self._fit()
            return 0.0
        novelty = self.novelty.update(x)
        # A refit costs `replay_rows` updates: spacing them bounds the time per row even on a
        # series that keeps widening (its range can double at most ~2000 times in floats anyway).
        if (
            p.rebin_growth > 0
            and self.count - self.fitted_at >= MIN_ROWS_BETWEEN_REFITS
            and self.seen_high - self.seen_low > (1.0 + p.rebin_growth) * self.fitted_span
        ):
            self._fit()
        return novelty

    def _fit(self) -> None:
        """Quantize on the range seen so far and learn the recent rows again (they score nothing)."""
        p = self.params
        self.refits += 1
        self.fitted_at = self.count
        low, high = self.seen_low, self.seen_high
        self.fitted_span = high - low
        margin = p.range_margin * self.fitted_span
        self.novelty = ContextNovelty(
            low - margin,
            high + margin,
            bits=p.value_bits,
            max_left_facts=p.max_left_facts,
            max_active=p.max_active,
            max_contexts=p.max_contexts,
        )
        for v in self.recent:
            self.novelty.update(v)

"""Streaming univariate anomaly detector: one score in [0, 1] per point, no look-ahead.

The raw score of a row is the largest of three signals:
- contextual novelty (zhiban.detect.context): values are quantized on the range seen so far, the
  detector learns which short contexts follow which, and a row scores by how unforeseen it was.
  The range is learned online, never looked ahead: first fitted after the warm-up, then refitted
  whenever the values seen have spread over `1 + rebin_growth` times the fitted range; a refit
  relearns the last `replay_rows` rows silently. The fit has no margin, so a value past the
  extremes seen so far falls in a bin never seen (novel at once), and a series is quantized much
  as on its whole range once its extremes have been seen, which is what the published CAD OSE
  result got by reading each file's min/max ahead;
- a new extreme (zhiban.detect.extremes): a value beyond the whole range seen so far by
  `extreme_margin` of it scores 1 (after the warm-up);
- Gaussian tail tests (zhiban.detect.surprise: level, change, daily deviation), scaled to [0, 1].
Then the rest rule (zhiban.detect.rest): a row reports 0 while any raw score of the previous
`rest_rows` rows reached `alarm_level`, so an event is reported once, at its start.
On NAB (zhiban.detect.nab) this scores 73.0 / 65.5 / 77.7 (standard / low FP / low FN).

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
from zhiban.detect.extremes import SeenRange
from zhiban.detect.rest import AlarmRest
from zhiban.detect.surprise import RollingStats, SurpriseTests

MAX_WARMUP_ROWS = 10_000
MAX_CONTEXTS = 1_000_000
MIN_ROWS_BETWEEN_REFITS = 50


@dataclass(frozen=True)
class DetectorParams:
    """One parameter set for every series."""

    warmup_rows: int = 200  # rows before the first range fit; they score 0 and are then learned
    rest_rows: int = 20  # rows kept quiet after any raw score reached alarm_level
    alarm_level: float = 0.75  # a raw score this high starts (or extends) a rest period
    value_bits: int = 3  # the fitted range is cut into 2**bits - 1 bins
    max_left_facts: int = 7  # longest left side of a generalized context
    max_active: int = 15  # active contexts carried into the next row's left side
    max_contexts: int = 5_000  # bounded memory (and time per row) for series that never repeat
    range_margin: float = 0.0  # the fitted range is widened by this share of it on each side (0.25: NAB -7)
    rebin_growth: float = 0.25  # refit when the seen range outgrew the fitted one by this share; 0 = never
    replay_rows: int = 600  # recent rows learned again after a refit
    extreme_margin: float = 0.02  # a value this share of the seen range beyond it scores 1; < 0 = off
    baseline_rows: int = 500  # rows behind `expected` and `deviation`
    # Gaussian tail tests (zhiban.detect.surprise) beside the novelty: a surprise of
    # `surprise_scale` (-log10 p) counts as novelty 1.0; 0 turns them off.
    surprise_scale: float = 80.0
    long_window: int = 5000
    short_window: int = 5
    max_season_rows: int = 20_000  # bounded memory: 1 day of 10-s windows is 8640 rows

    def __post_init__(self) -> None:
        if not 2 <= self.warmup_rows <= MAX_WARMUP_ROWS:
            raise InvalidInput(f"warmup_rows must be within 2..{MAX_WARMUP_ROWS}")
        if self.rest_rows < 0 or not 0.0 < self.alarm_level <= 1.0:
            raise InvalidInput("rest_rows >= 0 and 0 < alarm_level <= 1 are required")
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
        if not math.isfinite(self.extreme_margin) or self.extreme_margin > 100.0:
            raise InvalidInput("extreme_margin must be a number <= 100 (negative turns the rule off)")


class Detector:
    """Streaming detector: `update(timestamp, value)` returns an anomaly score in [0, 1]."""

    def __init__(self, params: DetectorParams | None = None) -> None:
        self.params = p = params or DetectorParams()
        self.count = 0
        # The recent rows, learned again whenever the quantization range is refitted.
        self.recent: deque[float] = deque(maxlen=max(p.warmup_rows, p.replay_rows))
        self.seen = SeenRange(p.extreme_margin)
        self.fitted_span = 0.0
        self.fitted_at = 0  # row of the last fit
        self.novelty: ContextNovelty | None = None
        self.baseline = RollingStats(self.params.baseline_rows)
        self.rest = AlarmRest(p.rest_rows, p.alarm_level)
        self.novelty_raw = 0.0  # the last row's contextual novelty
        self.surprise = 0.0  # the last row's largest tail-test surprise (-log10 p)
        self.extreme = False  # whether the last row was a new extreme
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

    @property
    def seen_low(self) -> float:
        """Lowest value seen so far."""
        return self.seen.low

    @property
    def seen_high(self) -> float:
        """Highest value seen so far."""
        return self.seen.high

    def update(self, timestamp: datetime | float, value: float) -> float:
        """Feed one point (in time order); return its anomaly score in [0, 1]."""
        t = timestamp.timestamp() if isinstance(timestamp, datetime) else float(timestamp)
        x = float(value)
        if not math.isfinite(x) or not math.isfinite(t):
            raise InvalidInput("timestamp and value must be finite numbers")
        self.count += 1
        self._track_baseline(x)
        p = self.params
        # Judged against the range before this row widens it.
        self.extreme = p.extreme_margin >= 0 and self.count > p.warmup_rows and self.seen.beyond(x)
        raw = self.novelty_raw = self._novelty(x)
        if self.tests is not None:
            surprise = self.surprise = self.tests.update(t, x)
            if self.novelty is not None:
                raw = max(raw, min(1.0, surprise / p.surprise_scale))
        if self.extreme:
            raw = 1.0
        self.raw = raw
        self.score = self.rest.report(self.count, raw)
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
        self.seen.add(x)
        if self.novelty is None:
            if self.count >= p.warmup_rows:
                self._fit()
            return 0.0
        novelty = self.novelty.update(x)
        # A refit costs `replay_rows` updates: spacing them bounds the time per row even on a
        # series that keeps widening (a float range can only grow by 1 + rebin_growth so many times).
        if (
            p.rebin_growth > 0
            and self.count - self.fitted_at >= MIN_ROWS_BETWEEN_REFITS
            and self.seen.span > (1.0 + p.rebin_growth) * self.fitted_span
        ):
            self._fit()
        return novelty

    def _fit(self) -> None:
        """Quantize on the range seen so far and learn the recent rows again (they score nothing)."""
        p = self.params
        self.refits += 1
        self.fitted_at = self.count
        low, high = self.seen.low, self.seen.high
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

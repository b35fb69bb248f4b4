"""Streaming univariate anomaly detector: one score in [0, 1] per point, no look-ahead.

The score is contextual novelty (see zhiban.detect.context): values are quantized on the range
seen while warming up, the detector learns which short contexts follow which, and a row scores by
how unforeseen it was. Gaussian tail tests (zhiban.detect.surprise: level, change, daily deviation)
run beside it, scaled to [0, 1]; the larger of the two is the raw score. After a reported score at
or above `alarm_level`, the next `rest_rows` rows score 0: NAB rewards the earliest detection in
a window and charges every later false positive, and a pager wants one alert per incident.

Beside the score, a plain rolling baseline (mean and standard deviation of recent values) gives
`expected` and `deviation`, which callers use to describe a step change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from zhiban.core.errors import InvalidInput
from zhiban.detect.context import ContextNovelty
from zhiban.detect.surprise import RollingStats, SurpriseTests

MAX_WARMUP_ROWS = 10_000
MAX_CONTEXTS = 1_000_000


@dataclass(frozen=True)
class DetectorParams:
    """One parameter set for every series."""

    warmup_rows: int = 300  # rows that fix the quantization range; they score 0 and are then learned
    rest_rows: int = 150  # rows kept quiet after a reported score reached alarm_level
    alarm_level: float = 0.75  # a reported score this high starts a rest period
    value_bits: int = 3  # the warm-up range is cut into 2**bits - 1 bins
    max_left_facts: int = 7  # longest left side of a generalized context
    max_active: int = 15  # active contexts carried into the next row's left side
    max_contexts: int = 5_000  # bounded memory (and time per row) for series that never repeat
    range_margin: float = 0.5  # the warm-up range is widened by this share of it on each side
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
        if not 0 <= self.max_season_rows <= 200_000:
            raise InvalidInput("max_season_rows is bounded to 200000")


class Detector:
    """Streaming detector: `update(timestamp, value)` returns an anomaly score in [0, 1]."""

    def __init__(self, params: DetectorParams | None = None) -> None:
        self.params = p = params or DetectorParams()
        self.count = 0
        self.warmup: list[float] = []
        self.novelty: ContextNovelty | None = None
        self.baseline = RollingStats(self.params.baseline_rows)
        self.last_alarm = -(10**18)  # row of the last raw score at alarm_level
        self.raw = 0.0  # novelty of the last row before the rest period was applied
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
        raw = self._novelty(x)
        p = self.params
        if self.tests is not None:
            surprise = self.tests.update(t, x)
            if self.novelty is not None:
                raw = max(raw, min(1.0, surprise / p.surprise_scale))
        self.raw = raw
        self.score = raw if self.count - self.last_alarm > p.rest_rows else 0.0
        # Only a reported alarm starts a rest period: a suppressed one must not extend it, or steady
        # noise could keep a real step quiet.
        if self.score >= p.alarm_level:
            self.last_alarm = self.count
        return self.score

    def _track_baseline(self, x: float) -> None:
        base = self.baseline
        self.expected = base.mean() if len(base) else x
        spread = base.std()
        # A floor on the spread: a perfectly flat history must not make every wiggle infinite.
        floor = 1e-9 * (abs(self.expected) + 1.0)
        self.deviation = (x - self.expected) / max(spread, floor) if len(base) >= 2 else 0.0
        base.push(x)

    def _novelty(self, x: float) -> float:
        p = self.params
        if self.novelty is not None:
            return self.novelty.update(x)
        self.warmup.append(x)
        if len(self.warmup) < p.warmup_rows:
            return 0.0
        low, high = min(self.warmup), max(self.warmup)
        margin = p.range_margin * (high - low)
        self.novelty = ContextNovelty(
            low - margin,
            high + margin,
            bits=p.value_bits,
            max_left_facts=p.max_left_facts,
            max_active=p.max_active,
            max_contexts=p.max_contexts,
        )
        # The warm-up rows are learned now that the range is known; they still score 0.
        for v in self.warmup:
            self.novelty.update(v)
        self.warmup = []
        return 0.0

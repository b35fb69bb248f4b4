"""Gaussian tail tests on a stream: how surprising the recent level, change and daily deviation are.

Each test compares a short-window mean of a statistic with the long-window distribution of that
mean (Numenta's "anomaly likelihood" comparison) and gives a surprise = -log10(tail probability):
- level: the value itself (spikes and level shifts, also in plain noise);
- change: |x_t - x_{t-1}| (a series turning rough);
- season: |x_t - x_{t-P}| with P one day of rows, when the sampling interval divides a day.
"""

from __future__ import annotations

import math
from collections import deque

from zhiban.core.errors import InvalidInput

DAY_SECONDS = 86_400.0
LOG10_MIN_P = 300.0  # cap on a surprise: erfc underflows below ~1e-300
INTERVAL_SAMPLES = 32
LOG10_2 = math.log10(2.0)  # timestamps looked at to learn the sampling interval


def gaussian_surprise(z: float) -> float:
    """-log10 of the upper tail probability Q(z) of a standard normal."""
    if z <= 0.0:
        return -math.log10(1.0 - 0.5 * math.erfc(-z / math.sqrt(2.0))) if z > -8 else 0.0
    p = 0.5 * math.erfc(z / math.sqrt(2.0))
    if p <= 0.0:
        # Far tail: log Q(z) ~ -z^2/2 - log(z sqrt(2 pi)).
        return min(LOG10_MIN_P, (0.5 * z * z + math.log(z * math.sqrt(2.0 * math.pi))) / math.log(10.0))
    return min(LOG10_MIN_P, -math.log10(p))


class RollingStats:
    """Mean and standard deviation over the last `size` values, O(1) per update."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.values: deque[float] = deque()
        self.origin: float | None = None  # values are shifted by the first one to keep sums precise
        self.total = 0.0
        self.total_sq = 0.0
        self.since_refresh = 0

    def __len__(self) -> int:
        return len(self.values)

    def push(self, x: float) -> None:
        """Add x, dropping the oldest value when full."""
        if self.origin is None:
            self.origin = x
        x -= self.origin
        self.values.append(x)
        self.total += x
        self.total_sq += x * x
        if len(self.values) > self.size:
            old = self.values.popleft()
            self.total -= old
            self.total_sq -= old * old
        self.since_refresh += 1
        if self.since_refresh >= self.size:
            # Recompute now and then so rounding errors of the running sums cannot accumulate.
            self.total = math.fsum(self.values)
            self.total_sq = math.fsum(v * v for v in self.values)
            self.since_refresh = 0

    def mean(self) -> float:
        """Mean of the held values (0 when empty)."""
        n = len(self.values)
        return (self.total / n + (self.origin or 0.0)) if n else 0.0

    def std(self) -> float:
        """Population standard deviation of the held values."""
        n = len(self.values)
        if n < 2:
            return 0.0
        m = self.total / n
        return math.sqrt(max(0.0, self.total_sq / n - m * m))


class TailTest:
    """Short-window mean of a statistic against the long-window distribution of that mean."""

    def __init__(self, long_window: int, short_window: int, two_sided: bool) -> None:
        self.baseline = RollingStats(long_window)
        self.recent: deque[float] = deque(maxlen=short_window)
        self.recent_sum = 0.0
        self.two_sided = two_sided
        self.z = 0.0

    def update(self, stat: float, min_history: int) -> float:
        """Add one value of the statistic; return the surprise of the current short mean."""
        if len(self.recent) == self.recent.maxlen:
            self.recent_sum -= self.recent[0]
        self.recent.append(stat)
        self.recent_sum += stat
        short_mean = self.recent_sum / len(self.recent)
        base = self.baseline
        surprise = 0.0
        self.z = 0.0
        n = len(base.values)
        if n >= min_history:
            # RollingStats.mean() and .std(), inlined: this runs three times per row.
            m = base.total / n
            mu = m + (base.origin or 0.0)
            variance = base.total_sq / n - m * m
            # A floor on the spread: a perfectly flat history must not make every wiggle infinite.
            sigma = max(math.sqrt(variance) if variance > 0.0 else 0.0, 1e-6 * (abs(mu) + 1.0))
            z = (short_mean - mu) / sigma
            self.z = z
            surprise = gaussian_surprise(abs(z) if self.two_sided else z)
            if self.two_sided:
                surprise = max(0.0, surprise - LOG10_2)
        base.push(short_mean)
        return surprise


class SurpriseTests:
    """The level, change and season tests of one series; `update` returns the largest weighted surprise."""

    def __init__(
        self,
        long_window: int,
        short_window: int,
        min_history: int,
        max_season_rows: int,
        weights: tuple[float, float, float] = (1.3, 1.0, 1.0),
    ) -> None:
        if long_window < 10 or not 1 <= short_window <= long_window or min_history < 2:
            raise InvalidInput("need 1 <= short_window <= long_window, long_window >= 10, min_history >= 2")
        self.min_history = min_history
        self.max_season_rows = max_season_rows
        self.level_weight, self.change_weight, self.season_weight = weights
        self.level = TailTest(long_window, short_window, two_sided=True)
        self.change = TailTest(long_window, short_window, two_sided=False)
        self.season = TailTest(long_window, short_window, two_sided=False)
        self.previous: float | None = None
        self.previous_time: float | None = None
        self.intervals: list[float] = []
        self.season_rows = 0  # rows per day once the sampling interval is known; 0 = no season test
        self.history: deque[float] = deque()

    def _learn_interval(self, t: float) -> None:
        # Repeated or slightly backward timestamps occur in real feeds (clock changes): skip them.
        if self.previous_time is not None and t > self.previous_time and len(self.intervals) < INTERVAL_SAMPLES:
            self.intervals.append(t - self.previous_time)
            if len(self.intervals) == INTERVAL_SAMPLES:
                step = sorted(self.intervals)[INTERVAL_SAMPLES // 2]
                rows = DAY_SECONDS / step
                if abs(rows - round(rows)) < 1e-6 and 4 <= round(rows) <= self.max_season_rows:
                    self.season_rows = round(rows)
                    self.history = deque(maxlen=self.season_rows)
        self.previous_time = t if self.previous_time is None else max(t, self.previous_time)

    def update(self, t: float, x: float) -> float:
        """Feed one point; return max(weighted level, change, season surprise)."""
        self._learn_interval(t)
        n = self.min_history
        surprise = self.level_weight * self.level.update(x, n)
        if self.previous is not None:
            surprise = max(surprise, self.change_weight * self.change.update(abs(x - self.previous), n))
        if self.season_rows:
            if len(self.history) == self.season_rows:
                surprise = max(surprise, self.season_weight * self.season.update(abs(x - self.history[0]), n))
            self.history.append(x)
        self.previous = x
        return surprise

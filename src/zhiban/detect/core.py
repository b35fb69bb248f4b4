"""Streaming univariate anomaly detector: one score in [0, 1] per point, no look-ahead.

Each point is tested several ways, each test giving a surprise = -log10(tail probability):
- change: the short-window mean of |x_t - x_{t-1}| against its long-window Gaussian
  (Numenta's "anomaly likelihood" comparison of a short against a long window);
- level: the short-window mean of x against the long-window distribution of x (spikes, level
  shifts);
- season: the same on |x_t - x_{t-P}| where P is one day of rows (when the sampling interval
  divides a day and history allows), so a normal daily peak is not a surprise but a missing one is.
The largest surprise is kept; a point is reported only if it clearly exceeds every surprise of the
recent rest period, so one anomaly gives one early detection rather than a burst (NAB rewards the
earliest detection in a window and charges every later false positive).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from zhiban.core.errors import InvalidInput

DAY_SECONDS = 86_400.0
LOG10_MIN_P = 300.0  # cap on a surprise: erfc underflows below ~1e-300


@dataclass(frozen=True)
class DetectorParams:
    """One parameter set for every series."""

    long_window: int = 5000  # rows of history behind each baseline distribution
    short_window: int = 5  # rows averaged before comparing with the baseline
    min_history: int = 200  # rows before any score other than 0
    rest_rows: int = 150  # after a report, later ones must clearly exceed it within this many rows
    rest_ratio: float = 1.5  # how much a surprise must exceed the recent maximum to be reported
    surprise_cap: float = 12.0  # surprise (-log10 p) that maps to score 1.0
    # Weights on each test's surprise (tuned on NAB, one set for all files).
    change_weight: float = 1.0
    level_weight: float = 1.3
    season_weight: float = 1.0
    use_change: bool = True
    use_level: bool = True
    use_season: bool = True
    max_season_rows: int = 20_000  # bounded memory: 1 day of 10-s windows is 8640 rows

    def __post_init__(self) -> None:
        if self.long_window < 10 or self.short_window < 1 or self.short_window > self.long_window:
            raise InvalidInput("need 1 <= short_window <= long_window and long_window >= 10")
        if self.rest_rows < 0 or self.rest_ratio < 1.0 or self.surprise_cap <= 0:
            raise InvalidInput("rest_rows >= 0, rest_ratio >= 1 and surprise_cap > 0 are required")
        if self.max_season_rows > 200_000:
            raise InvalidInput("max_season_rows is bounded to 200000")


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
        if len(base) >= min_history:
            mu = base.mean()
            # A floor on the spread: a perfectly flat history must not make every wiggle infinite.
            sigma = max(base.std(), 1e-6 * (abs(mu) + 1.0))
            z = (short_mean - mu) / sigma
            self.z = z
            surprise = gaussian_surprise(abs(z) if self.two_sided else z)
            if self.two_sided:
                surprise = max(0.0, surprise - math.log10(2.0))
        base.push(short_mean)
        return surprise


class Detector:
    """Streaming detector: `update(timestamp, value)` returns an anomaly score in [0, 1]."""

    def __init__(self, params: DetectorParams | None = None) -> None:
        self.params = p = params or DetectorParams()
        self.count = 0
        self.previous: float | None = None
        self.previous_time: float | None = None
        self.change = TailTest(p.long_window, p.short_window, two_sided=False)
        self.level = TailTest(p.long_window, p.short_window, two_sided=True)
        self.season = TailTest(p.long_window, p.short_window, two_sided=False)
        self.intervals: list[float] = []
        self.season_rows = 0  # rows per day once the sampling interval is known; 0 = no season test
        self.history: deque[float] = deque()
        # Recent raw surprises as a monotonic deque of (row, surprise) for the rest-period maximum.
        self.recent_max: deque[tuple[int, float]] = deque()
        self.surprise = 0.0
        self.score = 0.0
        self.source = ""

    @property
    def expected(self) -> float:
        """Current baseline (long-window mean of the short-window level)."""
        return self.level.baseline.mean()

    @property
    def deviation(self) -> float:
        """Signed deviation of the recent level from the baseline, in baseline standard deviations."""
        return self.level.z

    def _learn_interval(self, t: float) -> None:
        # Repeated or slightly backward timestamps occur in real feeds (clock changes): skip them.
        if self.previous_time is not None and t > self.previous_time and len(self.intervals) < 32:
            self.intervals.append(t - self.previous_time)
            if len(self.intervals) == 32:
                step = sorted(self.intervals)[16]
                rows = DAY_SECONDS / step
                if abs(rows - round(rows)) < 1e-6 and 4 <= round(rows) <= self.params.max_season_rows:
                    self.season_rows = round(rows)
                    self.history = deque(maxlen=self.season_rows)
        self.previous_time = t if self.previous_time is None else max(t, self.previous_time)

    def update(self, timestamp: datetime | float, value: float) -> float:
        """Feed one point (in time order); return its anomaly score in [0, 1]."""
        t = timestamp.timestamp() if isinstance(timestamp, datetime) else float(timestamp)
        x = float(value)
        if not math.isfinite(x) or not math.isfinite(t):
            raise InvalidInput("timestamp and value must be finite numbers")
        p = self.params
        self._learn_interval(t)
        self.count += 1
        level = change = season = 0.0
        if p.use_level:
            level = p.level_weight * self.level.update(x, p.min_history)
        if p.use_change and self.previous is not None:
            change = p.change_weight * self.change.update(abs(x - self.previous), p.min_history)
        if p.use_season and self.season_rows:
            if len(self.history) == self.season_rows:
                season = p.season_weight * self.season.update(abs(x - self.history[0]), p.min_history)
            self.history.append(x)
        surprise, source = max((level, "level"), (change, "change"), (season, "season"))
        self.previous = x
        self.surprise, self.source = surprise, source
        self.score = self._rest(surprise)
        return self.score

    def _push_max(self, window: deque[tuple[int, float]], rows: int, value: float) -> float:
        """Sliding maximum over the last `rows` rows before this one, then add this value."""
        while window and window[0][0] <= self.count - rows:
            window.popleft()
        top = window[0][1] if window else 0.0
        while window and window[-1][1] <= value:
            window.pop()
        window.append((self.count, value))
        return top

    def _rest(self, surprise: float) -> float:
        """Report a surprise only if it clearly tops the recent ones; map it to [0, 1]."""
        p = self.params
        recent = self._push_max(self.recent_max, p.rest_rows, surprise)
        if self.count <= p.min_history or surprise <= recent * p.rest_ratio:
            return 0.0
        return min(1.0, surprise / p.surprise_cap)

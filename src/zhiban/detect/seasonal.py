"""Per-key, per-window detector of step changes: count-aware tests, a CUSUM, robust and seasonal baselines.

For each (key, metric) a window gives a count of badness `num` over `den` (see detections.py). The
baseline rate p0 comes from an exponentially weighted sum of past clean windows (~15 min); the window's
z-score counts num and den·p0 in events of size φ, the dispersion, learned from clean
windows (1 for plain counts, ~a freeze's length for frozen milliseconds), and the count is compared
with its expectation on a square-root scale. So a handful of night-time sessions can never score
high, and a big audience scores high on a small but real change.

Evidence is pooled over the last 2-9 windows (never one alone: a lone outlier window cannot alarm):
a step of a few σ alarms within two or three windows, and rare events such as join failures add up
within a minute. Where the key has history of the same
hour on previous days (same kind of day: weekday or weekend), the window must depart from that
seasonal baseline too, so an evening that is always worse is not news. The hourly history learns
from every window (it is what usually happens then); the recent baseline only from clean ones.

Quantile metrics keep a decayed histogram (the sketch's bins, 4 by 4) instead of sums: the baseline
p95 is read from it, and a window's badness is how many of its reports lie above that p95.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from statistics import NormalDist
from typing import Final

import numpy as np
from numpy.typing import NDArray

from zhiban.core.errors import InvalidInput
from zhiban.detect.detections import CONTRACT_METRICS, MetricSpec
from zhiban.telemetry.sketch import KEY_MIN, SLOTS, QuantileSketch, key_value

COARSEN: Final = 4  # sketch bins per histogram bin: 8 % wide, plenty for a baseline p95
HIST_BINS: Final = 2 + (SLOTS - 2) // COARSEN
SEASON_HOURS: Final = 8 * 24  # a ring of hourly sums: same hour of the 7 previous days
METRIC_INDEX: Final = {spec.name: i for i, spec in enumerate(CONTRACT_METRICS)}
QUANTILE_INDEX: Final = {spec.name: i for i, spec in enumerate(s for s in CONTRACT_METRICS if s.kind == "quantile")}
POISSON_EXACT_BELOW: Final = 30.0
MIN_EXPECTED_EVENTS: Final = 0.1
_NORMAL: Final = NormalDist()
LEAN_Z: Final = 0.9  # a window leaning the bad way (one failure where 0.1 was expected scores ~1)
RECENT: Final = 9  # windows pooled at most (90 s): for localization and for rare events


@dataclass(frozen=True)
class DetectorOptions:
    """Tuning shared by every key."""

    min_sessions: int = 20  # a window with fewer sessions says nothing (night-time, tiny slices)
    slice_min_sessions: int = 30  # ... on a slice key (there are many: small ones are noise)
    warmup_windows: int = 18  # clean windows before a key is tested (3 minutes)
    baseline_windows: float = 90.0  # memory of the recent baseline, in windows (15 minutes)
    dispersion_memory: float = 20.0
    watch_z: float = 2.0  # below this a window is clean: it may teach the baseline, and it counts toward closing
    app_alarm: float = 4.5  # pooled z that opens a detection on an app-wide key
    slice_alarm: float = 5.8  # ... on an app × dimension value key (many of them: stricter)
    slice_support: float = 1.0  # a slice alarms only if the whole app leans the same way (z over the span)
    seasonal_min_days: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.min_sessions <= 1_000_000 or not 2 <= self.warmup_windows <= 10_000:
            raise InvalidInput("min_sessions within 1..1e6 and warmup_windows within 2..10000")
        if not 2 <= self.baseline_windows <= 100_000 or self.dispersion_memory < 1:
            raise InvalidInput("baseline_windows within 2..100000, dispersion_memory >= 1")
        if not 0 < self.watch_z <= self.app_alarm <= self.slice_alarm:
            raise InvalidInput("need 0 < watch_z <= app_alarm <= slice_alarm")


@dataclass
class MetricWindow:
    """One window of one metric of one key, as the detector saw it."""

    num: float
    den: float
    value: float  # badness: failure rate, freeze rate, p95, mean impairment
    z: float
    effect: bool
    volume: bool
    baseline: float  # badness expected
    num_app: float = 0.0  # quantile metrics: reports above the app-wide baseline p95 (for localization)


def sketch_histogram(sketch: QuantileSketch) -> NDArray[np.float64]:
    """The sketch's counts on the coarse histogram bins (bin 0 holds zeros)."""
    out = np.zeros(HIST_BINS)
    out[0] = sketch.zero_count
    if len(sketch.counts):
        slots = sketch.min_key - KEY_MIN + np.arange(len(sketch.counts))
        out += np.bincount(1 + slots // COARSEN, weights=sketch.counts, minlength=HIST_BINS)[:HIST_BINS]
    return out


def sketch_above(sketch: QuantileSketch, threshold: int) -> float:
    """The sketch's count in histogram bins above `threshold` (= sketch_histogram(sketch)[threshold + 1:].sum(),
    without building the histogram: counts are whole numbers, so the sum is exact either way)."""
    start = max(0, COARSEN * threshold - (sketch.min_key - KEY_MIN))
    return float(sketch.counts[start:].sum()) if start < len(sketch.counts) else 0.0


_SHORT: Final = 64  # sketches of at most this many bins are summed in Python (numpy's call overhead is larger)


def sketch_counts(sketch: QuantileSketch, threshold: int, app_threshold: int | None) -> tuple[float, float, float]:
    """A window's (reports, reports above `threshold`, above `app_threshold`) of one sketch, as sketch_above
    counts them. Most windows are quiet (a few bins): those are read with one conversion to a list."""
    if len(sketch.counts) > _SHORT:
        above = sketch_above(sketch, threshold)
        return float(sketch.count), above, above if app_threshold is None else sketch_above(sketch, app_threshold)
    counts = sketch.counts.tolist()
    offset = sketch.min_key - KEY_MIN
    above = float(sum(counts[max(0, COARSEN * threshold - offset) :]))
    app = above if app_threshold is None else float(sum(counts[max(0, COARSEN * app_threshold - offset) :]))
    return float(sum(counts) + sketch.zero_count), above, app


def bin_value(index: int) -> float:
    """The upper value of a histogram bin."""
    if index <= 0:
        return 0.0
    return key_value(KEY_MIN + COARSEN * index - 1)


def p95_bin(hist: NDArray[np.floating]) -> int:
    """Histogram bin holding the 95th percentile."""
    total = float(hist.sum())
    if total <= 0:
        return 0
    return int(np.searchsorted(np.cumsum(hist), 0.95 * total, side="left"))


def z_score(num: float, den: float, p0: float, dispersion: float) -> float:
    """Standardized excess of badness, counted in events of size `dispersion` (1 for plain counts).

    Few expected events (join failures): the exact Poisson tail, turned into a normal quantile, with at
    least 0.1 event expected (a clean history must not make one failure a sensation). Many: Anscombe's
    square-root transform, which stays honest about the skew of counts.
    """
    events = max(num, 0.0) / dispersion
    expected = max(den * p0, 0.0) / dispersion
    if expected < POISSON_EXACT_BELOW and events > expected + 1:
        return _poisson_z(int(events), max(expected, MIN_EXPECTED_EVENTS))
    return 2.0 * (math.sqrt(events + 0.375) - math.sqrt(expected + 0.375))


def _poisson_z(k: int, lam: float) -> float:
    """z of P(X ≥ k) for X ~ Poisson(lam), k > lam."""
    log_term = -lam + k * math.log(lam) - math.lgamma(k + 1)
    total, term, j = 1.0, 1.0, k
    while term > 1e-12 * total and j < k + 10_000:
        j += 1
        term *= lam / j
        total += term
    log_p = log_term + math.log(total)
    if log_p < -690:  # beyond double precision: far tail, log Q(z) ≈ -z²/2
        return math.sqrt(-2.0 * log_p)
    return max(0.0, -_NORMAL.inv_cdf(math.exp(log_p)))


def effect_ok(spec: MetricSpec, observed: float, baseline: float) -> bool:
    """Is the move big enough to matter, in the metric's own terms?"""
    return observed - baseline >= spec.min_absolute and observed >= baseline * (1.0 + spec.min_relative)


def _weekend(epoch_hour: int) -> bool:
    return ((epoch_hour // 24) + 3) % 7 >= 5  # 1970-01-01 was a Thursday


class KeyState:
    """What one key remembers, per metric: baseline, dispersion, CUSUM, the last windows, hourly history."""

    __slots__ = (
        "base_den",
        "base_num",
        "dispersion",
        "dispersion_pooled",
        "evidence_from",
        "frozen",
        "hist",
        "qcache",
        "recent",
        "recent_at",
        "season_den",
        "season_hours",
        "season_num",
        "season_ref",
        "season_value",
        "taught",
    )

    def __init__(self, seasonal: bool) -> None:
        m = len(CONTRACT_METRICS)
        self.base_num = np.zeros(m)
        self.base_den = np.zeros(m)
        self.taught = np.zeros(m, dtype=np.int64)  # clean windows learned
        self.dispersion = np.array([s.prior_dispersion for s in CONTRACT_METRICS])
        # Sessions keep their network from one window to the next, so pooled windows vary more than
        # independent ones would: the dispersion of a full RECENT-window sum is learned separately.
        self.dispersion_pooled = self.dispersion.copy()
        self.evidence_from = np.zeros(m, dtype=np.int64)
        self.season_ref = np.full(m, np.nan)  # this hour's seasonal badness, when history allows
        self.frozen = np.zeros(m, dtype=bool)  # an open detection watches this key: learn nothing
        self.hist = np.zeros((len(QUANTILE_INDEX), HIST_BINS), dtype=np.float32)
        self.qcache: dict[int, tuple[int, float, float]] = {}  # per quantile metric: (p95 bin, p0, p95 value)
        # Last RECENT windows: num, den, value, num_app, sessions, volume, leaning the bad way
        self.recent = np.zeros((m, RECENT, 7))
        self.recent_at = 0
        if seasonal:
            self.season_hours = np.full(SEASON_HOURS, -1, dtype=np.int64)
            self.season_num = np.zeros((m, SEASON_HOURS))
            self.season_den = np.zeros((m, SEASON_HOURS))
            self.season_value = np.zeros((m, SEASON_HOURS))
        else:
            self.season_hours = None  # type: ignore[assignment]

    # -- baselines -------------------------------------------------------------------------------------
    def warm(self, i: int, options: DetectorOptions) -> bool:
        return bool(self.taught[i] >= options.warmup_windows)

    def _quantile(self, i: int) -> tuple[int, float, float]:
        """(p95 bin, share above it, p95 value) of the baseline histogram (cached until it learns again)."""
        found = self.qcache.get(i)
        if found is None:
            hist = self.hist[QUANTILE_INDEX[CONTRACT_METRICS[i].name]]
            total = float(hist.sum())
            threshold = p95_bin(hist)
            share = float(hist[threshold + 1 :].sum()) / total if total > 0 else 0.05
            found = self.qcache[i] = (threshold, share, bin_value(threshold))
        return found

    def p0(self, i: int) -> float:
        if CONTRACT_METRICS[i].kind == "quantile":
            return self._quantile(i)[1]
        return float(self.base_num[i] / self.base_den[i]) if self.base_den[i] > 0 else 0.0

    def baseline_value(self, i: int) -> float:
        """The metric's normal badness on this key (the p95 itself for quantile metrics)."""
        if CONTRACT_METRICS[i].kind == "quantile":
            return self._quantile(i)[2]
        return self.p0(i)

    def p95_threshold(self, i: int) -> int:
        return self._quantile(i)[0]

    def seasonal(self, i: int, start: datetime, options: DetectorOptions) -> tuple[float, float] | None:
        """(badness rate or mean p95, days pooled) of the same hour on previous days of the same kind."""
        if self.season_hours is None:
            return None
        hour = int(start.timestamp()) // 3600
        num = den = 0.0
        days = 0
        for back in range(1, 8):
            h = hour - 24 * back
            slot = h % SEASON_HOURS
            if self.season_hours[slot] != h or _weekend(h) != _weekend(hour) or self.season_den[i, slot] <= 0:
                continue
            num += self.season_num[i, slot] if CONTRACT_METRICS[i].kind != "quantile" else self.season_value[i, slot]
            den += self.season_den[i, slot]
            days += 1
        week_ago = self.season_hours[(hour - 168) % SEASON_HOURS] == hour - 168
        if den <= 0 or (days < options.seasonal_min_days and not week_ago):
            return None
        return num / den, float(days)

    def teach(self, i: int, w: MetricWindow, sketch_hist: NDArray[np.float64] | None, alpha: float,
              options: DetectorOptions) -> None:  # fmt: skip
        """Learn a clean window: baseline sums or histogram, dispersion."""
        spec = CONTRACT_METRICS[i]
        if self.taught[i] >= 3 and w.den > 0:
            p0 = self.p0(i)
            expected = w.den * p0
            ratio = (w.num - expected) ** 2 / (expected + 1.0)
            beta = 1.0 / options.dispersion_memory
            current = float(self.dispersion[i])
            updated = (1 - beta) * current + beta * min(ratio, 25.0 * current)
            self.dispersion[i] = max(spec.min_dispersion, updated)
            pooled = self.pooled(i, RECENT)
            if pooled[5] >= RECENT:
                expected = pooled[1] * p0
                ratio = (pooled[0] - expected) ** 2 / (expected + 1.0)
                current = float(self.dispersion_pooled[i])
                updated = (1 - beta) * current + beta * min(ratio, 25.0 * current)
                self.dispersion_pooled[i] = max(float(self.dispersion[i]), updated)
        if spec.kind == "quantile" and sketch_hist is not None:
            q = QUANTILE_INDEX[spec.name]
            self.hist[q] *= np.float32(1.0 - alpha)
            self.hist[q] += sketch_hist.astype(np.float32)
            self.qcache.pop(i, None)
        else:
            self.base_num[i] = (1 - alpha) * self.base_num[i] + w.num
            self.base_den[i] = (1 - alpha) * self.base_den[i] + w.den
        self.taught[i] += 1

    def learn_season(self, i: int, w: MetricWindow, start: datetime) -> None:
        """Add a window to this hour's history, whatever it was: what usually happens at this hour is normal
        for it (a single bad day weighs a seventh of the pooled days)."""
        if self.season_hours is None:
            return
        spec = CONTRACT_METRICS[i]
        hour = int(start.timestamp()) // 3600
        slot = hour % SEASON_HOURS
        if self.season_hours[slot] != hour:
            self.season_hours[slot] = hour
            self.season_num[:, slot] = self.season_den[:, slot] = self.season_value[:, slot] = 0.0
        if spec.kind == "quantile":
            self.season_value[i, slot] += w.value
            self.season_den[i, slot] += 1.0
        else:
            self.season_num[i, slot] += w.num
            self.season_den[i, slot] += w.den

    # -- evidence --------------------------------------------------------------------------------------
    def remember(self, i: int, w: MetricWindow, sessions: int) -> None:
        lean = w.volume and w.effect and w.z >= LEAN_Z
        self.recent[i, self.recent_at % RECENT] = (w.num, w.den, w.value, w.num_app, sessions, w.volume, lean)

    def advance(self) -> None:
        """Move the ring of recent windows on (once per window, after every metric remembered)."""
        self.recent_at += 1

    def span(self, i: int) -> int:
        """How many of the last windows may be pooled: since the last reset, at most RECENT."""
        return int(min(RECENT, self.recent_at - self.evidence_from[i] + 1))

    def pooled(self, i: int, windows: int) -> NDArray[np.float64]:
        """Sums of num, den, value, num_app, sessions, volume, leaning over the last `windows` (≤ RECENT) windows."""
        windows = max(1, min(windows, RECENT))
        idx = [(self.recent_at - k) % RECENT for k in range(windows)]
        return np.asarray(self.recent[i, idx].sum(axis=0))

    def last_values(self, i: int, windows: int) -> list[float]:
        windows = max(1, min(windows, RECENT))
        return [float(self.recent[i, (self.recent_at - k) % RECENT, 2]) for k in range(windows)]

    def span_dispersion(self, i: int, windows: int) -> float:
        """Dispersion of a sum of `windows` consecutive windows (between one window's and RECENT's)."""
        single, pooled = float(self.dispersion[i]), float(max(self.dispersion_pooled[i], self.dispersion[i]))
        return single + (pooled - single) * (max(1, min(windows, RECENT)) - 1) / (RECENT - 1)

    def alarm(self, i: int, limit: float, options: DetectorOptions) -> int:
        """The shortest span of 2..RECENT windows, all with volume, whose pooled badness departs by `limit` σ
        and by enough to matter (0 when none). Pooling lets rare events (join failures) add up within a minute."""
        spec = CONTRACT_METRICS[i]
        if not self.warm(i, options):
            return 0
        p0, baseline = self.p0(i), self.baseline_value(i)
        references = [p0] if np.isnan(self.season_ref[i]) else [p0, float(self.season_ref[i])]
        num = den = 0.0
        leaning = 0
        values: list[float] = []
        for k in range(self.span(i)):
            row = self.recent[i, (self.recent_at - k) % RECENT]
            if row[5] < 1:
                return 0  # a quiet window breaks the span: no evidence across a gap
            num, den = num + row[0], den + row[1]
            leaning += int(row[6])
            values.append(float(row[2]))
            if leaning < 2:
                continue  # one window alone, however wild, is not a departure
            dispersion = self.span_dispersion(i, k + 1)
            if spec.kind == "quantile":
                observed = sorted(values)[len(values) // 2]
                z = z_score(num, den, p0, dispersion)
                big = effect_ok(spec, observed, baseline) and (
                    len(references) == 1 or effect_ok(spec, observed, references[1])
                )
            else:
                observed = num / den if den > 0 else 0.0
                z = min(z_score(num, den, ref, dispersion) for ref in references)
                big = all(effect_ok(spec, observed, ref) for ref in references)
            if z >= limit and big:
                return k + 1
        return 0

    def pooled_z(self, i: int, windows: int) -> float:
        """z of the pooled badness of the last `windows` windows against the baseline."""
        pooled = self.pooled(i, windows)
        if not self.warm_any(i) or pooled[1] <= 0:
            return 0.0
        return z_score(float(pooled[0]), float(pooled[1]), self.p0(i), self.span_dispersion(i, windows))

    def warm_any(self, i: int) -> bool:
        return bool(self.taught[i] >= 3)

    def restart_evidence(self, i: int) -> None:
        """Forget the windows seen so far as evidence (a detection of them just closed)."""
        self.evidence_from[i] = self.recent_at + 1


def still_bad(state: KeyState, i: int, windows: int, watch_z: float) -> bool:
    """Is the key's badness over its last `windows` windows still departing (for hysteresis on close)?"""
    spec = CONTRACT_METRICS[i]
    pooled = state.pooled(i, windows)
    if pooled[1] <= 0:
        return False
    if spec.kind == "quantile":
        observed = sorted(state.last_values(i, windows))[windows // 2]
    else:
        observed = float(pooled[0] / pooled[1])
    z = z_score(float(pooled[0]), float(pooled[1]), state.p0(i), state.span_dispersion(i, windows))
    return z >= watch_z and effect_ok(spec, observed, state.baseline_value(i))

"""Localization of a degradation: which dimension values explain a metric's departure.

Adtributor (Bhagwan et al., NSDI 2014) adapted to ratio metrics, plus a conjunction of two
dimensions. For every value the *expected* numerator is its own baseline rate times its observed
denominator, so a change of traffic mix (more users on a worse network) is not mistaken for a
degradation, and the *excess* is observed minus expected. A value's explanatory power is its share
of the total excess; its surprise is its term of the Jensen-Shannon divergence between the
expected and the observed distribution of the numerator.

Per dimension, values are taken by decreasing surprise until they explain `threshold` of the
excess (Adtributor's explanatory sets, returned as candidates). The localized slice is built from
*focused* values: one value that alone explains `threshold` and whose relative excess is at least
`concentration` times that of the rest of its dimension (this rejects a value that merely carries
most of the traffic, like country=CN for a Chinese app), and for which "value and rest departed
alike" fails an exact conditional binomial test (a dozen join failures, all on a release that carries
59 % of the joins, are evidence enough; a fair share of them is not). Two focused values of different
dimensions are ANDed, whether one is nested in the other (edge in region) or they cross (region ×
ISP): if each explains EP_a and EP_b of the excess, their intersection explains at least
EP_a + EP_b − 1 of it, and that bound must reach `threshold` too.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations
from statistics import NormalDist
from typing import Final, Literal

from zhiban.core.errors import InvalidInput

MAX_SLICE_STATS = 100_000
MAX_COUNT: Final = 1e18  # per count; far beyond any real window (a year of frozen ms is 3e10), products stay finite
NOTHING: Final = 1e-9  # an expectation below this (in numerator units) is no expectation: no baseline, no evidence
MAX_RATE: Final = 1e6  # cap on a baseline rate: a sliver of denominator must not make expectations overflow
MAX_CONCENTRATION: Final = 1e6  # a value's concentration when the rest of its dimension did not depart at all
EXACT_EVENTS: Final = 400  # binomial tails summed exactly up to this many trials, normal beyond
_NORMAL: Final = NormalDist()
Direction = Literal["up", "down"]
MetricKind = Literal["ratio", "additive"]


@dataclass(frozen=True)
class SliceStats:
    """Numerator and denominator of one dimension value in the baseline and the anomalous period.

    For an additive metric, `base_num` is the baseline amount and the denominators are the
    lengths of the periods (all 1 when the baseline is already the forecast for the period).
    """

    dimension: str
    value: str
    base_num: float
    base_den: float
    obs_num: float
    obs_den: float

    def __post_init__(self) -> None:
        numbers = (self.base_num, self.base_den, self.obs_num, self.obs_den)
        if any(not 0 <= x <= MAX_COUNT for x in numbers):  # (also refuses NaN)
            raise InvalidInput(f"{self.dimension}={self.value}: counts must be within 0..{MAX_COUNT:g}")


@dataclass(frozen=True)
class ValueScore:
    """How much one dimension value explains."""

    dimension: str
    value: str
    expected: float  # numerator expected from the baseline rate and the observed denominator
    observed: float
    excess: float  # observed minus expected, in the direction of the departure
    explanatory_power: float  # share of the total excess (in the chosen direction)
    surprise: float
    concentration: float  # relative excess in the value / relative excess in the rest
    rest_expected: float  # the same for the other values of the dimension
    rest_excess: float
    expected_rate: float = 0.0  # expected / observed denominator, for a ratio metric
    rest_observed: float = 0.0

    @property
    def relative_change(self) -> float:
        """(observed - expected) / expected; 0.0 when nothing was expected (no baseline: no evidence)."""
        return (self.observed - self.expected) / self.expected if self.expected > NOTHING else 0.0


@dataclass(frozen=True)
class Candidate:
    """Adtributor's explanatory set for one dimension: values ORed together."""

    dimension: str
    values: tuple[str, ...]
    explanatory_power: float
    surprise: float


@dataclass(frozen=True)
class Localization:
    """The slice that explains the departure (empty when nothing does) and the alternatives."""

    slice: dict[str, str]
    explanatory_power: float
    surprise: float
    candidates: list[Candidate] = field(default_factory=list)
    relative_change: float = 0.0  # of the whole metric, observed vs expected (of the failures, for a falling ratio)

    @property
    def found(self) -> bool:
        return bool(self.slice)


@dataclass(frozen=True)
class Scores:
    """Every value's score, and the departure of the whole (in the chosen direction)."""

    by_dimension: dict[str, list[ValueScore]]
    expected: float
    excess: float
    expected_rate: float  # for a ratio metric


def _rate(num: float, den: float) -> float | None:
    """A baseline's rate with one pseudo-event, None when there is no baseline to speak of."""
    if den <= 0:
        return None
    rate = (num + 1.0) / den
    if not math.isfinite(rate):
        return None  # a denormal denominator is no baseline either
    # Real ratios stay below a few (MOS impairment per report ≤ 3.5); the cap keeps expectations finite.
    return min(rate, MAX_RATE)


def _per(amount: float, den: float) -> float:
    """A rate for the binomial tests (clamped there to [0, 1]); finite even over a sliver of denominator."""
    return min(MAX_RATE, amount / den) if den > 0 else 0.0


def _population_rate(dimensions: Iterable[list[SliceStats]]) -> float | None:
    """The whole population's baseline rate: every dimension partitions it, the one with most baseline says most."""
    best = max(dimensions, key=lambda rows: sum(r.base_den for r in rows), default=[])
    return _rate(sum(r.base_num for r in best), sum(r.base_den for r in best))


def _js_term(p: float, q: float) -> float:
    """One value's term of the Jensen-Shannon divergence (base 2, so each term is within [0, 1])."""
    total = p + q  # p / m written as 2p / (p + q): m = total / 2 underflows to 0 for a denormal share
    term = 0.0
    if p > 0:
        term += 0.5 * p * math.log2(2 * p / total)
    if q > 0:
        term += 0.5 * q * math.log2(2 * q / total)
    return max(0.0, term)  # ≥ 0 by the log-sum inequality; rounding may say -1e-17


def score_values(
    stats: list[SliceStats],
    direction: Direction = "up",
    kind: MetricKind = "ratio",
    prior_events: float = 5.0,
) -> Scores:
    """Score every value of every dimension.

    A value's baseline rate is shrunk toward its dimension's overall rate by a prior worth
    `prior_events` units of numerator: decisive for sparse counts (join failures), negligible
    for sums in milliseconds. A dimension with no baseline at all (every value new, or too small
    to have learned one) borrows the population's rate from the dimension with the most baseline;
    with no baseline anywhere there is no evidence, and every value is expected to be what it is.
    Every score is finite (concentration is capped at MAX_CONCENTRATION).
    """
    if len(stats) > MAX_SLICE_STATS:
        raise InvalidInput(f"at most {MAX_SLICE_STATS} slice stats")
    if direction not in ("up", "down"):
        raise InvalidInput("direction must be 'up' or 'down'")
    sign = 1.0 if direction == "up" else -1.0
    by_dim: dict[str, list[SliceStats]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for s in stats:
        if (s.dimension, s.value) in seen:
            raise InvalidInput(f"duplicate slice {s.dimension}={s.value}")
        seen.add((s.dimension, s.value))
        by_dim[s.dimension].append(s)
    scores: dict[str, list[ValueScore]] = {}
    total_expected = total_excess = total_rate = 0.0
    population = _population_rate(by_dim.values()) if kind == "ratio" else None
    for dim, rows in sorted(by_dim.items()):
        base_num = sum(r.base_num for r in rows)
        base_den = sum(r.base_den for r in rows)
        obs_den = sum(r.obs_den for r in rows)
        if kind == "ratio":
            # One pseudo-event keeps a clean baseline (no failure at all) from making any failure infinitely surprising.
            overall = _rate(base_num, base_den) or population
            if overall is None:
                expected = [r.obs_num for r in rows]  # no baseline anywhere: nothing to depart from
            else:
                # A value with little or no baseline (a new SDK version) borrows the overall rate: `prior` > 0
                # whenever `overall` is finite and positive, so a value with no baseline divides by it, not by 0.
                prior = prior_events / overall
                expected = [
                    (r.base_num + prior * overall) / (r.base_den + prior) * r.obs_den if r.obs_den else 0.0
                    for r in rows
                ]
        else:
            scale = obs_den / base_den if base_den > 0 else 1.0
            expected = [r.base_num * scale for r in rows]
            if not all(math.isfinite(e) for e in expected):
                expected = [r.obs_num for r in rows]  # a sliver of a baseline period says nothing: no evidence
        exp_sum = sum(expected)
        obs_sum = sum(r.obs_num for r in rows)
        excess = sign * (obs_sum - exp_sum)
        dim_scores = []
        for r, e in zip(rows, expected, strict=True):
            x = sign * (r.obs_num - e)
            rest_e, rest_x = exp_sum - e, excess - x
            inside = x / e if e > NOTHING else (math.inf if x > 0 else 0.0)
            outside = rest_x / rest_e if rest_e > NOTHING else math.nan
            if math.isnan(outside):
                conc = 1.0  # the value is the whole population: it localizes nothing
            elif outside <= 0:
                conc = MAX_CONCENTRATION if inside > 0 else 0.0
            else:
                conc = min(MAX_CONCENTRATION, inside / outside)
            dim_scores.append(
                ValueScore(
                    dimension=dim,
                    value=r.value,
                    expected=e,
                    observed=r.obs_num,
                    excess=x,
                    explanatory_power=x / excess if excess > 0 else 0.0,
                    surprise=_js_term(e / exp_sum if exp_sum > 0 else 0.0, r.obs_num / obs_sum if obs_sum > 0 else 0.0),
                    concentration=conc,
                    rest_expected=rest_e,
                    rest_excess=rest_x,
                    expected_rate=_per(e, r.obs_den) if kind == "ratio" else 0.0,
                    rest_observed=max(0.0, obs_sum - r.obs_num),
                )
            )
        scores[dim] = dim_scores
        # Every dimension partitions the same population; keep the largest view of it.
        if exp_sum >= total_expected:
            total_expected, total_excess = exp_sum, excess
            total_rate = _per(exp_sum, obs_den) if kind == "ratio" else 0.0
    return Scores(scores, total_expected, total_excess, total_rate)


def _significant(excess: float, expected: float, event_size: float, z: float, rate: float = 0.0) -> bool:
    """Is an excess more than `z` standard deviations, counted in events?

    Binomial when the metric is a proportion (`rate` is then the expected one), else Poisson;
    +1 because a zero expectation is uncertain too.
    """
    variance = max(0.0, expected) / event_size * (1.0 - min(max(rate, 0.0), 1.0)) + 1.0
    return excess / event_size >= z * math.sqrt(variance)


def _spares_the_rest(v: ValueScore, sign: float, event_size: float, z: float) -> bool:
    """Is the rest of the dimension significantly less hit than the value? Else the value only carries the traffic.

    The hypothesis to reject: value and rest departed alike (observed / expected the same on both sides).
    Given the total of events seen, the value's share of them is then binomial with the value's share of
    the expected events (the conditional test of two Poisson rates), whatever the common departure is: so
    an exact tail needs no estimate of it and stays honest with a handful of join failures, even when
    the value carries most of the traffic (a release on 59 % of the sessions).
    """
    if v.expected <= 0 or v.rest_expected <= 0:
        return v.rest_expected > 0  # a value with no baseline at all is new: the rest is the evidence
    share = v.expected / (v.expected + v.rest_expected)
    events = (v.observed + v.rest_observed) / event_size
    count = v.observed / event_size
    if sign < 0:  # fewer events than expected is the departure: count the rest's instead
        count, share = events - count, 1.0 - share
    return binomial_tail_z(count, events, share) >= z


def binomial_tail_z(k: float, n: float, p: float) -> float:
    """z of P(X ≥ k) for X ~ Binomial(n, p): exact for up to EXACT_EVENTS trials, else normal (continuity-corrected).

    Counts in events may be fractional (frozen ms / event size): they are rounded to whole trials.
    """
    if n <= 0 or k <= n * p:
        return 0.0
    if p <= 0:
        return math.inf
    if p >= 1:
        return 0.0
    if n > EXACT_EVENTS:
        variance = n * p * (1 - p)
        if variance <= 0:
            return math.inf  # p so small that n·p underflows: any hit is impossible under the hypothesis
        return max(0.0, (k - 0.5 - n * p) / math.sqrt(variance))  # the half event may eat a sub-event excess
    trials, hits = round(n), min(round(n), math.ceil(k - 1e-9))
    log_p, log_q = math.log(p), math.log1p(-p)
    log_terms = [
        math.lgamma(trials + 1) - math.lgamma(j + 1) - math.lgamma(trials - j + 1) + j * log_p + (trials - j) * log_q
        for j in range(hits, trials + 1)
    ]
    top = max(log_terms)
    log_tail = top + math.log(sum(math.exp(t - top) for t in log_terms))
    if log_tail >= -1e-15:
        return 0.0  # a tail of (nearly) 1, whose exp() rounds to 1.0, which inv_cdf refuses
    if log_tail < -690:  # beyond double precision: far tail, log Q(z) ≈ -z²/2
        return math.sqrt(-2.0 * log_tail)
    return max(0.0, -_NORMAL.inv_cdf(math.exp(log_tail)))


def explanatory_sets(
    scores: dict[str, list[ValueScore]], threshold: float = 0.67, min_value_power: float = 0.1
) -> list[Candidate]:
    """Adtributor's per-dimension explanatory sets, ranked by total surprise."""
    candidates = []
    for dim, values in scores.items():
        chosen: list[ValueScore] = []
        power = 0.0
        for v in sorted(values, key=lambda s: (-s.surprise, s.value)):
            if v.explanatory_power < min_value_power:
                continue
            chosen.append(v)
            power += v.explanatory_power
            if power >= threshold:
                break
        if chosen and power >= threshold:
            surprise = sum(v.surprise for v in chosen)
            candidates.append(Candidate(dim, tuple(v.value for v in chosen), power, surprise))
    candidates.sort(key=lambda c: (-c.surprise, len(c.values), c.dimension))
    return candidates


def localize(
    stats: list[SliceStats],
    direction: Direction = "up",
    *,
    kind: MetricKind = "ratio",
    threshold: float = 0.67,
    min_change: float = 0.05,
    concentration: float = 3.0,
    min_surprise: float = 1e-4,
    min_significance: float = 3.0,
    event_size: float = 1.0,
    max_dimensions: int = 2,
) -> Localization:
    """The smallest slice (one value, or two ANDed) that explains most of the departure.

    `event_size` is the numerator's amount per independent event: 1 for counts; for freeze ms,
    which come clustered by session, a few seconds (3000 passes the simulator's benign cases).
    An excess must stand `min_significance` standard deviations above its expectation, and the
    hypothesis that the rest of the dimension departed alike must fail at that level too (exact
    binomial tail). A falling ratio (join successes) is scored as its rising complement (failures).
    """
    if not 0 < threshold <= 1:
        raise InvalidInput("threshold must be within (0, 1]")
    if event_size <= 0:
        raise InvalidInput("event_size must be positive")
    if max_dimensions not in (1, 2):
        raise InvalidInput("max_dimensions must be 1 or 2")
    if kind == "ratio" and direction == "down":
        # A falling success rate is a rising failure rate: score the failures, the rare side, where the
        # baseline's prior and the count tests belong (a clean history expects a few failures, not none).
        stats = [
            SliceStats(s.dimension, s.value, max(0.0, s.base_den - s.base_num), s.base_den,
                       max(0.0, s.obs_den - s.obs_num), s.obs_den)
            for s in stats
        ]  # fmt: skip
        direction = "up"
    scored = score_values(stats, direction, kind)
    scores, expected, excess = scored.by_dimension, scored.expected, scored.excess
    relative = excess / expected if expected > NOTHING else 0.0  # nothing expected: no baseline, no evidence
    candidates = explanatory_sets(scores, threshold)
    if relative < min_change or not _significant(excess, expected, event_size, min_significance, scored.expected_rate):
        # No real departure in this direction: any split of the noise would be a false lead.
        return Localization({}, 0.0, 0.0, candidates, relative)
    focused = [
        v
        for values in scores.values()
        for v in values
        if v.explanatory_power >= threshold
        and v.concentration >= concentration
        and v.surprise >= min_surprise
        and _significant(v.excess, v.expected, event_size, min_significance, v.expected_rate)
        and _spares_the_rest(v, 1.0 if direction == "up" else -1.0, event_size, min_significance)
    ]
    if not focused:
        return Localization({}, 0.0, 0.0, candidates, relative)
    # Most specific first: the value with the least expected volume that still explains enough.
    focused.sort(key=lambda v: (v.expected, -v.explanatory_power, v.dimension))
    chosen, power = [focused[0]], focused[0].explanatory_power
    if max_dimensions == 2:
        pairs = [
            (a.explanatory_power + b.explanatory_power - 1, -min(a.expected, b.expected), [a, b])
            for a, b in combinations(focused, 2)
            if a.dimension != b.dimension
        ]
        valid = [p for p in pairs if p[0] >= threshold]
        if valid:
            # An intersection that still explains enough is more specific than either value alone;
            # among pairs, the most surprising one (Adtributor's ranking).
            power, _, chosen = max(valid, key=lambda p: (sum(v.surprise for v in p[2]), p[1]))
    return Localization(
        slice={v.dimension: v.value for v in chosen},
        explanatory_power=min(1.0, power),
        surprise=sum(v.surprise for v in chosen),
        candidates=candidates,
        relative_change=relative,
    )

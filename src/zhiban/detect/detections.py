"""Detections in the domain: the contract metrics, how a window turns into counts, severity, the §4 line.

Every contract metric is tested as a count of "badness" over a denominator, so that one binomial- or
Poisson-aware test serves them all and a window with little traffic carries little evidence:
- join_success_rate: failed joins / join attempts (binomial);
- video/audio_freeze_rate: frozen ms / active ms (quasi-binomial: freezes come in blocks of ms);
- e2e_delay_p95_ms, loss_p95_pct, av_sync_p95_ms: reports above the key's baseline p95 / reports
  measured (binomial around 5 %), read from the window's quantile sketch;
- mos: Σ (4.5 − MOS) / reports with a MOS (quasi-Poisson "impairment").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

from zhiban.core.clock import utc

Kind = Literal["rate", "quantile", "impairment"]
Severity = Literal["minor", "major", "critical"]
SEVERITIES: Final = ("minor", "major", "critical")
MOS_CEILING: Final = 4.5


@dataclass(frozen=True)
class MetricSpec:
    """How one contract metric is read from a window and what counts as a real departure."""

    name: str
    direction: Literal["up", "down"]  # which way is worse, as §4 reports it
    kind: Kind
    # A departure must also be big enough to matter: relative and absolute change of the badness.
    min_relative: float
    min_absolute: float
    prior_dispersion: float  # variance per unit of count before history says otherwise
    min_dispersion: float
    event_size: float  # numerator per independent event, for localization
    counter_num: str = ""  # rate and impairment metrics: counters they come from
    counter_den: str = ""
    sketch: str = ""  # quantile metrics: the sketched input


CONTRACT_METRICS: Final = (
    # A failed join is retried (by the SDK, by the user) and may fail again: ~1.5 failures per event.
    MetricSpec("join_success_rate", "down", "rate", 1.0, 0.01, 1.0, 1.0, 1.5, "join_failures", "join_attempts"),
    MetricSpec(
        "video_freeze_rate", "up", "rate", 0.5, 0.005, 1500.0, 100.0, 3000.0, "video_freeze_ms", "video_active_ms"
    ),
    MetricSpec(
        "audio_freeze_rate", "up", "rate", 0.5, 0.003, 800.0, 50.0, 3000.0, "audio_freeze_ms", "audio_active_ms"
    ),
    MetricSpec("e2e_delay_p95_ms", "up", "quantile", 0.15, 30.0, 1.0, 1.0, 1.0, sketch="e2e_delay_ms"),
    MetricSpec("loss_p95_pct", "up", "quantile", 0.3, 1.0, 1.0, 1.0, 1.0, sketch="loss_pct"),
    MetricSpec("av_sync_p95_ms", "up", "quantile", 0.3, 20.0, 1.0, 1.0, 1.0, sketch="av_sync_ms"),
    MetricSpec("mos", "down", "impairment", 0.0, 0.12, 0.05, 0.005, 1.0, "mos_impairment", "mos_count"),
)
METRIC_SPECS: Final = {spec.name: spec for spec in CONTRACT_METRICS}


def metric_value(spec: MetricSpec, badness: float) -> float:
    """The metric as §4 reports it, from its badness (failure rate, freeze rate, p95, impairment)."""
    if spec.name == "join_success_rate":
        return 1.0 - badness
    if spec.kind == "impairment":
        return MOS_CEILING - badness
    return badness


def severity_for(spec: MetricSpec, sessions: int, baseline_badness: float, observed_badness: float) -> Severity:
    """Impact = sessions in the slice × how far the metric moved (relative to its normal, capped at 10×)."""
    floor = max(spec.min_absolute, 1e-9)
    moved = max(0.0, observed_badness - baseline_badness) / max(abs(baseline_badness), floor)
    impact = sessions * min(moved, 10.0)
    if impact >= 2000 or (moved >= 5 and sessions >= 300):
        return "critical"
    if impact >= 200:
        return "major"
    return "minor"


def worse(a: Severity, b: Severity) -> Severity:
    return a if SEVERITIES.index(a) >= SEVERITIES.index(b) else b


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else utc(moment).isoformat().replace("+00:00", "Z")


def _round(value: float) -> float:
    if not math.isfinite(value):
        return 0.0
    return float(f"{value:.6g}")


@dataclass
class Detection:
    """One departure of one metric of one app, localized; `closed_at` is None while it lasts."""

    app_id: str
    metric: str
    direction: str
    opened_at: datetime  # event time: start of the first window of the departure
    detected_at: datetime  # event time: end of the window that confirmed it
    slice: dict[str, str]
    baseline: float
    observed: float
    sessions: int
    severity: Severity
    closed_at: datetime | None = None
    rule: str | None = None  # the explicit rule that fired it, if any
    trigger: str = ""  # the key that fired it, e.g. "liveco edge=sh-edge-07"
    candidates: list[dict[str, Any]] = field(default_factory=list)
    # Event time: end of the window whose evidence last sharpened `slice` (None: as first localized).
    refined_at: datetime | None = None

    @property
    def key(self) -> str:
        """Stable identity: the same input gives the same key, live or replayed."""
        return f"{self.app_id}:{self.metric}:{self.rule or 'stat'}:{int(self.opened_at.timestamp())}"

    def to_json(self) -> dict[str, Any]:
        """The TELEMETRY.md §4 form (plus `rule` when an explicit rule fired it)."""
        out: dict[str, Any] = {
            "opened_at": _iso(self.opened_at),
            "closed_at": _iso(self.closed_at),
            "app_id": self.app_id,
            "metric": self.metric,
            "direction": self.direction,
            "slice": dict(self.slice),
            "baseline": _round(self.baseline),
            "observed": _round(self.observed),
            "sessions": int(self.sessions),
            "severity": self.severity,
        }
        if self.rule is not None:
            out["rule"] = self.rule
        return out


EventKind = Literal["opened", "updated", "closed"]


@dataclass(frozen=True)
class DetectionEvent:
    """What the engine tells its caller after a window: a detection opened, got worse, or closed."""

    kind: EventKind
    detection: Detection

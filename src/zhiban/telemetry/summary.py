"""A quality summary of some windows: the overall metrics and the slices that hurt most (for tickets)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from zhiban.telemetry.qoe import METRIC_BY_NAME
from zhiban.telemetry.window import SliceKey, WindowAggregate, merge

# Metrics compared between a slice and its app; `sessions` is the weight, not a symptom.
SYMPTOMS: Final = tuple(name for name in METRIC_BY_NAME if name != "sessions")
_MIN_BASELINE: Final = {"video_freeze_rate": 0.001, "audio_freeze_rate": 0.001, "loss_p95_pct": 0.1}


@dataclass(frozen=True, slots=True)
class SliceFinding:
    """A slice whose metric is worse than its app's, weighted by how many sessions it touches."""

    key: SliceKey
    metric: str
    observed: float
    baseline: float
    sessions: int
    impact: float


@dataclass(frozen=True, slots=True)
class QualitySummary:
    """Overall metrics per app over [start, end) and the worst slices by impact."""

    start: datetime | None
    end: datetime | None
    overall: dict[str, dict[str, float | None]]
    worst: list[SliceFinding]


def _relative_excess(metric: str, observed: float, baseline: float) -> float:
    """How much worse than the baseline, as a fraction of it (0 when not worse)."""
    floor = _MIN_BASELINE.get(metric, 1e-9)
    if METRIC_BY_NAME[metric].worse == "up":
        return max(0.0, observed - baseline) / max(baseline, floor)
    return max(0.0, baseline - observed) / max(baseline, floor)


def summarize(windows: Iterable[WindowAggregate], worst: int = 5) -> QualitySummary:
    """Merge the windows per slice, compare each dimension slice to its app: impact = sessions × relative excess."""
    merged: dict[SliceKey, WindowAggregate] = {}
    start: datetime | None = None
    end: datetime | None = None
    for window in windows:
        previous = merged.get(window.key)
        merged[window.key] = window if previous is None else merge(previous, window)
        start = window.window_start if start is None else min(start, window.window_start)
        end = window.window_end if end is None else max(end, window.window_end)
    overall = {key.app_id: agg.metrics() for key, agg in merged.items() if key.dimension is None}
    findings: list[SliceFinding] = []
    for key, aggregate in merged.items():
        if key.dimension is None or key.app_id not in overall:
            continue
        metrics = aggregate.metrics()
        sessions = aggregate.sessions
        for metric in SYMPTOMS:
            observed, baseline = metrics[metric], overall[key.app_id][metric]
            if observed is None or baseline is None:
                continue
            excess = _relative_excess(metric, observed, baseline)
            if excess > 0:
                findings.append(SliceFinding(key, metric, observed, baseline, sessions, sessions * excess))
    findings.sort(key=lambda f: (-f.impact, f.key.sort_key(), f.metric))
    return QualitySummary(start=start, end=end, overall=overall, worst=findings[: max(0, worst)])

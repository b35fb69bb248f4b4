"""Quality of experience: the E-model MOS, freeze rates and the table of derived metrics (TELEMETRY.md §3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def emodel_mos(rtt_ms: float, jitter_ms: float, loss_pct: float) -> float:
    """MOS of one report by the contract's simplified E-model, clamped to [1, 4.5]."""
    effective_latency = rtt_ms + 2.0 * jitter_ms + 10.0
    # The contract's two latency regimes: mild below 160 ms, steep above.
    low = effective_latency < 160.0
    r = 94.768 - effective_latency / 40.0 if low else 94.768 - (effective_latency - 120.0) / 10.0
    # R outside 0..100 is clamped first, as ITU-T G.107 does: the cubic turns upward again below R = 0
    # (at 60 % loss it would give 6.0, clamped to 4.5: the best score for the worst call).
    r = min(100.0, max(0.0, r - 2.5 * loss_pct))
    mos = 1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r)
    return min(4.5, max(1.0, mos))


def emodel_mos_array(rtt_ms: FloatArray, jitter_ms: FloatArray, loss_pct: FloatArray) -> FloatArray:
    """Vectorized emodel_mos; NaN where any input is NaN (not measured)."""
    effective_latency = rtt_ms + 2.0 * jitter_ms + 10.0
    r = np.where(
        effective_latency < 160.0, 94.768 - effective_latency / 40.0, 94.768 - (effective_latency - 120.0) / 10.0
    )
    r = np.clip(r - 2.5 * loss_pct, 0.0, 100.0)  # see emodel_mos
    mos = 1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r)
    return np.clip(mos, 1.0, 4.5)


def freeze_rate(freeze_ms: float, active_ms: float) -> float | None:
    """Σ freeze / Σ active; None when nothing was active."""
    if active_ms <= 0:
        return None
    return freeze_ms / active_ms


def ratio(numerator: float, denominator: float) -> float | None:
    """A rate, or None when its denominator is empty."""
    return numerator / denominator if denominator > 0 else None


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One derived metric: its name, what it means, its unit and which direction is worse."""

    name: str
    definition: str
    unit: str
    worse: Literal["up", "down"]


METRICS: Final = (
    MetricSpec("sessions", "distinct sessions reporting", "sessions", "down"),
    MetricSpec("join_success_rate", "successful joins / join attempts", "ratio", "down"),
    MetricSpec("join_latency_p95_ms", "95th percentile of successful join latency", "ms", "up"),
    MetricSpec("video_freeze_rate", "Σ video freeze_ms / Σ video active_ms", "ratio", "up"),
    MetricSpec("audio_freeze_rate", "Σ audio freeze_ms / Σ audio active_ms", "ratio", "up"),
    MetricSpec("e2e_delay_p95_ms", "95th percentile of video (else audio) end-to-end delay", "ms", "up"),
    MetricSpec("loss_p95_pct", "95th percentile of packet loss (video, else audio, else downlink)", "%", "up"),
    MetricSpec("rtt_p95_ms", "95th percentile of round-trip time", "ms", "up"),
    MetricSpec("jitter_p95_ms", "95th percentile of jitter (audio, else video)", "ms", "up"),
    MetricSpec("mos", "mean E-model MOS per report", "MOS", "down"),
    MetricSpec("av_sync_p95_ms", "95th percentile of abs(av_sync_ms)", "ms", "up"),
)
METRIC_BY_NAME: Final = {spec.name: spec for spec in METRICS}

"""Named faults and benign events that the traffic simulator injects, and their effect on sessions.

A fault degrades the sessions of one slice (dimension values ANDed together) for a span of event
time; a benign event changes traffic without degrading quality, so that a detector can be tested
for false positives. Both are recorded in the ground-truth file beside the generated data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from zhiban.core.clock import utc
from zhiban.core.errors import InvalidInput

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

DIMENSIONS = ("region", "country", "isp", "network", "platform", "sdk_version", "edge", "role", "channel")

# kind -> (default magnitude, what the magnitude means, metrics expected to move)
FAULT_KINDS: dict[str, tuple[float, str, tuple[str, ...]]] = {
    "edge_packet_loss": (
        8.0,
        "added packet loss, %",
        ("video_freeze_rate", "audio_freeze_rate", "loss_p95_pct", "mos"),
    ),
    "isp_congestion": (
        3.0,
        "congestion severity: +1.5·m % loss, +40·m ms rtt",
        ("video_freeze_rate", "rtt_p95_ms", "loss_p95_pct", "e2e_delay_p95_ms", "mos"),
    ),
    "sdk_release_join_failure": (0.35, "probability that a join fails", ("join_success_rate",)),
    "av_sync_drift": (400.0, "audio lead reached at mid-span, ms", ("av_sync_p95_ms",)),
    "edge_overload": (
        250.0,
        "added rtt, ms (jitter, delay and freezes follow)",
        ("rtt_p95_ms", "e2e_delay_p95_ms", "video_freeze_rate", "join_latency_p95_ms", "mos"),
    ),
    "app_outage": (1.0, "probability that a join fails; sessions drop", ("join_success_rate", "sessions")),
}
BENIGN_KINDS: dict[str, tuple[float, str]] = {
    "evening_ramp": (0.0, "extra traffic at mid-span on top of the natural ramp, fraction"),
    "festival_surge": (0.4, "extra traffic, fraction"),
    "night_low_volume": (0.5, "traffic removed at mid-span, fraction"),
    "sdk_rollout": (0.5, "share of new sessions on the platform that get the new version at the end"),
}
MAX_MAGNITUDE = 10_000.0
JOIN_TIMEOUT = 110  # error codes of failed joins
JOIN_REJECTED = 17
SERVICE_UNAVAILABLE = 503
MAX_DURATION = timedelta(days=31)


@dataclass(frozen=True)
class Fault:
    """A fault or benign event: `kind` for `app_id`, in `slice`, from `start` for `duration`."""

    kind: str
    app_id: str
    start: datetime
    duration: timedelta
    slice: dict[str, str] = field(default_factory=dict, hash=False)
    magnitude: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS and self.kind not in BENIGN_KINDS:
            known = ", ".join([*FAULT_KINDS, *BENIGN_KINDS])
            raise InvalidInput(f"unknown fault kind {self.kind!r}; known: {known}")
        if self.start.tzinfo is None:
            raise InvalidInput("fault start must be timezone-aware")
        if not timedelta(0) < self.duration <= MAX_DURATION:
            raise InvalidInput(f"fault duration must be positive and at most {MAX_DURATION}")
        for key in self.slice:
            if key not in DIMENSIONS:
                raise InvalidInput(f"unknown slice dimension {key!r}; known: {', '.join(DIMENSIONS)}")
        if self.magnitude is not None and not 0 <= self.magnitude <= MAX_MAGNITUDE:
            raise InvalidInput(f"fault magnitude must be within [0, {MAX_MAGNITUDE}]")
        if self.kind == "sdk_rollout" and set(self.slice) != {"platform", "sdk_version"}:
            raise InvalidInput("sdk_rollout needs a slice of exactly platform and sdk_version")
        if self.kind == "sdk_release_join_failure" and "sdk_version" not in self.slice:
            raise InvalidInput("sdk_release_join_failure needs sdk_version in its slice")
        if self.kind in ("edge_packet_loss", "edge_overload") and "edge" not in self.slice:
            raise InvalidInput(f"{self.kind} needs edge in its slice")

    @property
    def benign(self) -> bool:
        return self.kind in BENIGN_KINDS

    @property
    def strength(self) -> float:
        """The magnitude, or the kind's default."""
        if self.magnitude is not None:
            return self.magnitude
        return FAULT_KINDS[self.kind][0] if self.kind in FAULT_KINDS else BENIGN_KINDS[self.kind][0]

    @property
    def end(self) -> datetime:
        return self.start + self.duration

    def active(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def progress(self, moment: datetime) -> float:
        """Fraction of the span elapsed at `moment`, clamped to [0, 1]."""
        return min(1.0, max(0.0, (moment - self.start) / self.duration))

    def onset(self, moment: datetime) -> float:
        """Intensity in [0, 1]: real faults build up over a minute or so rather than step."""
        if not self.active(moment):
            return 0.0
        ramp = min(timedelta(seconds=60), self.duration / 5)
        return min(1.0, (moment - self.start) / ramp) if ramp > timedelta(0) else 1.0

    def truth(self) -> dict[str, Any]:
        """The ground-truth record written beside the generated data."""
        expected = FAULT_KINDS[self.kind][2] if self.kind in FAULT_KINDS else ()
        return {
            "kind": self.kind,
            "benign": self.benign,
            "app_id": self.app_id,
            "slice": dict(self.slice),
            "start": _iso(self.start),
            "end": _iso(self.end),
            "magnitude": self.strength,
            "expected_metrics": list(expected),
        }


def _iso(moment: datetime) -> str:
    return utc(moment).isoformat().replace("+00:00", "Z")


@dataclass
class Effects:
    """Per-session adjustments for one tick, one entry per active session."""

    add_loss: FloatArray
    add_rtt: FloatArray
    add_jitter: FloatArray
    add_freezes: FloatArray  # extra expected freezes per interval
    kbps_factor: FloatArray
    add_av_sync: FloatArray
    join_fail: FloatArray  # probability that a join in this interval fails
    add_join_latency: FloatArray
    drop: FloatArray  # probability that the session is cut in this interval
    join_error: npt.NDArray[np.int64]  # error_code of a failed join

    @classmethod
    def none(cls, size: int) -> Effects:
        zeros = np.zeros(size)
        return cls(
            add_loss=zeros.copy(),
            add_rtt=zeros.copy(),
            add_jitter=zeros.copy(),
            add_freezes=zeros.copy(),
            kbps_factor=np.ones(size),
            add_av_sync=zeros.copy(),
            join_fail=zeros.copy(),
            add_join_latency=zeros.copy(),
            drop=zeros,
            join_error=np.full(size, JOIN_TIMEOUT, dtype=np.int64),
        )


def apply_fault(effects: Effects, fault: Fault, mask: BoolArray, moment: datetime) -> None:
    """Add the effect of one active fault to the sessions selected by `mask`."""
    level = fault.onset(moment)
    if level <= 0 or fault.benign or not mask.any():
        return
    m = fault.strength * level
    if fault.kind == "edge_packet_loss":
        effects.add_loss[mask] += m
    elif fault.kind == "isp_congestion":
        effects.add_loss[mask] += 1.5 * m
        effects.add_rtt[mask] += 40.0 * m
        effects.add_jitter[mask] += 8.0 * m
        effects.kbps_factor[mask] /= 1.0 + m / 2
    elif fault.kind == "sdk_release_join_failure":
        effects.join_fail[mask] = np.maximum(effects.join_fail[mask], min(1.0, m))
        effects.join_error[mask] = JOIN_REJECTED
    elif fault.kind == "av_sync_drift":
        # Drift grows through the first half of the span, then holds.
        effects.add_av_sync[mask] += fault.strength * min(1.0, 2 * fault.progress(moment))
    elif fault.kind == "edge_overload":
        effects.add_rtt[mask] += m
        effects.add_jitter[mask] += m / 5
        effects.add_freezes[mask] += m / 500
        effects.add_join_latency[mask] += 2 * m
        effects.kbps_factor[mask] *= 0.6
    elif fault.kind == "app_outage":
        effects.join_fail[mask] = np.maximum(effects.join_fail[mask], min(1.0, m))
        effects.join_error[mask] = SERVICE_UNAVAILABLE
        effects.drop[mask] = np.maximum(effects.drop[mask], min(1.0, 0.3 * m))
        effects.add_freezes[mask] += 2 * m


def traffic_factor(faults: list[Fault], moment: datetime) -> float:
    """Multiplier on the app's traffic from its benign volume events at `moment`."""
    factor = 1.0
    for fault in faults:
        if not fault.active(moment):
            continue
        # A triangle over the span: changes of volume come and go smoothly.
        shape = 1.0 - abs(2 * fault.progress(moment) - 1.0)
        if fault.kind in ("evening_ramp", "festival_surge"):
            factor *= 1.0 + fault.strength * (1.0 if fault.kind == "festival_surge" else shape)
        elif fault.kind == "night_low_volume":
            factor *= max(0.0, 1.0 - min(1.0, fault.strength) * shape)
    return factor


def rollout_share(fault: Fault, moment: datetime) -> float:
    """Share of new sessions on the platform that get the rolled-out version; it stays after the span."""
    if moment < fault.start:
        return 0.0
    return min(1.0, fault.strength) * fault.progress(moment)

"""Call-quality reports, version 1: the domain objects of the telemetry contract (TELEMETRY.md §1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Final

# Dimensions that slice a report (TELEMETRY.md §1). `channel` is high-cardinality: kept, but not
# aggregated by default.
DIMENSIONS: Final = ("region", "country", "isp", "network", "platform", "sdk_version", "edge", "role", "channel")
DEFAULT_AGGREGATE_DIMENSIONS: Final = ("region", "country", "isp", "network", "platform", "sdk_version", "edge", "role")
# String fields carried per report besides the required ids.
STRING_FIELDS: Final = (*DIMENSIONS, "user_id")

# Numeric fields, flattened as `<block>_<name>`; NaN in a column means "not measured".
AUDIO_FIELDS: Final = ("active_ms", "freeze_ms", "loss_pct", "jitter_ms", "e2e_delay_ms", "bitrate_kbps")
VIDEO_FIELDS: Final = ("active_ms", "freeze_ms", "fps", "loss_pct", "jitter_ms", "e2e_delay_ms", "bitrate_kbps")
NET_FIELDS: Final = ("rtt_ms", "uplink_loss_pct", "downlink_loss_pct", "available_kbps")
NUMERIC_FIELDS: Final = (
    "interval_ms",
    *(f"audio_{name}" for name in AUDIO_FIELDS),
    *(f"video_{name}" for name in VIDEO_FIELDS),
    *(f"net_{name}" for name in NET_FIELDS),
    "av_sync_ms",
)

EVENT_TYPES: Final = frozenset({"join", "leave", "first_frame", "reconnect", "error"})

# Bounds: inclusive ranges a sender can plausibly produce; anything outside is a sender bug.
_DAY_MS: Final = 86_400_000.0
RANGES: Final = MappingProxyType(
    {
        "interval_ms": (0.0, 3_600_000.0),
        "active_ms": (0.0, _DAY_MS),
        "freeze_ms": (0.0, _DAY_MS),
        "loss_pct": (0.0, 100.0),
        "jitter_ms": (0.0, 600_000.0),
        "e2e_delay_ms": (0.0, 600_000.0),
        "bitrate_kbps": (0.0, 10_000_000.0),
        "fps": (0.0, 1_000.0),
        "rtt_ms": (0.0, 600_000.0),
        "uplink_loss_pct": (0.0, 100.0),
        "downlink_loss_pct": (0.0, 100.0),
        "available_kbps": (0.0, 100_000_000.0),
        "av_sync_ms": (-600_000.0, 600_000.0),
        "latency_ms": (0.0, 600_000.0),
    }
)
MAX_ID_LEN: Final = 128
MAX_DIMENSION_LEN: Final = 128
MAX_LABELS: Final = 32
MAX_LABEL_KEY_LEN: Final = 64
MAX_LABEL_VALUE_LEN: Final = 256
MAX_EVENTS: Final = 64
MAX_EVENT_TEXT_LEN: Final = 256
# Event time must be plausible: epoch milliseconds between 2000-01-01 and 2100-01-01.
MIN_TS_MS: Final = 946_684_800_000
MAX_TS_MS: Final = 4_102_444_800_000

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

LabelValue = str | int | float | bool | None


def ms_to_datetime(ts_ms: int) -> datetime:
    """Epoch milliseconds → aware UTC datetime."""
    return _EPOCH + timedelta(milliseconds=ts_ms)


def datetime_to_ms(moment: datetime) -> int:
    """Aware datetime → epoch milliseconds (naive datetimes are refused)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: a zone is required")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class AudioStats:
    """Audio over the interval; None means not measured."""

    active_ms: float | None = None
    freeze_ms: float | None = None
    loss_pct: float | None = None
    jitter_ms: float | None = None
    e2e_delay_ms: float | None = None
    bitrate_kbps: float | None = None


@dataclass(frozen=True, slots=True)
class VideoStats:
    """Video over the interval; None means not measured."""

    active_ms: float | None = None
    freeze_ms: float | None = None
    fps: float | None = None
    loss_pct: float | None = None
    jitter_ms: float | None = None
    e2e_delay_ms: float | None = None
    bitrate_kbps: float | None = None


@dataclass(frozen=True, slots=True)
class NetStats:
    """Network over the interval; None means not measured."""

    rtt_ms: float | None = None
    uplink_loss_pct: float | None = None
    downlink_loss_pct: float | None = None
    available_kbps: float | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """A session event: join (ok, latency_ms, code=error_code), leave (reason), first_frame, reconnect, error."""

    type: str
    ok: bool | None = None
    latency_ms: float | None = None
    code: str | int | None = None
    reason: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class QualityReport:
    """One session over one interval (TELEMETRY.md §1, version 1)."""

    app_id: str
    session_id: str
    ts_ms: int
    interval_ms: float | None = None
    channel: str | None = None
    user_id: str | None = None
    role: str | None = None
    region: str | None = None
    country: str | None = None
    isp: str | None = None
    network: str | None = None
    platform: str | None = None
    sdk_version: str | None = None
    edge: str | None = None
    events: tuple[Event, ...] = ()
    audio: AudioStats | None = None
    video: VideoStats | None = None
    net: NetStats | None = None
    av_sync_ms: float | None = None
    labels: dict[str, LabelValue] = field(default_factory=dict)

    @property
    def ts(self) -> datetime:
        """Event time as an aware UTC datetime."""
        return ms_to_datetime(self.ts_ms)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A report refused inside an otherwise accepted batch: its position and why."""

    index: int
    reason: str

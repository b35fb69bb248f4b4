"""W3C webrtc-stats snapshots (running totals from getStats()) → version-1 interval reports (TELEMETRY.md §2)."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from zhiban.core.errors import InvalidInput
from zhiban.telemetry.batch import ReportBatch
from zhiban.telemetry.model import (
    MAX_DIMENSION_LEN,
    MAX_ID_LEN,
    STRING_FIELDS,
    AudioStats,
    LabelValue,
    NetStats,
    QualityReport,
    VideoStats,
)
from zhiban.telemetry.validate import KNOWN_FIELDS, WEBRTC_FORMAT, check_header, check_labels, check_string, parse_ts

MAX_STATS: Final = 1_000
_MAX_COUNTER: Final = 1e15
# Counters a new RTCPeerConnection restarts from zero. packetsLost is not one of them: RFC 3550 §6.4.1
# lets the cumulative loss shrink when duplicates arrive, so its delta is clamped at zero instead.
_MONOTONIC: Final = ("packetsReceived", "bytesReceived", "framesDecoded", "freezeCount", "totalFreezesDuration")
_INBOUND_FIELDS: Final = (*_MONOTONIC, "packetsLost", "jitter")


@dataclass(frozen=True, slots=True)
class InboundStream:
    """The counters of one inbound-rtp stats object that the conversion uses."""

    kind: str
    counters: dict[str, float]


@dataclass(frozen=True, slots=True)
class WebrtcSnapshot:
    """One getStats() snapshot of a session, reduced to what the conversion reads."""

    app_id: str
    session_id: str
    ts_ms: int
    strings: dict[str, str | None]
    inbound: dict[str, InboundStream]
    # Audio playout (W3C "media-playout"): running seconds of synthesized (concealed) audio.
    synthesized_s: dict[str, float]
    rtt_s: float | None
    labels: dict[str, LabelValue] = field(default_factory=dict)


def _number(stat: dict[str, Any], name: str, *, signed: bool = False) -> float | None:
    value = stat.get(name)
    if value is None:
        return None
    if type(value) is not int and type(value) is not float:
        raise InvalidInput(f"stats {stat.get('type')}.{name} must be a number")
    if not math.isfinite(value) or value > _MAX_COUNTER or value < (-_MAX_COUNTER if signed else 0):
        raise InvalidInput(f"stats {stat.get('type')}.{name} is out of range")
    return float(value)


def _selected_rtt(stats: list[dict[str, Any]]) -> float | None:
    """RTT of the selected candidate pair (transport's choice, else the nominated succeeded one)."""
    pairs = {s.get("id"): s for s in stats if s.get("type") == "candidate-pair"}
    selected_ids = [s.get("selectedCandidatePairId") for s in stats if s.get("type") == "transport"]
    chosen = [pairs[i] for i in selected_ids if i in pairs]
    if not chosen:
        nominated = [p for p in pairs.values() if p.get("nominated") is True]
        chosen = [p for p in nominated if p.get("state") in (None, "succeeded")] or nominated
    for pair in chosen:
        rtt = _number(pair, "currentRoundTripTime")
        if rtt is not None:
            return rtt
    remote = [_number(s, "roundTripTime") for s in stats if s.get("type") == "remote-inbound-rtp"]
    measured = [r for r in remote if r is not None]
    return max(measured) if measured else None


def parse_snapshot(raw: object) -> WebrtcSnapshot:
    """Validate a `"format": "webrtc-stats"` report; raises InvalidInput with the reason."""
    report = check_header(raw)
    if report.get("format") != WEBRTC_FORMAT:
        raise InvalidInput(f"format must be {WEBRTC_FORMAT!r}")
    app_id = check_string(report["app_id"], "app_id", MAX_ID_LEN, required=True)
    session_id = check_string(report["session_id"], "session_id", MAX_ID_LEN, required=True)
    assert app_id is not None and session_id is not None
    stats_raw = report.get("stats")
    if isinstance(stats_raw, dict):  # Object.fromEntries(report) keyed by id
        stats_raw = list(stats_raw.values())
    if type(stats_raw) is not list:
        raise InvalidInput("stats must be a list of RTCStats objects")
    if len(stats_raw) > MAX_STATS:
        raise InvalidInput(f"stats has more than {MAX_STATS} entries")
    if any(type(s) is not dict for s in stats_raw):
        raise InvalidInput("each stats entry must be an object")
    stats: list[dict[str, Any]] = stats_raw
    inbound: dict[str, InboundStream] = {}
    synthesized: dict[str, float] = {}
    for position, stat in enumerate(stats):
        kind = stat.get("kind", stat.get("mediaType"))
        stat_id = str(stat.get("id", f"#{position}"))[:MAX_ID_LEN]
        if stat.get("type") == "inbound-rtp" and kind in ("audio", "video"):
            counters = {name: _number(stat, name, signed=name == "packetsLost") for name in _INBOUND_FIELDS}
            inbound[stat_id] = InboundStream(str(kind), {k: v for k, v in counters.items() if v is not None})
        elif stat.get("type") == "media-playout" and kind in (None, "audio"):
            value = _number(stat, "synthesizedSamplesDuration")
            if value is not None:
                synthesized[stat_id] = value
    extra = {k: v for k, v in report.items() if k != "stats"}
    return WebrtcSnapshot(
        app_id=app_id,
        session_id=session_id,
        ts_ms=parse_ts(report["ts"]),
        strings={name: check_string(report.get(name), name, MAX_DIMENSION_LEN) for name in STRING_FIELDS},
        inbound=inbound,
        synthesized_s=synthesized,
        rtt_s=_selected_rtt(stats),
        labels=check_labels({k: v for k, v in extra.items() if k not in KNOWN_FIELDS}),
    )


def _went_backwards(previous: WebrtcSnapshot, current: WebrtcSnapshot) -> bool:
    for stream_id, stream in current.inbound.items():
        before = previous.inbound.get(stream_id)
        if before is None:
            continue
        for name in _MONOTONIC:
            now, then = stream.counters.get(name), before.counters.get(name)
            if now is not None and then is not None and now < then:
                return True
    return any(
        value < previous.synthesized_s[key]
        for key, value in current.synthesized_s.items()
        if key in previous.synthesized_s
    )


def _delta(previous: WebrtcSnapshot, current: WebrtcSnapshot, kind: str, name: str) -> float | None:
    """Σ over streams present in both snapshots of the counter's growth (None when no stream has it)."""
    total: float | None = None
    for stream_id, stream in current.inbound.items():
        before = previous.inbound.get(stream_id)
        if stream.kind != kind or before is None:
            continue
        now, then = stream.counters.get(name), before.counters.get(name)
        if now is None or then is None:
            continue
        total = (total or 0.0) + max(0.0, now - then)
    return total


def _current_max(previous: WebrtcSnapshot, current: WebrtcSnapshot, kind: str, name: str) -> float | None:
    values = [
        s.counters[name]
        for stream_id, s in current.inbound.items()
        if s.kind == kind and stream_id in previous.inbound and name in s.counters
    ]
    return max(values) if values else None


def _loss_pct(lost: float | None, received: float | None) -> float | None:
    if lost is None or received is None or lost + received <= 0:
        return None
    return 100.0 * lost / (lost + received)


def _times(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def interval_report(previous: WebrtcSnapshot, current: WebrtcSnapshot) -> QualityReport:
    """The version-1 report for the interval between two snapshots of one peer connection."""
    elapsed_ms = float(current.ts_ms - previous.ts_ms)
    seconds = elapsed_ms / 1000.0
    blocks: dict[str, AudioStats | VideoStats | None] = {}
    for kind in ("audio", "video"):
        if not any(s.kind == kind and i in previous.inbound for i, s in current.inbound.items()):
            blocks[kind] = None
            continue
        loss = _loss_pct(
            _delta(previous, current, kind, "packetsLost"), _delta(previous, current, kind, "packetsReceived")
        )
        jitter = _times(_current_max(previous, current, kind, "jitter"), 1000.0)
        received_bytes = _delta(previous, current, kind, "bytesReceived")
        bitrate = None if received_bytes is None else received_bytes * 8.0 / elapsed_ms
        if kind == "video":
            frames = _delta(previous, current, kind, "framesDecoded")
            frozen = _delta(previous, current, kind, "totalFreezesDuration")
            blocks[kind] = VideoStats(
                active_ms=elapsed_ms,
                # A freeze is added when it ends, so one that began before this interval can exceed it.
                freeze_ms=None if frozen is None else min(frozen * 1000.0, elapsed_ms),
                fps=None if frames is None else frames / seconds,
                loss_pct=loss,
                jitter_ms=jitter,
                bitrate_kbps=bitrate,
            )
        else:
            common = [k for k in current.synthesized_s if k in previous.synthesized_s]
            synthesized = sum(max(0.0, current.synthesized_s[k] - previous.synthesized_s[k]) for k in common)
            blocks[kind] = AudioStats(
                active_ms=elapsed_ms,
                freeze_ms=min(synthesized * 1000.0, elapsed_ms) if common else None,
                loss_pct=loss,
                jitter_ms=jitter,
                bitrate_kbps=bitrate,
            )
    audio, video = blocks["audio"], blocks["video"]
    assert audio is None or isinstance(audio, AudioStats)
    assert video is None or isinstance(video, VideoStats)
    return QualityReport(
        app_id=current.app_id,
        session_id=current.session_id,
        ts_ms=current.ts_ms,
        interval_ms=elapsed_ms,
        audio=audio,
        video=video,
        net=NetStats(rtt_ms=current.rtt_s * 1000.0) if current.rtt_s is not None else None,
        labels=dict(current.labels),
        **current.strings,  # type: ignore[arg-type]  # exactly the STRING_FIELDS keywords
    )


class WebrtcConverter:
    """Keeps the previous snapshot per (app_id, session_id), bounded by count (LRU) and by event-time age."""

    def __init__(self, *, max_sessions: int = 200_000, ttl_ms: int = 10 * 60_000) -> None:
        self.max_sessions = max_sessions
        self.ttl_ms = ttl_ms
        self._previous: OrderedDict[tuple[str, str], WebrtcSnapshot] = OrderedDict()
        self._newest_ts = 0
        self.primed = 0
        self.resets = 0
        self.out_of_order = 0

    def __len__(self) -> int:
        return len(self._previous)

    def convert_one(self, snapshot: WebrtcSnapshot) -> QualityReport | None:
        """The interval report since this session's previous snapshot, or None while (re)priming."""
        key = (snapshot.app_id, snapshot.session_id)
        previous = self._previous.get(key)
        if previous is not None and snapshot.ts_ms <= previous.ts_ms:
            self.out_of_order += 1  # a resent or reordered snapshot: nothing new to say
            return None
        self._remember(key, snapshot)
        if previous is None or snapshot.ts_ms - previous.ts_ms > self.ttl_ms:
            self.primed += 1
            return None
        if _went_backwards(previous, snapshot):
            self.resets += 1  # a new peer connection: this snapshot primes again
            return None
        return interval_report(previous, snapshot)

    def convert(self, snapshots: Iterable[WebrtcSnapshot]) -> ReportBatch:
        """Convert snapshots in order; the emitted reports as a columnar batch."""
        reports = [r for r in map(self.convert_one, sorted(snapshots, key=lambda s: s.ts_ms)) if r is not None]
        return ReportBatch.from_reports(reports)

    def _remember(self, key: tuple[str, str], snapshot: WebrtcSnapshot) -> None:
        self._previous[key] = snapshot
        self._previous.move_to_end(key)
        self._newest_ts = max(self._newest_ts, snapshot.ts_ms)
        while len(self._previous) > self.max_sessions:
            self._previous.popitem(last=False)
        # Least recently updated first: stop at the first entry young enough to keep.
        horizon = self._newest_ts - self.ttl_ms
        while self._previous:
            oldest_key, oldest = next(iter(self._previous.items()))
            if oldest.ts_ms >= horizon:
                break
            del self._previous[oldest_key]

"""Validation of one report object (the reference rules; parse.py applies the same rules to whole columns)."""

from __future__ import annotations

import math
from datetime import datetime
from functools import lru_cache
from typing import Any, Final

from zhiban.core.errors import InvalidInput
from zhiban.telemetry.model import (
    AUDIO_FIELDS,
    EVENT_TYPES,
    MAX_DIMENSION_LEN,
    MAX_EVENT_TEXT_LEN,
    MAX_EVENTS,
    MAX_ID_LEN,
    MAX_LABEL_KEY_LEN,
    MAX_LABEL_VALUE_LEN,
    MAX_LABELS,
    MAX_TS_MS,
    MIN_TS_MS,
    NET_FIELDS,
    RANGES,
    STRING_FIELDS,
    VIDEO_FIELDS,
    AudioStats,
    Event,
    LabelValue,
    NetStats,
    QualityReport,
    VideoStats,
    datetime_to_ms,
)

BLOCK_FIELDS: Final = {"audio": AUDIO_FIELDS, "video": VIDEO_FIELDS, "net": NET_FIELDS}
KNOWN_FIELDS: Final = frozenset(
    {"v", "format", "app_id", "ts", "session_id", "interval_ms", "events", "av_sync_ms", *BLOCK_FIELDS, *STRING_FIELDS}
)
WEBRTC_FORMAT: Final = "webrtc-stats"


def _fail(reason: str) -> InvalidInput:
    return InvalidInput(reason)


@lru_cache(maxsize=4096)
def parse_rfc3339_ms(text: str) -> int | None:
    """RFC 3339 timestamp → epoch ms, or None when it is not one (a zone is required)."""
    if len(text) > 40 or len(text) < 20 or text[4:5] != "-" or text[10:11] not in ("T", "t", " "):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return datetime_to_ms(moment)


def parse_ts(value: object) -> int:
    """A report's `ts` (RFC 3339 string or epoch milliseconds) → epoch ms, range-checked."""
    if isinstance(value, str):
        ms = parse_rfc3339_ms(value)
        if ms is None:
            raise _fail("ts must be an RFC 3339 timestamp with a zone, or epoch milliseconds")
    elif type(value) is int or type(value) is float:
        if not math.isfinite(value):
            raise _fail("ts must be finite")
        ms = math.floor(value)
    else:
        raise _fail("ts must be an RFC 3339 string or epoch milliseconds")
    if not MIN_TS_MS <= ms < MAX_TS_MS:
        raise _fail("ts is out of range (expects epoch milliseconds between 2000 and 2100)")
    return ms


def check_number(value: object, name: str, range_name: str | None = None) -> float | None:
    """None stays None; a number must lie in the field's range; bools and strings are refused."""
    if value is None:
        return None
    if type(value) is not int and type(value) is not float:
        raise _fail(f"{name} must be a number")
    low, high = RANGES[range_name or name.rsplit(".", 1)[-1]]
    if not low <= value <= high:  # also refuses NaN
        raise _fail(f"{name} must be within {low:g}..{high:g}")
    return float(value)


def check_string(value: object, name: str, max_len: int, *, required: bool = False) -> str | None:
    """A bounded string (or None when optional)."""
    if value is None and not required:
        return None
    if type(value) is not str:
        raise _fail(f"{name} must be a string")
    if required and not value:
        raise _fail(f"{name} must not be empty")
    if len(value) > max_len:
        raise _fail(f"{name} is longer than {max_len} characters")
    return value


def _block(report: dict[str, Any], block_name: str) -> dict[str, float | None] | None:
    raw = report.get(block_name)
    if raw is None:
        return None
    if type(raw) is not dict:
        raise _fail(f"{block_name} must be an object")
    values = {name: check_number(raw.get(name), f"{block_name}.{name}") for name in BLOCK_FIELDS[block_name]}
    active, freeze = values.get("active_ms"), values.get("freeze_ms")
    if active is not None and freeze is not None and freeze > active:
        raise _fail(f"{block_name}.freeze_ms exceeds {block_name}.active_ms")
    if all(value is None for value in values.values()):
        return None  # an empty block measured nothing
    return values


def check_event(raw: object, position: int) -> Event:
    """One entry of `events`."""
    where = f"events[{position}]"
    if type(raw) is not dict:
        raise _fail(f"{where} must be an object")
    kind = raw.get("type")
    if kind not in EVENT_TYPES:
        raise _fail(f"{where}.type must be one of {', '.join(sorted(EVENT_TYPES))}")
    ok = raw.get("ok")
    if ok is not None and type(ok) is not bool:
        raise _fail(f"{where}.ok must be a boolean")
    code = raw.get("error_code", raw.get("code"))
    if code is not None and type(code) is not int:
        code = check_string(code, f"{where}.code", MAX_EVENT_TEXT_LEN)
    return Event(
        type=str(kind),
        ok=ok,
        latency_ms=check_number(raw.get("latency_ms"), f"{where}.latency_ms"),
        code=code,
        reason=check_string(raw.get("reason"), f"{where}.reason", MAX_EVENT_TEXT_LEN),
        message=check_string(raw.get("message"), f"{where}.message", MAX_EVENT_TEXT_LEN),
    )


def check_events(raw: object) -> tuple[Event, ...]:
    """The `events` list: bounded, each entry valid."""
    if raw is None:
        return ()
    if type(raw) is not list:
        raise _fail("events must be a list")
    if len(raw) > MAX_EVENTS:
        raise _fail(f"events has more than {MAX_EVENTS} entries")
    return tuple(check_event(item, i) for i, item in enumerate(raw))


def check_labels(report: dict[str, Any]) -> dict[str, LabelValue]:
    """Unknown top-level fields become labels: bounded in number and size, scalar values only."""
    labels: dict[str, LabelValue] = {}
    for key, value in report.items():
        if key in KNOWN_FIELDS:
            continue
        if len(labels) >= MAX_LABELS:
            raise _fail(f"more than {MAX_LABELS} extra fields")
        if len(key) > MAX_LABEL_KEY_LEN:
            raise _fail(f"extra field name longer than {MAX_LABEL_KEY_LEN} characters")
        if isinstance(value, str):
            if len(value) > MAX_LABEL_VALUE_LEN:
                raise _fail(f"extra field {key!r} is longer than {MAX_LABEL_VALUE_LEN} characters")
        elif value is not None and not isinstance(value, int | float | bool):
            raise _fail(f"extra field {key!r} must be a string, number, boolean or null")
        labels[key] = value
    return labels


def check_header(report: object) -> dict[str, Any]:
    """The parts every report shares: an object, v == 1, a known format."""
    if type(report) is not dict:
        raise _fail("a report must be a JSON object")
    v = report.get("v")
    if v is None:
        raise _fail("v is required")
    if type(v) is not int or v != 1:
        raise _fail("v must be 1")
    fmt = report.get("format")
    if fmt is not None and fmt != WEBRTC_FORMAT:
        raise _fail(f"format must be {WEBRTC_FORMAT!r} when given")
    for name in ("app_id", "ts", "session_id"):
        if report.get(name) is None:
            raise _fail(f"{name} is required")
    return report


def validate_report(report: object) -> QualityReport:
    """Validate one version-1 report object and return it typed; raises InvalidInput with the reason."""
    raw = check_header(report)
    if raw.get("format") is not None:
        raise _fail("webrtc-stats snapshots are converted by WebrtcConverter, not validated as reports")
    app_id = check_string(raw["app_id"], "app_id", MAX_ID_LEN, required=True)
    session_id = check_string(raw["session_id"], "session_id", MAX_ID_LEN, required=True)
    assert app_id is not None and session_id is not None
    strings = {name: check_string(raw.get(name), name, MAX_DIMENSION_LEN) for name in STRING_FIELDS}
    audio, video, net = _block(raw, "audio"), _block(raw, "video"), _block(raw, "net")
    return QualityReport(
        app_id=app_id,
        session_id=session_id,
        ts_ms=parse_ts(raw["ts"]),
        interval_ms=check_number(raw.get("interval_ms"), "interval_ms"),
        events=check_events(raw.get("events")),
        audio=AudioStats(**audio) if audio is not None else None,
        video=VideoStats(**video) if video is not None else None,
        net=NetStats(**net) if net is not None else None,
        av_sync_ms=check_number(raw.get("av_sync_ms"), "av_sync_ms"),
        labels=check_labels(raw),
        **strings,
    )

"""Plain version-1 report lines decoded straight into typed structs (msgspec), then into columns.

The typed decoder accepts a line only when the reference path (orjson + validate.py's rules) would accept
it with the same values: every field is typed and bounded, and unknown fields are refused at every level
(top-level ones become labels, and a skipped value would escape the JSON checks orjson makes). What it
refuses, parse.py settles on the reference path, so rejections keep their index and reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import compress
from math import floor, nan
from typing import Annotated, Any, Final, Literal

import msgspec
import numpy as np
from msgspec import UNSET, Meta, UnsetType, defstruct
from msgspec.structs import astuple
from numpy.typing import NDArray

from zhiban.telemetry.batch import ReportBatch, join_columns
from zhiban.telemetry.model import (
    EVENT_TYPES,
    MAX_DIMENSION_LEN,
    MAX_EVENT_TEXT_LEN,
    MAX_EVENTS,
    MAX_ID_LEN,
    MAX_TS_MS,
    MIN_TS_MS,
    NUMERIC_FIELDS,
    RANGES,
    STRING_FIELDS,
    Event,
)
from zhiban.telemetry.validate import BLOCK_FIELDS, parse_rfc3339_ms

# The numeric fields as the rows of one (field, report) matrix: the block fields in BLOCK_FIELDS order,
# then interval_ms and av_sync_ms, with the name of each one's range.
MATRIX: Final = (
    *((f"{block}_{name}", name) for block, names in BLOCK_FIELDS.items() for name in names),
    ("interval_ms", "interval_ms"),
    ("av_sync_ms", "av_sync_ms"),
)
MATRIX_FIELDS: Final = tuple(column for column, _ in MATRIX)
NUMERIC_ROW: Final = {name: MATRIX_FIELDS.index(name) for name in NUMERIC_FIELDS}
FREEZE_ACTIVE: Final = tuple(
    (MATRIX_FIELDS.index(f"{block}_freeze_ms"), MATRIX_FIELDS.index(f"{block}_active_ms"))
    for block, names in BLOCK_FIELDS.items()
    if "freeze_ms" in names
)


def _measure(range_name: str) -> Any:
    """A number within the field's range, or null (not measured)."""
    low, high = RANGES[range_name]
    return Annotated[float, Meta(ge=low, le=high)] | None


def _text(max_len: int) -> Any:
    return Annotated[str, Meta(max_length=max_len)]


# orjson turns integers beyond 64 bits into floats (which validate.py refuses as codes) where msgspec would
# keep them as ints: codes outside int64 (msgspec's widest bound) are left to the reference path.
_CODE: Final[Any] = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)] | _text(MAX_EVENT_TEXT_LEN)
# Epoch milliseconds: floor(ts) lies in [MIN_TS_MS, MAX_TS_MS) exactly when ts does (the bounds are integers).
_TS: Final[Any] = (
    Annotated[int, Meta(ge=MIN_TS_MS, lt=MAX_TS_MS)] | Annotated[float, Meta(ge=MIN_TS_MS, lt=MAX_TS_MS)] | str
)


def _struct(name: str, fields: list[tuple[str, Any] | tuple[str, Any, Any]]) -> Any:
    # gc=False: their values (strings, numbers, structs, lists of structs) never form a cycle.
    return defstruct(name, fields, frozen=True, gc=False, forbid_unknown_fields=True)


_BLOCK_STRUCTS: Final[dict[str, Any]] = {
    block: _struct(f"{block.title()}Line", [(name, _measure(name), nan) for name in names])
    for block, names in BLOCK_FIELDS.items()
}
# A missing block is a block with nothing measured: every field NaN.
_EMPTY_BLOCKS: Final = {block: struct() for block, struct in _BLOCK_STRUCTS.items()}
_EVENT_LINE: Final[Any] = _struct(
    "EventLine",
    [
        ("type", str),  # checked against EVENT_TYPES when converted
        ("ok", bool | None, None),
        ("latency_ms", _measure("latency_ms"), None),
        ("error_code", _CODE | None | UnsetType, UNSET),  # when present (even null) it wins over `code`
        ("code", _CODE | None, None),
        ("reason", _text(MAX_EVENT_TEXT_LEN) | None, None),
        ("message", _text(MAX_EVENT_TEXT_LEN) | None, None),
    ],
)
_EVENTS: Final[Any] = Annotated[list[_EVENT_LINE], Meta(max_length=MAX_EVENTS)] | None
_ID: Final[Any] = Annotated[str, Meta(min_length=1, max_length=MAX_ID_LEN)]
REPORT_LINE: Final = _struct(
    "ReportLine",
    [
        ("v", Literal[1]),
        ("app_id", _ID),
        ("session_id", _ID),
        ("ts", _TS),
        ("format", None, None),  # a webrtc-stats snapshot (or any format) is the reference path's
        ("interval_ms", _measure("interval_ms"), nan),
        *((name, _text(MAX_DIMENSION_LEN) | None, None) for name in STRING_FIELDS),
        ("events", _EVENTS, None),
        *((block, struct | None, _EMPTY_BLOCKS[block]) for block, struct in _BLOCK_STRUCTS.items()),
        ("av_sync_ms", _measure("av_sync_ms"), nan),
    ],
)
_AT: Final = {name: i for i, name in enumerate(REPORT_LINE.__struct_fields__)}
_DECODE: Final = msgspec.json.Decoder(REPORT_LINE).decode


def decode(lines: Sequence[bytes]) -> tuple[list[Any], list[int], list[int]]:
    """Typed reports, their positions in `lines`, and the positions of the lines the typed decoder refused."""
    decode_one = _DECODE
    try:
        rows = [decode_one(line) for line in lines]
        return rows, list(range(len(lines))), []
    except ValueError:  # msgspec.DecodeError, or UnicodeDecodeError for bytes that are not UTF-8
        pass
    rows = []
    kept: list[int] = []
    refused: list[int] = []
    for i, line in enumerate(lines):
        try:
            rows.append(decode_one(line))
        except ValueError:
            refused.append(i)
        else:
            kept.append(i)
    return rows, kept, refused


class _UnknownEvent(Exception):
    """An event type outside EVENT_TYPES (the reference path words the rejection)."""


def _event(line: Any) -> Event:
    if line.type not in EVENT_TYPES:
        raise _UnknownEvent
    return Event(
        type=line.type,
        ok=line.ok,
        latency_ms=line.latency_ms,
        code=line.code if line.error_code is UNSET else line.error_code,
        reason=line.reason,
        message=line.message,
    )


def _ts_ms(column: tuple[Any, ...], bad: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Epoch ms per report; a timestamp string that is not RFC 3339 or out of range marks its row bad."""
    kinds = set(map(type, column))
    if kinds == {int}:
        return np.array(column, dtype=np.int64)
    if str not in kinds:  # numbers the decoder range-checked: floor, as validate.parse_ts does
        return np.floor(np.array(column, dtype=np.float64)).astype(np.int64)
    parsed = {text: parse_rfc3339_ms(text) for text in set(column) if type(text) is str}
    out = np.zeros(len(column), dtype=np.int64)
    for i, value in enumerate(column):
        ms = parsed[value] if type(value) is str else floor(value)
        if ms is None or not MIN_TS_MS <= ms < MAX_TS_MS:
            bad[i] = True
        else:
            out[i] = ms
    return out


def _numbers(columns: list[tuple[Any, ...]], n: int) -> NDArray[np.float64]:
    """The MATRIX of the reports (NaN where not measured)."""
    rows: list[Sequence[Any]] = []
    for block, empty in _EMPTY_BLOCKS.items():
        blocks = columns[_AT[block]]
        if None in blocks:  # a null block: nothing measured
            blocks = tuple(empty if b is None else b for b in blocks)
        rows.extend(zip(*map(astuple, blocks), strict=True))
    rows.append(columns[_AT["interval_ms"]])
    rows.append(columns[_AT["av_sync_ms"]])
    return np.array(rows, dtype=np.float64).reshape(len(MATRIX), n)  # (a null number becomes NaN)


def report_batch(rows: list[Any]) -> tuple[ReportBatch, NDArray[np.bool_]]:
    """Columns of typed reports, and the rows that still fail a cross-field rule (for the reference path)."""
    n = len(rows)
    bad = np.zeros(n, dtype=bool)
    if not n:
        return ReportBatch.empty(), bad
    columns = list(zip(*map(astuple, rows), strict=True))
    ts_ms = _ts_ms(columns[_AT["ts"]], bad)
    matrix = _numbers(columns, n)
    for freeze, active in FREEZE_ACTIVE:  # (NaN compares false: a missing value breaks no rule)
        bad |= matrix[freeze] > matrix[active]
    event_lines = columns[_AT["events"]]
    events: dict[int, tuple[Event, ...]] = {}
    for i in compress(range(n), event_lines):  # rows with a non-empty events list
        try:
            events[i] = tuple(map(_event, event_lines[i]))
        except _UnknownEvent:
            bad[i] = True
    attempts, successes, latency_row, latency_ms = join_columns(events, n)
    batch = ReportBatch(
        app_id=list(columns[_AT["app_id"]]),
        session_id=list(columns[_AT["session_id"]]),
        ts_ms=ts_ms,
        strings={name: list(columns[_AT[name]]) for name in STRING_FIELDS},
        values={name: matrix[row] for name, row in NUMERIC_ROW.items()},
        join_attempts=attempts,
        join_successes=successes,
        join_latency_row=latency_row,
        join_latency_ms=latency_ms,
        events=events,
    )
    return batch, bad

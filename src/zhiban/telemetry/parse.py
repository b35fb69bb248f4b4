"""Batches on the wire (JSON array or NDJSON, optionally gzip) → validated columnar reports."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from math import nan
from typing import Any, Final

import numpy as np
import orjson
from numpy.typing import NDArray

from zhiban.core.errors import InvalidInput, TooLarge
from zhiban.telemetry import typed
from zhiban.telemetry.batch import ReportBatch, join_columns
from zhiban.telemetry.model import (
    MAX_DIMENSION_LEN,
    MAX_ID_LEN,
    MAX_TS_MS,
    MIN_TS_MS,
    RANGES,
    STRING_FIELDS,
    Event,
    LabelValue,
    QualityReport,
    Rejection,
)
from zhiban.telemetry.typed import FREEZE_ACTIVE, MATRIX, NUMERIC_ROW
from zhiban.telemetry.validate import (
    BLOCK_FIELDS,
    KNOWN_FIELDS,
    WEBRTC_FORMAT,
    check_events,
    check_labels,
    parse_rfc3339_ms,
    validate_report,
)
from zhiban.telemetry.webrtc import WebrtcSnapshot, parse_snapshot

MAX_REPORTS: Final = 10_000
MAX_BYTES: Final = 16 * 1024 * 1024
MAX_DECOMPRESSED: Final = 64 * 1024 * 1024
_GZIP_MAGIC: Final = b"\x1f\x8b"
_NUMBER_TYPES: Final = frozenset({int, float})
_EMPTY: Final[dict[str, Any]] = {}


# The numeric fields' ranges as (field, 1) arrays, rows in typed.MATRIX order, so that one comparison checks
# every field of a chunk.
_LOW: Final = np.array([[RANGES[range_name][0]] for _, range_name in MATRIX], dtype=np.float64)
_HIGH: Final = np.array([[RANGES[range_name][1]] for _, range_name in MATRIX], dtype=np.float64)


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


class _Unparseable:
    """Marks an NDJSON line that is not JSON."""


_BAD_LINE: Final = _Unparseable()


@dataclass(eq=False)
class BatchResult:
    """What a batch yielded: version-1 reports (columnar), webrtc-stats snapshots, and the refused ones."""

    batch: ReportBatch
    rejected: list[Rejection]
    webrtc: list[WebrtcSnapshot] = field(default_factory=list)
    # Position in the submitted batch of each row of `batch` (NDJSON: among non-blank lines).
    accepted_index: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    # The submitted items (split_items): NDJSON lines as received, or a JSON array's decoded items.
    entries: list[Any] = field(default_factory=list)

    @property
    def reports(self) -> list[QualityReport]:
        """The accepted version-1 reports as objects (materialized on demand)."""
        return self.batch.reports()


def decompress(data: bytes, *, max_decompressed: int = MAX_DECOMPRESSED) -> bytes:
    """Gunzip (all members) without ever holding more than max_decompressed bytes."""
    out: list[bytes] = []
    produced = 0
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        try:
            chunk = inflater.decompress(rest, max_decompressed - produced + 1)
        except zlib.error as exc:
            raise InvalidInput(f"body is not valid gzip: {exc}") from None
        produced += len(chunk)
        if produced > max_decompressed or inflater.unconsumed_tail:
            raise TooLarge(f"batch inflates to more than {max_decompressed} bytes")
        if not inflater.eof:
            raise InvalidInput("gzip body is truncated")
        out.append(chunk)
        rest = inflater.unused_data.lstrip(b"\x00")
        if rest and not rest.startswith(_GZIP_MAGIC):
            raise InvalidInput("trailing bytes after the gzip body")
    return b"".join(out)


def split_items(body: bytes, *, max_reports: int = MAX_REPORTS) -> list[Any] | list[bytes]:
    """A JSON array → its decoded items; NDJSON → its non-blank lines, still encoded."""
    text = body.lstrip()
    if not text:
        raise InvalidInput("empty batch")
    if text[:1] == b"[":
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"body is not valid JSON: {exc}") from None
        if type(items) is not list:
            raise InvalidInput("a batch must be a JSON array or NDJSON")
        if len(items) > max_reports:
            raise TooLarge(f"batch has more than {max_reports} reports")
        return items
    lines = text.rstrip().split(b"\n")
    if b"" in lines or b"\r" in lines:  # (a list scan: far cheaper than searching the bytes)
        lines = [line for line in lines if line.strip()]
    if len(lines) > max_reports:
        raise TooLarge(f"batch has more than {max_reports} reports")
    return lines


def decode_lines(lines: list[bytes]) -> list[Any]:
    """One decoded item per NDJSON line (_BAD_LINE where a line is not JSON)."""
    loads = orjson.loads
    try:
        return [loads(line) for line in lines]
    except orjson.JSONDecodeError:
        pass
    items: list[Any] = []
    for line in lines:
        try:
            items.append(loads(line))
        except orjson.JSONDecodeError:
            items.append(_BAD_LINE)
    return items


# Reports are decoded and checked this many at a time: column passes over a chunk that was just
# decoded hit the CPU cache; over a whole batch (~6 MB of dicts) they miss it (measured: ~40 % slower).
_CHUNK: Final = 500


def parse_batch(
    data: bytes,
    *,
    max_reports: int = MAX_REPORTS,
    max_bytes: int = MAX_BYTES,
    max_decompressed: int = MAX_DECOMPRESSED,
    typed_decode: bool = True,
) -> BatchResult:
    """Parse and validate a batch; bad reports are rejected one by one, limits refuse the whole batch.

    NDJSON lines go through the typed decoder (typed.py) and only the lines it refuses through orjson and
    the column checks; typed_decode=False sends every line the reference way (the result is the same).
    """
    if len(data) > max_bytes:
        raise TooLarge(f"batch is larger than {max_bytes} bytes")
    body = decompress(data, max_decompressed=max_decompressed) if data[:2] == _GZIP_MAGIC else data
    if len(body) > max_decompressed:
        raise TooLarge(f"batch is larger than {max_decompressed} bytes")
    # The cyclic GC stays on. Pausing it while decoding with orjson saved ~2 % here (number-only blocks
    # decode to untracked dicts; the typed structs are untracked anyway), but the pause is process-wide:
    # in a threaded server the other threads' young objects piled up meanwhile and re-enabling it set off
    # a collection walking all of them (~13 % of ingest time, profiled under the HTTP benchmark).
    entries = split_items(body, max_reports=max_reports)
    encoded = bool(entries) and type(entries[0]) is bytes  # JSON arrays never decode to bytes
    parts: list[BatchResult] = []
    any_object = False
    for offset in range(0, len(entries), _CHUNK):
        chunk = entries[offset : offset + _CHUNK]
        if not encoded:
            any_object = any_object or any(type(item) is dict for item in chunk)
            parts.append(_Columns(chunk, range(offset, offset + len(chunk))).result())
            continue
        refused: Sequence[int] = range(len(chunk))
        if typed_decode:
            rows, kept, refused = typed.decode(chunk)
            if rows:
                any_object = True
                part, refused = _typed_part(rows, kept, refused, offset)
                parts.append(part)
            # Mostly refused (labels on every report, say): the rest of the batch goes the reference way
            # at once rather than being decoded twice.
            typed_decode = 2 * len(refused) <= len(chunk)
        if refused:
            items = decode_lines([chunk[i] for i in refused])
            any_object = any_object or any(type(item) is dict for item in items)
            parts.append(_Columns(items, [offset + i for i in refused]).result())
    if not any_object:
        raise InvalidInput("batch holds no report objects")
    result = _joined(parts)
    result.entries = entries
    return result


def _typed_part(rows: list[Any], kept: list[int], refused: list[int], offset: int) -> tuple[BatchResult, list[int]]:
    """The typed reports as columns, and the lines for the reference path: those the typed decoder refused
    and those a cross-field rule refuses (the reference path words their rejection)."""
    batch, bad = typed.report_batch(rows)
    if bad.any():
        refused = sorted([*refused, *(kept[i] for i in np.flatnonzero(bad).tolist())])
        batch = batch.take(~bad)
        kept = list(compress(kept, (~bad).tolist()))
    return BatchResult(batch=batch, rejected=[], accepted_index=np.array(kept, dtype=np.int64) + offset), refused


def _joined(parts: list[BatchResult]) -> BatchResult:
    """One result from the parts, rows in submission order (a chunk's typed and reference rows interleave)."""
    if len(parts) == 1:
        result = parts[0]
    else:
        result = BatchResult(
            batch=ReportBatch.concat([p.batch for p in parts]),
            rejected=sorted((r for p in parts for r in p.rejected), key=lambda r: r.index),
            webrtc=[w for p in parts for w in p.webrtc],
            accepted_index=np.concatenate([p.accepted_index for p in parts]),
        )
    index = result.accepted_index
    if len(index) > 1 and not bool((index[1:] > index[:-1]).all()):
        order = np.argsort(index, kind="stable")
        result.batch = result.batch.take(order)
        result.accepted_index = index[order]
    return result


class _Columns:
    """Applies validate.py's rules to whole columns at once; rows that fail go through validate_report."""

    def __init__(self, items: list[Any], positions: Sequence[int]) -> None:
        self.items = items
        self.positions = positions  # of each item in the submitted batch
        self.n = len(items)
        self.bad = np.zeros(self.n, dtype=bool)
        self.webrtc_rows: list[int] = []
        if set(map(type, items)) == {dict}:
            self.objs = items
        else:
            self.objs = [item if type(item) is dict else _EMPTY for item in items]
            for i, item in enumerate(items):
                if type(item) is not dict:
                    self.bad[i] = True

    def _column(self, source: list[Any], key: str, default: Any = None) -> list[Any]:
        return list(map(dict.get, source, repeat(key), repeat(default)))

    def _mark(self, column: list[Any], row_ok: Callable[[Any], bool]) -> None:
        for i, value in enumerate(column):
            if not row_ok(value):
                self.bad[i] = True

    def _header(self) -> None:
        versions = self._column(self.objs, "v")
        if not (set(map(type, versions)) == {int} and set(versions) == {1}):
            self._mark(versions, lambda v: type(v) is int and v == 1)
        formats = self._column(self.objs, "format")
        if set(formats) != {None}:
            for i, fmt in enumerate(formats):
                if fmt == WEBRTC_FORMAT and not self.bad[i]:
                    self.webrtc_rows.append(i)
                if fmt is not None:
                    self.bad[i] = True  # not a plain report: handled below

    def _ids(self, key: str) -> list[Any]:
        column = self._column(self.objs, key)
        if not self._plain_strings(column, MAX_ID_LEN, required=True):
            self._mark(column, lambda v: type(v) is str and 1 <= len(v) <= MAX_ID_LEN)
        return column

    def _strings(self, key: str) -> list[Any]:
        column = self._column(self.objs, key)
        if not self._plain_strings(column, MAX_DIMENSION_LEN, required=False):
            self._mark(column, lambda v: v is None or (type(v) is str and len(v) <= MAX_DIMENSION_LEN))
        return column

    @staticmethod
    def _plain_strings(column: list[Any], max_len: int, *, required: bool) -> bool:
        """Whether every value is a bounded string (or None when optional), checked on distinct values."""
        try:
            distinct = set(column)
        except TypeError:  # an unhashable value (list, object) is certainly not a string
            return False
        if not required:
            distinct.discard(None)
            if not distinct:
                return True
        return (
            set(map(type, distinct)) == {str}
            and max(map(len, distinct)) <= max_len
            and (not required or "" not in distinct)
        )

    def _ts(self) -> NDArray[np.int64]:
        column = self._column(self.objs, "ts")
        kinds = set(map(type, column))
        out = np.zeros(self.n, dtype=np.int64)
        if kinds == {str}:
            parsed = {text: parse_rfc3339_ms(text) for text in set(column)}
            if all(ms is not None and MIN_TS_MS <= ms < MAX_TS_MS for ms in parsed.values()):
                out[:] = np.fromiter(map(parsed.__getitem__, column), dtype=np.int64, count=self.n)
                return out
        elif kinds <= _NUMBER_TYPES:
            try:
                numbers = np.floor(np.array(column, dtype=np.float64))
            except (OverflowError, ValueError):
                numbers = np.full(self.n, np.nan)
            in_range = (numbers >= MIN_TS_MS) & (numbers < MAX_TS_MS)
            self.bad |= ~in_range
            out[in_range] = numbers[in_range].astype(np.int64)
            return out
        for i, value in enumerate(column):
            if type(value) is str:
                ms = parse_rfc3339_ms(value)
            elif type(value) is int or type(value) is float:
                ms = int(value) if MIN_TS_MS <= value < MAX_TS_MS else None
            else:
                ms = None
            if ms is None or not MIN_TS_MS <= ms < MAX_TS_MS:
                self.bad[i] = True
            else:
                out[i] = ms
        return out

    def _numbers(self, source: list[Any], key: str) -> list[Any]:
        """A numeric field's column: numbers as sent, NaN where missing or null; other types marked bad."""
        column = self._column(source, key, nan)
        kinds = set(map(type, column))
        if not kinds <= _NUMBER_TYPES:
            if type(None) in kinds:
                column = [nan if v is None else v for v in column]
                kinds.discard(type(None))
            if not kinds <= _NUMBER_TYPES:
                for i, value in enumerate(column):
                    if type(value) is not int and type(value) is not float:
                        self.bad[i] = True
                        column[i] = nan
        return column

    def _blocks(self) -> dict[str, NDArray[np.float64]]:
        columns: list[list[Any]] = []
        for block_name, names in BLOCK_FIELDS.items():
            blocks = self._column(self.objs, block_name, _EMPTY)
            if set(map(type, blocks)) != {dict}:
                for i, block in enumerate(blocks):
                    if type(block) is not dict:
                        if block is not None:
                            self.bad[i] = True
                        blocks[i] = _EMPTY
            columns.extend(self._numbers(blocks, name) for name in names)
        columns.append(self._numbers(self.objs, "interval_ms"))
        columns.append(self._numbers(self.objs, "av_sync_ms"))
        # One matrix (a field per row) and one range check for all fields: a few numpy calls per chunk,
        # not a few per field.
        try:
            matrix = np.array(columns, dtype=np.float64)
        except OverflowError:  # an integer beyond float range: out of every range anyway
            matrix = np.array([[_to_float(v) for v in column] for column in columns], dtype=np.float64)
        with np.errstate(invalid="ignore"):  # NaN (not measured) is never out of range
            self.bad |= ((matrix < _LOW) | (matrix > _HIGH)).any(axis=0)
            for freeze, active in FREEZE_ACTIVE:
                self.bad |= matrix[freeze] > matrix[active]
        return {name: matrix[row] for name, row in NUMERIC_ROW.items()}

    def _events(self) -> dict[int, tuple[Event, ...]]:
        column = self._column(self.objs, "events")
        events: dict[int, tuple[Event, ...]] = {}
        for i, raw in enumerate(column):
            if raw is None:
                continue
            try:
                checked = check_events(raw)
            except InvalidInput:
                self.bad[i] = True
                continue
            if checked:
                events[i] = checked
        return events

    def _labels(self) -> dict[int, dict[str, LabelValue]]:
        labels: dict[int, dict[str, LabelValue]] = {}
        for i, plain in enumerate(map(KNOWN_FIELDS.issuperset, self.objs)):
            if plain:
                continue
            try:
                labels[i] = check_labels(self.objs[i])
            except InvalidInput:
                self.bad[i] = True
        return labels

    def result(self) -> BatchResult:
        self._header()
        app_id, session_id = self._ids("app_id"), self._ids("session_id")
        ts_ms = self._ts()
        strings = {name: self._strings(name) for name in STRING_FIELDS}
        values = self._blocks()
        events, labels = self._events(), self._labels()
        attempts, successes, latency_row, latency_ms = join_columns(events, self.n)
        batch = ReportBatch(
            app_id=app_id,
            session_id=session_id,
            ts_ms=ts_ms,
            strings=strings,
            values=values,
            join_attempts=attempts,
            join_successes=successes,
            join_latency_row=latency_row,
            join_latency_ms=latency_ms,
            events=events,
            labels=labels,
        )
        accepted = np.array(self.positions, dtype=np.int64)
        if not self.bad.any():
            return BatchResult(batch=batch, rejected=[], accepted_index=accepted)
        good = ~self.bad
        batch = batch.take(good)
        accepted = accepted[good]
        return self._settle_bad_rows(batch, accepted)

    def _settle_bad_rows(self, batch: ReportBatch, accepted: NDArray[np.int64]) -> BatchResult:
        """Rows the column checks flagged: webrtc snapshots, or rejections with validate_report's reason."""
        rejected: list[Rejection] = []
        snapshots: list[WebrtcSnapshot] = []
        webrtc_rows = set(self.webrtc_rows)
        rescued: list[QualityReport] = []
        rescued_index: list[int] = []
        for i in compress(range(self.n), self.bad.tolist()):
            item = self.items[i]
            try:
                if item is _BAD_LINE:
                    raise InvalidInput("line is not valid JSON")
                if i in webrtc_rows:
                    snapshots.append(parse_snapshot(item))
                    continue
                # The column checks and validate_report agree (tested); should they not, the report wins.
                rescued.append(validate_report(item))
                rescued_index.append(self.positions[i])
            except InvalidInput as exc:
                rejected.append(Rejection(self.positions[i], exc.detail))
        if rescued:
            batch = ReportBatch.concat([batch, ReportBatch.from_reports(rescued)])
            accepted = np.concatenate([accepted, np.array(rescued_index, dtype=np.int64)])
        return BatchResult(batch=batch, rejected=rejected, webrtc=snapshots, accepted_index=accepted)

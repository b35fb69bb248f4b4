"""A columnar batch of version-1 reports: the representation the hot path (dedup, aggregation) works on."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from zhiban.telemetry.hashing import combine, hash_strings
from zhiban.telemetry.model import (
    AUDIO_FIELDS,
    NET_FIELDS,
    NUMERIC_FIELDS,
    STRING_FIELDS,
    VIDEO_FIELDS,
    AudioStats,
    Event,
    LabelValue,
    NetStats,
    QualityReport,
    VideoStats,
)

T = TypeVar("T")
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

_BLOCKS: tuple[tuple[str, tuple[str, ...], type[AudioStats] | type[VideoStats] | type[NetStats]], ...] = (
    ("audio", AUDIO_FIELDS, AudioStats),
    ("video", VIDEO_FIELDS, VideoStats),
    ("net", NET_FIELDS, NetStats),
)


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else value


def _picker(picked: list[int]) -> Callable[[list[T]], list[T]]:
    """Selects `picked` positions of a list (itemgetter: about twice as fast as a comprehension)."""
    if len(picked) > 1:
        getter = itemgetter(*picked)
        return lambda column: list(getter(column))
    return lambda column: [column[i] for i in picked]


@dataclass(eq=False)
class ReportBatch:
    """Reports as columns; numeric NaN = not measured, string None = not given."""

    app_id: list[str]
    session_id: list[str]
    ts_ms: IntArray
    strings: dict[str, list[str | None]]
    values: dict[str, FloatArray]
    join_attempts: IntArray
    join_successes: IntArray
    # Successful join latencies, ragged: one entry per successful join event, pointing at its row.
    join_latency_row: IntArray
    join_latency_ms: FloatArray
    # Sparse per-row extras (most reports have neither).
    events: dict[int, tuple[Event, ...]] = field(default_factory=dict)
    labels: dict[int, dict[str, LabelValue]] = field(default_factory=dict)
    _session_keys: NDArray[np.uint64] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.app_id)

    def session_keys(self) -> NDArray[np.uint64]:
        """Stable 64-bit hash of (app_id, session_id) per row (computed once)."""
        if self._session_keys is None:
            apps: dict[str, int] = {}
            first = np.fromiter(map(apps.setdefault, self.app_id, range(len(self))), dtype=np.int64, count=len(self))
            app_hash = np.zeros(len(self), dtype=np.uint64)
            if len(self):
                app_hash[list(apps.values())] = hash_strings(list(apps))
            self._session_keys = combine(app_hash[first], hash_strings(self.session_id))
        return self._session_keys

    @classmethod
    def empty(cls) -> ReportBatch:
        """A batch with no reports."""
        return cls.from_reports(())

    @classmethod
    def from_reports(cls, reports: Iterable[QualityReport]) -> ReportBatch:
        """Build columns from report objects (the slow, convenient path)."""
        rows = list(reports)
        n = len(rows)
        values = {name: np.full(n, np.nan) for name in NUMERIC_FIELDS}
        events: dict[int, tuple[Event, ...]] = {}
        labels: dict[int, dict[str, LabelValue]] = {}
        for i, report in enumerate(rows):
            if report.interval_ms is not None:
                values["interval_ms"][i] = report.interval_ms
            if report.av_sync_ms is not None:
                values["av_sync_ms"][i] = report.av_sync_ms
            for block_name, names, _ in _BLOCKS:
                block = getattr(report, block_name)
                if block is None:
                    continue
                for name in names:
                    value = getattr(block, name)
                    if value is not None:
                        values[f"{block_name}_{name}"][i] = value
            if report.events:
                events[i] = report.events
            if report.labels:
                labels[i] = dict(report.labels)
        attempts, successes, latency_row, latency_ms = join_columns(events, n)
        return cls(
            app_id=[r.app_id for r in rows],
            session_id=[r.session_id for r in rows],
            ts_ms=np.array([r.ts_ms for r in rows], dtype=np.int64),
            strings={name: [getattr(r, name) for r in rows] for name in STRING_FIELDS},
            values=values,
            join_attempts=attempts,
            join_successes=successes,
            join_latency_row=latency_row,
            join_latency_ms=latency_ms,
            events=events,
            labels=labels,
        )

    def report(self, i: int) -> QualityReport:
        """Materialize row i as a QualityReport."""
        blocks: dict[str, AudioStats | VideoStats | NetStats | None] = {}
        for block_name, names, kind in _BLOCKS:
            measured = {name: _none_if_nan(float(self.values[f"{block_name}_{name}"][i])) for name in names}
            blocks[block_name] = kind(**measured) if any(v is not None for v in measured.values()) else None
        audio, video, net = blocks["audio"], blocks["video"], blocks["net"]
        assert audio is None or isinstance(audio, AudioStats)
        assert video is None or isinstance(video, VideoStats)
        assert net is None or isinstance(net, NetStats)
        return QualityReport(
            app_id=self.app_id[i],
            session_id=self.session_id[i],
            ts_ms=int(self.ts_ms[i]),
            interval_ms=_none_if_nan(float(self.values["interval_ms"][i])),
            events=self.events.get(i, ()),
            audio=audio,
            video=video,
            net=net,
            av_sync_ms=_none_if_nan(float(self.values["av_sync_ms"][i])),
            labels=dict(self.labels.get(i, {})),
            **{name: self.strings[name][i] for name in STRING_FIELDS},
        )

    def reports(self) -> list[QualityReport]:
        """Materialize every row (for tests, storage and small batches; not the hot path)."""
        return [self.report(i) for i in range(len(self))]

    def take(self, rows: Sequence[int] | IntArray | NDArray[np.bool_]) -> ReportBatch:
        """The batch with the selected rows (indices or a boolean mask), in that order.

        Selecting every row in order returns this batch itself (batches are never mutated in place), so
        the hot path's usual "all fresh, all valid" selections cost nothing and keep the cached hashes.
        """
        index = np.asarray(rows)
        if index.dtype == np.bool_:
            if len(index) == len(self) and bool(index.all()):
                return self
            index = np.flatnonzero(index)
        index = index.astype(np.int64, copy=False)
        if len(index) == len(self) and (len(index) == 0 or bool((index == np.arange(len(index))).all())):
            return self
        position = np.full(len(self), -1, dtype=np.int64)
        position[index] = np.arange(len(index))
        keep = position[self.join_latency_row] >= 0 if len(self.join_latency_row) else np.zeros(0, bool)
        order = np.argsort(position[self.join_latency_row][keep], kind="stable")
        picked = index.tolist()
        pick = _picker(picked)
        return ReportBatch(
            app_id=pick(self.app_id),
            session_id=pick(self.session_id),
            ts_ms=self.ts_ms[index],
            strings={name: pick(col) for name, col in self.strings.items()},
            values={name: col[index] for name, col in self.values.items()},
            join_attempts=self.join_attempts[index],
            join_successes=self.join_successes[index],
            join_latency_row=position[self.join_latency_row][keep][order],
            join_latency_ms=self.join_latency_ms[keep][order],
            events={int(position[i]): e for i, e in self.events.items() if position[i] >= 0},
            labels={int(position[i]): lab for i, lab in self.labels.items() if position[i] >= 0},
        )

    @classmethod
    def concat(cls, batches: Sequence[ReportBatch]) -> ReportBatch:
        """One batch holding the rows of all, in order."""
        if len(batches) == 1:
            return batches[0]
        if not batches:
            return cls.empty()
        offsets = np.cumsum([0, *(len(b) for b in batches)])
        events: dict[int, tuple[Event, ...]] = {}
        labels: dict[int, dict[str, LabelValue]] = {}
        for offset, b in zip(offsets.tolist(), batches, strict=False):
            events.update({offset + i: e for i, e in b.events.items()})
            labels.update({offset + i: lab for i, lab in b.labels.items()})

        def joined(columns: Iterable[list[T]]) -> list[T]:
            return list(chain.from_iterable(columns))

        return cls(
            app_id=joined(b.app_id for b in batches),
            session_id=joined(b.session_id for b in batches),
            ts_ms=np.concatenate([b.ts_ms for b in batches]),
            strings={name: joined(b.strings[name] for b in batches) for name in STRING_FIELDS},
            values={name: np.concatenate([b.values[name] for b in batches]) for name in NUMERIC_FIELDS},
            join_attempts=np.concatenate([b.join_attempts for b in batches]),
            join_successes=np.concatenate([b.join_successes for b in batches]),
            join_latency_row=np.concatenate(
                [b.join_latency_row + off for b, off in zip(batches, offsets.tolist(), strict=False)]
            ),
            join_latency_ms=np.concatenate([b.join_latency_ms for b in batches]),
            events=events,
            labels=labels,
        )


def join_columns(
    events: dict[int, tuple[Event, ...]], n: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Join attempts and successes per row, and the latencies of successful joins with their rows."""
    attempts = np.zeros(n, np.int64)
    successes = np.zeros(n, np.int64)
    latency_row: list[int] = []
    latency_ms: list[float] = []
    for i, row_events in events.items():
        for event in row_events:
            if event.type == "join":
                attempts[i] += 1
                if event.ok:
                    successes[i] += 1
                    if event.latency_ms is not None:
                        latency_row.append(i)
                        latency_ms.append(event.latency_ms)
    return attempts, successes, np.array(latency_row, dtype=np.int64), np.array(latency_ms, dtype=np.float64)

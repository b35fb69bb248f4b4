"""Event-time tumbling windows per slice (app, or app × dimension value), vectorized over columnar batches.

Per open window and app the state is dense numpy: counters[key, counter], slots[key, sketch, bin] and
HyperLogLog registers[key, register]. A batch is turned into a (report × slice) key matrix once, and every
counter, sketch bin and register is updated with a handful of bincount/ufunc.at calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import numpy as np
from numpy.typing import NDArray

from zhiban.core.errors import InvalidInput
from zhiban.telemetry.batch import ReportBatch
from zhiban.telemetry.model import DEFAULT_AGGREGATE_DIMENSIONS, DIMENSIONS, datetime_to_ms, ms_to_datetime
from zhiban.telemetry.qoe import emodel_mos_array
from zhiban.telemetry.sketch import (
    HLL_REGISTERS,
    KEY_MIN,
    SLOTS,
    QuantileSketch,
    hll_estimates,
    hll_positions,
    value_slots,
)
from zhiban.telemetry.window import COUNTED, OTHER_VALUE, SKETCHED, SliceKey, WindowAggregate

_N_COUNTED: Final = len(COUNTED)
_N_SKETCHED: Final = len(SKETCHED)
_JOIN_LATENCY: Final = SKETCHED.index("join_latency_ms")
_NO_BINS: Final = np.zeros(0, dtype=np.int64)
# An open window counts its sketch cells sparse until they outnumber DENSE_AFTER or 1/DENSE_RATIO of its dense
# bins (sorting the cells at close then costs more than zeroing and scanning the dense block).
DENSE_AFTER = 250_000
DENSE_RATIO = 16


def _first(preferred: NDArray[np.float64], *fallbacks: NDArray[np.float64]) -> NDArray[np.float64]:
    """Element-wise first measured (non-NaN) value."""
    out = preferred
    for fallback in fallbacks:
        out = np.where(np.isnan(out), fallback, out)
    return out


def _both(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.bool_]:
    return ~(np.isnan(a) | np.isnan(b))


@dataclass(frozen=True, slots=True)
class _Derived:
    """Per-report inputs of the aggregates: counters (n × COUNTED) and sketch slots (n × SKETCHED)."""

    counters: NDArray[np.float64]
    slots: NDArray[np.int64]
    latency_slots: NDArray[np.int64]


def derive(batch: ReportBatch) -> _Derived:
    """What each report adds to a window: additive counters and the sketch bin of each percentile input."""
    v = batch.values
    n = len(batch)
    counters = np.empty((n, _N_COUNTED), dtype=np.float64)
    counters[:, 0] = 1.0
    counters[:, 1] = batch.join_attempts
    counters[:, 2] = batch.join_successes
    # A freeze rate needs both sides measured, else an unmeasured freeze would read as "no freeze".
    for column, media in ((3, "video"), (5, "audio")):
        freeze, active = v[f"{media}_freeze_ms"], v[f"{media}_active_ms"]
        both = _both(freeze, active)
        counters[:, column] = np.where(both, freeze, 0.0)
        counters[:, column + 1] = np.where(both, active, 0.0)
    downlink = v["net_downlink_loss_pct"]
    # MOS models voice: audio jitter/loss first.
    mos = emodel_mos_array(
        v["net_rtt_ms"],
        _first(v["audio_jitter_ms"], v["video_jitter_ms"]),
        _first(v["audio_loss_pct"], v["video_loss_pct"], downlink),
    )
    measured_mos = ~np.isnan(mos)
    counters[:, 7] = np.where(measured_mos, mos, 0.0)
    counters[:, 8] = measured_mos
    sketched = np.empty((n, _N_SKETCHED), dtype=np.float64)
    sketched[:, _JOIN_LATENCY] = np.nan  # ragged: handled from join_latency_ms
    sketched[:, 1] = _first(v["video_e2e_delay_ms"], v["audio_e2e_delay_ms"])
    sketched[:, 2] = _first(v["video_loss_pct"], v["audio_loss_pct"], downlink)
    sketched[:, 3] = v["net_rtt_ms"]
    sketched[:, 4] = _first(v["audio_jitter_ms"], v["video_jitter_ms"])
    sketched[:, 5] = np.abs(v["av_sync_ms"])
    return _Derived(counters, value_slots(sketched), value_slots(batch.join_latency_ms))


class _OpenWindow:
    """Accumulators of one app's window; rows are the app's slice keys.

    Counters and session registers are dense. Sketch bins start sparse, as the flat (row, sketch, slot)
    cells each report touched: a quiet window (night time, a small app) touches a few hundred of its
    ~7,000 bins per key, and a dense block (28 KB a key) cost more to zero, page in and scan at close
    than the counting itself (issue 16: replay of a sparse day). A busy window turns dense once its cells
    outnumber DENSE_AFTER or a share of its dense bins, and is counted in place from then on; both close to
    the same sketches.
    """

    __slots__ = ("cells", "counters", "n_cells", "registers", "slots", "touched")

    def __init__(self, capacity: int) -> None:
        self.counters = np.zeros((capacity, _N_COUNTED), dtype=np.float64)
        self.registers = np.zeros((capacity, HLL_REGISTERS), dtype=np.uint8)
        self.slots: NDArray[np.uint32] | None = None
        self.cells: list[NDArray[np.int64]] = []
        self.touched: list[NDArray[np.int64]] = []  # (sparse only) flat register positions set
        self.n_cells = 0

    @property
    def capacity(self) -> int:
        return self.counters.shape[0]

    def grow(self, capacity: int) -> None:
        """Make room for more slice keys, keeping what was counted."""
        for name in ("counters", "registers", "slots"):
            old = getattr(self, name)
            if old is None:
                continue
            new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: old.shape[0]] = old
            setattr(self, name, new)

    def count_cells(self, cells: NDArray[np.int64]) -> None:
        """Count one report value in each flat (row, sketch, slot) cell."""
        if self.slots is None:
            self.cells.append(cells)
            self.n_cells += len(cells)
            if self.n_cells <= DENSE_AFTER and self.n_cells * DENSE_RATIO <= self.capacity * _N_SKETCHED * SLOTS:
                return
            self.slots = np.zeros((self.capacity, _N_SKETCHED, SLOTS), dtype=np.uint32)
            cells = np.concatenate(self.cells)
            self.cells = []
            self.touched = []
        # (a dtype-matched operand keeps ufunc.at on numpy's fast path: ~15× faster than a Python int)
        np.add.at(self.slots.reshape(-1), cells, np.ones(len(cells), dtype=np.uint32))

    def set_registers(self, positions: NDArray[np.int64], ranks: NDArray[np.uint8]) -> None:
        """Session registers: the highest rank per flat (row, register) position."""
        np.maximum.at(self.registers.reshape(-1), positions, ranks)
        if self.slots is None:
            self.touched.append(positions)

    def nonzero_registers(self, rows: NDArray[np.int64]) -> NDArray[np.int64] | None:
        """Set registers per row, from the positions touched (sparse windows; None when dense)."""
        if self.slots is not None:
            return None
        touched = np.unique(np.concatenate(self.touched)) if self.touched else _NO_BINS
        return np.bincount(touched // HLL_REGISTERS, minlength=self.capacity)[rows]

    @property
    def nbytes(self) -> int:
        dense = self.slots.nbytes if self.slots is not None else 8 * self.n_cells
        return int(self.counters.nbytes + dense + self.registers.nbytes)


@dataclass(eq=False)
class _AppState:
    app_id: str
    keys: dict[tuple[int, str], int] = field(default_factory=dict)
    slices: list[SliceKey] = field(default_factory=list)
    max_ts: int = -(2**62)
    closed_until: int = -(2**62)
    windows: dict[int, _OpenWindow] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.slices.append(SliceKey(self.app_id))

    def key_id(self, dimension_index: int, dimension: str, value: str, budget: int) -> int:
        """Row of (dimension, value); past the budget, new values share one `(other)` row per dimension."""
        found = self.keys.get((dimension_index, value))
        if found is not None:
            return found
        if len(self.slices) >= budget:
            value = OTHER_VALUE
            found = self.keys.get((dimension_index, value))
            if found is not None:
                return found
        key = len(self.slices)
        self.keys[(dimension_index, value)] = key
        self.slices.append(SliceKey(self.app_id, dimension, value))
        return key


def _as_ms(moment: datetime | int) -> int:
    return datetime_to_ms(moment) if isinstance(moment, datetime) else int(moment)


class Aggregator:
    """Tumbling event-time windows per slice with a per-app watermark; memory held only for open windows."""

    def __init__(
        self,
        *,
        window_seconds: int = 10,
        allowed_lateness_seconds: int = 30,
        dimensions: Sequence[str] = DEFAULT_AGGREGATE_DIMENSIONS,
        max_keys_per_app: int = 4_096,
        max_open_windows_per_app: int = 32,
        max_clock_skew_seconds: int = 300,
    ) -> None:
        unknown = set(dimensions) - set(DIMENSIONS)
        if unknown:
            raise InvalidInput(f"unknown dimensions: {', '.join(sorted(unknown))}")
        if window_seconds <= 0 or allowed_lateness_seconds < 0:
            raise InvalidInput("window_seconds must be positive and allowed_lateness_seconds not negative")
        self.window_ms = window_seconds * 1000
        self.window_seconds = window_seconds
        self.lateness_ms = allowed_lateness_seconds * 1000
        self.dimensions = tuple(dimensions)
        self.max_keys_per_app = max_keys_per_app
        self.max_open_windows_per_app = max_open_windows_per_app
        self.max_clock_skew_ms = max_clock_skew_seconds * 1000
        self._apps: dict[str, _AppState] = {}
        self._evicted: list[WindowAggregate] = []
        self.late_dropped = 0
        self.future_dropped = 0
        self.accepted = 0

    # -- ingest -------------------------------------------------------------------------------------------
    def add(self, batch: ReportBatch, *, now: datetime | int | None = None) -> int:
        """Count a batch into its windows; returns how many reports were counted (late ones are dropped)."""
        n = len(batch)
        if n == 0:
            return 0
        ts = batch.ts_ms
        window_start = ts - ts % self.window_ms
        seen: dict[str, int] = {}
        first = np.fromiter(map(seen.setdefault, batch.app_id, range(n)), dtype=np.int64, count=n)
        states = [self._apps.get(app) or self._apps.setdefault(app, _AppState(app)) for app in seen]
        if len(states) == 1:
            app_code = np.zeros(n, dtype=np.int64)
        else:
            lookup = np.zeros(n, dtype=np.int64)
            lookup[list(seen.values())] = np.arange(len(seen))
            app_code = lookup[first]
        keep = np.ones(n, dtype=bool)
        if now is not None:
            future = ts > _as_ms(now) + self.max_clock_skew_ms
            self.future_dropped += int(future.sum())
            keep &= ~future
        for code, state in enumerate(states):
            mine = app_code == code if len(states) > 1 else np.ones(n, dtype=bool)
            on_time = (ts >= state.max_ts - self.lateness_ms) & (window_start >= state.closed_until)
            late = mine & keep & ~on_time
            self.late_dropped += int(late.sum())
            keep &= ~late
        rows = np.flatnonzero(keep)
        if len(rows) == 0:
            return 0
        derived = derive(batch)
        keys = self._key_matrix(batch, states, app_code, first)
        hll_index, hll_rank = hll_positions(batch.session_keys())
        if len(states) == 1 and len(np.unique(window_start[rows])) == 1:
            groups = [(0, int(window_start[rows[0]]), rows)]
        else:
            pairs = app_code[rows] * (1 << 40) + (window_start[rows] - window_start[rows].min()) // self.window_ms
            _, group_of = np.unique(pairs, return_inverse=True)
            order = np.argsort(group_of, kind="stable")
            bounds = np.flatnonzero(np.diff(group_of[order])) + 1
            groups = [
                (int(app_code[part[0]]), int(window_start[part[0]]), part) for part in np.split(rows[order], bounds)
            ]
        latency_rows = batch.join_latency_row
        for code, start, group_rows in groups:
            state = states[code]
            window = state.windows.get(start)
            if window is None:
                window = state.windows[start] = _OpenWindow(max(16, len(state.slices)))
            if window.capacity < len(state.slices):
                window.grow(max(len(state.slices), 2 * window.capacity))
            self._accumulate(window, keys, group_rows, derived, hll_index, hll_rank, latency_rows, n)
        for state in states:
            state_rows = rows if len(states) == 1 else rows[app_code[rows] == states.index(state)]
            if len(state_rows):
                state.max_ts = max(state.max_ts, int(ts[state_rows].max()))
            self._evict_excess(state)
        self.accepted += len(rows)
        return len(rows)

    def _key_matrix(
        self, batch: ReportBatch, states: list[_AppState], app_code: NDArray[np.int64], first_app: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        """Per report, the slice row of each dimension in its app (-1 where the dimension is not given)."""
        n = len(batch)
        keys = np.full((n, 1 + len(self.dimensions)), -1, dtype=np.int64)
        keys[:, 0] = 0
        budget = self.max_keys_per_app
        for column, dimension in enumerate(self.dimensions, start=1):
            dimension_index = DIMENSIONS.index(dimension)
            values = batch.strings[dimension]
            seen: dict[str | None, int] = {}
            first = np.fromiter(map(seen.setdefault, values, range(n)), dtype=np.int64, count=n)
            if len(states) == 1:
                state = states[0]
                lookup = np.full(n, -1, dtype=np.int64)
                for value, position in seen.items():
                    if value:
                        lookup[position] = state.key_id(dimension_index, dimension, value, budget)
                keys[:, column] = lookup[first]
                continue
            pairs = first * len(states) + app_code
            unique_pairs, inverse = np.unique(pairs, return_inverse=True)
            resolved = np.full(len(unique_pairs), -1, dtype=np.int64)
            for i, pair in enumerate(unique_pairs.tolist()):
                value = values[pair // len(states)]
                if value:
                    resolved[i] = states[pair % len(states)].key_id(dimension_index, dimension, value, budget)
            keys[:, column] = resolved[inverse]
        return keys

    @staticmethod
    def _accumulate(
        window: _OpenWindow,
        keys: NDArray[np.int64],
        rows: NDArray[np.int64],
        derived: _Derived,
        hll_index: NDArray[np.int64],
        hll_rank: NDArray[np.uint8],
        latency_rows: NDArray[np.int64],
        n: int,
    ) -> None:
        """Add the rows of one (app, window) group to its accumulators."""
        group_keys = keys[rows]
        width = group_keys.shape[1]
        flat = group_keys.ravel()
        valid = flat >= 0
        slice_row = flat[valid]
        report = np.repeat(rows, width)[valid]
        capacity = window.capacity
        # One bincount over (slice, counter) cells instead of one per counter.
        cell = (slice_row[:, None] * _N_COUNTED + np.arange(_N_COUNTED)).ravel()
        sums = np.bincount(cell, weights=derived.counters[report].ravel(), minlength=capacity * _N_COUNTED)
        window.counters += sums.reshape(capacity, _N_COUNTED)
        slots = derived.slots[report]
        cells = (slice_row[:, None] * _N_SKETCHED + np.arange(_N_SKETCHED)) * SLOTS + slots
        cells = cells[slots >= 0]
        if len(latency_rows):
            local = np.full(n, -1, dtype=np.int64)
            local[rows] = np.arange(len(rows))
            mine = local[latency_rows] >= 0
            measured = mine & (derived.latency_slots >= 0)
            if measured.any():
                latency_keys = group_keys[local[latency_rows[measured]]]
                latency_slots = np.repeat(derived.latency_slots[measured], width)
                latency_keys = latency_keys.ravel()
                ok = latency_keys >= 0
                extra = (latency_keys[ok] * _N_SKETCHED + _JOIN_LATENCY) * SLOTS + latency_slots[ok]
                cells = np.concatenate([cells, extra])
        window.count_cells(cells)
        window.set_registers(slice_row * HLL_REGISTERS + hll_index[report], hll_rank[report])

    def _evict_excess(self, state: _AppState) -> None:
        while len(state.windows) > self.max_open_windows_per_app:
            oldest = min(state.windows)
            self._evicted.extend(self._close(state, oldest))
            state.closed_until = max(state.closed_until, oldest + self.window_ms)

    # -- windows ------------------------------------------------------------------------------------------
    def resume(self, app_id: str, closed_until: datetime | int) -> None:
        """Treat the app's windows before `closed_until` as closed already (persisted by an earlier run).

        A restarted consumer gets unacknowledged batches again; their reports for windows it persisted
        before the restart are then dropped as late instead of being counted a second time.
        """
        state = self._apps.get(app_id) or self._apps.setdefault(app_id, _AppState(app_id))
        until = _as_ms(closed_until)
        state.closed_until = max(state.closed_until, until - until % self.window_ms)
        for start in [s for s in state.windows if s < state.closed_until]:
            del state.windows[start]  # already persisted by that earlier run

    def closed_until(self, app_id: str) -> datetime | None:
        """Every window of the app that starts before this moment is closed (None: none closed yet)."""
        state = self._apps.get(app_id)
        if state is None or state.closed_until < 0:
            return None
        return ms_to_datetime(state.closed_until)

    def watermark(self, app_id: str) -> datetime | None:
        """The app's automatic watermark: newest event time seen minus the allowed lateness."""
        state = self._apps.get(app_id)
        if state is None or (not state.windows and state.max_ts < 0):
            return None
        return ms_to_datetime(state.max_ts - self.lateness_ms)

    def advance(self, watermark: datetime | int | None = None) -> list[WindowAggregate]:
        """Close and return every window that ends at or before the watermark (default: each app's own)."""
        closed = self._evicted
        self._evicted = []
        explicit = None if watermark is None else _as_ms(watermark)
        for state in self._apps.values():
            mark = explicit if explicit is not None else state.max_ts - self.lateness_ms
            boundary = mark - mark % self.window_ms
            if boundary <= state.closed_until:
                continue
            state.closed_until = boundary
            for start in sorted(s for s in state.windows if s < boundary):
                closed.extend(self._close(state, start))
        return closed

    def flush(self) -> list[WindowAggregate]:
        """Close every open window (end of a replay, shutdown)."""
        closed = self._evicted
        self._evicted = []
        for state in self._apps.values():
            for start in sorted(state.windows):
                closed.extend(self._close(state, start))
                state.closed_until = max(state.closed_until, start + self.window_ms)
        return closed

    def _close(self, state: _AppState, start: int) -> list[WindowAggregate]:
        window = state.windows.pop(start)
        begins = ms_to_datetime(start)
        rows = np.flatnonzero(window.counters[:, 0] > 0)
        sketches = _dense_sketches(window, rows) if window.slots is not None else _sparse_sketches(window, rows)
        counters = window.counters[rows].tolist()
        registers = window.registers[rows]
        sessions = hll_estimates(registers, window.nonzero_registers(rows))  # (the engine reads each window's)
        return [
            WindowAggregate(
                key=state.slices[row],
                window_start=begins,
                window_seconds=self.window_seconds,
                counters=dict(zip(COUNTED, counters[i], strict=True)),
                sketches=sketches[i],
                session_registers=registers[i],
                estimated_sessions=sessions[i],
            )
            for i, row in enumerate(rows.tolist())
        ]

    @property
    def open_windows(self) -> int:
        """Open (app, window) pairs."""
        return sum(len(state.windows) for state in self._apps.values())

    @property
    def state_bytes(self) -> int:
        """Bytes held by the open windows' accumulators."""
        return sum(w.nbytes for state in self._apps.values() for w in state.windows.values())


def _dense_sketches(window: _OpenWindow, rows: NDArray[np.int64]) -> list[dict[str, QuantileSketch]]:
    """The sketches of each row from dense bins."""
    assert window.slots is not None
    slots = window.slots[rows]
    # Non-empty bin range of every (slice, sketch) at once; the sketches then only slice it.
    occupied = slots[:, :, 1:] > 0
    lowest = np.argmax(occupied, axis=2)
    highest = occupied.shape[2] - np.argmax(occupied[:, :, ::-1], axis=2)
    empty: NDArray[np.bool_] = ~np.any(occupied, axis=2)
    out: list[dict[str, QuantileSketch]] = []
    for i in range(len(rows)):
        sketches: dict[str, QuantileSketch] = {}
        for j, name in enumerate(SKETCHED):
            zeros = int(slots[i, j, 0])
            if empty[i, j]:
                sketches[name] = QuantileSketch(0, _NO_BINS, zeros)
            else:
                lo, hi = int(lowest[i, j]), int(highest[i, j])
                sketches[name] = QuantileSketch(KEY_MIN + lo, slots[i, j, 1 + lo : 1 + hi].astype(np.int64), zeros)
        out.append(sketches)
    return out


def _sparse_sketches(window: _OpenWindow, rows: NDArray[np.int64]) -> list[dict[str, QuantileSketch]]:
    """The same sketches from the counted cells: one sort of the window's cells, every sketch's bins laid out
    in one array at once, and each sketch a view of its part."""
    cells, counts = np.unique(np.concatenate(window.cells) if window.cells else _NO_BINS, return_counts=True)
    series = cells // SLOTS  # row * SKETCHED + sketch
    slot = cells - series * SLOTS
    n_series = window.capacity * _N_SKETCHED
    zeros = np.zeros(n_series, dtype=np.int64)
    zeros[series[slot == 0]] = counts[slot == 0]
    binned = slot > 0
    series, slot, counts = series[binned], slot[binned], counts[binned]
    first = np.full(n_series, SLOTS, dtype=np.int64)
    np.minimum.at(first, series, slot)
    last = np.zeros(n_series, dtype=np.int64)
    np.maximum.at(last, series, slot)
    length = np.where(last >= first, last - first + 1, 0)
    offset = np.concatenate([[0], np.cumsum(length)])
    flat = np.zeros(int(offset[-1]), dtype=np.int64)
    flat[offset[series] + slot - first[series]] = counts
    offsets, lengths, firsts, zero_counts = offset.tolist(), length.tolist(), first.tolist(), zeros.tolist()
    out: list[dict[str, QuantileSketch]] = []
    for row in rows.tolist():
        sketches: dict[str, QuantileSketch] = {}
        for j, name in enumerate(SKETCHED):
            k = row * _N_SKETCHED + j
            if lengths[k]:
                bins = flat[offsets[k] : offsets[k] + lengths[k]]
                sketches[name] = QuantileSketch(KEY_MIN + firsts[k] - 1, bins, zero_counts[k])
            else:
                sketches[name] = QuantileSketch(0, _NO_BINS, zero_counts[k])
        out.append(sketches)
    return out

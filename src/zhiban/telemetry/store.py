"""Telemetry tables: closed windows (10 s, 1 min, 1 h) with their mergeable parts, and recent raw reports.

A window row carries its metrics as columns (cheap to chart) and the parts they come from (counters,
sketch bins, HyperLogLog registers) as one compact zlib blob, so rows of any resolution can be merged
again: rollups, breakdowns over a span, ticket diagnostics.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import (
    BigInteger,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from zhiban.store.db import Base, UTCDateTime, insert_or_skip

_PARTS_VERSION: Final = 1
METRIC_COLUMNS: Final = (
    "join_success_rate",
    "join_latency_p95_ms",
    "video_freeze_rate",
    "audio_freeze_rate",
    "e2e_delay_p95_ms",
    "loss_p95_pct",
    "rtt_p95_ms",
    "jitter_p95_ms",
    "mos",
    "av_sync_p95_ms",
)
_BigId = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER primary keys only


class WindowRow(Base):
    """One slice (app, or app × dimension value) over one closed window of 10, 60 or 3600 seconds."""

    __tablename__ = "telemetry_windows"
    __table_args__ = (
        UniqueConstraint("app_id", "window_seconds", "dimension", "value", "window_start", name="uq_telemetry_window"),
        Index("ix_telemetry_windows_time", "app_id", "window_seconds", "window_start"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    app_id: Mapped[str] = mapped_column(String(64))
    dimension: Mapped[str] = mapped_column(String(32))  # "" = the whole app
    value: Mapped[str] = mapped_column(String(128))  # "" = the whole app
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_seconds: Mapped[int] = mapped_column(Integer)
    reports: Mapped[int] = mapped_column(BigInteger)
    sessions: Mapped[int] = mapped_column(Integer)
    join_success_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    join_latency_p95_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    video_freeze_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    audio_freeze_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    e2e_delay_p95_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    loss_p95_pct: Mapped[float | None] = mapped_column(Float, nullable=True)
    rtt_p95_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    jitter_p95_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    mos: Mapped[float | None] = mapped_column(Float, nullable=True)
    av_sync_p95_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    parts: Mapped[bytes] = mapped_column(LargeBinary)


class RawReportRow(Base):
    """A recent report as received (NDJSON line), for the session inspector; pruned after a day."""

    __tablename__ = "telemetry_raw_reports"
    __table_args__ = (
        UniqueConstraint("app_id", "session_id", "ts_ms", name="uq_telemetry_raw_report"),
        Index("ix_telemetry_raw_reports_ts", "ts_ms"),
        Index("ix_telemetry_raw_reports_channel", "app_id", "channel"),
        Index("ix_telemetry_raw_reports_user", "app_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    app_id: Mapped[str] = mapped_column(String(64))
    session_id: Mapped[str] = mapped_column(String(128))
    ts_ms: Mapped[int] = mapped_column(BigInteger)  # event time, epoch milliseconds
    user_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    channel: Mapped[str | None] = mapped_column(String(128), nullable=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)


def _window_table() -> Table:
    return cast(Table, WindowRow.__table__)


def _raw_table() -> Table:
    return cast(Table, RawReportRow.__table__)


# -- the mergeable parts, compactly -------------------------------------------------------------------------


def encode_parts(window: Any) -> bytes:
    """Counters, sketch bins and HLL registers of a WindowAggregate as one zlib-compressed blob."""
    import numpy as np

    from zhiban.telemetry.window import COUNTED, SKETCHED

    chunks = [struct.pack("<B", _PARTS_VERSION), np.array([window.counters[c] for c in COUNTED], "<f8").tobytes()]
    for name in SKETCHED:
        sketch = window.sketches[name]
        counts = np.asarray(sketch.counts, dtype="<i8")
        chunks.append(struct.pack("<iqi", sketch.min_key, sketch.zero_count, len(counts)))
        chunks.append(counts.tobytes())
    registers = np.asarray(window.session_registers, dtype=np.uint8)
    chunks.append(struct.pack("<i", len(registers)))
    chunks.append(registers.tobytes())
    return zlib.compress(b"".join(chunks), 1)


def decode_parts(blob: bytes, *, app_id: str, dimension: str, value: str, start: datetime, seconds: int) -> Any:
    """The WindowAggregate a row stands for."""
    import numpy as np

    from zhiban.telemetry.sketch import QuantileSketch
    from zhiban.telemetry.window import COUNTED, SKETCHED, SliceKey, WindowAggregate

    raw = zlib.decompress(blob)
    if raw[0] != _PARTS_VERSION:
        raise ValueError(f"unknown telemetry parts version {raw[0]}")
    at = 1
    counters = np.frombuffer(raw, "<f8", len(COUNTED), at)
    at += 8 * len(COUNTED)
    sketches = {}
    for name in SKETCHED:
        min_key, zeros, n = struct.unpack_from("<iqi", raw, at)
        at += struct.calcsize("<iqi")
        counts = np.frombuffer(raw, "<i8", n, at).astype(np.int64)
        at += 8 * n
        sketches[name] = QuantileSketch(min_key, counts, zeros)
    (n_registers,) = struct.unpack_from("<i", raw, at)
    at += 4
    registers = np.frombuffer(raw, np.uint8, n_registers, at).copy()
    key = SliceKey(app_id, dimension or None, value or None) if dimension else SliceKey(app_id)
    return WindowAggregate(
        key=key,
        window_start=start,
        window_seconds=seconds,
        counters=dict(zip(COUNTED, counters.tolist(), strict=True)),
        sketches=sketches,
        session_registers=registers,
    )


def window_of(row: WindowRow) -> Any:
    """The WindowAggregate of a stored row."""
    return decode_parts(
        row.parts,
        app_id=row.app_id,
        dimension=row.dimension,
        value=row.value,
        start=row.window_start,
        seconds=row.window_seconds,
    )


def _row_values(window: Any) -> dict[str, Any]:
    metrics = window.metrics()
    return {
        "app_id": window.key.app_id,
        "dimension": window.key.dimension or "",
        "value": window.key.value or "",
        "window_start": window.window_start,
        "window_seconds": window.window_seconds,
        "reports": window.reports,
        "sessions": window.sessions,
        **{name: metrics[name] for name in METRIC_COLUMNS},
        "parts": encode_parts(window),
    }


# -- windows ------------------------------------------------------------------------------------------------


def save_windows(session: Session, windows: Sequence[Any]) -> int:
    """Insert closed windows; a window already stored (a replay after a crash) is merged into, not doubled."""
    if not windows:
        return 0
    values = [_row_values(w) for w in windows]
    try:
        with session.begin_nested():
            session.connection().execute(insert(_window_table()), values)
        return len(values)
    except IntegrityError:
        pass
    from zhiban.telemetry.window import merge

    for window, row_values in zip(windows, values, strict=True):
        existing = session.scalar(
            select(WindowRow).where(
                WindowRow.app_id == row_values["app_id"],
                WindowRow.window_seconds == row_values["window_seconds"],
                WindowRow.dimension == row_values["dimension"],
                WindowRow.value == row_values["value"],
                WindowRow.window_start == row_values["window_start"],
            )
        )
        if existing is None:
            session.execute(insert(WindowRow), [row_values])
            continue
        combined = merge(window_of(existing), window)
        for name, value in _row_values(combined).items():
            setattr(existing, name, value)
        existing.window_start, existing.window_seconds = window.window_start, window.window_seconds
    session.flush()
    return len(values)


def replace_windows(
    session: Session, app_id: str, seconds: int, start: datetime, end: datetime, windows: Sequence[Any]
) -> None:
    """Replace an app's rows of one resolution in [start, end) (an idempotent rollup)."""
    session.execute(
        delete(WindowRow).where(
            WindowRow.app_id == app_id,
            WindowRow.window_seconds == seconds,
            WindowRow.window_start >= start,
            WindowRow.window_start < end,
        )
    )
    if windows:
        session.connection().execute(insert(_window_table()), [_row_values(w) for w in windows])


def latest_window_end(session: Session, app_id: str, seconds: int) -> datetime | None:
    """End of the newest stored window of an app at a resolution."""
    newest = session.scalar(
        select(func.max(WindowRow.window_start)).where(
            WindowRow.app_id == app_id, WindowRow.window_seconds == seconds, WindowRow.dimension == ""
        )
    )
    return None if newest is None else newest + timedelta(seconds=seconds)


def earliest_window_start(session: Session, app_id: str, seconds: int, since: datetime) -> datetime | None:
    """Start of the oldest stored app-wide window at a resolution, at or after `since`."""
    return session.scalar(
        select(func.min(WindowRow.window_start)).where(
            WindowRow.app_id == app_id,
            WindowRow.window_seconds == seconds,
            WindowRow.dimension == "",
            WindowRow.window_start >= since,
        )
    )


def window_rows(
    session: Session,
    app_id: str,
    seconds: int,
    start: datetime,
    end: datetime,
    *,
    dimension: str | None = None,
    value: str | None = None,
    any_slice: bool = False,
    limit: int = 500_000,
) -> list[WindowRow]:
    """Rows of one resolution in [start, end): the app-wide slice, one dimension, one value, or every slice."""
    query = select(WindowRow).where(
        WindowRow.app_id == app_id,
        WindowRow.window_seconds == seconds,
        WindowRow.window_start >= start,
        WindowRow.window_start < end,
    )
    if not any_slice:
        query = query.where(WindowRow.dimension == (dimension or ""))
        if value is not None:
            query = query.where(WindowRow.value == value)
    return list(session.scalars(query.order_by(WindowRow.window_start).limit(limit)))


def prune_windows(session: Session, seconds: int, before: datetime) -> int:
    """Delete windows of a resolution that start before `before`."""
    result = session.execute(
        delete(WindowRow).where(WindowRow.window_seconds == seconds, WindowRow.window_start < before)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def apps_with_windows(session: Session) -> list[str]:
    return list(session.scalars(select(WindowRow.app_id).distinct()))


# -- raw reports --------------------------------------------------------------------------------------------


def save_raw(session: Session, rows: Iterable[dict[str, Any]]) -> None:
    """Insert recent reports; one already stored (same app, session, ts) is kept as it was."""
    batch = list(rows)
    if not batch:
        return
    stmt = insert_or_skip(session, _raw_table())
    # Core, not the ORM: these rows are never loaded as objects here (several times faster in bulk).
    session.connection().execute(stmt, batch)


def raw_reports(
    session: Session,
    app_id: str,
    start_ms: int,
    end_ms: int,
    *,
    session_id: str | None = None,
    user_id: str | None = None,
    channel: str | None = None,
    limit: int = 10_000,
) -> list[RawReportRow]:
    """Recent reports of an app in [start, end), optionally of one session, user or channel, by event time."""
    query = select(RawReportRow).where(
        RawReportRow.app_id == app_id, RawReportRow.ts_ms >= start_ms, RawReportRow.ts_ms < end_ms
    )
    if session_id is not None:
        query = query.where(RawReportRow.session_id == session_id)
    if user_id is not None:
        query = query.where(RawReportRow.user_id == user_id)
    if channel is not None:
        query = query.where(RawReportRow.channel == channel)
    return list(session.scalars(query.order_by(RawReportRow.ts_ms, RawReportRow.id).limit(limit)))


def sessions_in(
    session: Session,
    app_id: str,
    start_ms: int,
    end_ms: int,
    *,
    channel: str | None = None,
    user_ids: Sequence[str] = (),
    limit: int = 50,
) -> list[tuple[str, str | None, int, int, int]]:
    """(session id, user id, first and last report time in ms, reports) of an app's sessions in [start, end) in
    one channel or of some users, from the recent raw reports, most reports first."""
    query = select(
        RawReportRow.session_id,
        func.max(RawReportRow.user_id),
        func.min(RawReportRow.ts_ms),
        func.max(RawReportRow.ts_ms),
        func.count(),
    ).where(RawReportRow.app_id == app_id, RawReportRow.ts_ms >= start_ms, RawReportRow.ts_ms < end_ms)
    if channel is not None:
        query = query.where(RawReportRow.channel == channel)
    if user_ids:
        query = query.where(RawReportRow.user_id.in_(list(user_ids)))
    query = query.group_by(RawReportRow.session_id).order_by(func.count().desc(), RawReportRow.session_id)
    return [(s, u, int(a), int(b), int(n)) for s, u, a, b, n in session.execute(query.limit(limit))]


def prune_raw(session: Session, before_ms: int) -> int:
    """Delete raw reports older than `before_ms` (event time)."""
    result = session.execute(delete(RawReportRow).where(RawReportRow.ts_ms < before_ms))
    return int(getattr(result, "rowcount", 0) or 0)


def count_reports(session: Session, app_id: str, seconds: int = 10) -> int:
    """Σ reports in an app's app-wide windows of one resolution (for checks and benchmarks)."""
    total = session.scalar(
        select(func.coalesce(func.sum(WindowRow.reports), 0)).where(
            WindowRow.app_id == app_id, WindowRow.window_seconds == seconds, WindowRow.dimension == ""
        )
    )
    return int(total or 0)

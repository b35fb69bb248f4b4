"""The telemetry pipeline: bus messages → dedup → windowed aggregates → closed windows in the database.

A message carries NDJSON lines of one app (validated at ingest; webrtc-stats snapshots still raw, because
turning them into interval reports needs the session's previous snapshot, which lives with the partition's
owner). The pipeline counts fresh reports into open windows and samples raw reports for the session
inspector; `tick()` closes windows by watermark, persists them with their rollups and the sampled raw
reports in one transaction, and only then acknowledges the messages that fed them. `handle()` itself
touches the database only to resume an app it has not seen yet, so a busy stream costs one write
transaction per tick, not one per message. A crash before the ack means redelivery: the open windows are
rebuilt from the redelivered batches, and windows persisted before the crash are skipped
(`Aggregator.resume` from the database).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import orjson
from sqlalchemy.orm import Session, sessionmaker

from zhiban.core.clock import Clock, SystemClock
from zhiban.core.errors import ZhibanError
from zhiban.telemetry import service, store
from zhiban.telemetry.aggregate import Aggregator
from zhiban.telemetry.batch import ReportBatch
from zhiban.telemetry.bus import BusConsumer, BusMessage
from zhiban.telemetry.dedup import Deduplicator
from zhiban.telemetry.model import QualityReport, datetime_to_ms
from zhiban.telemetry.parse import decompress, parse_batch
from zhiban.telemetry.webrtc import WebrtcConverter, WebrtcSnapshot

log = logging.getLogger("zhiban.telemetry")
_GZIP_MAGIC: Final = b"\x1f\x8b"
_SAMPLE_SCALE: Final = 10_000

# Called with (pipeline, closed windows) after each tick persisted them, in the pipeline's thread (detection).
WindowsListener = Callable[["Pipeline", list[Any]], None]
_windows_listeners: list[WindowsListener] = []


def on_windows_closed(listener: WindowsListener) -> WindowsListener:
    """Hand every batch of closed, persisted windows to `listener(pipeline, windows)` (idempotent)."""
    if listener not in _windows_listeners:
        _windows_listeners.append(listener)
    return listener


def report_to_dict(report: QualityReport) -> dict[str, Any]:
    """A version-1 report as its wire JSON (measured fields only)."""
    out: dict[str, Any] = {"v": 1, "app_id": report.app_id, "ts": report.ts_ms, "session_id": report.session_id}
    for name in ("interval_ms", "channel", "user_id", "role", "region", "country", "isp", "network"):
        if getattr(report, name) is not None:
            out[name] = getattr(report, name)
    for name in ("platform", "sdk_version", "edge", "av_sync_ms"):
        if getattr(report, name) is not None:
            out[name] = getattr(report, name)
    for block in ("audio", "video", "net"):
        stats = getattr(report, block)
        if stats is not None:
            out[block] = {k: getattr(stats, k) for k in stats.__slots__ if getattr(stats, k) is not None}
    if report.events:
        out["events"] = [{k: getattr(e, k) for k in e.__slots__ if getattr(e, k) is not None} for e in report.events]
    out.update(report.labels)
    return out


@dataclass
class PipelineStats:
    """Running counts, for logs, metrics and tests."""

    messages: int = 0
    reports: int = 0
    duplicates: int = 0
    late: int = 0
    windows: int = 0
    rollups: int = 0
    acked: int = 0
    raw_rows: int = 0
    raw_dropped: int = 0  # sampled raw rows dropped because the database fell behind (bounded buffer)
    failures: int = 0


@dataclass(eq=False)
class LocalPayload:
    """A message's content already parsed: plain reports (columns + their NDJSON lines) and webrtc snapshots."""

    batch: ReportBatch
    lines: list[bytes]  # lines[i] is the wire form of batch row i
    snapshots: list[WebrtcSnapshot]


@dataclass(eq=False)
class _Held:
    """A message whose reports sit in open windows: acked once those windows are persisted."""

    message: BusMessage
    app_id: str
    window_end_ms: int


@dataclass
class PipelineOptions:
    """Tuning of one pipeline (the defaults suit the embedded desk)."""

    window_seconds: int = 10
    allowed_lateness_seconds: int = 30
    dedup_horizon_seconds: int = 900
    raw_sample: float = 1.0  # share of sessions whose raw reports are kept for the session inspector
    # Raw rows are for inspecting a few sessions, not a second copy of the stream: above this rate the
    # share of sessions kept shrinks so the table stays bounded (the embedded desk stays far below it).
    raw_rows_per_second: float = 2_000.0
    # Sampled raw rows wait for the next tick's transaction; past this many (a stalled database) they are dropped.
    max_pending_raw_rows: int = 100_000
    prune_every_seconds: float = 600.0
    retention: service.Retention = field(default_factory=service.Retention)


class Pipeline:
    """Owns the windows of the apps of some partitions; `handle` messages, `tick` to persist and ack."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Clock | None = None,
        options: PipelineOptions | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.clock = clock or SystemClock()
        self.options = options or PipelineOptions()
        if not 0.0 <= self.options.raw_sample <= 1.0:
            raise ValueError("raw_sample must be within [0, 1]")
        self.aggregator = Aggregator(
            window_seconds=self.options.window_seconds,
            allowed_lateness_seconds=self.options.allowed_lateness_seconds,
        )
        self.dedup = Deduplicator(horizon_seconds=self.options.dedup_horizon_seconds)
        self.converter = WebrtcConverter()
        self.stats = PipelineStats()
        self._monotonic = monotonic
        self._held: list[_Held] = []
        self._resumed: set[str] = set()
        self._touched: set[str] = set()
        self._raw_pending: list[dict[str, Any]] = []
        # Windows closed by the aggregator whose persistence failed: saved by the next tick, never dropped.
        self._unsaved: list[Any] = []
        self._last_prune = monotonic()
        self._rate_since = monotonic()
        self._rate_count = 0
        self._rate = 0.0
        self._lock = threading.Lock()

    # -- consuming ------------------------------------------------------------------------------------------
    def handle(self, messages: Sequence[BusMessage]) -> int:
        """Count the fresh reports of these messages into open windows; returns how many were counted."""
        if not messages:
            return 0
        with self._lock:
            counted = 0
            for message in messages:
                counted += self._one(message)
        return counted

    def _decode(self, message: BusMessage) -> LocalPayload | None:
        """The message's plain reports (columns and their lines) and snapshots; None if unreadable."""
        if isinstance(message.local, LocalPayload):
            return message.local
        try:
            body = decompress(message.data) if message.data[:2] == _GZIP_MAGIC else message.data
            parsed = parse_batch(body, max_bytes=len(body) + 1, max_decompressed=len(body) + 1, max_reports=10**9)
        except ZhibanError as exc:  # cannot succeed on redelivery either: drop it, loudly
            log.error("dropping an unreadable telemetry message %s: %s", message.msg_id, exc.detail)
            return None
        entries = parsed.entries
        lines = [entries[i] for i in parsed.accepted_index.tolist()]
        return LocalPayload(parsed.batch, [line for line in lines if isinstance(line, bytes)], parsed.webrtc)

    def _resume(self, app_ids: set[str]) -> None:
        """Skip what an earlier run persisted for apps this pipeline has not seen yet."""
        with self.sessions() as session, session.begin():
            for app_id in app_ids:
                persisted_until = store.latest_window_end(session, app_id, self.options.window_seconds)
                if persisted_until is not None:
                    self.aggregator.resume(app_id, persisted_until)
        self._resumed |= app_ids

    def _one(self, message: BusMessage) -> int:
        self.stats.messages += 1
        payload = self._decode(message)
        if payload is None:
            self.stats.failures += 1
            message.ack()
            return 0
        converted = self.converter.convert(payload.snapshots)
        batch = ReportBatch.concat([payload.batch, converted]) if len(converted) else payload.batch
        if len(batch) == 0:
            message.ack()
            return 0
        new_apps = set(batch.app_id) - self._resumed
        if new_apps:
            self._resume(new_apps)
        fresh = self.dedup.fresh(batch)
        self.stats.duplicates += int(len(batch) - fresh.sum())
        kept = batch.take(fresh)
        late_before = self.aggregator.late_dropped
        counted = self.aggregator.add(kept)
        self.stats.late += self.aggregator.late_dropped - late_before
        self.stats.reports += counted
        self._keep_raw(payload, converted, batch, fresh)
        if counted == 0:
            message.ack()
            self.stats.acked += 1
            return 0
        window_ms = self.options.window_seconds * 1000
        newest = int(kept.ts_ms.max())
        self._touched.update(set(kept.app_id))
        self._held.append(_Held(message, kept.app_id[0], newest - newest % window_ms + window_ms))
        return counted

    def _raw_share(self, reports: int) -> float:
        """Share of sessions whose raw reports are kept now: the configured sample, within the row budget.

        The rate is that of the last two-second period or of the current one (read over at least a
        second), whichever is higher: a burst is sampled from its first batch on, not after two seconds.
        """
        now = self._monotonic()
        elapsed = now - self._rate_since
        if elapsed >= 2.0:
            self._rate = self._rate_count / elapsed
            self._rate_since, self._rate_count, elapsed = now, 0, 0.0
        self._rate_count += reports
        rate = max(self._rate, self._rate_count / max(elapsed, 1.0))
        budget = self.options.raw_rows_per_second
        return min(self.options.raw_sample, budget / rate if rate > budget else 1.0)

    def _keep_raw(
        self,
        payload: LocalPayload,
        converted: ReportBatch,
        batch: ReportBatch,
        fresh: np.ndarray[Any, Any],
    ) -> None:
        """Raw rows of the fresh reports of sampled sessions (the line as received, or the converted report)."""
        share = self._raw_share(int(fresh.sum()))
        if share <= 0:
            return
        out = self._raw_pending
        keep = fresh
        if share < 1:
            # By session, so a kept session's timeline is whole.
            keep = fresh & ((batch.session_keys() % np.uint64(_SAMPLE_SCALE)) < np.uint64(int(share * _SAMPLE_SCALE)))
        plain = len(payload.batch)
        users, channels = batch.strings["user_id"], batch.strings["channel"]
        rows = np.flatnonzero(keep).tolist()
        room = self.options.max_pending_raw_rows - len(out)
        if len(rows) > room:
            self.stats.raw_dropped += len(rows) - max(room, 0)
            rows = rows[: max(room, 0)]
        for i in rows:
            line = payload.lines[i] if i < plain else orjson.dumps(report_to_dict(converted.report(i - plain)))
            out.append(
                {
                    "app_id": batch.app_id[i],
                    "session_id": batch.session_id[i],
                    "ts_ms": int(batch.ts_ms[i]),
                    "user_id": users[i],
                    "channel": channels[i],
                    "body": line,
                }
            )

    # -- closing windows ------------------------------------------------------------------------------------
    def tick(self, *, flush: bool = False) -> int:
        """Close windows by watermark (all of them with flush), persist them and their rollups, ack; returns windows."""
        with self._lock:
            closed = self.aggregator.flush() if flush else self.aggregator.advance()
            self._unsaved.extend(closed)
            closed, raw_rows = self._unsaved, self._raw_pending
            touched = self._touched | {w.key.app_id for w in closed}
            if not closed and not raw_rows and not touched and not self._prune_due():
                return 0
            with self.sessions() as session, session.begin():
                if raw_rows:
                    store.save_raw(session, raw_rows)
                if closed:
                    service.persist_windows(session, closed)
                for app_id in touched:
                    until = self.aggregator.closed_until(app_id)
                    if until is not None:
                        self.stats.rollups += service.roll_up(session, app_id, until)
                if self._prune_due():
                    self._last_prune = self._monotonic()
                    deleted = service.prune(session, self.clock.now(), self.options.retention)
                    log.info("telemetry pruned %s", deleted)
            self._unsaved, self._raw_pending, self._touched = [], [], set()
            self.stats.raw_rows += len(raw_rows)
            self.stats.windows += len(closed)
            self._ack_persisted()
            if closed:
                for listener in list(_windows_listeners):
                    try:
                        listener(self, closed)
                    except Exception:  # a listener's failure must not stop the stream
                        log.exception("a closed-windows listener failed")
            return len(closed)

    def _prune_due(self) -> bool:
        return self._monotonic() - self._last_prune >= self.options.prune_every_seconds

    def _ack_persisted(self) -> None:
        still: list[_Held] = []
        closed_until_ms: dict[str, int | None] = {}
        for held in self._held:
            if held.app_id not in closed_until_ms:
                until = self.aggregator.closed_until(held.app_id)
                closed_until_ms[held.app_id] = None if until is None else datetime_to_ms(until)
            until_ms = closed_until_ms[held.app_id]
            if until_ms is not None and held.window_end_ms <= until_ms:
                try:
                    held.message.ack()
                    self.stats.acked += 1
                except Exception as exc:  # a lost ack means a redelivery, which dedup and resume absorb
                    log.warning("telemetry ack failed: %s", exc)
            else:
                still.append(held)
        self._held = still

    @property
    def held(self) -> int:
        """Messages waiting for their windows to be persisted."""
        return len(self._held)

    # -- the loop -------------------------------------------------------------------------------------------
    def run(
        self,
        consumer: BusConsumer,
        stop: threading.Event,
        *,
        tick_seconds: float = 1.0,
        flush_on_stop: bool = False,
        batch_messages: int = 128,
    ) -> None:
        """Consume until `stop` is set; a failing step is logged and retried (messages come again)."""
        last_tick = self._monotonic()
        while not stop.is_set():
            try:
                messages = consumer.fetch(batch_messages, timeout=min(0.5, tick_seconds))
                if messages:
                    self.handle(messages)
                if self._monotonic() - last_tick >= tick_seconds:
                    last_tick = self._monotonic()
                    self.tick()
            except Exception:
                self.stats.failures += 1
                log.exception("telemetry pipeline step failed; retrying")
                stop.wait(1.0)
        try:
            if flush_on_stop:  # nothing will come again: count what is still queued, then close every window
                while messages := consumer.fetch(batch_messages, timeout=0):
                    self.handle(messages)
            self.tick(flush=flush_on_stop)
        except Exception:
            log.exception("telemetry pipeline: final tick failed")
        consumer.close()

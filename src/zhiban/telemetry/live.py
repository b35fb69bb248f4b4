"""Telemetry in the running desk: the ingest edge's state, the bus, the pipeline thread, the live simulator.

One `TelemetryRuntime` per desk (per process): `runtime_for(desk)`. `zhiban serve` calls
`start_telemetry(desk, stop)` (the pipeline consumes the bus in a thread) and, when ZHIBAN_SIMULATE is
true, `start_live_simulation(desk, stop)`.

What travels on the bus: the validated NDJSON lines of the accepted, fresh reports of one app (gzip on
NATS), at most 2,000 per message. Lines rather than numpy columns: the format is the public contract,
so a message is readable by any tool and by a newer pipeline, and the raw line is what the session
inspector keeps; re-parsing costs the consumer a few microseconds per report.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

import numpy as np
import orjson
from pydantic_settings import BaseSettings, SettingsConfigDict

from zhiban.apps.model import IngestIdentity, key_digest
from zhiban.core.errors import RateLimited
from zhiban.core.settings import SettingsSource
from zhiban.desk import Desk
from zhiban.telemetry.bus import Bus, MemoryBus, make_bus
from zhiban.telemetry.dedup import Deduplicator
from zhiban.telemetry.model import Rejection
from zhiban.telemetry.parse import MAX_DECOMPRESSED, decompress, parse_batch, split_items
from zhiban.telemetry.pipeline import LocalPayload, Pipeline, PipelineOptions

log = logging.getLogger("zhiban.telemetry")
_GZIP_MAGIC: Final = b"\x1f\x8b"
MESSAGE_REPORTS: Final = 2_000  # NATS refuses messages over 1 MB by default; 2,000 gzip'd reports are ~150 kB
KEY_CACHE_SECONDS: Final = 10.0
# Demo apps of the simulator → the demo organizations that own them (zhiban.demo.seed.ORGANIZATIONS).
DEMO_APP_OWNERS: Final = {"liveco": "liveco", "classmate": "classmate", "hiyo": "chatterbox"}


class TelemetrySettings(BaseSettings):
    """ZHIBAN_TELEMETRY_* settings of the ingest edge and the pipeline."""

    model_config = SettingsConfigDict(env_prefix="ZHIBAN_TELEMETRY_", extra="ignore")

    partitions: int = 8
    owned_partitions: str = ""  # "0,1,5": partitions this process consumes; empty = all
    consume: bool = True  # run the pipeline in this process (off on web-only nodes in scale-out)
    max_body_bytes: int = 16 * 1024 * 1024
    max_reports_per_second: float = 200_000.0  # per app, with a burst of two seconds' worth
    raw_sample: float = 1.0
    live_peak_sessions: int = 120  # per demo app, at its peak hour

    def owned(self) -> list[int]:
        """The partitions this process consumes."""
        if not self.owned_partitions.strip():
            return list(range(self.partitions))
        return sorted({int(p) for p in self.owned_partitions.split(",") if p.strip()})


# The telemetry hooks point this at the environment; a runtime takes its settings from here when built.
current_settings: SettingsSource[TelemetrySettings] = SettingsSource("zhiban.telemetry.hooks")


@dataclass(frozen=True)
class IngestResult:
    """What the ingest edge answers: accepted reports, refused ones (index and reason), duplicates."""

    accepted: int
    rejected: list[Rejection]
    duplicates: int

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": [{"index": r.index, "reason": r.reason} for r in self.rejected],
            "duplicates": self.duplicates,
        }


class RateLimiter:
    """A token bucket of reports per app (in memory, per process)."""

    def __init__(self, per_second: float, burst_seconds: float = 2.0, monotonic: Callable[[], float] = time.monotonic):
        self.per_second = per_second
        self.capacity = per_second * burst_seconds
        self._monotonic = monotonic
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, amount: int) -> None:
        """Spend `amount` tokens or raise RateLimited (nothing spent)."""
        now = self._monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.per_second)
            if amount > tokens:
                wait = (amount - tokens) / self.per_second
                raise RateLimited(
                    f"app sends more than {self.per_second:,.0f} reports/s; retry in {wait:.1f} s",
                    retry_after=max(1, round(wait)),
                )
            self._buckets[key] = (tokens - amount, now)
            self._buckets.move_to_end(key)
            while len(self._buckets) > 100_000:
                self._buckets.popitem(last=False)


class Ingestor:
    """Validates a batch for the app an ingest key speaks for, drops repeats, publishes the rest on the bus."""

    def __init__(
        self, bus: Bus, *, max_reports_per_second: float = 200_000.0, dedup_horizon_seconds: int = 900
    ) -> None:
        self.bus = bus
        self.limiter = RateLimiter(max_reports_per_second)
        self.dedup_horizon_seconds = dedup_horizon_seconds
        # Per process: with several web processes (ZHIBAN_WEB_PROCESSES) a repeat is dropped only if the same process
        # took the first copy (not shared yet; see the README's note on that setting).
        self._dedup: OrderedDict[str, Deduplicator] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def _app(self, app_id: str) -> Iterator[Deduplicator]:
        with self._guard:
            lock = self._locks.setdefault(app_id, threading.Lock())
            dedup = self._dedup.get(app_id)
            if dedup is None:
                dedup = self._dedup[app_id] = Deduplicator(horizon_seconds=self.dedup_horizon_seconds)
            self._dedup.move_to_end(app_id)
            while len(self._dedup) > 10_000:
                old, _ = self._dedup.popitem(last=False)
                self._locks.pop(old, None)
        with lock:
            yield dedup

    def ingest(self, app_id: str, body: bytes) -> IngestResult:
        """Accept what is valid and belongs to `app_id`; a report for another app is refused by index."""
        if body[:2] == _GZIP_MAGIC:
            body = decompress(body, max_decompressed=MAX_DECOMPRESSED)
        parsed = parse_batch(body, max_bytes=MAX_DECOMPRESSED, max_decompressed=MAX_DECOMPRESSED)
        entries = split_items(body)
        rejected = list(parsed.rejected)
        batch, index = parsed.batch, parsed.accepted_index
        foreign = np.fromiter((a != app_id for a in batch.app_id), dtype=bool, count=len(batch))
        if foreign.any():
            for i in np.flatnonzero(foreign).tolist():
                rejected.append(Rejection(int(index[i]), _foreign(batch.app_id[i], app_id)))
            batch, index = batch.take(~foreign), index[~foreign]
        snapshots: list[int] = []
        positions: list[int] = []
        if parsed.webrtc:
            # Snapshots are the rows neither accepted nor refused, in order (parse_batch keeps their order).
            taken = set(index.tolist()) | set(parsed.accepted_index.tolist()) | {r.index for r in parsed.rejected}
            positions = [i for i in range(len(entries)) if i not in taken]
            for position, snapshot in zip(positions, parsed.webrtc, strict=True):
                if snapshot.app_id == app_id:
                    snapshots.append(position)
                else:
                    rejected.append(Rejection(position, _foreign(snapshot.app_id, app_id)))
        self.limiter.take(app_id, len(batch) + len(snapshots))

        def line(position: int) -> bytes:
            entry = entries[position]
            return entry if isinstance(entry, bytes) else orjson.dumps(entry)

        with self._app(app_id) as dedup:
            fresh = dedup.fresh(batch, remember=False)
            kept = np.flatnonzero(fresh)
            lines = [line(int(index[i])) for i in kept.tolist()]
            lines.extend(line(p) for p in snapshots)
            local = None
            if len(lines) <= MESSAGE_REPORTS:  # in process, the consumer can reuse these columns
                mine = [parsed.webrtc[positions.index(p)] for p in snapshots] if snapshots else []
                local = LocalPayload(batch.take(kept), lines[: len(kept)], mine)
            self._publish(app_id, lines, local)
            # Remembered only once the bus holds them: a failed publish can be retried by the sender.
            dedup.fresh(batch.take(fresh))
        rejected.sort(key=lambda r: r.index)
        return IngestResult(accepted=len(lines), rejected=rejected, duplicates=int(len(batch) - fresh.sum()))

    def ingest_reports(self, app_id: str, reports: Sequence[dict[str, Any]]) -> IngestResult:
        """In-process ingest of report objects (the live simulator), through the same checks."""
        if not reports:
            return IngestResult(0, [], 0)
        return self.ingest(app_id, b"\n".join(map(orjson.dumps, reports)))

    def _publish(self, app_id: str, lines: list[bytes], local: LocalPayload | None = None) -> None:
        subject = self.bus.subject_for(app_id)
        for start in range(0, len(lines), MESSAGE_REPORTS):
            payload = b"\n".join(lines[start : start + MESSAGE_REPORTS])
            # The same reports give the same id, so a sender's retry is stored once (JetStream's window).
            msg_id = hashlib.blake2b(app_id.encode() + b"\0" + payload, digest_size=16).hexdigest()
            if self.bus.compress:
                payload = gzip.compress(payload, compresslevel=1)
            self.bus.publish(subject, payload, msg_id, local=local)


def _foreign(found: str, expected: str) -> str:
    return f"app_id {found!r} does not match the ingest key's app {expected!r}"


@dataclass(eq=False)
class TelemetryRuntime:
    """Per process: the bus, the ingest edge, the ingest-key cache and (when consuming) the pipeline."""

    desk: Desk
    settings: TelemetrySettings = field(default_factory=lambda: current_settings())
    bus: Bus | None = None
    pipeline_options: PipelineOptions | None = None

    def __post_init__(self) -> None:
        if self.bus is None:
            self.bus = make_bus(self.desk.settings.bus_url, partitions=self.settings.partitions)
        # The limiter is in memory: each of the desk's web processes allows its share of the per-app rate.
        share = self.settings.max_reports_per_second / max(1, self.desk.settings.web_processes)
        self.ingestor = Ingestor(self.bus, max_reports_per_second=share)
        options = self.pipeline_options or PipelineOptions(raw_sample=self.settings.raw_sample)
        self.pipeline = Pipeline(self.desk.sessions, clock=self.desk.clock, options=options)
        self.thread: threading.Thread | None = None
        self.simulator: Any = None  # the live simulation of this process, when one runs (faults go in there)
        self._keys: OrderedDict[str, tuple[IngestIdentity, float]] = OrderedDict()
        self._keys_lock = threading.Lock()

    def resolve_key(self, plain: str) -> IngestIdentity:
        """The app of an ingest key (cached for a few seconds: a rotated key stops within that time, in every web
        process, since each process keeps its own cache and none outlives that time)."""
        from zhiban.apps import service as apps

        digest = key_digest(plain)
        now = time.monotonic()
        with self._keys_lock:
            cached = self._keys.get(digest)
            if cached is not None and cached[1] > now:
                return cached[0]
        with self.desk.transaction() as session:
            identity = apps.resolve_ingest_key(session, plain)
        with self._keys_lock:
            self._keys[digest] = (identity, now + KEY_CACHE_SECONDS)
            while len(self._keys) > 10_000:
                self._keys.popitem(last=False)
        return identity

    def start(self, stop: threading.Event) -> None:
        """Run the pipeline on this process's partitions in a daemon thread (once)."""
        if self.thread is not None or not self.settings.consume:
            return
        assert self.bus is not None
        consumer = self.bus.consumer(self.settings.owned())
        self.thread = threading.Thread(
            target=self.pipeline.run,
            args=(consumer, stop),
            # In memory the backlog dies with the process: persist what was counted rather than lose it.
            kwargs={"flush_on_stop": isinstance(self.bus, MemoryBus)},
            name="zhiban-telemetry-pipeline",
            daemon=True,
        )
        self.thread.start()

    def drain(self, *, flush: bool = False) -> int:
        """Consume every ready message now and tick (tests, the CLI); returns reports counted."""
        assert self.bus is not None
        consumer = self.bus.consumer(self.settings.owned())
        counted = 0
        while messages := consumer.fetch(256, timeout=0):
            counted += self.pipeline.handle(messages)
        self.pipeline.tick(flush=flush)
        return counted


_RUNTIMES: dict[int, TelemetryRuntime] = {}
_RUNTIMES_LOCK = threading.Lock()


def runtime_for(desk: Desk, **options: Any) -> TelemetryRuntime:
    """The desk's telemetry runtime (created on first use; `options` only apply then)."""
    with _RUNTIMES_LOCK:
        runtime = _RUNTIMES.get(id(desk))
        if runtime is None or runtime.desk is not desk:
            runtime = _RUNTIMES[id(desk)] = TelemetryRuntime(desk, **options)
        return runtime


def start_telemetry(desk: Desk, stop: threading.Event) -> TelemetryRuntime:
    """Start consuming telemetry in this process (for `zhiban serve`); returns the runtime."""
    runtime = runtime_for(desk)
    runtime.start(stop)
    return runtime


def ensure_demo_apps(desk: Desk) -> list[str]:
    """Create the simulator's demo apps for the demo organizations that exist; returns their app ids."""
    from zhiban.apps import service as apps

    made = []
    with desk.transaction() as session:
        for app_id, owner in DEMO_APP_OWNERS.items():
            if apps.ensure_app(session, desk.clock, app_id=app_id, organization_slug=owner) is not None:
                made.append(app_id)
    return made


def start_live_simulation(
    desk: Desk, stop_event: threading.Event, *, peak_sessions: int | None = None, seed: int = 7
) -> threading.Thread:
    """Feed simulated RTC traffic of the demo apps into the pipeline, in real time, until stop_event is set."""
    from zhiban.telemetry.simulator import Simulator, demo_apps

    runtime = start_telemetry(desk, stop_event)
    present = set(ensure_demo_apps(desk))
    settings_peak = peak_sessions or runtime.settings.live_peak_sessions
    apps = [a for a in demo_apps(peak_sessions=settings_peak) if a.app_id in present]
    now = desk.clock.now()
    # Start a few minutes back so the charts have something to show at once.
    start = now.replace(second=now.second - now.second % 10, microsecond=0) - timedelta(minutes=5)
    simulator = Simulator(apps, seed=seed, start=start)
    runtime.simulator = simulator

    def feed() -> None:
        while not stop_event.is_set():
            try:
                reports = simulator.advance_to(desk.clock.now())
                by_app: dict[str, list[dict[str, Any]]] = {}
                for report in reports:
                    by_app.setdefault(report["app_id"], []).append(report)
                for app_id, batch in by_app.items():
                    runtime.ingestor.ingest_reports(app_id, batch)
            except Exception:
                log.exception("live simulation step failed")
            stop_event.wait(1.0)

    thread = threading.Thread(target=feed, name="zhiban-simulator", daemon=True)
    if apps:
        thread.start()
    return thread


def inject_fault(desk: Desk, fault: Any) -> None:
    """Add a named fault (simulator_faults.Fault) to this process's running live simulation (the demo path)."""
    from zhiban.core.errors import NotFound

    runtime = runtime_for(desk)
    if runtime.simulator is None:
        raise NotFound("no live simulation runs in this process (ZHIBAN_SIMULATE=true with `zhiban serve`)")
    runtime.simulator.add_fault(fault)

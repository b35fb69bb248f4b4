"""Replay recorded telemetry through the same steps as the live desk: parse → dedup → aggregate → detect.

Event time throughout, as fast as the machine goes; the detections are what the live stream gave (the
same aggregator settings as the pipeline: 10 s windows, 30 s of allowed lateness, 15 min of dedup).
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import IO

import numpy as np
import orjson

from zhiban.core.errors import InvalidInput, ZhibanError
from zhiban.detect.detections import Detection
from zhiban.detect.engine import DetectionEngine, EngineOptions
from zhiban.detect.rules import Rule
from zhiban.telemetry.aggregate import Aggregator
from zhiban.telemetry.batch import ReportBatch
from zhiban.telemetry.dedup import Deduplicator
from zhiban.telemetry.parse import parse_batch
from zhiban.telemetry.webrtc import WebrtcConverter
from zhiban.telemetry.window import WindowAggregate

CHUNK_LINES = 10_000  # the contract's batch size
MAX_LINE = 1_000_000


@dataclass
class ReplaySummary:
    """What a replay read and found."""

    reports: int = 0
    rejected: int = 0
    windows: int = 0
    seconds: float = 0.0
    detections: list[Detection] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)  # steps the engine isolated, by cause (as live counts them)

    @property
    def windows_per_second(self) -> float:
        return self.windows / self.seconds if self.seconds > 0 else 0.0


class Replayer:
    """Feeds report lines through parse, dedup, the aggregator and the engine; `flush()` at the end."""

    def __init__(
        self,
        engine: DetectionEngine | None = None,
        *,
        window_seconds: int = 10,
        allowed_lateness_seconds: int = 30,
        dedup_horizon_seconds: int = 900,
    ) -> None:
        self.engine = engine or DetectionEngine()
        self.aggregator = Aggregator(window_seconds=window_seconds, allowed_lateness_seconds=allowed_lateness_seconds)
        self.dedup = Deduplicator(horizon_seconds=dedup_horizon_seconds)
        self.converter = WebrtcConverter()
        self.summary = ReplaySummary()
        self._closed: list[Detection] = []

    def feed(self, body: bytes) -> list[Detection]:
        """One batch (NDJSON or a JSON array); returns detections that closed because of it."""
        if not body.strip():
            return []
        try:
            parsed = parse_batch(body, max_bytes=len(body) + 1, max_decompressed=len(body) + 1)
        except ZhibanError as exc:
            raise InvalidInput(f"unreadable telemetry batch: {exc.detail}") from exc
        self.summary.rejected += len(parsed.rejected)
        converted = self.converter.convert(parsed.webrtc)
        batch = ReportBatch.concat([parsed.batch, converted]) if len(converted) else parsed.batch
        if len(batch) == 0:
            return []
        fresh = batch.take(self.dedup.fresh(batch))
        closed: list[Detection] = []
        for part in self._spans(fresh):
            self.summary.reports += self.aggregator.add(part)
            closed += self._detect(self.aggregator.advance())
        return closed

    def _spans(self, batch: ReportBatch) -> list[ReportBatch]:
        """The batch cut where event time moves on by a span (the lateness and one window): a sparse chunk of
        10k lines covers hours, and counted at once it held every window of those hours open together
        (3.2 GB, issue 16). Cut so, windows close as the live pipeline's ticks close them."""
        ts = batch.ts_ms
        if len(ts) == 0:
            return []
        span = self.aggregator.lateness_ms + self.aggregator.window_ms
        step = (np.maximum.accumulate(ts) - int(ts[0])) // span  # (never back: a late report stays in its slice)
        cuts = np.flatnonzero(step[1:] != step[:-1]) + 1
        if len(cuts) == 0:
            return [batch]
        bounds = [0, *cuts.tolist(), len(ts)]
        return [batch.take(np.arange(a, b)) for a, b in pairwise(bounds)]

    def flush(self) -> list[Detection]:
        """Close every window (end of input); returns detections closed by that."""
        return self._detect(self.aggregator.flush())

    def _detect(self, windows: list[WindowAggregate]) -> list[Detection]:
        self.summary.windows += len(windows)
        events = self.engine.process(windows)
        closed = [e.detection for e in events if e.kind == "closed"]
        self.summary.detections.extend(closed)
        return closed


def read_chunks(stream: IO[bytes], lines: int = CHUNK_LINES) -> Iterator[bytes]:
    """NDJSON lines in chunks of `lines` (bounded line length)."""
    chunk: list[bytes] = []
    for line in stream:
        if len(line) > MAX_LINE:
            raise InvalidInput(f"a line is longer than {MAX_LINE} bytes")
        if line.strip():
            chunk.append(line.rstrip(b"\r\n"))
        if len(chunk) >= lines:
            yield b"\n".join(chunk)
            chunk = []
    if chunk:
        yield b"\n".join(chunk)


def _open(path: Path) -> IO[bytes]:
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def replay_chunks(
    chunks: Iterable[bytes],
    write: Callable[[Detection], None],
    *,
    options: EngineOptions | None = None,
    rules: list[Rule] | None = None,
    plan_of: Callable[[str], str | None] | None = None,
) -> ReplaySummary:
    """Replay batches; `write` gets each detection as it closes, then the ones still open at the end."""
    began = time.perf_counter()
    replayer = Replayer(DetectionEngine(options, rules=rules or [], plan_of=plan_of))
    for chunk in chunks:
        for detection in replayer.feed(chunk):
            write(detection)
    for detection in replayer.flush():
        write(detection)
    still_open = sorted(replayer.engine.open_detections(), key=lambda d: (d.opened_at, d.app_id, d.metric))
    for detection in still_open:
        write(detection)
    replayer.summary.detections.extend(still_open)
    replayer.summary.failures = dict(sorted(replayer.engine.failures.items()))
    replayer.summary.seconds = time.perf_counter() - began
    return replayer.summary


def replay_file(
    path: Path,
    out: Path,
    *,
    options: EngineOptions | None = None,
    rules: list[Rule] | None = None,
    plan_of: Callable[[str], str | None] | None = None,
) -> ReplaySummary:
    """Replay an NDJSON(.gz) recording into `out`: one §4 detection per line."""
    with _open(path) as stream, out.open("wb") as sink:

        def write(detection: Detection) -> None:
            sink.write(orjson.dumps(detection.to_json()) + b"\n")

        return replay_chunks(read_chunks(stream), write, options=options, rules=rules, plan_of=plan_of)

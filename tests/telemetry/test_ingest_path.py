"""The ingest hot path: raw sampling bounded from the first batch, failed persistence retried, cheap selections."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pytest
from sqlalchemy import text

from zhiban.desk import Desk
from zhiban.telemetry import store
from zhiban.telemetry.bus import MemoryBus
from zhiban.telemetry.live import Ingestor
from zhiban.telemetry.parse import parse_batch
from zhiban.telemetry.pipeline import Pipeline, PipelineOptions

T0 = datetime(2026, 11, 20, 19, 0, tzinfo=UTC)


def report(session_id: str, seconds: float, **extra: Any) -> dict[str, Any]:
    ts = int((T0 + timedelta(seconds=seconds)).timestamp() * 1000)
    return {"v": 1, "app_id": "liveco", "ts": ts, "session_id": session_id, "region": "cn-east", **extra}


def consume_all(bus: MemoryBus, pipeline: Pipeline) -> int:
    consumer = bus.consumer(range(bus.partitions))
    counted = 0
    while messages := consumer.fetch(64, timeout=0):
        counted += pipeline.handle(messages)
    return counted


def test_raw_reports_are_sampled_within_the_budget_from_the_first_batch(desk: Desk) -> None:
    bus = MemoryBus(partitions=1)
    ingest = Ingestor(bus)
    # 100 sessions report 20 intervals, a batch per interval, all within one instant of processing time:
    # a burst of 2,000 reports against a budget of 100 raw rows per second.
    for k in range(20):
        ingest.ingest_reports("liveco", [report(f"s{j}", 10 * k + 1) for j in range(100)])
    pipeline = Pipeline(
        desk.sessions, clock=desk.clock, options=PipelineOptions(raw_rows_per_second=100), monotonic=lambda: 50.0
    )
    assert consume_all(bus, pipeline) == 2_000
    pipeline.tick(flush=True)
    with desk.transaction() as s:
        rows = store.raw_reports(s, "liveco", 0, 2**62)
        assert store.count_reports(s, "liveco") == 2_000  # sampling touches the raw rows only
    # The first batch is kept whole, then the share shrinks with the burst: a few budgets' worth, not all.
    assert 100 <= len(rows) <= 500, len(rows)
    # Sampling is by session and the share only shrinks, so every kept timeline runs unbroken from the start.
    intervals: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        intervals[row.session_id].append(int(orjson.loads(row.body)["ts"] - rows[0].ts_ms) // 10_000)
    assert len(intervals) == 100
    for kept in intervals.values():
        assert sorted(kept) == list(range(len(kept)))


def test_windows_whose_persistence_failed_are_saved_by_the_next_tick(desk: Desk) -> None:
    bus = MemoryBus(partitions=1)
    ingest = Ingestor(bus)
    ingest.ingest_reports("liveco", [report(f"s{i}", 1) for i in range(50)])
    ingest.ingest_reports("liveco", [report("late-comer", 45)])  # moves the watermark past the first window
    pipeline = Pipeline(desk.sessions, clock=desk.clock)
    assert consume_all(bus, pipeline) == 51
    with desk.transaction() as s:  # a real failure: the table is gone while the tick runs
        s.execute(text("ALTER TABLE telemetry_windows RENAME TO telemetry_windows_away"))
    try:
        with pytest.raises(Exception, match="telemetry_windows"):
            pipeline.tick()
    finally:
        with desk.transaction() as s:
            s.execute(text("ALTER TABLE telemetry_windows_away RENAME TO telemetry_windows"))
    assert pipeline.held == 2  # nothing was acknowledged: nothing was stored
    pipeline.tick()
    with desk.transaction() as s:
        assert store.count_reports(s, "liveco") == 50
        assert len(store.raw_reports(s, "liveco", 0, 2**62)) == 51
    assert pipeline.held == 1  # the first batch's window is stored: acknowledged; the late-comer's is open


def test_selecting_every_row_costs_nothing_and_a_subset_keeps_its_reports() -> None:
    items = [
        report(f"s{i}", i, user_id=f"u{i}", events=[{"type": "join", "ok": True, "latency_ms": 100 + i}])
        for i in range(5)
    ]
    parsed = parse_batch(b"\n".join(map(orjson.dumps, items)))
    batch = parsed.batch
    assert parsed.entries == [orjson.dumps(item) for item in items]
    assert batch.take(np.ones(5, dtype=bool)) is batch
    assert batch.take(np.arange(5)) is batch
    subset = batch.take([3, 1])
    assert subset.reports() == [batch.report(3), batch.report(1)]
    assert subset.join_latency_ms.tolist() == [103.0, 101.0] and subset.join_latency_row.tolist() == [0, 1]
    assert batch.take([4]).session_id == ["s4"] and len(batch.take([])) == 0

"""Deduplication of resent batches, and the quality summary attached to tickets."""

from __future__ import annotations

import numpy as np
import pytest

from zhiban.telemetry.aggregate import Aggregator
from zhiban.telemetry.batch import ReportBatch
from zhiban.telemetry.dedup import Deduplicator
from zhiban.telemetry.model import QualityReport, VideoStats
from zhiban.telemetry.summary import summarize
from zhiban.telemetry.window import SliceKey

T = 1_795_287_600_000


def batch_of(*ids: tuple[str, str, int]) -> ReportBatch:
    return ReportBatch.from_reports(QualityReport(app_id=a, session_id=s, ts_ms=t) for a, s, t in ids)


def test_a_batch_sent_twice_is_counted_once() -> None:
    dedup = Deduplicator()
    agg = Aggregator()
    batch = batch_of(("a", "s1", T), ("a", "s2", T), ("b", "s1", T), ("a", "s1", T + 10_000))
    for _ in range(2):
        agg.add(batch.take(dedup.fresh(batch)))
    assert dedup.duplicates == 4
    app_a = next(w for w in agg.flush() if w.key == SliceKey("a") and w.reports)
    assert app_a.reports == 2


def test_repeats_inside_one_batch_keep_the_first() -> None:
    dedup = Deduplicator()
    fresh = dedup.fresh(batch_of(("a", "s", T), ("a", "s", T), ("a", "s", T + 1), ("a", "t", T)))
    assert fresh.tolist() == [True, False, True, True]


def test_memory_is_bounded_in_time_and_size() -> None:
    dedup = Deduplicator(horizon_seconds=60, bucket_seconds=10, max_entries=1000)
    dedup.fresh(batch_of(*(("a", f"s{i}", T) for i in range(100))))
    dedup.fresh(batch_of(("a", "late", T + 120_000)))
    assert dedup.entries == 1  # the old bucket fell out of the horizon
    # Too old to check: passed through and counted, never silently dropped.
    assert dedup.fresh(batch_of(("a", "s0", T))).tolist() == [True]
    assert dedup.expired == 1
    for k in range(5):
        dedup.fresh(batch_of(*(("a", f"s{i}", T + 130_000 + k * 10_000) for i in range(400))))
    assert dedup.entries <= 1000


def test_identities_differ_by_app_session_and_ts() -> None:
    dedup = Deduplicator()
    assert dedup.fresh(batch_of(("a", "s", T), ("b", "s", T), ("a", "t", T), ("a", "s", T + 1))).all()


def test_summary_puts_the_slice_that_hurts_most_first() -> None:
    rng = np.random.default_rng(2)
    reports = []
    for i in range(400):
        edge = "sh-edge-07" if i % 4 == 0 else f"edge-{i % 3}"
        freeze = 900.0 if edge == "sh-edge-07" else float(rng.integers(0, 100))
        reports.append(
            QualityReport(app_id="liveco", session_id=f"s{i}", ts_ms=T + i * 50, edge=edge, region="cn-east",
                          video=VideoStats(active_ms=10_000, freeze_ms=freeze))
        )  # fmt: skip
    agg = Aggregator()
    agg.add(ReportBatch.from_reports(reports))
    summary = summarize(agg.flush(), worst=3)
    overall = summary.overall["liveco"]
    assert overall["sessions"] == pytest.approx(400, rel=0.03)  # HyperLogLog
    top = summary.worst[0]
    assert (top.key, top.metric) == (SliceKey("liveco", "edge", "sh-edge-07"), "video_freeze_rate")
    assert top.observed == pytest.approx(0.09)
    assert top.baseline == overall["video_freeze_rate"]
    assert top.sessions == pytest.approx(100, abs=2)
    assert top.impact == pytest.approx(top.sessions * (0.09 - top.baseline) / top.baseline)
    assert len(summary.worst) <= 3
    assert all(f.key.value != "cn-east" for f in summary.worst)  # the whole app is not "worse than itself"
    assert summarize([]).worst == [] and summarize([]).overall == {}

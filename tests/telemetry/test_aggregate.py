"""Windowed aggregation: metrics per slice, watermark and lateness, bounded state, merge and rollup."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest
from ddsketch import DDSketch

from zhiban.telemetry.aggregate import Aggregator
from zhiban.telemetry.batch import ReportBatch
from zhiban.telemetry.hashing import hash_strings
from zhiban.telemetry.model import AudioStats, Event, NetStats, QualityReport, VideoStats, ms_to_datetime
from zhiban.telemetry.sketch import QuantileSketch, hll_estimate, hll_registers
from zhiban.telemetry.window import SliceKey, WindowAggregate, merge, rollup

T = 1_795_287_600_000  # 2026-11-21T19:00:00Z, on a 10 s and a 60 s boundary


def rep(session: str, ts_ms: int, app: str = "liveco", **kw: object) -> QualityReport:
    return QualityReport(app_id=app, session_id=session, ts_ms=ts_ms, **kw)  # type: ignore[arg-type]


def add_and_flush(agg: Aggregator, reports: list[QualityReport]) -> list[WindowAggregate]:
    agg.add(ReportBatch.from_reports(reports))
    return agg.flush()


def by_key(windows: list[WindowAggregate]) -> dict[SliceKey, WindowAggregate]:
    return {w.key: w for w in windows}


def test_metrics_of_one_window() -> None:
    reports = [
        rep("s1", T + 1000, region="cn-east", events=(Event("join", ok=True, latency_ms=800),),
            video=VideoStats(active_ms=10_000, freeze_ms=600), audio=AudioStats(active_ms=10_000, freeze_ms=100,
            loss_pct=1.0, jitter_ms=10, e2e_delay_ms=150), net=NetStats(rtt_ms=40), av_sync_ms=-80),
        rep("s2", T + 2000, region="cn-east", events=(Event("join", ok=False, code=110),),
            video=VideoStats(active_ms=10_000, freeze_ms=0, e2e_delay_ms=300), av_sync_ms=20),
        # active without freeze measured: must not dilute the freeze rate
        rep("s3", T + 3000, region="eu-west", video=VideoStats(active_ms=10_000)),
        rep("s1", T + 9999, region="cn-east"),
    ]  # fmt: skip
    agg = Aggregator()
    agg.add(ReportBatch.from_reports(reports))
    windows = by_key(agg.flush())
    app = windows[SliceKey("liveco")]
    assert app.window_start == ms_to_datetime(T) and app.window_seconds == 10
    assert app.reports == 4 and app.sessions == 3
    assert app.join_success_rate == 0.5
    assert app.video_freeze_rate == pytest.approx(600 / 20_000)
    assert app.audio_freeze_rate == pytest.approx(100 / 10_000)
    assert app.mos is not None and 4.0 < app.mos < 4.5  # one measured report: 40 ms rtt, 10 ms jitter, 1 % loss
    # Two values each; DDSketch's rank rule q·(n−1) = 0.95 rounds down to the smaller one.
    assert app.e2e_delay_p95_ms == pytest.approx(150, rel=0.01)  # s1: audio 150 (no video e2e), s2: video 300
    assert app.av_sync_p95_ms == pytest.approx(20, rel=0.01)  # |−80| and 20
    assert app.sketches["av_sync_ms"].quantile(1.0) == pytest.approx(80, rel=0.01)
    assert app.join_latency_p95_ms == pytest.approx(800, rel=0.01)
    assert app.rtt_p95_ms == pytest.approx(40, rel=0.01)
    east = windows[SliceKey("liveco", "region", "cn-east")]
    assert east.sessions == 2 and east.reports == 3
    assert windows[SliceKey("liveco", "region", "eu-west")].video_freeze_rate is None
    assert SliceKey("liveco", "channel", None) not in windows


def test_percentiles_are_within_one_percent_of_the_exact_ones() -> None:
    rng = np.random.default_rng(5)
    rtts = rng.lognormal(4, 0.7, 2000)
    reports = [rep(f"s{i}", T + i, net=NetStats(rtt_ms=float(v))) for i, v in enumerate(rtts)]
    agg = Aggregator()
    agg.add(ReportBatch.from_reports(reports))
    app = by_key(agg.flush())[SliceKey("liveco")]
    # DDSketch's rank rule: the value at rank q·(n−1), rounded down
    exact = float(np.quantile(rtts, 0.95, method="lower"))
    assert app.rtt_p95_ms == pytest.approx(exact, rel=0.01)


def test_every_dimension_gets_slices_and_channel_only_on_request() -> None:
    dims = dict(region="r", country="CN", isp="i", network="4g", platform="ios", sdk_version="1", edge="e", role="host")
    report = rep("s", T, channel="room-1", **dims)
    default = by_key(add_and_flush(Aggregator(), [report]))
    assert {(k.dimension, k.value) for k in default} == {(None, None), *dims.items()}
    with_channel = Aggregator(dimensions=["channel"])
    with_channel.add(ReportBatch.from_reports([report]))
    assert {k.dimension for k in by_key(with_channel.flush())} == {None, "channel"}


def test_watermark_lateness_and_closed_windows() -> None:
    agg = Aggregator(window_seconds=10, allowed_lateness_seconds=30)
    agg.add(ReportBatch.from_reports([rep("a", T + 60_000)]))
    assert agg.advance() == []  # watermark 30 s: the only window, [60, 70), stays open
    agg.add(ReportBatch.from_reports([rep("b", T + 35_000), rep("c", T + 25_000)]))  # 25 s and 35 s behind
    assert agg.late_dropped == 1
    closed = agg.advance()  # watermark = 60 − 30 = 30 s: the window [30, 40) is still open
    assert [w.window_start for w in closed] == []
    closed = agg.advance(ms_to_datetime(T + 45_000))
    assert [(w.key, w.window_start) for w in closed] == [(SliceKey("liveco"), ms_to_datetime(T + 30_000))]
    agg.add(ReportBatch.from_reports([rep("d", T + 38_000)]))  # its window is closed now
    assert agg.late_dropped == 2
    rest = agg.flush()
    assert [(w.window_start, w.reports) for w in rest] == [(ms_to_datetime(T + 60_000), 1)]
    assert agg.open_windows == 0


def test_lateness_is_per_app() -> None:
    agg = Aggregator(allowed_lateness_seconds=10)
    agg.add(ReportBatch.from_reports([rep("a", T + 600_000, app="fast")]))
    agg.add(ReportBatch.from_reports([rep("b", T, app="slow")]))
    assert agg.late_dropped == 0
    assert {w.key.app_id for w in agg.flush()} == {"fast", "slow"}


def test_future_reports_are_refused_when_a_clock_is_given() -> None:
    agg = Aggregator(max_clock_skew_seconds=60)
    counted = agg.add(ReportBatch.from_reports([rep("a", T), rep("b", T + 3_600_000)]), now=T)
    assert counted == 1 and agg.future_dropped == 1


def test_rollup_equals_aggregating_with_the_longer_window_directly() -> None:
    rng = np.random.default_rng(9)
    reports = [
        rep(
            f"s{i % 40}",
            T + int(rng.integers(0, 120_000)),
            region=("a", "b")[i % 2],
            video=VideoStats(10_000, float(rng.integers(0, 2000)), e2e_delay_ms=float(rng.integers(50, 900))),
            net=NetStats(rtt_ms=float(rng.integers(10, 300))),
            audio=AudioStats(jitter_ms=5.0, loss_pct=float(rng.random())),
            events=(Event("join", ok=bool(i % 3), latency_ms=float(rng.integers(300, 3000))),),
        )
        for i in range(500)
    ]
    batch = ReportBatch.from_reports(sorted(reports, key=lambda r: r.ts_ms))
    fine = Aggregator(window_seconds=10, allowed_lateness_seconds=600)
    fine.add(batch)
    coarse = Aggregator(window_seconds=60, allowed_lateness_seconds=600)
    coarse.add(batch)
    rolled = {(w.key, w.window_start): w for w in rollup(fine.flush(), 60)}
    direct = {(w.key, w.window_start): w for w in coarse.flush()}
    assert rolled.keys() == direct.keys() and len(direct) == 2 * 3  # 2 minutes × (app + 2 regions)
    for key, expected in direct.items():
        got = rolled[key]
        assert got.window_seconds == 60
        assert got.counters == pytest.approx(expected.counters)
        assert np.array_equal(got.session_registers, expected.session_registers)
        assert got.metrics() == pytest.approx(expected.metrics())
    hour = rollup(list(rolled.values()), 3600)
    assert {w.reports for w in hour if w.key == SliceKey("liveco")} == {500}


def test_merge_refuses_different_slices_and_rollup_needs_a_multiple() -> None:
    agg = Aggregator()
    agg.add(ReportBatch.from_reports([rep("s", T, region="x")]))
    app, region = sorted(agg.flush(), key=lambda w: w.key.dimension or "")
    with pytest.raises(Exception, match="different slices"):
        merge(app, region)
    with pytest.raises(Exception, match="not a multiple"):
        rollup([app], 15)
    two = merge(app, app)
    assert two.reports == 2 and two.sessions == 1 and two.window_end == app.window_end


def test_state_is_bounded_keys_fold_into_other_and_old_windows_are_evicted() -> None:
    agg = Aggregator(max_keys_per_app=4, max_open_windows_per_app=2, allowed_lateness_seconds=3600)
    agg.add(ReportBatch.from_reports([rep(f"s{i}", T, edge=f"edge-{i}") for i in range(10)]))
    edges = {w.key.value: w.reports for w in agg.flush() if w.key.dimension == "edge"}
    assert edges == {"edge-0": 1, "edge-1": 1, "edge-2": 1, "(other)": 7}
    for k in range(3):
        agg.add(ReportBatch.from_reports([rep("s", T + 100_000 + k * 10_000)]))
    assert agg.open_windows == 2
    evicted = agg.advance(T)  # nothing is due by the watermark, but the evicted window comes out
    assert [w.window_start for w in evicted] == [ms_to_datetime(T + 100_000)]


def test_a_batch_mixing_apps_and_windows() -> None:
    reports = [rep("s", T + 1000 * i + 10_000 * (i % 2), app=("x", "y", "z")[i % 3], region="r") for i in range(30)]
    agg = Aggregator()
    agg.add(ReportBatch.from_reports(reports))
    counts = {(w.key.app_id, w.key.dimension, w.window_start): w.reports for w in agg.flush()}
    expected: dict[tuple[str, str | None, object], int] = {}
    for r in reports:
        start = ms_to_datetime(r.ts_ms - r.ts_ms % 10_000)
        for dimension in (None, "region"):
            expected[(r.app_id, dimension, start)] = expected.get((r.app_id, dimension, start), 0) + 1
    assert counts == expected


def test_quantile_sketch_matches_ddsketch_and_merges() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.exponential(50, 3000), np.concatenate([rng.exponential(5, 1000), np.zeros(50)])
    reference = DDSketch(0.01)
    for value in np.concatenate([a, b]):
        reference.add(float(value))
    merged = QuantileSketch.from_values(a).merge(QuantileSketch.from_values(b))
    assert merged.count == reference.count
    for q in (0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0):
        assert merged.quantile(q) == pytest.approx(reference.get_quantile_value(q), rel=1e-9)
        assert merged.to_ddsketch().get_quantile_value(q) == pytest.approx(reference.get_quantile_value(q), rel=1e-9)
    assert QuantileSketch.empty().quantile(0.5) is None


def test_session_counts_are_exact_when_small_and_close_when_large() -> None:
    small = hll_registers(hash_strings([f"s{i}" for i in range(37)] * 3))
    assert round(hll_estimate(small)) == 37
    large = hll_registers(hash_strings([f"session-{i}" for i in range(50_000)]))
    assert hll_estimate(large) == pytest.approx(50_000, rel=0.05)
    assert math.isclose(hll_estimate(np.maximum(small, small)), hll_estimate(small))


def test_window_end_and_labels() -> None:
    agg = Aggregator(window_seconds=10)
    agg.add(ReportBatch.from_reports([rep("s", T, region="cn-east")]))
    region = next(w for w in agg.flush() if w.key.dimension)
    assert region.window_end - region.window_start == timedelta(seconds=10)
    assert region.key.label() == "liveco region=cn-east"


def quiet_and_busy_reports(n: int, seed: int = 3) -> list[QualityReport]:
    """Reports of a few slices with spread values, zeros and unmeasured fields, over three windows."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        loss = [0.0, None, float(rng.exponential(2.0))][k % 3]
        out.append(
            rep(f"s{rng.integers(0, n // 2 + 1)}", T + int(rng.integers(0, 30_000)),
                app=["liveco", "hiyo"][k % 2], region=["cn-east", "eu-west", None][k % 3],
                isp=f"isp-{k % 5}", events=(Event("join", ok=True, latency_ms=float(rng.integers(0, 3000))),)
                if k % 7 == 0 else (), video=VideoStats(active_ms=10_000, freeze_ms=float(rng.integers(0, 500)),
                loss_pct=loss, e2e_delay_ms=float(rng.lognormal(5, 1))),
                net=NetStats(rtt_ms=float(rng.integers(0, 900))), av_sync_ms=float(rng.normal(0, 60)))
        )  # fmt: skip
    return out


@pytest.mark.parametrize("n", [12, 400, 5000])
def test_sparse_and_dense_sketch_bins_close_to_the_same_windows(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """A quiet window counts its sketch bins sparse, a busy one dense (aggregate.DENSE_AFTER): the same reports
    give the same sketches, counters and sessions either way, whether the window turned dense at once or midway."""
    import zhiban.telemetry.aggregate as aggregate

    reports = quiet_and_busy_reports(n)

    def closed(dense_after: int) -> dict[tuple[SliceKey, object], WindowAggregate]:
        monkeypatch.setattr(aggregate, "DENSE_AFTER", dense_after)
        monkeypatch.setattr(aggregate, "DENSE_RATIO", 0)  # (only DENSE_AFTER decides here)
        agg = Aggregator()
        for part in (reports[: n // 3], reports[n // 3 :]):  # two adds: a window may turn dense in between
            agg.add(ReportBatch.from_reports(part))
        return {(w.key, w.window_start): w for w in agg.flush()}

    sparse, dense, midway = closed(10**9), closed(0), closed(len(reports) * 3)
    assert sparse.keys() == dense.keys() == midway.keys()
    for key, w in sparse.items():
        for other in (dense[key], midway[key]):
            assert dict(w.counters) == dict(other.counters)
            assert np.array_equal(w.session_registers, other.session_registers)
            assert w.sessions == other.sessions == round(hll_estimate(w.session_registers))
            for name, sketch in w.sketches.items():
                theirs = other.sketches[name]
                assert (sketch.min_key, sketch.zero_count) == (theirs.min_key, theirs.zero_count), name
                assert sketch.counts.tolist() == theirs.counts.tolist(), name


def test_session_estimates_of_many_keys_at_once_match_one_at_a_time() -> None:
    """hll_estimates (every key of a closing window at once, with or without the set-register counts the
    aggregator knows) gives each key the classic estimate: linear counting while sparse, raw when full."""
    from zhiban.telemetry.sketch import HLL_REGISTERS, hll_estimates

    rng = np.random.default_rng(5)
    sizes = [0, 1, 3, 50, 700, 2500, 3000, 6000, 40_000, 2_000_000]
    registers = np.stack([hll_registers(rng.integers(0, 2**64 - 1, size, dtype=np.uint64, endpoint=True))
                          for size in sizes])  # fmt: skip
    nonzero = np.count_nonzero(registers, axis=1)
    for row, size in enumerate(sizes):
        m = HLL_REGISTERS
        empty = int(m - nonzero[row])
        raw = 0.7213 / (1 + 1.079 / m) * m * m / float(np.sum(np.ldexp(1.0, -registers[row].astype(np.int32))))
        classic = m * math.log(m / empty) if raw <= 2.5 * m and empty > 0 else raw
        assert hll_estimates(registers)[row] == pytest.approx(classic, rel=1e-12, abs=1e-9)
        assert hll_estimates(registers, nonzero)[row] == hll_estimates(registers)[row]
        if size:
            assert hll_estimate(registers[row]) == pytest.approx(size, rel=0.05)

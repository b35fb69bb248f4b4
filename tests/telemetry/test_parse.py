"""parse_batch: formats, per-report rejections, whole-batch limits, and agreement with validate_report."""

from __future__ import annotations

import contextlib
import gzip
import math
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zhiban.core.errors import InvalidInput, TooLarge
from zhiban.telemetry.model import AudioStats, NetStats, VideoStats
from zhiban.telemetry.parse import parse_batch
from zhiban.telemetry.validate import validate_report

# The example report of TELEMETRY.md §1, verbatim.
CONTRACT_SAMPLE: dict[str, Any] = orjson.loads(
    b"""{"v": 1, "app_id": "liveco", "ts": "2026-11-21T19:00:10Z", "interval_ms": 10000,
 "session_id": "s-9f1c", "channel": "room-8812", "user_id": "u123", "role": "audience",
 "region": "cn-east", "country": "CN", "isp": "china-mobile", "network": "4g",
 "platform": "android", "sdk_version": "4.3.2", "edge": "sh-edge-07",
 "events": [{"type": "join", "ok": true, "latency_ms": 820}],
 "audio": {"active_ms": 10000, "freeze_ms": 0, "loss_pct": 0.4, "jitter_ms": 12, "e2e_delay_ms": 180,
           "bitrate_kbps": 32},
 "video": {"active_ms": 10000, "freeze_ms": 600, "fps": 15, "loss_pct": 0.2, "e2e_delay_ms": 210,
           "bitrate_kbps": 900},
 "net": {"rtt_ms": 45, "uplink_loss_pct": 0.1, "downlink_loss_pct": 0.3, "available_kbps": 3000},
 "av_sync_ms": 35}"""
)
SAMPLE_TS_MS = 1_795_287_610_000  # 2026-11-21T19:00:10Z


def report(**changes: Any) -> dict[str, Any]:
    out = orjson.loads(orjson.dumps(CONTRACT_SAMPLE))
    for key, value in changes.items():
        if value is _DROP:
            out.pop(key, None)
        else:
            out[key] = value
    return out


_DROP = object()


def ndjson(items: list[Any]) -> bytes:
    return b"\n".join(orjson.dumps(item) for item in items)


def test_contract_sample_is_read_field_by_field() -> None:
    result = parse_batch(orjson.dumps([CONTRACT_SAMPLE]))
    assert result.rejected == []
    (r,) = result.reports
    assert (r.app_id, r.session_id, r.ts_ms, r.interval_ms) == ("liveco", "s-9f1c", SAMPLE_TS_MS, 10000)
    assert (r.region, r.edge, r.role, r.channel, r.user_id) == (
        "cn-east",
        "sh-edge-07",
        "audience",
        "room-8812",
        "u123",
    )
    assert r.audio == AudioStats(10000, 0, 0.4, 12, 180, 32)
    assert r.video == VideoStats(
        active_ms=10000, freeze_ms=600, fps=15, loss_pct=0.2, e2e_delay_ms=210, bitrate_kbps=900
    )
    assert r.net == NetStats(45, 0.1, 0.3, 3000)
    assert r.av_sync_ms == 35
    assert [(e.type, e.ok, e.latency_ms) for e in r.events] == [("join", True, 820)]
    assert r.labels == {}
    assert r == validate_report(CONTRACT_SAMPLE)


def test_array_ndjson_and_gzip_give_the_same_reports() -> None:
    items = [report(session_id=f"s-{i}", ts=SAMPLE_TS_MS + i) for i in range(5)]
    as_array = parse_batch(orjson.dumps(items)).reports
    as_lines = parse_batch(ndjson(items) + b"\n\n").reports
    as_gzip = parse_batch(gzip.compress(ndjson(items))).reports
    assert as_array == as_lines == as_gzip
    assert [r.session_id for r in as_array] == [f"s-{i}" for i in range(5)]


def test_missing_blocks_mean_not_measured_and_extra_fields_become_labels() -> None:
    minimal = {"v": 1, "app_id": "a", "ts": SAMPLE_TS_MS, "session_id": "s", "tenant_tier": "gold", "ab": 3}
    (r,) = parse_batch(orjson.dumps([minimal])).reports
    assert r.audio is None and r.video is None and r.net is None and r.av_sync_ms is None and r.interval_ms is None
    assert r.labels == {"tenant_tier": "gold", "ab": 3}
    batch = parse_batch(orjson.dumps([minimal])).batch
    assert math.isnan(batch.values["video_freeze_ms"][0])  # never zero


def test_ts_accepts_rfc3339_offsets_and_epoch_ms() -> None:
    items = [
        report(ts="2026-11-22T03:00:10+08:00"),
        report(ts="2026-11-21T19:00:10.000Z"),
        report(ts=SAMPLE_TS_MS),
    ]
    result = parse_batch(orjson.dumps(items))
    assert result.rejected == []
    assert result.batch.ts_ms.tolist() == [SAMPLE_TS_MS] * 3


BAD_REPORTS: list[tuple[dict[str, Any], str]] = [
    (report(app_id=_DROP), "app_id is required"),
    (report(v=2), "v must be 1"),
    (report(v=True), "v must be 1"),
    (report(ts="2026-11-21T19:00:10"), "ts must be"),
    (report(ts=1_795_287_610), "ts is out of range"),
    (report(ts="1999-12-31T23:59:59Z"), "ts is out of range"),
    (report(session_id=""), "session_id must not be empty"),
    (report(session_id="x" * 129), "session_id is longer"),
    (report(region=7), "region must be a string"),
    (report(audio={"loss_pct": 150}), "audio.loss_pct must be within 0..100"),
    (report(video={"fps": True}), "video.fps must be a number"),
    (report(net={"rtt_ms": "45"}), "net.rtt_ms must be a number"),
    (report(video={"active_ms": 1000, "freeze_ms": 2000}), "video.freeze_ms exceeds video.active_ms"),
    (report(audio={"jitter_ms": -1}), "audio.jitter_ms must be within"),
    (report(audio=[1, 2]), "audio must be an object"),
    (report(events=[{"type": "teleport"}]), "events[0].type must be one of"),
    (report(events=[{"type": "join", "ok": "yes"}]), "events[0].ok must be a boolean"),
    (report(events=[{"type": "join"}] * 65), "events has more than 64"),
    (report(nested={"a": 1}), "extra field 'nested' must be"),
    (report(format="csv"), "format must be"),
]


@pytest.mark.parametrize("encode", [orjson.dumps, ndjson], ids=["array", "ndjson"])
@pytest.mark.parametrize(("bad", "reason"), BAD_REPORTS, ids=[r for _, r in BAD_REPORTS])
def test_bad_report_is_rejected_with_index_and_reason_and_good_ones_kept(
    bad: dict[str, Any], reason: str, encode: Callable[[list[Any]], bytes]
) -> None:
    items = [report(session_id="good-0"), bad, report(session_id="good-2")]
    result = parse_batch(encode(items))
    assert [r.session_id for r in result.reports] == ["good-0", "good-2"]
    assert result.accepted_index.tolist() == [0, 2]
    (rejection,) = result.rejected
    assert rejection.index == 1
    assert reason in rejection.reason


def test_unparseable_ndjson_line_is_rejected_alone() -> None:
    body = orjson.dumps(report(session_id="a")) + b"\n{not json\n" + orjson.dumps(report(session_id="c"))
    result = parse_batch(body)
    assert [r.session_id for r in result.reports] == ["a", "c"]
    assert [(r.index, r.reason) for r in result.rejected] == [(1, "line is not valid JSON")]


def test_non_object_items_are_rejected() -> None:
    result = parse_batch(orjson.dumps([report(), 3, "x", None]))
    assert len(result.reports) == 1
    assert [r.index for r in result.rejected] == [1, 2, 3]


@pytest.mark.parametrize(
    "body", [b"", b"   ", b"[1, 2", b"garbage\nmore garbage", b'"just a string"', b"\x1f\x8bnot gzip"]
)
def test_an_unparseable_body_is_invalid_input(body: bytes) -> None:
    with pytest.raises(InvalidInput):
        parse_batch(body)


def test_limits_refuse_the_whole_batch() -> None:
    items = [report(session_id=f"s{i}") for i in range(11)]
    with pytest.raises(TooLarge):
        parse_batch(orjson.dumps(items), max_reports=10)
    with pytest.raises(TooLarge):
        parse_batch(ndjson(items), max_reports=10)
    with pytest.raises(TooLarge):
        parse_batch(ndjson(items), max_bytes=100)
    bomb = gzip.compress(b" " * 5_000_000 + ndjson(items))
    assert len(bomb) < 100_000
    with pytest.raises(TooLarge):
        parse_batch(bomb, max_decompressed=1_000_000)
    assert len(parse_batch(ndjson(items), max_reports=11).reports) == 11


_numbers = st.one_of(st.integers(-5, 2000), st.floats(-1, 200), st.none(), st.booleans())
_mutations = st.sampled_from(
    [
        ("v", st.sampled_from([1, 2, None, True, "1", 1.0])),
        ("app_id", st.one_of(st.none(), st.text(max_size=3), st.integers(-9, 9))),
        ("ts", st.one_of(st.integers(0, 5 * 10**12), st.sampled_from(["2026-11-21T19:00:10Z", "nope", "2026-11-21"]))),
        ("region", st.one_of(st.none(), st.text(max_size=130), st.integers(-9, 9), st.lists(st.integers(-9, 9)))),
        ("interval_ms", st.one_of(st.none(), st.floats(allow_nan=False, width=32), st.booleans(), st.text(max_size=2))),
        (
            "audio",
            st.one_of(st.none(), st.dictionaries(st.sampled_from(["loss_pct", "active_ms", "freeze_ms"]), _numbers)),
        ),
        (
            "video",
            st.one_of(st.none(), st.integers(-9, 9), st.dictionaries(st.sampled_from(["fps", "freeze_ms"]), _numbers)),
        ),
        ("events", st.one_of(st.none(), st.lists(st.fixed_dictionaries({"type": st.sampled_from(["join", "boom"])})))),
        ("extra", st.one_of(st.text(max_size=300), st.integers(-(2**63), 2**63 - 1), st.none(), st.lists(st.none()))),
    ]
)
_changes = st.lists(_mutations.flatmap(lambda m: st.tuples(st.just(m[0]), m[1])), max_size=3)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(_mutations.flatmap(lambda m: st.tuples(st.just(m[0]), m[1])), max_size=3), min_size=1, max_size=6)
)
def test_column_checks_agree_with_validate_report(mutations: list[list[tuple[str, Any]]]) -> None:
    # A JSON array takes the column checks; NDJSON the typed decoder, and the column checks for what it refuses.
    items = [report(**{"session_id": f"s{i}", **dict(changes)}) for i, changes in enumerate(mutations)]
    # What the wire carries: JSON has no inf or NaN (orjson writes them as null), so the reference judges that.
    items = orjson.loads(orjson.dumps(items))
    expected_ok = []
    for i, item in enumerate(items):
        with contextlib.suppress(InvalidInput):
            expected_ok.append((i, validate_report(item)))
    for body in (orjson.dumps(items), ndjson(items)):
        result = parse_batch(body)
        assert result.accepted_index.tolist() == [i for i, _ in expected_ok]
        by_index = dict(zip(result.accepted_index.tolist(), result.reports, strict=True))
        for i, expected in expected_ok:
            assert by_index[i] == expected
        assert {r.index for r in result.rejected} == set(range(len(items))) - {i for i, _ in expected_ok}


def test_indices_stay_right_across_the_internal_chunks() -> None:
    # parse_batch checks reports a few hundred at a time; positions must still refer to the whole batch.
    items: list[Any] = [report(session_id=f"s{i}", ts=SAMPLE_TS_MS + i) for i in range(2_500)]
    items[700] = report(v=3)
    items[1_999] = "not an object"
    for body in (orjson.dumps(items), ndjson(items)):
        result = parse_batch(body)
        assert [r.index for r in result.rejected] == [700, 1_999]
        assert result.accepted_index.tolist() == [i for i in range(2_500) if i not in (700, 1_999)]
        assert result.batch.session_id == [f"s{i}" for i in result.accepted_index.tolist()]
        assert result.batch.ts_ms.tolist() == [SAMPLE_TS_MS + i for i in result.accepted_index.tolist()]
        # every report has one successful join: latencies still point at their own rows
        assert result.batch.join_latency_row.tolist() == list(range(len(result.batch)))

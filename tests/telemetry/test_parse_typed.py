"""The typed NDJSON decoder (typed.py) against the reference path (orjson + column checks + validate_report).

parse_batch(typed_decode=False) sends every line the reference way; with the typed decoder the result must be
the same, whatever the lines hold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zhiban.telemetry import typed
from zhiban.telemetry.model import MAX_TS_MS, MIN_TS_MS, RANGES
from zhiban.telemetry.parse import BatchResult, parse_batch
from zhiban.telemetry.validate import BLOCK_FIELDS, KNOWN_FIELDS

TS = 1_795_287_610_000


def good(i: int, **changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "v": 1,
        "app_id": "liveco",
        "ts": TS + i,
        "session_id": f"s-{i}",
        "region": "cn-east",
        "audio": {"active_ms": 10_000, "freeze_ms": 0, "loss_pct": 0.4},
        "video": {"active_ms": 10_000, "freeze_ms": 600, "fps": 15},
        "net": {"rtt_ms": 45.5},
        "events": [{"type": "join", "ok": True, "latency_ms": 820}],
    }
    out.update(changes)
    return out


def assert_same(fast: BatchResult, reference: BatchResult) -> None:
    """Every column, rejection, snapshot and position equal (NaN equal to NaN)."""
    a, b = fast.batch, reference.batch
    assert fast.accepted_index.tolist() == reference.accepted_index.tolist()
    assert fast.rejected == reference.rejected
    assert fast.webrtc == reference.webrtc
    assert fast.entries == reference.entries
    assert (a.app_id, a.session_id, a.strings) == (b.app_id, b.session_id, b.strings)
    assert a.ts_ms.tolist() == b.ts_ms.tolist()
    assert a.values.keys() == b.values.keys()
    for name, column in a.values.items():
        assert np.array_equal(column, b.values[name], equal_nan=True), name
        assert column.dtype == b.values[name].dtype == np.float64
    for name in ("join_attempts", "join_successes", "join_latency_row", "join_latency_ms"):
        assert getattr(a, name).tolist() == getattr(b, name).tolist(), name
    assert (a.events, a.labels) == (b.events, b.labels)
    assert fast.reports == reference.reports


def both(body: bytes) -> tuple[BatchResult, BatchResult]:
    return parse_batch(body), parse_batch(body, typed_decode=False)


def test_the_typed_report_has_exactly_the_known_fields() -> None:
    # A field added to the contract but not to the typed report would be refused there: slow, never wrong;
    # this keeps the two in step.
    assert set(typed.REPORT_LINE.__struct_fields__) == KNOWN_FIELDS
    for block, names in BLOCK_FIELDS.items():
        assert typed._BLOCK_STRUCTS[block].__struct_fields__ == names


def test_a_mixed_batch_gives_what_the_reference_path_gives() -> None:
    webrtc = {
        "v": 1,
        "format": "webrtc-stats",
        "app_id": "liveco",
        "ts": TS,
        "session_id": "w-1",
        "stats": [{"type": "candidate-pair", "nominated": True, "currentRoundTripTime": 0.05}],
    }
    lines = [
        orjson.dumps(good(0)),
        orjson.dumps(webrtc),
        orjson.dumps(good(2, region=7)),  # wrong type: rejected
        orjson.dumps(good(3, tenant_tier="gold")),  # unknown field: a label, so the reference path takes it
        b"{not json",
        orjson.dumps(good(5, audio=None, net={"rtt_ms": None, "extra": [1]})),  # null block; unknown inner field
        orjson.dumps(good(6, video={"active_ms": 100, "freeze_ms": 200})),  # freeze > active
        orjson.dumps(good(7, events=[{"type": "teleport"}])),
        orjson.dumps(good(8, ts="1999-12-31T23:59:59Z")),  # a valid RFC 3339 string, out of range
        orjson.dumps(good(9, ts="2026-11-22T03:00:10+08:00", format=None)),
        orjson.dumps(good(10, events=[{"type": "join", "ok": False, "error_code": None, "code": 1.5}])),
        orjson.dumps(good(11, events=[{"type": "error", "code": 2**63, "message": "boom"}])),
        orjson.dumps(good(12, events=[{"type": "error", "error_code": 2**63 - 1, "code": "x"}])),
        b'{"v": 1, "app_id": "liveco", "ts": %d, "session_id": "s-13", "audio": {"x": 1e999}}' % TS,
        b'{"v": 1, "app_id": "liveco", "ts": %d, "session_id": "s-14", "av_sync_ms": -0, "net": {"rtt_ms": 1E2}}' % TS,
        b'{"v": 1, "app_id": "liveco", "ts": 123456789012345678901234567890, "session_id": "s-15"}',
        b'{"v": 1, "app_id": "liveco", "ts": %d, "session_id": "s-16", "session_id": "s-16b"}' % TS,
        orjson.dumps(good(17, v=1.0)),
        b'{"v": 1, "app_id": "liveco", "ts": %d, "session_id": "s-\xff"}' % TS,
        orjson.dumps(good(19, ts=TS + 0.75, interval_ms=10_000.0)),
        b'{"v": 1, "app_id": "a", "ts": %d, "session_id": "s-20", "events": [{"type": "error", "code": %d}]}'
        % (TS, 2**70),  # orjson reads a float: not a code
    ]
    body = b"\n".join(lines)
    fast, reference = both(body)
    assert_same(fast, reference)
    # and the batch really mixes the two paths
    _, kept, refused = typed.decode(lines)
    assert {0, 9, 19} <= set(kept) and {1, 2, 3, 4, 5, 13} <= set(refused)
    assert fast.accepted_index.tolist() == [0, 3, 5, 9, 10, 11, 12, 14, 16, 19]
    assert [r.index for r in fast.rejected] == [2, 4, 6, 7, 8, 13, 15, 17, 18, 20]
    assert fast.batch.labels == {1: {"tenant_tier": "gold"}}
    assert fast.batch.session_id[8] == "s-16b"  # the last of duplicate keys, as orjson reads them
    assert fast.batch.ts_ms[-1] == TS  # TS + 0.75, floored


def test_the_typed_path_keeps_submission_order_across_chunks() -> None:
    # Reports with labels go the reference way: rows must still come in submission order.
    items = [good(i, **({"tier": "gold"} if i % 7 == 0 else {})) for i in range(1_300)]
    items[640] = good(640, v=3)
    fast, reference = both(b"\n".join(map(orjson.dumps, items)))
    assert_same(fast, reference)
    assert fast.accepted_index.tolist() == [i for i in range(1_300) if i != 640]
    assert fast.batch.session_id == [f"s-{i}" for i in fast.accepted_index.tolist()]
    assert fast.batch.join_latency_row.tolist() == list(range(len(fast.batch)))


def test_a_batch_the_typed_decoder_mostly_refuses_goes_the_reference_way() -> None:
    items = [good(i, tier="gold") for i in range(1_200)]
    items[900] = good(900)  # after the switch: still parsed, by the reference path
    fast, reference = both(b"\n".join(map(orjson.dumps, items)))
    assert_same(fast, reference)
    assert len(fast.batch) == 1_200 and len(fast.batch.labels) == 1_199


# Random reports: fields present or not, values of every JSON type, near and beyond their bounds.
_LOW, _HIGH = RANGES["loss_pct"]
_numbers = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 200),
    st.floats(-1, 101, allow_nan=False),
    st.sampled_from([_LOW, _HIGH, 100.0000001, -0.0, 2**63 - 1, -(2**63), 2**64 - 1, "12"]),
)
_texts = st.one_of(st.none(), st.integers(0, 3), st.text(max_size=4), st.text(min_size=126, max_size=130))
_ts = st.one_of(
    st.integers(MIN_TS_MS - 2, MIN_TS_MS + 2),
    st.integers(MAX_TS_MS - 2, MAX_TS_MS + 2),
    st.floats(MIN_TS_MS - 1, MAX_TS_MS + 1),
    st.sampled_from(["2026-11-21T19:00:10Z", "2026-11-21T19:00:10", "1970-01-01T00:00:00Z", "soon", None, True]),
)
_event = st.dictionaries(
    st.sampled_from(["type", "ok", "latency_ms", "error_code", "code", "reason", "message", "other"]),
    st.one_of(st.sampled_from(["join", "leave", "error", "teleport"]), _numbers, _texts),
    max_size=4,
)


def _block(names: tuple[str, ...]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(), st.integers(0, 1), st.dictionaries(st.sampled_from([*names, "other"]), _numbers, max_size=4)
    )


_fields: dict[str, st.SearchStrategy[Any]] = {
    "v": st.sampled_from([1, 1, 1, 2, 1.0, True, None]),
    "format": st.sampled_from([None, "webrtc-stats", "csv"]),
    "app_id": _texts,
    "session_id": _texts,
    "ts": _ts,
    "interval_ms": _numbers,
    "av_sync_ms": _numbers,
    "region": _texts,
    "user_id": _texts,
    "events": st.one_of(st.none(), st.just({}), st.lists(_event, max_size=3)),
    **{block: _block(names) for block, names in BLOCK_FIELDS.items()},
    "tier": _texts,
}
_DROP = "<drop>"  # a changed field's value that removes it


def _changed(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in {**base, **changes}.items() if value != _DROP}


def _changes(names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({name: st.one_of(_fields[name], st.just(_DROP)) for name in names})


# A full report with a few fields changed (mostly typed-decodable), or a minimal one with many.
_report = st.one_of(
    st.lists(st.sampled_from(list(_fields)), max_size=3, unique=True)
    .flatmap(_changes)
    .map(lambda changes: _changed(good(0, user_id="u1", interval_ms=10_000, av_sync_ms=-35), changes)),
    st.lists(st.sampled_from(list(_fields)), unique=True)
    .flatmap(_changes)
    .map(lambda changes: _changed({"v": 1, "app_id": "a", "session_id": "s", "ts": TS}, changes)),
)
# Byte-level damage: what a broken sender or proxy might do to a line.
_damage = st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from([b"", b'"', b"\\", b"\xff", b"}", b"1e999"])))


def _line(item: dict[str, Any], damage: list[tuple[int, bytes]]) -> bytes:
    line = orjson.dumps(item)
    for at, replacement in damage:
        at %= len(line)
        line = line[:at] + replacement + line[at + 1 :]
    return line


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_report, _damage.filter(lambda d: len(d) <= 1)), min_size=1, max_size=8))
def test_typed_and_reference_paths_agree_on_random_reports(lines: list[tuple[dict[str, Any], Any]]) -> None:
    body = b"\n".join(_line(item, damage) for item, damage in lines)
    try:
        reference = parse_batch(body, typed_decode=False)
    except Exception as exc:  # the whole batch refused (no report objects): the same either way
        with pytest.raises(type(exc)):
            parse_batch(body)
        return
    assert_same(parse_batch(body), reference)

"""W3C getStats() snapshots → interval reports: deltas, unit conversions, priming, resets, bounded state."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from zhiban.core.errors import InvalidInput
from zhiban.telemetry.parse import parse_batch
from zhiban.telemetry.webrtc import WebrtcConverter, parse_snapshot

FIXTURE = Path(__file__).parent / "fixtures" / "webrtc_getstats_session.json"


@pytest.fixture
def snapshots() -> list[dict[str, Any]]:
    # Chrome-shaped RTCStatsReport samples of one session: two snapshots 10 s apart, then a new
    # peer connection (counters restart) and one more snapshot 10 s later.
    data: list[dict[str, Any]] = orjson.loads(FIXTURE.read_bytes())
    return data


def test_first_snapshot_primes_and_the_second_yields_the_interval(snapshots: list[dict[str, Any]]) -> None:
    converter = WebrtcConverter()
    assert converter.convert_one(parse_snapshot(snapshots[0])) is None
    report = converter.convert_one(parse_snapshot(snapshots[1]))
    assert report is not None
    assert (report.app_id, report.session_id, report.ts_ms) == ("liveco", "s-9f1c", snapshots[1]["ts"])
    assert report.interval_ms == 10_000
    assert (report.region, report.platform, report.sdk_version) == ("cn-east", "web", "web-4.20.0")
    assert report.labels == {"browser": "Chrome 131"}
    video, audio, net = report.video, report.audio, report.net
    assert video is not None and audio is not None and net is not None
    # video: 12 more lost, 1000 more received → 12 / 1012 of expected packets
    assert video.loss_pct == pytest.approx(100 * 12 / 1012)
    assert video.freeze_ms == pytest.approx(700)  # totalFreezesDuration 0 → 0.7 s
    assert video.fps == pytest.approx(15)  # 150 frames decoded in 10 s
    assert video.bitrate_kbps == pytest.approx(900)  # 1,125,000 bytes in 10 s
    assert video.jitter_ms == pytest.approx(12)
    assert video.active_ms == 10_000
    assert audio.loss_pct == 0
    assert audio.freeze_ms == pytest.approx(150)  # synthesized samples 0.10 → 0.25 s
    assert audio.bitrate_kbps == pytest.approx(32)
    assert audio.jitter_ms == pytest.approx(9)
    # RTT of the transport's selected pair, not of the failed one
    assert net.rtt_ms == pytest.approx(45)


def test_counters_going_backwards_prime_again_and_never_emit_negatives(snapshots: list[dict[str, Any]]) -> None:
    converter = WebrtcConverter()
    batch = converter.convert([parse_snapshot(s) for s in snapshots])
    reports = batch.reports()
    assert [r.ts_ms for r in reports] == [snapshots[1]["ts"], snapshots[3]["ts"]]
    assert converter.resets == 1 and converter.primed == 1
    after_reset = reports[1]
    assert after_reset.video is not None and after_reset.audio is not None
    assert after_reset.video.loss_pct == 0
    assert after_reset.video.fps == pytest.approx(15)
    assert after_reset.audio.loss_pct == pytest.approx(100 * 5 / 505)
    for name, column in batch.values.items():
        if name != "av_sync_ms":
            assert not (column < 0).any(), name


def test_shrinking_cumulative_loss_is_clamped_not_negative(snapshots: list[dict[str, Any]]) -> None:
    # RFC 3550: duplicates may make the cumulative loss go down while everything else grows.
    later = copy.deepcopy(snapshots[1])
    for stat in later["stats"]:
        if stat["type"] == "inbound-rtp" and stat["kind"] == "video":
            stat["packetsLost"] = 5
    converter = WebrtcConverter()
    converter.convert_one(parse_snapshot(snapshots[0]))
    report = converter.convert_one(parse_snapshot(later))
    assert report is not None and report.video is not None
    assert report.video.loss_pct == 0


def test_resent_or_reordered_snapshots_are_ignored(snapshots: list[dict[str, Any]]) -> None:
    converter = WebrtcConverter()
    converter.convert_one(parse_snapshot(snapshots[1]))
    assert converter.convert_one(parse_snapshot(snapshots[0])) is None
    assert converter.convert_one(parse_snapshot(snapshots[1])) is None
    assert converter.out_of_order == 2


def test_state_is_bounded_by_count_and_age(snapshots: list[dict[str, Any]]) -> None:
    converter = WebrtcConverter(max_sessions=2, ttl_ms=60_000)
    first, second = snapshots[0], snapshots[1]
    for name in ("a", "b", "c"):
        converter.convert_one(parse_snapshot({**first, "session_id": name}))
    assert len(converter) == 2
    # "a" was evicted: its next snapshot primes instead of emitting
    assert converter.convert_one(parse_snapshot({**second, "session_id": "a"})) is None
    assert converter.convert_one(parse_snapshot({**second, "session_id": "c"})) is not None
    much_later = {**second, "session_id": "z", "ts": second["ts"] + 10 * 60_000}
    converter.convert_one(parse_snapshot(much_later))
    assert len(converter) == 1  # everything older than the TTL is gone


def test_parse_batch_routes_snapshots_and_rejects_bad_ones(snapshots: list[dict[str, Any]]) -> None:
    broken = copy.deepcopy(snapshots[0])
    broken["stats"][3]["packetsReceived"] = "many"
    plain = {"v": 1, "app_id": "liveco", "ts": snapshots[0]["ts"], "session_id": "native-1"}
    result = parse_batch(orjson.dumps([snapshots[0], plain, broken, {**snapshots[1], "stats": 3}]))
    assert [r.session_id for r in result.reports] == ["native-1"]
    assert [s.ts_ms for s in result.webrtc] == [snapshots[0]["ts"]]
    assert [(r.index, r.reason) for r in result.rejected] == [
        (2, "stats inbound-rtp.packetsReceived must be a number"),
        (3, "stats must be a list of RTCStats objects"),
    ]


def test_snapshot_requires_the_common_fields(snapshots: list[dict[str, Any]]) -> None:
    with pytest.raises(InvalidInput, match="session_id is required"):
        parse_snapshot({k: v for k, v in snapshots[0].items() if k != "session_id"})

"""The RTC traffic simulator: contract-valid reports, seeded, diurnal, and faults that show where they should."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from zhiban.core.errors import InvalidInput
from zhiban.telemetry.simulator import (
    HttpPoster,
    PostFailed,
    Simulator,
    demo_apps,
    read_ndjson_gz,
    simulate_to_file,
    truth_path,
)
from zhiban.telemetry.simulator_faults import Fault

# Friday 20 November 2026, 12:00 UTC = 20:00 in Shanghai: liveco's evening peak.
PEAK = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FAULT_AT = PEAK + timedelta(minutes=4)
FAULT_FOR = timedelta(minutes=6)
RUN_FOR = timedelta(minutes=10)
Report = dict[str, Any]

# -- an independent checker of the contract, section 1 -----------------------------------------------

DIMS = ("region", "country", "isp", "network", "platform", "sdk_version", "edge", "role", "channel")
TOP_LEVEL = {
    "v",
    "app_id",
    "ts",
    "interval_ms",
    "session_id",
    "user_id",
    "events",
    "audio",
    "video",
    "net",
    "av_sync_ms",
}
AUDIO = {"active_ms", "freeze_ms", "loss_pct", "jitter_ms", "e2e_delay_ms", "bitrate_kbps"}
VIDEO = {"active_ms", "freeze_ms", "fps", "loss_pct", "e2e_delay_ms", "bitrate_kbps"}
NET = {"rtt_ms", "uplink_loss_pct", "downlink_loss_pct", "available_kbps"}


def contract_problems(r: Report) -> list[str]:
    """What is wrong with one version-1 report (empty when it is valid)."""
    problems = []
    for key in ("v", "app_id", "ts", "session_id"):
        if key not in r:
            problems.append(f"missing {key}")
    if r.get("v") != 1:
        problems.append("v must be 1")
    try:
        ts = datetime.fromisoformat(str(r["ts"]).replace("Z", "+00:00"))
        if ts.tzinfo is None:
            problems.append("ts without offset")
    except (KeyError, ValueError):
        problems.append(f"ts not RFC 3339: {r.get('ts')!r}")
    for key in set(r) - TOP_LEVEL - set(DIMS):
        problems.append(f"unexpected field {key}")
    for dim in DIMS:
        if dim in r and not (isinstance(r[dim], str) and r[dim]):
            problems.append(f"{dim} must be a non-empty string")
    interval = r.get("interval_ms", 10_000)
    for name, keys in (("audio", AUDIO), ("video", VIDEO), ("net", NET)):
        block = r.get(name)
        if block is None:
            continue
        if set(block) != keys:
            problems.append(f"{name} fields {sorted(block)}")
            continue
        for key, value in block.items():
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                problems.append(f"{name}.{key}={value!r}")
        if name != "net" and not block["freeze_ms"] <= block["active_ms"] <= interval:
            problems.append(f"{name}: freeze_ms <= active_ms <= interval_ms broken")
        for key in ("loss_pct", "uplink_loss_pct", "downlink_loss_pct"):
            if key in block and block[key] > 100:
                problems.append(f"{name}.{key} over 100")
    if "av_sync_ms" in r and not isinstance(r["av_sync_ms"], int):
        problems.append("av_sync_ms must be a number")
    for event in r.get("events", []):
        kind = event.get("type")
        if kind == "join":
            if not isinstance(event.get("ok"), bool) or not isinstance(event.get("latency_ms"), int):
                problems.append(f"bad join {event}")
            if event.get("ok") is False and "error_code" not in event:
                problems.append("failed join without error_code")
        elif kind == "first_frame":
            if not isinstance(event.get("latency_ms"), int) or event["latency_ms"] < 0:
                problems.append(f"bad first_frame {event}")
        elif kind == "leave":
            if not isinstance(event.get("reason"), str):
                problems.append(f"bad leave {event}")
        elif kind == "error":
            if "code" not in event:
                problems.append(f"bad error {event}")
        elif kind != "reconnect":
            problems.append(f"unknown event {kind}")
    return problems


# -- helpers computing metrics straight from the reports ------------------------------------------------


def liveco(peak: int = 1000) -> list[Any]:
    return [a for a in demo_apps(peak) if a.app_id in ("liveco", "classmate")]


@cache
def run(*faults: Fault, peak: int = 1000, start: datetime = PEAK, minutes: int = 10, seed: int = 7) -> list[Report]:
    sim = Simulator(liveco(peak), list(faults), seed=seed, start=start)
    return [r for batch in sim.run(start + timedelta(minutes=minutes)) for r in batch]


@cache
def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def ts(r: Report) -> datetime:
    return parse_ts(r["ts"])


def select(reports: list[Report], where: Callable[[Report], bool], during: tuple[datetime, datetime]) -> list[Report]:
    return [r for r in reports if during[0] <= ts(r) < during[1] and where(r)]


def freeze_rate(reports: list[Report]) -> float:
    frozen = sum(r["video"]["freeze_ms"] for r in reports if "video" in r)
    return frozen / sum(r["video"]["active_ms"] for r in reports if "video" in r)


def join_success(reports: list[Report]) -> tuple[float, int]:
    joins = [e["ok"] for r in reports for e in r.get("events", []) if e["type"] == "join"]
    return sum(joins) / len(joins), len(joins)


def mean_rtt(reports: list[Report]) -> float:
    return float(np.mean([r["net"]["rtt_ms"] for r in reports if "net" in r]))


def match(**slice_: str) -> Callable[[Report], bool]:
    return lambda r: all(r.get(k) == v for k, v in slice_.items())


def outside(**slice_: str) -> Callable[[Report], bool]:
    return lambda r: r["app_id"] == "liveco" and not all(r.get(k) == v for k, v in slice_.items())


BEFORE = (PEAK, FAULT_AT)
# Skip the first minute of the fault: it builds up.
DURING = (FAULT_AT + timedelta(minutes=1), FAULT_AT + FAULT_FOR)


def fault(kind: str, magnitude: float | None = None, app: str = "liveco", **slice_: str) -> Fault:
    return Fault(kind, app, FAULT_AT, FAULT_FOR, dict(slice_), magnitude)


# -- the tests -------------------------------------------------------------------------------------


def test_reports_follow_the_contract() -> None:
    reports = run(
        fault("edge_packet_loss", edge="sh-edge-07"),
        fault("sdk_release_join_failure", platform="android", sdk_version="4.3.2"),
    )
    assert len(reports) > 50_000
    bad = [(r, p) for r in reports if (p := contract_problems(r))]
    assert bad == []
    # Every kind of event shows up, and a failed join carries no media blocks ("not measured").
    kinds = {e["type"] for r in reports for e in r.get("events", [])}
    assert {"join", "first_frame", "leave", "reconnect"} <= kinds
    failed = [r for r in reports for e in r.get("events", []) if e["type"] == "join" and not e["ok"]]
    assert failed and all("audio" not in r and "video" not in r for r in failed)


def test_the_checker_rejects_broken_reports() -> None:
    good = run()[0]
    assert contract_problems(good) == []
    assert contract_problems({k: v for k, v in good.items() if k != "session_id"})
    assert contract_problems(good | {"ts": "yesterday"})
    assert contract_problems(good | {"audio": good["audio"] | {"freeze_ms": 20_000}})


def test_one_report_per_session_per_interval_and_sessions_come_and_go() -> None:
    reports = run()
    per_tick: dict[tuple[str, int], int] = {}
    for r in reports:
        bucket = int((ts(r) - PEAK - timedelta(seconds=1)).total_seconds()) // 10
        key = (r["session_id"], bucket)
        per_tick[key] = per_tick.get(key, 0) + 1
    assert max(per_tick.values()) == 1
    starts = {r["session_id"] for r in reports for e in r.get("events", []) if e["type"] == "join"}
    leaves = {r["session_id"] for r in reports for e in r.get("events", []) if e["type"] == "leave"}
    assert len(starts) > 200 and len(leaves) > 200
    lengths: dict[str, int] = {}
    for r in reports:
        lengths[r["session_id"]] = lengths.get(r["session_id"], 0) + 1
    # Heavy tail: some sessions outlast the 10-minute run while many last a minute or less.
    counts = np.array(list(lengths.values()))
    assert (counts >= 60).sum() > 100 and (counts <= 6).sum() > 100


def test_baseline_quality_is_realistic() -> None:
    reports = run()
    success, joins = join_success(reports)
    assert joins > 300 and 0.98 <= success <= 1.0
    latencies = [e["latency_ms"] for r in reports for e in r.get("events", []) if e["type"] == "join" and e["ok"]]
    p5, p50, p95 = np.percentile(latencies, [5, 50, 95])
    assert p5 >= 200 and 400 <= p50 <= 900 and p95 <= 2000
    assert 0.003 < freeze_rate(reports) < 0.04
    # 4G is worse than Ethernet and Wi-Fi.
    assert mean_rtt([r for r in reports if r["network"] == "4g"]) > mean_rtt(
        [r for r in reports if r["network"] == "wifi"]
    )


def test_same_seed_same_reports_other_seed_other_reports() -> None:
    def first_ticks(seed: int) -> list[Report]:
        sim = Simulator(liveco(300), [fault("edge_overload", edge="sh-edge-07")], seed=seed, start=PEAK)
        return [r for batch in sim.run(PEAK + timedelta(minutes=1)) for r in batch]

    assert first_ticks(3) == first_ticks(3)
    assert first_ticks(3) != first_ticks(4)


def test_live_mode_generates_what_run_generates() -> None:
    sim = Simulator(liveco(300), seed=5, start=PEAK)
    live = sim.advance_to(PEAK + timedelta(seconds=65))  # six whole ticks are complete
    assert sim.cursor == PEAK + timedelta(seconds=60)
    assert sim.advance_to(PEAK + timedelta(seconds=69)) == []
    again = Simulator(liveco(300), seed=5, start=PEAK)
    assert live == [r for batch in again.run(PEAK + timedelta(seconds=60)) for r in batch]


def sessions_at(app_id: str, moment: datetime, region: str | None = None) -> int:
    sim = Simulator([a for a in demo_apps(2000) if a.app_id == app_id], seed=1, start=moment)
    return sum(1 for r in sim.step() if region is None or r["region"] == region)


def test_diurnal_shape_in_each_apps_zone() -> None:
    # liveco: evening peak in Shanghai (20:00 = 12:00 UTC) far above 04:00 (20:00 UTC).
    assert sessions_at("liveco", PEAK) > 4 * sessions_at("liveco", PEAK + timedelta(hours=8))
    # classmate: weekday 10:00 above the evening and far above the weekend morning.
    weekday_10 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
    assert sessions_at("classmate", weekday_10) > 1.5 * sessions_at("classmate", PEAK)
    assert sessions_at("classmate", weekday_10) > 2.5 * sessions_at("classmate", weekday_10 + timedelta(days=1))
    # hiyo: at 02:00 UTC it is 21:00 in New York and 10:00 in Singapore.
    night_utc = datetime(2026, 11, 19, 2, 0, tzinfo=UTC)
    assert sessions_at("hiyo", night_utc, "us-east") > 2 * sessions_at("hiyo", night_utc, "ap-southeast")


def test_weekend_uplift_and_festival_surge() -> None:
    saturday = PEAK + timedelta(days=1)
    assert sessions_at("liveco", saturday) > 1.05 * sessions_at("liveco", PEAK)
    # National Day (1 October 2026, a Thursday) against the following Thursday, both at 20:00.
    national_day = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
    assert sessions_at("liveco", national_day) > 1.15 * sessions_at("liveco", national_day + timedelta(days=7))


def test_edge_packet_loss_raises_freezes_on_that_edge_only() -> None:
    reports = run(fault("edge_packet_loss", edge="sh-edge-07"))
    in_slice, rest = match(edge="sh-edge-07", app_id="liveco"), outside(edge="sh-edge-07")
    assert freeze_rate(select(reports, in_slice, DURING)) > 4 * freeze_rate(select(reports, in_slice, BEFORE))
    assert freeze_rate(select(reports, rest, DURING)) == pytest.approx(
        freeze_rate(select(reports, rest, BEFORE)), rel=0.3
    )
    other_app = match(app_id="classmate", edge="sh-edge-07")
    assert freeze_rate(select(reports, other_app, DURING)) < 0.04


def test_isp_congestion_hits_one_isp_in_one_region() -> None:
    reports = run(fault("isp_congestion", region="cn-east", isp="china-mobile"))
    in_slice = match(app_id="liveco", region="cn-east", isp="china-mobile")
    assert freeze_rate(select(reports, in_slice, DURING)) > 3 * freeze_rate(select(reports, in_slice, BEFORE))
    assert mean_rtt(select(reports, in_slice, DURING)) > mean_rtt(select(reports, in_slice, BEFORE)) + 80
    for neighbour in (
        match(app_id="liveco", region="cn-north", isp="china-mobile"),
        match(app_id="liveco", region="cn-east", isp="china-telecom"),
    ):
        assert mean_rtt(select(reports, neighbour, DURING)) == pytest.approx(
            mean_rtt(select(reports, neighbour, BEFORE)), rel=0.15
        )


def test_sdk_release_fails_joins_of_that_version_only() -> None:
    reports = run(fault("sdk_release_join_failure", platform="android", sdk_version="4.3.2"))
    in_slice = match(app_id="liveco", platform="android", sdk_version="4.3.2")
    failing, joins = join_success(select(reports, in_slice, DURING))
    assert joins > 30 and failing < 0.85
    healthy, joins = join_success(select(reports, outside(platform="android", sdk_version="4.3.2"), DURING))
    assert joins > 100 and healthy > 0.97
    assert join_success(select(reports, in_slice, BEFORE))[0] > 0.95
    codes = {
        e.get("error_code")
        for r in select(reports, in_slice, DURING)
        for e in r.get("events", [])
        if e.get("ok") is False
    }
    assert 17 in codes


def test_av_sync_drift_grows_in_its_slice() -> None:
    reports = run(fault("av_sync_drift", platform="ios"))
    late = (FAULT_AT + FAULT_FOR / 2, FAULT_AT + FAULT_FOR)

    def p95(rs: list[Report]) -> float:
        return float(np.percentile([abs(r["av_sync_ms"]) for r in rs if "av_sync_ms" in r], 95))

    assert p95(select(reports, match(app_id="liveco", platform="ios"), late)) > 300
    assert p95(select(reports, match(app_id="liveco", platform="ios"), BEFORE)) < 60
    assert p95(select(reports, outside(platform="ios"), late)) < 60


def test_edge_overload_raises_delay_and_freezes_on_that_edge() -> None:
    reports = run(fault("edge_overload", edge="bj-edge-02"))
    in_slice, rest = match(app_id="liveco", edge="bj-edge-02"), outside(edge="bj-edge-02")
    assert mean_rtt(select(reports, in_slice, DURING)) > mean_rtt(select(reports, in_slice, BEFORE)) + 150
    assert freeze_rate(select(reports, in_slice, DURING)) > 2 * freeze_rate(select(reports, in_slice, BEFORE))
    assert mean_rtt(select(reports, rest, DURING)) == pytest.approx(mean_rtt(select(reports, rest, BEFORE)), rel=0.1)


def test_app_outage_fails_joins_and_drops_sessions_of_that_app() -> None:
    reports = run(fault("app_outage"))
    success, joins = join_success(select(reports, match(app_id="liveco"), DURING))
    assert joins > 50 and success < 0.1

    def sessions(app: str, minute: int) -> int:
        at = PEAK + timedelta(minutes=minute)
        return len({r["session_id"] for r in select(reports, match(app_id=app), (at, at + timedelta(seconds=10)))})

    assert sessions("liveco", 9) < 0.2 * sessions("liveco", 3)
    assert sessions("classmate", 9) == pytest.approx(sessions("classmate", 3), rel=0.15)
    assert join_success(select(reports, match(app_id="classmate"), DURING))[0] > 0.97
    drops = [
        e for r in select(reports, match(app_id="liveco"), DURING) for e in r.get("events", []) if e["type"] == "leave"
    ]
    assert sum(e["reason"] == "error" for e in drops) > 0.5 * len(drops)


def test_staged_rollout_grows_a_new_version_without_hurting_quality() -> None:
    rollout = Fault(
        "sdk_rollout", "liveco", PEAK, timedelta(minutes=10), {"platform": "android", "sdk_version": "4.4.0"}, 0.8
    )
    reports = run(rollout)
    android = [r for r in reports if r["app_id"] == "liveco" and r["platform"] == "android"]

    def share(during: tuple[datetime, datetime]) -> float:
        rs = select(android, lambda r: True, during)
        return sum(r["sdk_version"] == "4.4.0" for r in rs) / len(rs)

    assert share((PEAK, PEAK + timedelta(minutes=1))) < 0.02
    assert share((PEAK + timedelta(minutes=9), PEAK + timedelta(minutes=10))) > 0.1
    assert all(r["platform"] == "android" for r in reports if r["sdk_version"] == "4.4.0")
    new = [r for r in android if r["sdk_version"] == "4.4.0"]
    assert freeze_rate(new) == pytest.approx(freeze_rate([r for r in android if r["sdk_version"] != "4.4.0"]), rel=0.5)


def test_benign_volume_events_change_traffic_not_quality() -> None:
    surge = Fault("festival_surge", "liveco", PEAK, timedelta(minutes=20), {}, 0.5)
    quiet = Fault("night_low_volume", "liveco", PEAK - timedelta(minutes=5), timedelta(minutes=10), {}, 0.6)

    def count_and_freeze(*faults: Fault) -> tuple[int, float]:
        sim = Simulator(liveco(1000)[:1], list(faults), seed=2, start=PEAK)
        rs = sim.step()
        return len(rs), freeze_rate(rs)

    plain, plain_freeze = count_and_freeze()
    surged, surged_freeze = count_and_freeze(surge)
    quieted, _ = count_and_freeze(quiet)
    assert surged > 1.3 * plain and quieted < 0.6 * plain
    assert surged_freeze == pytest.approx(plain_freeze, rel=0.5)


def test_bad_faults_are_refused() -> None:
    with pytest.raises(InvalidInput):
        Fault("meteor_strike", "liveco", PEAK, FAULT_FOR)
    with pytest.raises(InvalidInput):
        Fault("edge_packet_loss", "liveco", PEAK, FAULT_FOR, {"planet": "mars"})
    with pytest.raises(InvalidInput):
        Fault("edge_packet_loss", "liveco", PEAK.replace(tzinfo=None), FAULT_FOR, {"edge": "sh-edge-07"})
    with pytest.raises(InvalidInput, match="no edge"):
        Simulator(liveco(), [fault("edge_packet_loss", edge="mars-edge-01")], start=PEAK)
    with pytest.raises(InvalidInput, match="unknown app"):
        Simulator(liveco(), [fault("app_outage", app="nobody")], start=PEAK)


def test_file_and_truth(tmp_path: Path) -> None:
    out = tmp_path / "traffic.ndjson.gz"
    faults = [
        fault("edge_packet_loss", 6.0, edge="sh-edge-07"),
        Fault("sdk_rollout", "classmate", PEAK, FAULT_FOR, {"platform": "android", "sdk_version": "4.4.0"}),
        Fault("app_outage", "liveco", PEAK + timedelta(hours=2), FAULT_FOR),  # after the run: not in the truth
    ]
    summary = simulate_to_file(
        out, liveco(200), faults, seed=9, start=PEAK, duration=timedelta(minutes=5), progress=False
    )
    written = list(read_ndjson_gz(out))
    assert (
        len(written)
        == summary.reports
        == sum(len(b) for b in Simulator(liveco(200), faults, seed=9, start=PEAK).run(PEAK + timedelta(minutes=5)))
    )
    assert all(contract_problems(r) == [] for r in written)
    assert summary.truth_path == truth_path(out) == tmp_path / "traffic.ndjson.gz.truth.json"
    truth = json.loads(summary.truth_path.read_text())
    assert truth["seed"] == 9 and truth["start"] == "2026-11-20T12:00:00Z" and truth["end"] == "2026-11-20T12:05:00Z"
    events = {(e["kind"], e["app_id"]): e for e in truth["events"]}
    assert set(events) == {("edge_packet_loss", "liveco"), ("sdk_rollout", "classmate")}
    loss = events["edge_packet_loss", "liveco"]
    assert loss["slice"] == {"edge": "sh-edge-07"} and loss["magnitude"] == 6.0 and not loss["benign"]
    assert loss["start"] == "2026-11-20T12:04:00Z" and loss["end"] == "2026-11-20T12:10:00Z"
    assert events["sdk_rollout", "classmate"]["benign"]


def test_truth_lists_calendar_festivals() -> None:
    national_day = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
    sim = Simulator(liveco(100), seed=1, start=national_day)
    list(sim.run(national_day + timedelta(seconds=20)))
    festivals = [e for e in sim.truth()["events"] if e["kind"] == "festival_surge"]
    assert {e["app_id"] for e in festivals} == {"liveco", "classmate"}
    # The day is the local (Shanghai) day: it starts at 16:00 UTC the day before.
    assert {e["start"] for e in festivals} == {"2026-09-30T16:00:00Z"}


# -- the HTTP poster against a real local server ------------------------------------------------------


@pytest.fixture
def ingest_server() -> Iterator[tuple[str, list[dict[str, Any]], list[int]]]:
    received: list[dict[str, Any]] = []
    statuses: list[int] = []  # answers to give, in order; then 202

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"headers": dict(self.headers), "body": body})
            status = statuses.pop(0) if statuses else 202
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1/telemetry", received, statuses
    server.shutdown()
    server.server_close()


def test_poster_sends_gzip_ndjson_with_the_key_and_retries(
    ingest_server: tuple[str, list[dict[str, Any]], list[int]],
) -> None:
    url, received, statuses = ingest_server
    statuses.extend([503, 429])
    batch = Simulator(liveco(100), seed=1, start=PEAK).step()
    with HttpPoster(url, "ik_test_123", backoff_s=0, sleep=lambda s: None) as poster:
        assert poster.post(batch) == len(batch)
    assert len(received) == 3  # two refusals, then accepted
    last = received[-1]
    assert last["headers"]["Authorization"] == "Bearer ik_test_123"
    assert last["headers"]["Content-Encoding"] == "gzip"
    lines = gzip.decompress(last["body"]).decode().splitlines()
    assert [json.loads(line) for line in lines] == batch


def test_poster_splits_big_batches_and_gives_up(ingest_server: tuple[str, list[dict[str, Any]], list[int]]) -> None:
    url, received, statuses = ingest_server
    reports = [
        {"v": 1, "app_id": "liveco", "ts": "2026-11-20T12:00:10Z", "session_id": f"s-{i}"} for i in range(10_001)
    ]
    with HttpPoster(url, "k", sleep=lambda s: None) as poster:
        poster.post(reports)
    assert [len(gzip.decompress(r["body"]).splitlines()) for r in received] == [10_000, 1]
    received.clear()
    statuses.extend([400])
    with HttpPoster(url, "k", sleep=lambda s: None) as poster, pytest.raises(PostFailed, match="HTTP 400"):
        poster.post(reports[:5])
    assert len(received) == 1  # a refused batch is not sent again
    statuses.extend([500] * 3)
    with (
        HttpPoster(url, "k", max_retries=2, sleep=lambda s: None) as poster,
        pytest.raises(PostFailed, match="HTTP 500"),
    ):
        poster.post(reports[:5])
    assert len(received) == 4

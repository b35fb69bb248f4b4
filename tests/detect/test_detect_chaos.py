"""Chaos: detectors that raise for one app, one slice or every localization. The failing keys sit their
windows out, everything else keeps being watched: the real fault of another app is still detected and
named, each failure is counted (the engine's count, /metrics in the live desk) and logged at most once a
minute per cause."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest

from tests.detect.test_detect_faults import simulate
from zhiban.apps import service as apps
from zhiban.core.clock import FrozenClock
from zhiban.core.metrics import REGISTRY
from zhiban.desk import Desk
from zhiban.detect import service
from zhiban.detect.detections import Detection
from zhiban.detect.engine import DetectionEngine
from zhiban.detect.failures import FailureLog
from zhiban.detect.live import live_for
from zhiban.detect.replay import Replayer
from zhiban.identity import service as identity
from zhiban.telemetry.live import TelemetryRuntime
from zhiban.telemetry.simulator_faults import Fault

START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
FAULT = Fault("isp_congestion", "liveco", START + timedelta(minutes=4), timedelta(minutes=1), {"isp": "china-mobile"})


@cache
def traffic() -> list[bytes]:
    """LiveCo with an ISP congestion beside ClassMate's ordinary traffic."""
    return simulate([FAULT], peak=400, minutes=6.5, start=START, apps=("liveco", "classmate"))


def measure_raising_for(engine: DetectionEngine, broken: set[tuple[str, str | None, str | None]]) -> None:
    """Make the engine's measurement raise for these keys (an app: (app, None, None); a slice: (app, dim, value))."""
    measure = engine._measure

    def chaotic(state: Any, spec: Any, i: int, window: Any, app_threshold: int | None) -> Any:
        key = window.key
        if (key.app_id, None, None) in broken or (key.app_id, key.dimension, key.value) in broken:
            raise RuntimeError("injected")
        return measure(state, spec, i, window, app_threshold)

    engine._measure = chaotic  # type: ignore[method-assign]


def replay(engine: DetectionEngine) -> list[Detection]:
    replayer = Replayer(engine)
    for chunk in traffic():
        replayer.feed(chunk)
    replayer.flush()
    return replayer.summary.detections + engine.open_detections()


def test_without_chaos_the_fault_is_found_and_nothing_fails() -> None:
    engine = DetectionEngine()
    found = replay(engine)
    assert any(d.app_id == "liveco" and d.slice == {"isp": "china-mobile"} for d in found)
    assert not engine.failures


def test_an_app_and_a_slice_that_raise_do_not_stop_the_detection_of_another_fault() -> None:
    sink: list[str] = []
    engine = DetectionEngine(on_failure=lambda cause, exc: sink.append(cause))
    measure_raising_for(engine, {("classmate", None, None), ("liveco", "isp", "china-telecom")})
    found = replay(engine)
    assert any(d.app_id == "liveco" and d.slice == {"isp": "china-mobile"} for d in found), found
    assert not any(d.app_id == "classmate" for d in found)
    assert set(engine.failures) == {"measure:RuntimeError"}
    # Every ClassMate key and LiveCo's china-telecom, in every window: hundreds of failures, all counted.
    assert engine.failures["measure:RuntimeError"] == len(sink) > 300


def test_a_localization_that_raises_still_opens_the_detection() -> None:
    engine = DetectionEngine()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("injected")

    engine._localize_unsafe = broken  # type: ignore[method-assign]
    found = replay(engine)
    assert any(d.app_id == "liveco" and d.metric in ("loss_p95_pct", "e2e_delay_p95_ms", "mos") for d in found)
    assert engine.failures["localize:ZeroDivisionError"] >= 1


def test_a_window_whose_step_raises_loses_that_window_of_that_app_only() -> None:
    engine = DetectionEngine()
    step = engine._step
    lost: list[datetime] = []

    def flaky(app_id: str, start: datetime, windows: list[Any]) -> Any:
        if app_id == "classmate" or (app_id == "liveco" and len(lost) < 3 and start.minute == 1):
            lost.append(start)
            raise KeyError("injected")
        return step(app_id, start, windows)

    engine._step = flaky  # type: ignore[method-assign]
    found = replay(engine)
    assert any(d.app_id == "liveco" and d.slice == {"isp": "china-mobile"} for d in found)
    assert engine.failures["window:KeyError"] == len(lost) > 30


# -- the live desk: /metrics and the log ---------------------------------------------------------------------


def failures_counted(cause: str) -> float:
    return REGISTRY.get_sample_value("zhiban_detect_failures_total", {"cause": cause}) or 0.0


def test_failures_are_counted_each_time_and_logged_once_a_minute_per_cause(caplog: pytest.LogCaptureFixture) -> None:
    clock = FrozenClock(START)
    log = logging.getLogger("zhiban.detect.test_chaos")
    sink = FailureLog(clock, log)
    before = failures_counted("track:ValueError"), failures_counted("learn:KeyError")
    caplog.set_level(logging.ERROR, logger=log.name)
    for second in range(0, 150, 10):  # 15 windows of the same bug, 2.5 minutes
        clock.set(START + timedelta(seconds=second))
        sink("track:ValueError", ValueError("bad"))
        if second == 30:
            sink("learn:KeyError", KeyError("other"))
    assert failures_counted("track:ValueError") - before[0] == 15
    assert failures_counted("learn:KeyError") - before[1] == 1
    records = [(r.getMessage(), r.exc_info is not None) for r in caplog.records]
    track = [(message, traceback) for message, traceback in records if "track:ValueError" in message]
    # At 0 s with the traceback, at 60 s and 120 s with how many were left unsaid.
    assert [traceback for _, traceback in track] == [True, False, False]
    assert "5 more" in track[1][0] and "5 more" in track[2][0]
    assert sum("learn:KeyError" in message for message, _ in records) == 1


def test_in_the_live_desk_a_raising_app_is_counted_in_metrics_and_the_other_apps_fault_is_recorded(
    desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    with desk.transaction() as s:
        for name in ("liveco", "classmate"):
            identity.create_organization(s, desk.clock, name=name, slug=name, plan="enterprise")
            apps.ensure_app(s, desk.clock, app_id=name, organization_slug=name)
    runtime = TelemetryRuntime(desk)
    live = live_for(runtime.pipeline)
    measure_raising_for(live.engine, {("classmate", None, None)})
    before = failures_counted("measure:RuntimeError")
    caplog.set_level(logging.ERROR, logger="zhiban.detect")
    for chunk in traffic():
        for app_id in ("liveco", "classmate"):
            lines = [line for line in chunk.split(b"\n") if f'"app_id":"{app_id}"'.encode() in line]
            if lines:
                runtime.ingestor.ingest(app_id, b"\n".join(lines))
        runtime.drain()
    runtime.drain(flush=True)
    with desk.transaction() as s:
        stored = service.list_detections(s, service.SYSTEM, limit=200)
        shown = [service.detection_json(r) for r in stored]
    assert any(d["app_id"] == "liveco" and d["slice"] == {"isp": "china-mobile"} for d in shown), shown
    assert not any(d["app_id"] == "classmate" for d in shown)
    counted = failures_counted("measure:RuntimeError") - before
    assert counted == live.engine.failures["measure:RuntimeError"] > 300
    # The desk's clock stood still: one log line, with its traceback, for hundreds of failures.
    logged = [r for r in caplog.records if "measure:RuntimeError" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None

"""A real WebRTC stack feeds zhiban: Chromium's loopback call posts getStats() as W3C webrtc-stats reports.

A fresh `zhiban serve` (demo organizations, no simulator) gets an app from `zhiban apps create`; the page
/static/telemetry/webrtc-loopback.html calls itself with Chromium's fake camera and microphone and posts a
snapshot every second, one at a time, until eight were answered. Then: the converted interval reports are in
the session inspector's API with plausible values, and once the desk shuts down (which persists its open
windows) the app's aggregated windows are in the database.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser_fixtures import _free_port, stop_desk, wait_until
from tests.zhiban_cli import zhiban as run_zhiban
from zhiban.demo.seed import DEMO_PASSWORD

# One xdist worker runs every browser test: one Chromium and one desk, not two competing for the cores.
pytestmark = pytest.mark.xdist_group("browser")

SNAPSHOTS = 8  # the call ends once this many snapshots were answered: a busy desk slows the call, never shortens it
CALL_BOUND_SECONDS = 180
DOCS = Path(__file__).resolve().parents[2] / "docs"


@dataclass
class QuietDesk:
    base: str
    ingest_key: str
    db_path: Path
    proc: subprocess.Popen[bytes]
    log_path: Path


@pytest.fixture
def quiet_desk(tmp_path: Path) -> Iterator[QuietDesk]:
    """`zhiban serve` with the demo data but no simulated traffic, and an app `webrtc-test` for LiveCo."""
    port = _free_port()
    db_path = tmp_path / "desk.db"
    env = {
        **os.environ,
        "ZHIBAN_DATABASE_URL": f"sqlite:///{db_path}",
        "ZHIBAN_VAR_DIR": str(tmp_path / "var"),
        "ZHIBAN_LOG_LEVEL": "WARNING",
        "ZHIBAN_SIMULATE": "false",
    }
    zhiban = str(Path(sys.executable).parent / "zhiban")
    log_path = tmp_path / "serve.log"
    log = open(log_path, "w")  # noqa: SIM115
    proc = subprocess.Popen([zhiban, "serve", "--port", str(port)], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # a bound, not a wait: at load 24 the desk took over 90 s to start
        while True:
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log_path.read_text()[-3000:]) from None
                time.sleep(0.3)
        made = run_zhiban("apps", "create", "--org", "liveco", "--app-id", "webrtc-test", "--json", env=env)
        assert made.returncode == 0, made.stderr
        key = json.loads(made.stdout)["ingest_key"]
        yield QuietDesk(base, key, db_path, proc, log_path)
    finally:
        stop_desk(proc)
        log.close()


def _converted_reports(page: Any, base: str, session_id: str) -> list[dict[str, Any]]:
    body = page.evaluate(
        """async (url) => (await fetch(url, {headers: {accept: "application/json"}})).json()""",
        f"{base}/api/v1/apps/webrtc-test/sessions/{session_id}",
    )
    reports: list[dict[str, Any]] = body["reports"]
    return reports


def _numbers(value: Any) -> Iterator[float]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield float(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)


@pytest.mark.browser
@pytest.mark.slow
def test_a_loopback_call_in_chromium_becomes_quality_reports(chromium: Any, quiet_desk: QuietDesk) -> None:
    context = chromium.new_context(viewport={"width": 800, "height": 700})
    page = context.new_page()
    fragment = f"app=webrtc-test&key={quiet_desk.ingest_key}&count={SNAPSHOTS}&seconds={CALL_BOUND_SECONDS}"
    url = f"{quiet_desk.base}/static/telemetry/webrtc-loopback.html#{fragment}"
    page.goto(url)
    wait_until(page, "window.loopback && window.loopback.done", timeout=(CALL_BOUND_SECONDS + 30) * 1000)
    state = page.evaluate("window.loopback")
    assert state["errors"] == [] and state["rejected"] == [], state
    assert state["sent"] == SNAPSHOTS and state["accepted"] == state["sent"]
    session_id = state["sessionId"]
    # Read back as an agent, through the session inspector's API (same browser, signed in).
    page.goto(quiet_desk.base + "/login?lang=en")
    page.fill("#email", "admin@zhiban.demo")
    page.fill("#password", DEMO_PASSWORD)
    page.press("#password", "Enter")
    page.wait_for_load_state("networkidle")
    deadline = time.monotonic() + 45  # the pipeline closes windows and converts in its own thread
    reports = _converted_reports(page, quiet_desk.base, session_id)
    while len(reports) < state["sent"] - 1 and time.monotonic() < deadline:
        time.sleep(0.5)  # the pipeline consumes the bus in its own thread
        reports = _converted_reports(page, quiet_desk.base, session_id)
    page.goto(f"{quiet_desk.base}/telemetry/apps/webrtc-test/sessions/{session_id}?lang=en")
    inspector_rows = page.locator("table.tm-timeline tbody tr").count()
    page.wait_for_selector("#tm-session-plot canvas")
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "screenshot-telemetry-session.png"), full_page=True)
    context.close()

    # The first snapshot only primes the converter: one report per later snapshot.
    assert len(reports) == state["sent"] - 1, (len(reports), state["sent"])
    assert inspector_rows == len(reports)
    for report in reports:
        assert report["app_id"] == "webrtc-test" and report["session_id"] == session_id
        assert report["platform"] == "web" and report["sdk_version"] == "webrtc-loopback/1"
        # Snapshots a second apart; one post at a time, so a slow answer under load skips ticks (8 s seen at load 4).
        assert 500 <= report["interval_ms"] <= 60000
        assert all(n >= 0 for n in _numbers(report)), report  # never a negative value
        assert report["video"]["loss_pct"] >= 0 and report["audio"]["loss_pct"] >= 0
        assert report["net"]["rtt_ms"] >= 0
    # Once the call runs, video frames are decoded: Chromium's fake camera plays at a steady rate.
    steady = reports[2:]
    assert steady and all(r["video"]["fps"] > 0 for r in steady), [r["video"] for r in reports]
    assert sum(r["video"]["fps"] for r in steady) / len(steady) > 5
    assert all(r["video"]["bitrate_kbps"] > 0 and r["audio"]["bitrate_kbps"] > 0 for r in steady)
    assert all(r["video"]["freeze_ms"] <= r["interval_ms"] for r in reports)

    fps = sorted(r["video"]["fps"] for r in steady)
    rtt = sorted(r["net"]["rtt_ms"] for r in reports)
    print(
        f"webrtc loopback: {state['sent']} snapshots, {len(reports)} reports;"
        f" video fps median {fps[len(fps) // 2]:.1f};"
        f" rtt {rtt[0]:.1f}..{rtt[-1]:.1f} ms; video loss max {max(r['video']['loss_pct'] for r in reports):.2f} %;"
        f" video kbps median {sorted(r['video']['bitrate_kbps'] for r in steady)[len(steady) // 2]:.0f}"
    )
    # Shutting down persists the open windows (in-memory bus): the app's aggregates are there. SIGINT (Ctrl-C),
    # not SIGTERM: uvicorn re-raises a captured SIGTERM once it stops, which kills serve before its clean-up.
    quiet_desk.proc.send_signal(signal.SIGINT)
    quiet_desk.proc.wait(timeout=180)  # a bound: stopping waits for running jobs and SQLite writes
    with sqlite3.connect(quiet_desk.db_path) as db:
        windows = db.execute(
            "select window_start, reports, sessions, rtt_p95_ms, mos from telemetry_windows"
            " where app_id = 'webrtc-test' and window_seconds = 10 and dimension = '' order by window_start"
        ).fetchall()
        platforms = db.execute(
            "select value, sum(reports) from telemetry_windows where app_id = 'webrtc-test'"
            " and window_seconds = 10 and dimension = 'platform' group by value"
        ).fetchall()
    assert sum(w[1] for w in windows) == len(reports)
    # One session over ~8 s of 10 s windows; a slow desk stretches the call over more windows, never fewer than one.
    assert 1 <= len(windows) <= len(reports) and all(w[2] == 1 for w in windows)
    assert all(w[3] is not None and w[3] >= 0 for w in windows)
    assert all(w[4] is not None and 1 <= w[4] <= 4.5 for w in windows)
    assert platforms == [("web", len(reports))]

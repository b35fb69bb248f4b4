"""`zhiban detect …`, run in-process as the installed command runs them: replay writes §4 lines; rules and the
notice webhook are set."""

from __future__ import annotations

import gzip
import os
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from tests.zhiban_cli import Ran, zhiban
from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.store.db import Base, make_engine
from zhiban.telemetry.simulator import demo_apps, simulate_to_file
from zhiban.telemetry.simulator_faults import Fault

SECTION_4 = {"opened_at", "closed_at", "app_id", "metric", "direction", "slice", "baseline", "observed", "sessions",
             "severity"}  # fmt: skip


@pytest.fixture
def database(tmp_path: Path) -> str:
    import zhiban.store.models  # noqa: F401
    from zhiban.core.settings import Settings

    url = f"sqlite:///{tmp_path / 'desk.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    desk = Desk(settings=Settings(database_url=url, var_dir=str(tmp_path / "var")), engine=engine, secret_key="k")
    with desk.transaction() as s:
        identity.create_organization(s, FrozenClock(datetime(2026, 11, 20, tzinfo=UTC)), name="LiveCo", slug="liveco")
    engine.dispose()
    return url


def run(url: str, *args: str, cwd: Path) -> Ran:
    env = {**os.environ, "ZHIBAN_DATABASE_URL": url, "ZHIBAN_VAR_DIR": str(cwd / "var"), "COLUMNS": "200"}
    return zhiban(*args, env=env, cwd=cwd)


def test_replay_writes_one_section_4_detection_per_line(database: str, tmp_path: Path) -> None:
    start = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    fault = Fault(
        "edge_packet_loss", "liveco", start + timedelta(minutes=4), timedelta(minutes=1), {"edge": "sh-edge-07"}
    )
    recording = tmp_path / "night.ndjson.gz"
    apps = [a for a in demo_apps(peak_sessions=400) if a.app_id == "liveco"]
    simulate_to_file(recording, apps, [fault], seed=2, start=start, duration=timedelta(minutes=6.5), progress=False)
    out = tmp_path / "detections.jsonl"
    done = run(database, "detect", "replay", str(recording), "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = orjson.loads(done.stdout)
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert summary["detections"] == len(lines) >= 1 and summary["reports"] > 10_000
    for line in lines:
        assert set(line) == SECTION_4
        assert line["app_id"] == "liveco" and line["severity"] in ("minor", "major", "critical")
        assert line["opened_at"].endswith("Z") and line["opened_at"] >= "2026-11-20T12:03:40Z"
    assert any(line["slice"].get("edge") == "sh-edge-07" for line in lines)


def test_rules_and_notice_webhook_from_the_command_line(database: str, tmp_path: Path) -> None:
    rule = ["--name", "ent-join", "--metric", "join_success_rate", "--below", "0.99", "--window", "60"]
    added = run(database, "detect", "rules", "add", *rule, "--consecutive", "2", "--plan", "enterprise", cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    assert orjson.loads(added.stdout)["threshold"] == 0.99
    changed = run(database, "detect", "rules", "set", "ent-join", "--threshold", "0.995", "--disabled", cwd=tmp_path)
    assert changed.returncode == 0, changed.stderr
    listed = [orjson.loads(x) for x in run(database, "detect", "rules", "list", cwd=tmp_path).stdout.splitlines()]
    assert [(r["name"], r["threshold"], r["enabled"]) for r in listed] == [("ent-join", 0.995, False)]

    secret = "s3cret-s3cret-s3cret"
    hook = run(database, "detect", "notice-webhook", "set", "--org", "liveco", "--url", "https://hooks.liveco.test/z",
               "--secret", secret, cwd=tmp_path)  # fmt: skip
    assert hook.returncode == 0, hook.stderr
    shown = run(database, "detect", "notice-webhook", "show", "--org", "liveco", cwd=tmp_path)
    assert orjson.loads(shown.stdout)["url"] == "https://hooks.liveco.test/z" and secret not in shown.stdout
    short = run(database, "detect", "notice-webhook", "set", "--org", "liveco", "--url", "https://x.test",
                "--secret", "short", cwd=tmp_path)  # fmt: skip
    assert short.returncode == 2 and "secret" in short.stderr


def test_replay_survives_a_dimension_with_no_baseline_at_all(database: str, tmp_path: Path) -> None:
    # Issue 16: a realistic recording whose edges are all too small to learn a baseline (a few sessions
    # each); when the ISP congestion opens a detection, localization meets a dimension whose baseline is
    # empty everywhere. It used to divide by zero and exit 1.
    start = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    fault = Fault(
        "isp_congestion", "liveco", start + timedelta(minutes=4), timedelta(minutes=1), {"isp": "china-mobile"}
    )
    simulated = tmp_path / "sim.ndjson.gz"
    apps = [a for a in demo_apps(peak_sessions=400) if a.app_id == "liveco"]
    simulate_to_file(simulated, apps, [fault], seed=5, start=start, duration=timedelta(minutes=6.5), progress=False)
    recording = tmp_path / "tiny-edges.ndjson"
    with gzip.open(simulated, "rb") as source, recording.open("wb") as sink:
        for line in source:
            report = orjson.loads(line)
            report["edge"] = f"tiny-edge-{zlib.crc32(report['session_id'].encode()) % 60}"  # ~7 sessions each
            sink.write(orjson.dumps(report) + b"\n")
    out = tmp_path / "detections.jsonl"
    done = run(database, "detect", "replay", str(recording), "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = orjson.loads(done.stdout)
    assert summary["failures"] == {} and "warning" not in done.stderr
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert any(line["slice"] == {"isp": "china-mobile"} for line in lines), lines
    assert not any("edge" in line["slice"] for line in lines)  # no edge has a baseline to depart from


def test_fault_help_names_every_kind_and_dimension() -> None:
    from zhiban.detect.cli import FAULT_HELP
    from zhiban.telemetry.simulator_faults import BENIGN_KINDS, DIMENSIONS, FAULT_KINDS

    for name in (*FAULT_KINDS, *BENIGN_KINDS, *DIMENSIONS):
        assert name in FAULT_HELP, name
    for kind, (magnitude, _, _) in FAULT_KINDS.items():  # the defaults the help quotes are the simulator's
        line = next(x for x in FAULT_HELP.splitlines() if x.strip().startswith(kind))
        assert float(line.split()[1]) == magnitude, line


def test_fault_finds_the_desk_by_its_port_and_says_when_another_server_answered(tmp_path: Path) -> None:
    import subprocess
    import sys
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class NotADesk(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = b'{"detail": "invalid or revoked API token"}'
            self.send_response(401)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), NotADesk)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        env = {k: v for k, v in os.environ.items() if k not in ("ZHIBAN_BASE_URL", "ZHIBAN_PORT")}
        env.update(ZHIBAN_PORT=str(port), ZHIBAN_TOKEN="zb_x", ZHIBAN_VAR_DIR=str(tmp_path))
        zhiban_bin = str(Path(sys.executable).parent / "zhiban")
        spec = "edge_packet_loss:liveco:edge=sh-edge-07:+1m:10m"
        command = [zhiban_bin, "detect", "fault", spec]
        ran = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert ran.returncode == 2
        assert f"http://127.0.0.1:{port} answered HTTP 401 but not as a zhiban desk" in ran.stderr, ran.stderr
        assert "revoked" not in ran.stderr  # another server's words are not passed on as the desk's
    finally:
        server.shutdown()

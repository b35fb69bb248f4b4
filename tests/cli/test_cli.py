"""The `zhiban` command as a user runs it, on a temporary SQLite database: real subprocesses for --help, errors and
the web process; in-process (the same command, the same environment) for what the other commands do."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.zhiban_cli import Ran, zhiban

ZHIBAN = str(Path(sys.executable).parent / "zhiban")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ZHIBAN_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "ZHIBAN_VAR_DIR": str(tmp_path / "var"),
        "ZHIBAN_LOG_LEVEL": "WARNING",
    }


def run(env: dict[str, str], *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """The installed `zhiban` as a real process: what --help, exit codes and stderr look like to a user."""
    return subprocess.run([ZHIBAN, *args], env=env, capture_output=True, text=True, input=input, timeout=120)


def run_here(env: dict[str, str], *args: str) -> Ran:
    """The same command in this process (tests/zhiban_cli.py), where what it does is tested, not the process."""
    return zhiban(*args, env=env)


def test_help_lists_every_command(env: dict[str, str]) -> None:
    out = run(env, "--help")
    assert out.returncode == 0
    for command in ("serve", "worker", "migrate", "user", "token", "jobs", "demo"):
        assert command in out.stdout
    # An alias says what it aliases instead of repeating the other command's help in the list.
    listed = run({**env, "COLUMNS": "300"}, "--help").stdout
    assert "The same as `zhiban drills`" in listed and listed.count("at a chosen local time") == 1


def test_migrate_user_token_and_the_token_works(env: dict[str, str]) -> None:
    assert run_here(env, "migrate").returncode == 0
    made = run_here(
        env,
        "user",
        "create",
        "--email",
        "ops@vendor.test",
        "--name",
        "Ops",
        "--role",
        "admin",
        "--password",
        "long-enough-pw",
    )
    assert made.returncode == 0, made.stderr
    token = run_here(env, "token", "create", "--email", "ops@vendor.test", "--scope", "admin")
    assert token.returncode == 0 and token.stdout.strip().startswith("zb_")

    from fastapi.testclient import TestClient

    from zhiban.core.settings import Settings
    from zhiban.desk import Desk
    from zhiban.web.app import create_app

    desk = Desk(settings=Settings(database_url=env["ZHIBAN_DATABASE_URL"], var_dir=env["ZHIBAN_VAR_DIR"]))
    with TestClient(create_app(desk)) as client:
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token.stdout.strip()}"})
    assert me.status_code == 200 and me.json()["role"] == "admin"


def test_errors_are_one_line_and_non_zero(env: dict[str, str]) -> None:
    run_here(env, "migrate")
    bad = run(env, "user", "create", "--email", "not-an-email", "--name", "X", "--password", "long-enough-pw")
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "not an e-mail address" in bad.stderr
    nobody = run(env, "token", "create", "--email", "ghost@vendor.test")
    assert nobody.returncode == 2 and "ghost@vendor.test" in nobody.stderr
    dup = ["user", "create", "--email", "a@b.test", "--name", "A", "--password", "long-enough-pw"]
    assert run_here(env, *dup).returncode == 0
    again = run(env, *dup)
    assert again.returncode == 2 and "already has an account" in again.stderr


def test_demo_seeds_once_and_jobs_lists(env: dict[str, str]) -> None:
    first = run_here(env, "demo")
    assert first.returncode == 0 and "admin@zhiban.demo" in first.stdout and "zhiban-demo-2026" in first.stdout
    second = run_here(env, "demo")
    assert second.returncode == 0 and "already present" in second.stdout
    jobs = run_here(env, "jobs")
    assert jobs.returncode == 0, jobs.stderr


def test_web_serves_alerts_and_leaves_jobs_to_a_worker(env: dict[str, str], tmp_path: Path) -> None:
    import queue
    import socket
    import threading
    import time
    from datetime import UTC, datetime

    import httpx
    from sqlalchemy import func, select

    from zhiban.core.settings import Settings
    from zhiban.desk import Desk
    from zhiban.engine.store import Job
    from zhiban.identity import service as identity
    from zhiban.identity.model import Role
    from zhiban.incidents import integrations, service

    assert run_here(env, "migrate").returncode == 0
    desk = Desk(settings=Settings(database_url=env["ZHIBAN_DATABASE_URL"], var_dir=env["ZHIBAN_VAR_DIR"], demo=False))
    with desk.transaction() as s:
        agent = identity.create_person(s, desk.clock, email="oncall@vendor.test", name="On-call", role=Role.AGENT)
        levels = [{"delay_minutes": 5, "targets": [{"kind": "person", "ref": agent.id}]}]
        policy = service.create_policy(s, desk.clock, name="cn-east", levels=levels)
        svc = service.create_service(s, desk.clock, name="media network cn-east", policy=policy.id)
        key = integrations.create_integration(s, desk.clock, type_="events-v2", service_ref=svc.id).key
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "web.log").open("wb")
    proc = subprocess.Popen(
        [ZHIBAN, "web", "--port", str(port)],
        env={**env, "ZHIBAN_SIMULATE": "false", "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        # The banner says the desk is up only once it answers: the first request after it needs no retry.
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True).start()
        banner = lines.get(timeout=90)
        assert banner.startswith("zhiban web at http://") and f":{port};" in banner, banner
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        event = {"routing_key": key, "event_action": "trigger", "dedup_key": "edge-07",
                 "payload": {"summary": "sh-edge-07 loss", "source": "sh-edge-07", "severity": "critical"}}  # fmt: skip
        answer = httpx.post(f"http://127.0.0.1:{port}/v2/enqueue", json=event, timeout=30)
        assert answer.status_code == 202 and answer.json()["dedup_key"] == "edge-07"
        time.sleep(1)
        with desk.transaction() as s:
            due = select(Job.state, func.count()).where(Job.due_at <= datetime.now(UTC)).group_by(Job.state)
            states = {str(state): int(count) for state, count in s.execute(due).all()}
        assert states.get("pending", 0) >= 1 and "done" not in states  # paging is due, but no worker runs here
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
        log.close()


def test_output_read_by_a_program_keeps_whole_values(env: dict[str, str]) -> None:
    run_here(env, "migrate")
    name = "Customer success · Asia/Shanghai with a long calendar name that a narrow table would cut"
    assert run_here(env, "calendars", "create", name, "--tz", "Asia/Shanghai").returncode == 0
    piped = {k: v for k, v in env.items() if k != "COLUMNS"}
    listed = run(piped, "calendars", "list")  # stdout is a pipe, as in `zhiban calendars list | grep …`
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if "Customer success" in line)
    assert name in row and "…" not in listed.stdout
    assert re.search(r"\b[0-9a-f]{32}\b", row)  # the whole id, to paste into the next command
    narrow = run({**piped, "COLUMNS": "60"}, "calendars", "list")  # unless the reader says how wide
    assert name not in narrow.stdout

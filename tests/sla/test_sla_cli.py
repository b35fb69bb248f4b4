"""`zhiban sla due` and `zhiban calendars`, run in-process as the installed command runs them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import zhiban.store.models
from tests.zhiban_cli import Ran, zhiban
from zhiban.store.db import Base, make_engine


def run(tmp_path: Path, *args: str) -> Ran:
    env = {**os.environ, "ZHIBAN_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "ZHIBAN_VAR_DIR": str(tmp_path)}
    env.pop("ZHIBAN_SMTP_URL", None)
    return zhiban(*args, env=env, cwd=tmp_path)


def test_due_json_matches_the_story(tmp_path: Path) -> None:
    args = ["sla", "due", "--plan", "Standard", "--priority", "P2", "--country", "CN", "--tz", "Asia/Shanghai"]
    r = run(tmp_path, *args, "--at", "2026-10-09T17:50", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["first_response_due"] == "2026-10-10T12:50:00+08:00"
    assert out["resolution_due"] is None


def test_bad_input_is_one_error_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    base = ["sla", "due", "--plan", "Standard", "--priority", "P2", "--country", "CN"]
    for extra in (["--tz", "Mars/Olympus", "--at", "2026-10-09T17:50"],):
        r = run(tmp_path, *base, *extra, "--json")
        assert r.returncode == 2
        assert r.stdout == ""
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    r = run(
        tmp_path,
        "sla",
        "due",
        "--plan",
        "Gold",
        "--priority",
        "P2",
        "--country",
        "CN",
        "--tz",
        "UTC",
        "--at",
        "2026-10-09T09:00",
    )
    assert r.returncode == 2 and "unknown plan 'Gold'" in r.stderr


def test_calendar_commands_and_due_follow_the_database(tmp_path: Path) -> None:
    # The lead's Alembic migration gains these tables when regenerated; until then create them directly.
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    Base.metadata.create_all(engine)
    engine.dispose()
    r = run(tmp_path, "calendars", "create", "CN Asia/Shanghai", "--tz", "Asia/Shanghai", "--country", "CN")
    assert r.returncode == 0, r.stderr
    r = run(tmp_path, "calendars", "close", "CN Asia/Shanghai", "2026-10-10")
    assert r.returncode == 0 and "2026-10-10" in r.stdout
    r = run(
        tmp_path,
        *["sla", "due", "--plan", "standard", "--priority", "P2", "--country", "CN", "--tz", "Asia/Shanghai"],
        *["--at", "2026-10-09T17:50", "--json"],
    )
    assert r.returncode == 0, r.stderr
    # The make-up Saturday is closed in this desk's calendar: the rest runs on Monday.
    assert json.loads(r.stdout)["first_response_due"] == "2026-10-12T12:50:00+08:00"
    bad = run(tmp_path, "calendars", "close", "CN Asia/Shanghai", "2026-13-40")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")


def test_support_mode_is_set_from_the_cli_and_checked(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    Base.metadata.create_all(engine)
    engine.dispose()
    refused = run(tmp_path, "sla", "support", "enterprise", "--mode", "standby")
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0
    assert "names the incident service" in refused.stderr
    unknown = run(tmp_path, "sla", "support", "enterprise", "--mode", "standby", "--service", "nowhere")
    assert unknown.returncode == 2 and "error:" in unknown.stderr
    assert run(tmp_path, "sla", "support", "basic", "--mode", "sometimes").returncode == 2
    listed = run(tmp_path, "sla", "plans")
    assert listed.returncode == 0 and "queue" in listed.stdout and "standby" not in listed.stdout
    from sqlalchemy.orm import Session

    from zhiban.core.clock import SystemClock
    from zhiban.incidents import service as incidents

    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with Session(engine) as session, session.begin():
        incidents.create_service(session, SystemClock(), name="P1 tickets", policy=None)
    engine.dispose()
    ok = run(tmp_path, "sla", "support", "enterprise", "--mode", "standby", "--service", "P1 tickets")
    assert ok.returncode == 0 and "standby, pages P1,P2" in ok.stdout, ok.stderr
    assert "standby" in run(tmp_path, "sla", "plans").stdout  # a narrow table wraps the rest

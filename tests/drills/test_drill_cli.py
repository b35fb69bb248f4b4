"""`zhiban drill --channel email` and `zhiban drills show` as real subprocesses on a temporary SQLite database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.incidents.incident_kit import build
from zhiban.core.clock import FrozenClock
from zhiban.core.settings import Settings
from zhiban.desk import Desk
from zhiban.drills.store import DrillRow
from zhiban.sla import service as sla
from zhiban.store.db import Base, make_engine

ZHIBAN = Path(sys.executable).with_name("zhiban")


@pytest.fixture
def cli_desk(tmp_path: Path, clock: FrozenClock) -> Desk:
    import zhiban.store.models  # noqa: F401

    url = f"sqlite:///{tmp_path / 'desk.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    desk = Desk(settings=Settings(database_url=url, var_dir=str(tmp_path / "var")), engine=engine, clock=clock,
                secret_key="k")  # fmt: skip
    kit = build(desk)
    with desk.transaction() as s:
        sla.save_plan(s, clock, "enterprise", support={"mode": "standby", "paging_service_id": kit.service})
    return desk


def run(desk: Desk, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ZHIBAN_DATABASE_URL": desk.settings.database_url, "ZHIBAN_VAR_DIR": desk.settings.var_dir,
           "COLUMNS": "200"}  # fmt: skip
    return subprocess.run([str(ZHIBAN), *args], env=env, capture_output=True, text=True, timeout=180)


def test_the_cli_schedules_an_email_drill_and_refuses_an_unknown_door(cli_desk: Desk) -> None:
    made = run(cli_desk, "drill", "--plan", "enterprise", "--at", "Sunday 03:00", "--channel", "email")
    assert made.returncode == 0, made.stderr
    assert " by email, judged 60 min later" in made.stdout
    with cli_desk.sessions() as s:
        (row,) = s.query(DrillRow).all()
        assert row.channel == "email" and row.state == "scheduled"
    shown = run(cli_desk, "drills", "show", row.id)
    assert shown.returncode == 0 and json.loads(shown.stdout)["channel"] == "email"
    bad = run(cli_desk, "drill", "--plan", "enterprise", "--at", "Sunday 03:00", "--channel", "fax")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: a drill files through one of api, email, not 'fax'"

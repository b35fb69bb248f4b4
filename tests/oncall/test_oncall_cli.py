"""`zhiban oncall …` as a user runs it: real subprocesses on a test database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from zhiban.core.clock import FrozenClock
from zhiban.demo.seed import seed_demo
from zhiban.oncall import service
from zhiban.oncall.model import zone_of
from zhiban.oncall.store import layers_of
from zhiban.store.db import Base, make_engine, session_factory

ZHIBAN = str(Path(sys.executable).parent / "zhiban")


def _database(url: str, *, schedules: bool) -> str:
    """Every table, the demo people, and (if asked) the demo schedules, in the test database."""
    engine = make_engine(url)
    import zhiban.store.models  # noqa: F401  (registers every table)

    Base.metadata.create_all(engine)
    clock = FrozenClock(datetime(2026, 11, 20, 19, 0, tzinfo=UTC))
    with session_factory(engine)() as s, s.begin():
        seed_demo(s, clock)
        if schedules:
            service.seed_demo_schedules(s, clock)
    engine.dispose()
    return url


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    return {
        **os.environ,
        "ZHIBAN_DATABASE_URL": url,
        "ZHIBAN_VAR_DIR": str(tmp_path / "var"),
        "ZHIBAN_LOG_LEVEL": "WARNING",
        "COLUMNS": "200",  # rich would otherwise wrap the table at 80 columns
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ZHIBAN, "oncall", *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def demo_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return _env(tmp_path, _database(db_url, schedules=True))


def test_who_is_on_call_schedules_and_clean_errors(demo_env: dict[str, str]) -> None:
    # The demo made on Saturday 21 November 2026: weekly turns, Li Na first, handing over Mondays 09:00 Shanghai.
    before = run(demo_env, "who", "--schedule", "Network primary", "--at", "2026-11-23T08:59+08:00")
    assert before.returncode == 0, before.stderr
    assert "Li Na" in before.stdout and "Sam" not in before.stdout
    assert "2026-11-23 09:00 CST" in before.stdout  # until the handoff, in the schedule's zone
    every = run(demo_env, "who", "--at", "2026-11-23T01:00")  # no offset: UTC, i.e. 09:00 Shanghai
    assert every.returncode == 0, every.stderr
    assert "Sam Carter" in every.stdout and "2026-11-30 09:00 CST" in every.stdout
    assert "Duty manager" in every.stdout and "Duty Manager" in every.stdout  # the schedule, and the admin's name

    listed = run(demo_env, "schedules")
    assert listed.returncode == 0, listed.stderr
    for text in ("Network primary", "Duty manager", "Asia/Shanghai"):
        assert text in listed.stdout
    missing = run(demo_env, "who", "--schedule", "Nope")
    assert missing.returncode == 2 and missing.stderr.strip() == "error: no schedule named 'Nope'"


def test_who_as_json_and_for_a_plan(demo_env: dict[str, str]) -> None:
    found = run(demo_env, "who", "--json", "--at", "2026-11-23T01:00", "--plan", "basic")
    assert found.returncode == 0, found.stderr
    document = json.loads(found.stdout)
    assert document["at"] == "2026-11-23T01:00:00+00:00"
    [network] = [s for s in document["schedules"] if s["name"] == "Network primary"]
    [sam] = network["on_call"]
    assert (sam["name"], sam["email"], sam["until"]) == (
        "Sam Carter (video)",
        "sam@zhiban.demo",
        "2026-11-30T01:00:00+00:00",
    )
    # Basic is a queue: its tickets wake nobody (the plans that page are shown by the end-to-end tests).
    assert document["plan"]["mode"] == "queue" and document["plan"]["people"] == []
    unknown = run(demo_env, "who", "--plan", "platinum")
    assert unknown.returncode == 2 and unknown.stderr.strip() == "error: no plan 'platinum'"


def test_seed_demo_command(tmp_path: Path) -> None:
    url = _database(f"sqlite:///{tmp_path / 'demo.db'}", schedules=False)
    env = _env(tmp_path, url)
    made = run(env, "seed-demo")
    assert made.returncode == 0 and "created: Network primary, Duty manager" in made.stdout
    # Made at the real time now: the first turn (Li Na's) began at the last Monday 09:00 Shanghai.
    engine = make_engine(url)
    with session_factory(engine)() as s:
        start = layers_of(s, service.schedule_id_by_name(s, "Network primary"))[0].rotation_start
    engine.dispose()
    local = start.astimezone(zone_of("Asia/Shanghai"))
    assert (local.weekday(), local.hour, local.minute) == (0, 9, 0) and start <= datetime.now(UTC)
    second_week = (start + timedelta(days=7, hours=1)).isoformat()
    assert "Sam Carter" in run(env, "who", "--schedule", "Network primary", "--at", second_week).stdout

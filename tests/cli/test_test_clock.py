"""The test clock of real processes: ZHIBAN_CLOCK_START (+ ANCHOR), refused unless ZHIBAN_ALLOW_TEST_CLOCK."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from zhiban.core.clock import StartedClock, SystemClock, clock_from
from zhiban.core.errors import InvalidInput
from zhiban.core.settings import Settings
from zhiban.desk import Desk

SATURDAY_3AM = "2026-12-12T03:00:00+08:00"


def test_a_started_clock_runs_at_real_speed_from_its_anchor() -> None:
    start = datetime.fromisoformat(SATURDAY_3AM)
    anchor = datetime.now(UTC) - timedelta(seconds=30)  # another process of the deployment began 30 s ago
    clock = StartedClock(start, anchor)
    first = clock.now()
    assert timedelta(seconds=30) <= first - start < timedelta(seconds=35)
    time.sleep(0.2)
    assert timedelta(seconds=0.19) <= clock.now() - first < timedelta(seconds=5)
    assert first.tzinfo is not None and first.utcoffset() == timedelta(0)


def test_the_settings_name_the_clock_and_a_test_clock_must_be_allowed(tmp_path: Path) -> None:
    assert isinstance(clock_from(""), SystemClock)
    with pytest.raises(InvalidInput, match="ZHIBAN_ALLOW_TEST_CLOCK"):
        clock_from(SATURDAY_3AM)
    with pytest.raises(InvalidInput, match="offset"):
        clock_from("2026-12-12T03:00:00", allowed=True)
    with pytest.raises(InvalidInput, match="ISO 8601"):
        clock_from("Saturday at three", allowed=True)
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'z.db'}",
        var_dir=str(tmp_path / "var"),
        secret_key="k" * 32,
        clock_start=SATURDAY_3AM,
        allow_test_clock=True,
    )
    desk = Desk(settings=settings)  # loading every feature's hooks takes a while on a busy machine: the clock runs
    assert timedelta(0) <= desk.clock.now() - datetime.fromisoformat(SATURDAY_3AM) < timedelta(seconds=90)
    with pytest.raises(InvalidInput):
        Desk(settings=settings.model_copy(update={"allow_test_clock": False}))


def test_a_process_refuses_a_test_clock_it_was_not_allowed(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ZHIBAN_DATABASE_URL": f"sqlite:///{tmp_path / 'z.db'}",
        "ZHIBAN_VAR_DIR": str(tmp_path / "var"),
        "ZHIBAN_CLOCK_START": SATURDAY_3AM,
    }
    env.pop("ZHIBAN_ALLOW_TEST_CLOCK", None)
    zhiban = str(Path(sys.executable).parent / "zhiban")
    done = subprocess.run([zhiban, "worker"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: ZHIBAN_CLOCK_START is set but ZHIBAN_ALLOW_TEST_CLOCK is not: refusing to run on a test clock"
    ]

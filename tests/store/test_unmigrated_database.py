"""A command against a database that was never migrated says so in one line and exits 2 (no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from zhiban.store.db import missing_table


def test_a_command_on_an_unmigrated_database_asks_for_migrate(tmp_path: Path) -> None:
    env = {**os.environ, "ZHIBAN_DATABASE_URL": f"sqlite:///{tmp_path / 'never-migrated.db'}"}
    zhiban = str(Path(sys.executable).parent / "zhiban")
    done = subprocess.run([zhiban, "oncall", "who", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "run `zhiban migrate`" in lines[0] and "oncall_" in lines[0], done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


@pytest.mark.parametrize(
    ("message", "table"),
    [("no such table: tickets", "tickets"), ("no such column: x", None), ("database is locked", None)],
)
def test_only_a_missing_table_is_taken_for_an_unmigrated_database(message: str, table: str | None) -> None:
    import sqlite3

    assert missing_table(OperationalError("select 1", {}, sqlite3.OperationalError(message))) == table
    assert missing_table(ValueError("no such table: tickets")) is None

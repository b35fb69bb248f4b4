"""`zhiban hotline …` on a SQLite file, run in-process as the installed command runs it."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

import zhiban.store.models
from tests.zhiban_cli import zhiban
from zhiban.core.clock import FrozenClock
from zhiban.demo.seed import seed_demo
from zhiban.identity import service as identity
from zhiban.store.db import Base, make_engine, session_factory, transaction


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    with transaction(session_factory(engine)) as s:
        seed_demo(s, FrozenClock(datetime(2026, 11, 20, 19, 0, tzinfo=UTC)), with_tickets=False)
    engine.dispose()
    return {**os.environ, "ZHIBAN_DATABASE_URL": url, "ZHIBAN_VAR_DIR": str(tmp_path / "var")}


def test_lines_and_phones_from_the_command_line(env: dict[str, str]) -> None:
    assert "no support lines" in zhiban("hotline", "lines", env=env).stdout
    made = zhiban("hotline", "set-line", "+1 555 010 0009", "--plan", "Enterprise", "--language", "en", env=env)
    assert made.returncode == 0, made.stderr
    assert zhiban("hotline", "lines", env=env).stdout.split("\t")[:3] == ["+15550100009", "enterprise", "en"]
    no_plan = zhiban("hotline", "set-line", "+15550100008", "--plan", "gold", env=env)
    assert no_plan.returncode == 2 and "no plan 'gold'" in no_plan.stderr
    bad = zhiban("hotline", "set-line", "555-0100", "--plan", "premium", env=env)
    assert bad.returncode == 2 and "E.164" in bad.stderr
    assert zhiban("hotline", "phone", "dev@medilink.demo", "+12125550123", env=env).returncode == 0
    engine = make_engine(env["ZHIBAN_DATABASE_URL"])
    with transaction(session_factory(engine)) as s:
        assert [p.email for p in identity.people_with_phone(s, "+12125550123")] == ["dev@medilink.demo"]
    engine.dispose()
    assert zhiban("hotline", "phone", "nobody@x.test", "+12125550123", env=env).returncode == 2
    assert zhiban("hotline", "remove-line", "+15550100009", env=env).returncode == 0
    assert zhiban("hotline", "remove-line", "+15550100009", env=env).returncode == 2

"""`zhiban tickets assign|take|tag|follow|link|merge` on a SQLite file, run in-process as the installed command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import zhiban.store.models  # every table, for create_all
from tests.zhiban_cli import Ran, zhiban
from zhiban.core.clock import SystemClock
from zhiban.identity import service as identity
from zhiban.identity.model import Principal, Role
from zhiban.store.db import Base, make_engine, session_factory, transaction
from zhiban.tickets import service as tickets


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    clock = SystemClock()
    with transaction(session_factory(engine)) as s:
        org = identity.create_organization(s, clock, name="LiveCo", slug="liveco")
        other = identity.create_organization(s, clock, name="ClassMate", slug="classmate")
        alice = identity.create_person(
            s, clock, email="alice@liveco.test", name="Alice", role=Role.CUSTOMER, organization_id=org.id
        )
        bob = identity.create_person(
            s, clock, email="bob@classmate.test", name="Bob", role=Role.CUSTOMER, organization_id=other.id
        )
        identity.create_person(s, clock, email="wang@vendor.test", name="Agent Wang", role=Role.AGENT)
        identity.create_person(s, clock, email="li@vendor.test", name="Agent Li", role=Role.AGENT)
        identity.create_team(s, name="rtc-media")
        for who, subject in ((alice, "one"), (alice, "two"), (bob, "three")):
            me = Principal(person_id=who.id, role=Role.CUSTOMER, organization_id=who.organization_id)
            tickets.create_ticket(s, clock, me, subject=subject, body="b")
    engine.dispose()
    return {
        **os.environ,
        "ZHIBAN_DATABASE_URL": url,
        "ZHIBAN_VAR_DIR": str(tmp_path / "var"),
        "ZHIBAN_LOG_LEVEL": "WARNING",
    }


def run(env: dict[str, str], *args: str) -> Ran:
    return zhiban("tickets", *args, env=env)


def _json(ran: Ran) -> dict[str, object]:
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout)  # type: ignore[no-any-return]


def test_assign_take_tag_follow_link_merge(env: dict[str, str]) -> None:
    wang = ["--as", "wang@vendor.test", "--json"]
    t = _json(run(env, "assign", "1", "--to", "li@vendor.test", "--team", "rtc-media", "--reason", "media", *wang))
    assert t["assignee"]["name"] == "Agent Li" and t["team_id"]  # type: ignore[index]
    assert _json(run(env, "take", "1", *wang))["assignee"]["name"] == "Agent Wang"  # type: ignore[index]
    assert _json(run(env, "tag", "1", "android", "卡顿", *wang))["tags"] == ["android", "卡顿"]
    assert _json(run(env, "tag", "1", "android", "--remove", *wang))["tags"] == ["卡顿"]
    assert _json(run(env, "follow", "1", *wang))["followers"]
    assert _json(run(env, "link", "1", "--to", "2", *wang))["related"] == [2]
    merged = _json(run(env, "merge", "2", "--into", "1", "--reason", "same", *wang))
    assert merged["status"] == "closed" and merged["merged_into"] == 1
    assert merged["related"] == []  # the merge supersedes the link
    text = run(env, "take", "2", "--as", "li@vendor.test")
    assert text.returncode == 0 and "#2 closed" in text.stdout and "merged into #1" in text.stdout


def test_refusals_are_one_line_and_exit_2(env: dict[str, str]) -> None:
    across = run(env, "merge", "3", "--into", "1", "--as", "wang@vendor.test")
    assert across.returncode == 2 and "different organizations" in across.stderr
    customer = run(env, "take", "1", "--as", "alice@liveco.test")
    assert customer.returncode == 2 and customer.stderr.startswith("error:")
    nobody = run(env, "take", "1", "--as", "ghost@vendor.test")
    assert nobody.returncode == 2 and "no active person" in nobody.stderr
    bad_tag = run(env, "tag", "1", "two words", "--as", "wang@vendor.test")
    assert bad_tag.returncode == 2 and "tag" in bad_tag.stderr
    missing = run(env, "assign", "1", "--as", "wang@vendor.test")
    assert missing.returncode == 2 and "--to" in missing.stderr

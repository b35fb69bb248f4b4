"""`zhiban integrations`, `zhiban ack` and `zhiban incidents audit` on a SQLite file, run in-process as the installed
command runs them."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

import zhiban.incidents.hooks  # acknowledge links, as a desk's start sets them: this file makes pages
import zhiban.store.models
from tests.zhiban_cli import Ran, zhiban
from zhiban.core.clock import FrozenClock
from zhiban.demo.seed import seed_demo
from zhiban.incidents import integrations
from zhiban.incidents.store import IncidentRow
from zhiban.store.db import Base, make_engine, session_factory, transaction


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)  # the lead's migration will carry these tables; tests need no wait for it
    # An incident opened 10 minutes ago whose next escalation no worker has fired: the audit must see it.
    clock = FrozenClock(datetime.now(UTC) - timedelta(minutes=10))
    with transaction(session_factory(engine)) as s:
        seed_demo(s, clock)
        made = integrations.seed_demo_integrations(s, clock)
        events = next(i for i in made if i.type == "events-v2")
        integrations.receive_events_v2(
            s,
            clock,
            {"routing_key": events.key, "event_action": "trigger", "dedup_key": "edge-07",
             "payload": {"summary": "sh-edge-07 loss", "source": "sh-edge-07", "severity": "critical"}},
        )  # fmt: skip
    engine.dispose()
    return {
        **os.environ,
        "ZHIBAN_DATABASE_URL": url,
        "ZHIBAN_VAR_DIR": str(tmp_path / "var"),
        "ZHIBAN_LOG_LEVEL": "WARNING",
    }


def run(env: dict[str, str], *args: str) -> Ran:
    return zhiban(*args, env=env)


def test_integrations_list_and_create(env: dict[str, str]) -> None:
    listed = run(env, "integrations", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(i["type"] for i in json.loads(listed.stdout)) == ["alertmanager", "events-v2"]
    made = run(env, "integrations", "create", "--type", "webhook", "--service", "LiveCo app", "--json")
    assert made.returncode == 0, made.stderr
    [row] = json.loads(made.stdout)
    assert row["type"] == "webhook" and len(row["key"]) == 32
    bad = run(env, "integrations", "create", "--type", "carrier-pigeon", "--service", "LiveCo app")
    assert bad.returncode == 2 and "integration type" in bad.stderr


def test_audit_then_ack_from_the_command_line(env: dict[str, str]) -> None:
    audit = run(env, "incidents", "audit", "--json")
    assert audit.returncode == 1, audit.stderr
    [late] = json.loads(audit.stdout)
    # The first level paged with the trigger; the second was due 5 minutes later.
    assert late["step"] == 1 and late["late_seconds"] >= 290
    refused = run(env, "ack", "1", "--as", "dev@liveco.demo")  # a customer cannot acknowledge
    assert refused.returncode == 2
    acked = run(env, "ack", "1", "--as", "li.na@zhiban.demo")
    assert acked.returncode == 0 and "acknowledged" in acked.stdout, acked.stderr
    assert run(env, "incidents", "audit").returncode == 0  # the step was cancelled by the acknowledgement
    engine = make_engine(env["ZHIBAN_DATABASE_URL"])
    with transaction(session_factory(engine)) as s:
        assert s.scalars(select(IncidentRow.status)).one() == "acknowledged"
    engine.dispose()


def test_audit_reports_pages_whose_outcome_is_unknown(env: dict[str, str]) -> None:
    from zhiban.notify.store import NotificationRow

    engine = make_engine(env["ZHIBAN_DATABASE_URL"])
    with transaction(session_factory(engine)) as s:
        # As a run after a crash leaves an e-mail page whose hand-off was cut short (tests/notify/test_handoff.py).
        page = s.scalars(select(NotificationRow).order_by(NotificationRow.created_at)).first()
        assert page is not None
        page.state, page.handed_at, page.channel = "unknown", datetime.now(UTC), "email"
        page_id = page.id
    engine.dispose()
    audit = run(env, "incidents", "audit", "--json")
    assert audit.returncode == 1, audit.stderr
    unknown = [row for row in json.loads(audit.stdout) if row["problem"] == "page outcome unknown"]
    assert [(row["notification"], row["channel"], row["incident"]) for row in unknown] == [(page_id, "email", 1)]
    table = run(env, "incidents", "audit")
    assert table.returncode == 1 and "email" in table.stdout
    assert run(env, "ack", "1", "--as", "li.na@zhiban.demo").returncode == 0
    # Acknowledged: someone is on it, and the overdue step was cancelled; nothing is left to report.
    assert run(env, "incidents", "audit").returncode == 0

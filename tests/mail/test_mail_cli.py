"""`zhiban mail ingest|held|release|discard` as real subprocesses on a temporary SQLite database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mail.mail_kit import customer_mail
from tests.mail.test_mail_auth import nested_mime
from tests.tenancy import build_world
from zhiban.core.settings import Settings
from zhiban.desk import Desk
from zhiban.store.db import Base, make_engine
from zhiban.tickets import service as tickets
from zhiban.tickets.service import TicketView

ZHIBAN = Path(sys.executable).with_name("zhiban")
BOB = "bob@classmate.test"


@pytest.fixture
def cli_desk(tmp_path: Path) -> Desk:
    """A SQLite desk with the test world; the CLI runs against the same file."""
    import zhiban.store.models  # noqa: F401

    url = f"sqlite:///{tmp_path / 'desk.db'}"
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    desk = Desk(settings=Settings(database_url=url, var_dir=str(tmp_path / "var")), engine=engine, secret_key="k")
    build_world(desk)
    return desk


def run(desk: Desk, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {
        **os.environ,
        "ZHIBAN_DATABASE_URL": desk.settings.database_url,
        "ZHIBAN_VAR_DIR": desk.settings.var_dir,
        "COLUMNS": "200",
    }
    env.pop("ZHIBAN_MAIL_AUTHSERV_ID", None)
    return subprocess.run([str(ZHIBAN), "mail", *args], env=env, input=stdin, capture_output=True, timeout=180)


def views(desk: Desk) -> list[TicketView]:
    from tests.mail.test_mail_auth import STAFF

    with desk.transaction() as s:
        return [tickets.get_ticket(s, STAFF, row.id) for row in tickets.list_tickets(s, STAFF, limit=50)]


def test_held_mail_from_the_cli(cli_desk: Desk) -> None:
    raw = customer_mail(BOB, "Recording lost", "Since 09:00.", message_id="<c1@cm>", authenticated=False)
    ingested = run(cli_desk, "ingest", "-", "--sender", BOB, "--recipient", "support@desk.test", stdin=raw)
    assert ingested.returncode == 0 and b"held for review" in ingested.stdout, ingested
    assert views(cli_desk) == []

    listed = run(cli_desk, "held", "--as", "agent@vendor.test")
    assert listed.returncode == 0 and b"Recording lost" in listed.stdout and BOB.encode() in listed.stdout
    refused = run(cli_desk, "held", "--as", BOB)
    assert (refused.returncode, refused.stderr.strip()) == (2, b"error: this needs an agent or an admin")

    released = run(cli_desk, "release", "1", "--as", "agent@vendor.test")
    assert released.returncode == 0, released.stderr
    [view] = views(cli_desk)
    assert f"released: created ticket #{view.ticket.id}".encode() in released.stdout
    assert [c.body for c in view.comments] == ["Since 09:00."]


def test_ingest_refuses_unreadable_mail_for_good(cli_desk: Desk) -> None:
    # 65 (EX_DATAERR): the MTA bounces it; 75 would keep it queued and retried forever.
    nested = run(cli_desk, "ingest", "-", "--sender", BOB, stdin=nested_mime(2_000))
    assert nested.returncode == 65 and nested.stdout.startswith(b"554 "), nested

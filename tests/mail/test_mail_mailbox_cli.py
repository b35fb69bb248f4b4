"""`zhiban mail mailbox add|list|poll|remove` as real subprocesses on a temporary SQLite database."""

from __future__ import annotations

import pytest

from tests.mail.test_mail_cli import cli_desk, run  # noqa: F401  (the fixture, and how the command is run)
from zhiban.desk import Desk
from zhiban.engine import list_jobs


@pytest.mark.slow  # five `zhiban` processes
def test_mailboxes_from_the_cli(cli_desk: Desk) -> None:  # noqa: F811
    add = [
        "mailbox",
        "add",
        "support",
        "--address",
        "support@desk.test",
        "--host",
        "imap.desk.test",
        "--user",
        "support@desk.test",
        "--move-to",
        "Filed",
        "--max-bytes",
        "5000000",
    ]
    added = run(cli_desk, *add, "--password", "s3cret-imap")
    assert added.returncode == 0 and b"mailbox support added" in added.stdout, added
    listed = run(cli_desk, "mailbox", "list")
    out = listed.stdout.decode()
    assert listed.returncode == 0 and "support@desk.test@imap.desk.test:993 (tls)" in out, out
    assert "INBOX -> Filed" in out and "never" in out and "s3cret-imap" not in out
    with cli_desk.transaction() as s:
        assert [j.kind for j in list_jobs(s, state="pending")] == ["mail.imap_poll"]

    again = run(cli_desk, *add, "--password", "x")
    assert again.returncode == 2 and again.stderr.decode().strip() == "error: a mailbox named 'support' exists"
    removed = run(cli_desk, "mailbox", "remove", "support")
    assert removed.returncode == 0 and b"mailbox support removed" in removed.stdout
    missing = run(cli_desk, "mailbox", "remove", "support")
    assert missing.returncode == 2 and missing.stderr.decode().strip() == "error: no mailbox 'support'"
    with cli_desk.transaction() as s:
        assert list_jobs(s, state="pending") == []

"""The support mailbox over IMAP, against a real Dovecot that the test starts; imapclient APPENDs the mail.

Filed as the SMTP listener files (new tickets, replies by In-Reply-To, attachments, refusals), marked \\Seen or
moved, the cursor kept across polls, a UIDVALIDITY change, and real worker processes killed in the middle.
Runs on SQLite and PostgreSQL (the `desk` fixture).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.mail.dovecot import Dovecot
from tests.mail.mail_kit import AUTHSERV, DESK_ADDRESS, Outbox, customer_mail
from tests.tenancy import World
from zhiban.core.clock import FrozenClock
from zhiban.desk import Desk
from zhiban.engine import Worker
from zhiban.identity.model import Principal, Role
from zhiban.mail import imap_poll, mailboxes
from zhiban.mail import store as mail_store
from zhiban.mail.model import MailboxSettings
from zhiban.mail.service import release_held_mail
from zhiban.tickets import attachments
from zhiban.tickets import service as tickets
from zhiban.tickets.service import TicketView

ALICE = "alice@liveco.test"
MAILBOX = "help@vendor.test"  # the support mailbox's own address, not the relay's sender (DESK_ADDRESS)
ADMIN = Principal(person_id="test-admin", role=Role.ADMIN, organization_id=None)
STAFF = Principal(person_id="test", role=Role.AGENT, organization_id=None)
ROOT = Path(__file__).parents[2]


def add_mailbox(desk: Desk, server: Dovecot, **overrides: object) -> str:
    fields: dict[str, object] = {
        "name": "support",
        "address": MAILBOX,
        "host": "127.0.0.1",
        "port": server.port,
        "security": "none",
        "username": server.user,
        "password": server.password,
        "authserv_id": AUTHSERV,  # the provider's MTA stamps Authentication-Results with it
        "idle": False,
    }
    box = MailboxSettings(**{**fields, **overrides})  # type: ignore[arg-type]
    with desk.transaction() as s:
        return mailboxes.add_mailbox(s, desk.clock, ADMIN, box).id


def mailbox(desk: Desk, mailbox_id: str) -> mail_store.MailboxRow:
    with desk.transaction() as s:
        row = s.get(mail_store.MailboxRow, mailbox_id)
        assert row is not None
        s.expunge(row)
        return row


def append(server: Dovecot, *raws: bytes, folder: str = "INBOX") -> list[int]:
    """APPEND mail as the provider's delivery does; the UIDs the server gave them."""
    client = server.client()
    try:
        uids = []
        for raw in raws:
            answer = client.append(folder, raw)
            uids.append(int(answer.split(b"APPENDUID ")[1].split(b"]")[0].split()[1]))
        return uids
    finally:
        client.logout()


def flags(server: Dovecot, folder: str = "INBOX") -> dict[int, set[bytes]]:
    client = server.client()
    try:
        client.select_folder(folder, readonly=True)
        found = client.search("ALL")
        return {uid: set(data[b"FLAGS"]) for uid, data in client.fetch(found, ["FLAGS"]).items()} if found else {}
    finally:
        client.logout()


def all_tickets(desk: Desk) -> list[TicketView]:
    with desk.transaction() as s:
        return [tickets.get_ticket(s, STAFF, row.id) for row in tickets.list_tickets(s, STAFF, limit=200)]


def inbound_ids(desk: Desk) -> list[str]:
    with desk.transaction() as s:
        query = select(mail_store.MailMessageRow.message_id).where(
            mail_store.MailMessageRow.direction == mail_store.INBOUND
        )
        return list(s.scalars(query))


def poll(worker: Worker, clock: FrozenClock) -> None:
    """Run the mailbox's due poll (and any mail delivery) in this process, then let its next poll fall due."""
    while worker.run_once(20):
        pass
    clock.advance(timedelta(seconds=61))


def with_attachment(message_id: str) -> bytes:
    msg = EmailMessage()
    msg["Authentication-Results"] = f"{AUTHSERV}; dmarc=pass header.from=liveco.test"
    msg["From"] = ALICE
    msg["To"] = DESK_ADDRESS
    msg["Subject"] = "[P2] Crash log attached"
    msg["Message-ID"] = message_id
    msg.set_content("The SDK crashes on join; the log is attached.")
    msg.add_attachment(b"E/RtcEngine: join failed -17\n" * 20, maintype="text", subtype="plain", filename="crash.log")
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="report.pdf")
    return msg.as_bytes()


def test_mailbox_mail_is_filed_threaded_and_flagged_like_smtp_mail(
    desk: Desk, world: World, dovecot: Dovecot, outbox: Outbox, worker: Worker, clock: FrozenClock
) -> None:
    box_id = add_mailbox(desk, dovecot, max_message_bytes=20_000)
    plain = customer_mail(ALICE, "Video freezes in cn-east", "Viewers see 卡顿 since 03:00.", message_id="<i1@liveco>")
    big = customer_mail(ALICE, "Full dump", "x" * 30_000, message_id="<i2@liveco>")
    uids = append(dovecot, plain, with_attachment("<i3@liveco>"), big)
    poll(worker, clock)

    first, second = sorted(all_tickets(desk), key=lambda v: v.ticket.id)
    assert (first.ticket.subject, first.ticket.channel, first.ticket.requester_id) == (
        "Video freezes in cn-east",
        "email",
        world.alice_id,
    )
    assert [c.body for c in first.comments] == ["Viewers see 卡顿 since 03:00."]
    # The attachment's mail is filed with its text (and priority tag), as the SMTP listener files it.
    assert (second.ticket.subject, second.ticket.priority) == ("Crash log attached", "P2")
    assert second.comments[0].body == "The SDK crashes on join; the log is attached."
    with desk.transaction() as s:  # its files are kept with that message, in the test desk's var directory
        files = attachments.of_comments(s, [second.comments[0].id])[second.comments[0].id]
        assert [(f.filename, f.content_type) for f in files] == [
            ("crash.log", "text/plain"),
            ("report.pdf", "application/pdf"),
        ]
        store = attachments.store_of(desk.settings)
        with store.open(files[1].blob_key) as blob:
            assert blob.read() == b"%PDF-1.4 fake"
    seen = flags(dovecot)
    assert b"\\Seen" in seen[uids[0]] and b"\\Seen" in seen[uids[1]]
    # The oversized mail was never downloaded: flagged for a person, not seen, not filed, recorded.
    assert seen[uids[2]] == {b"\\Flagged"}
    row = mailbox(desk, box_id)
    assert (row.filed, row.refused, row.last_uid) == (2, 1, uids[2])
    assert row.last_error is not None and "larger than 20000" in row.last_error
    assert row.last_success_at == clock.now() - timedelta(seconds=61)

    # The confirmations come from the mailbox's address (not the relay's); a reply to one threads by In-Reply-To.
    confirmation = next(m for m in outbox.received if f"[#{first.ticket.id}]" in m["Subject"])
    assert confirmation["From"] == MAILBOX != DESK_ADDRESS
    assert confirmation["Reply-To"].startswith(f"help+t{first.ticket.id}.")
    assert confirmation["Message-ID"].endswith("@vendor.test>")
    reply = customer_mail(
        ALICE,
        "Re: Video freezes",
        "Still freezing.\n\nOn Sat, 21 Nov 2026, zhiban wrote:\n> received",
        message_id="<i4@liveco>",
        in_reply_to=confirmation["Message-ID"],
    )
    append(dovecot, reply)
    poll(worker, clock)
    assert len(all_tickets(desk)) == 2
    [view] = [v for v in all_tickets(desk) if v.ticket.id == first.ticket.id]
    assert [c.body for c in view.comments][-1] == "Still freezing."
    assert sorted(inbound_ids(desk)) == ["<i1@liveco>", "<i3@liveco>", "<i4@liveco>"]
    assert mailbox(desk, box_id).filed == 3


def test_unauthenticated_and_strangers_mail_is_held_or_refused_as_smtp_does(
    desk: Desk, world: World, dovecot: Dovecot, outbox: Outbox, worker: Worker, clock: FrozenClock
) -> None:
    box_id = add_mailbox(desk, dovecot)
    forged = customer_mail(ALICE, "Refund me", "now", message_id="<f1@x>", authenticated=False)
    stranger = customer_mail("eve@spam.test", "Buy now", "cheap", message_id="<s1@x>")
    broken = b"From: alice@liveco.test\r\nSubject: broken\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n"
    uids = append(dovecot, forged, stranger, broken)
    poll(worker, clock)
    assert all_tickets(desk) == []
    seen = flags(dovecot)
    assert b"\\Seen" in seen[uids[0]]  # taken: held for an agent
    assert seen[uids[1]] == {b"\\Flagged"} and seen[uids[2]] == {b"\\Flagged"}
    row = mailbox(desk, box_id)
    assert (row.filed, row.refused, row.last_uid) == (1, 2, uids[2])
    assert row.last_error is not None and f"UID {uids[2]} refused" in row.last_error
    with desk.transaction() as s:
        [held] = mail_store.list_held(s, "held", 10)
        assert held.sender == ALICE
        # An agent vouches for it: filed as if it had come in authenticated, answered from the mailbox.
        release_held_mail(s, clock, STAFF, held.id, desk.settings)
    poll(worker, clock)
    [view] = all_tickets(desk)
    [confirmation] = outbox.received
    assert confirmation["From"] == MAILBOX and f"[#{view.ticket.id}]" in confirmation["Subject"]


def test_move_mode_moves_filed_mail_and_repairs_a_move_lost_in_a_crash(
    desk: Desk, world: World, dovecot: Dovecot, worker: Worker, clock: FrozenClock
) -> None:
    box_id = add_mailbox(desk, dovecot, after_filing="move", move_to="Filed")
    uids = append(dovecot, *(customer_mail(ALICE, f"Issue {n}", "help", message_id=f"<mv{n}@x>") for n in range(2)))
    poll(worker, clock)
    assert flags(dovecot) == {}
    assert len(flags(dovecot, "Filed")) == 2
    assert mailbox(desk, box_id).last_uid == uids[1]
    # A mail filed (cursor past it) but left in the folder, as a crash between filing and MOVE leaves it.
    [left] = append(dovecot, customer_mail(ALICE, "Issue 9", "help", message_id="<mv9@x>"))
    with desk.transaction() as s:
        row = s.get(mail_store.MailboxRow, box_id)
        assert row is not None
        row.last_uid = left
    poll(worker, clock)
    assert flags(dovecot) == {} and len(flags(dovecot, "Filed")) == 3
    assert len(all_tickets(desk)) == 2  # moved, not filed


def test_uidvalidity_change_reads_the_folder_again_and_files_nothing_twice(
    desk: Desk, world: World, dovecot: Dovecot, worker: Worker, clock: FrozenClock
) -> None:
    box_id = add_mailbox(desk, dovecot)
    append(dovecot, *(customer_mail(ALICE, f"Issue {n}", "help", message_id=f"<uv{n}@x>") for n in range(3)))
    poll(worker, clock)
    assert len(all_tickets(desk)) == 3
    # The server renumbers the folder (a restored backup, a migrated account): the cursor's UIDVALIDITY differs.
    with desk.transaction() as s:
        row = s.get(mail_store.MailboxRow, box_id)
        assert row is not None
        server_validity = row.uidvalidity
        row.uidvalidity = 1
    [new] = append(dovecot, customer_mail(ALICE, "Issue 3", "help", message_id="<uv3@x>"))
    poll(worker, clock)
    assert len(all_tickets(desk)) == 4
    assert sorted(inbound_ids(desk)) == [f"<uv{n}@x>" for n in range(4)]
    row = mailbox(desk, box_id)
    assert (row.uidvalidity, row.last_uid) == (server_validity, new)
    assert row.last_error is not None and "UIDVALIDITY changed" in row.last_error


def test_a_mailbox_told_to_skip_existing_mail_files_only_what_arrives_after_its_first_poll(
    desk: Desk, world: World, dovecot: Dovecot, worker: Worker, clock: FrozenClock
) -> None:
    old = append(dovecot, *(customer_mail(ALICE, f"Old {n}", "2019", message_id=f"<old{n}@x>") for n in range(2)))
    box_id = add_mailbox(desk, dovecot, skip_existing=True)
    poll(worker, clock)
    [new] = append(dovecot, customer_mail(ALICE, "New", "help", message_id="<new@x>"))
    poll(worker, clock)
    assert [v.ticket.subject for v in all_tickets(desk)] == ["New"]
    seen = flags(dovecot)
    assert (seen[old[0]], seen[old[1]], b"\\Seen" in seen[new]) == (set(), set(), True)
    assert mailbox(desk, box_id).last_uid == new


def test_a_mail_the_desk_keeps_failing_on_is_retried_then_set_aside_and_stops_nothing(
    desk: Desk, world: World, dovecot: Dovecot, worker: Worker, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zhiban.mail import inbound

    real = inbound.receive_mail

    def failing(session: object, clock: object, raw: bytes, **kw: object) -> object:
        if b"<poison@x>" in raw:
            raise RuntimeError("a bug this mail trips")
        return real(session, clock, raw, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(inbound, "receive_mail", failing)
    box_id = add_mailbox(desk, dovecot)
    poison, after = append(
        dovecot,
        customer_mail(ALICE, "Trips a bug", "help", message_id="<poison@x>"),
        customer_mail(ALICE, "Behind it", "help", message_id="<behind@x>"),
    )
    for tries in range(1, mailboxes.MAX_RETRIES):
        poll(worker, clock)
        row = mailbox(desk, box_id)
        assert (row.last_uid, row.retry_uid, row.retries) == (0, poison, tries)  # held up, retried at each poll
        assert all_tickets(desk) == [] and f"({tries} of {mailboxes.MAX_RETRIES} tries)" in (row.last_error or "")
    poll(worker, clock)
    assert [v.ticket.subject for v in all_tickets(desk)] == ["Behind it"]
    row = mailbox(desk, box_id)
    assert (row.last_uid, row.refused, row.filed) == (after, 1, 1)
    assert flags(dovecot)[poison] == {b"\\Flagged"}


def test_a_server_that_refuses_the_login_is_recorded_and_polled_again(
    desk: Desk, world: World, dovecot: Dovecot, worker: Worker, clock: FrozenClock
) -> None:
    box_id = add_mailbox(desk, dovecot, password="wrong-password")
    poll(worker, clock)
    row = mailbox(desk, box_id)
    assert row.last_success_at is None and row.last_error is not None
    assert "cannot log in" in row.last_error and "wrong-password" not in row.last_error
    with desk.transaction() as s:
        row2 = s.get(mail_store.MailboxRow, box_id)
        assert row2 is not None
        row2.password = dovecot.password  # an admin fixes it; the next poll (already queued) gets in
    append(dovecot, customer_mail(ALICE, "Hello", "help", message_id="<lg1@x>"))
    poll(worker, clock)
    assert len(all_tickets(desk)) == 1 and mailbox(desk, box_id).last_success_at is not None


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_mailboxes_trust_only_a_verified_server(
    desk: Desk,
    world: World,
    dovecot: Dovecot,
    worker: Worker,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    security: str,
) -> None:
    port = dovecot.tls_port if security == "tls" else dovecot.port
    box_id = add_mailbox(desk, dovecot, security=security, port=port)
    append(dovecot, customer_mail(ALICE, "Over TLS", "help", message_id="<tls1@x>"))
    poll(worker, clock)
    row = mailbox(desk, box_id)
    # The self-signed certificate is not trusted: no password was sent, the failure is recorded.
    assert row.last_error is not None and "CERTIFICATE_VERIFY_FAILED" in row.last_error, row.last_error
    assert all_tickets(desk) == [] and row.last_success_at is None
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.certificate))  # the admin trusts the server's certificate
    poll(worker, clock)
    assert [v.ticket.subject for v in all_tickets(desk)] == ["Over TLS"]
    assert mailbox(desk, box_id).last_success_at is not None


def test_one_mailbox_per_process_waits_in_idle_and_hears_new_mail_at_once(
    desk: Desk, world: World, dovecot: Dovecot, clock: FrozenClock
) -> None:
    box_id = add_mailbox(desk, dovecot, idle=True)
    assert imap_poll._idle_waits.acquire(blocking=False)  # another mailbox of this process waits in IDLE
    try:
        started = time.monotonic()
        result = imap_poll.poll(desk.sessions, clock, box_id, settings=desk.settings, idle_window=30)
        # This one does not hold a second job thread: it ends, to be polled again after its interval.
        assert result.again_in == timedelta(seconds=60) and time.monotonic() - started < 10
    finally:
        imap_poll._idle_waits.release()
    later = threading.Timer(1.5, append, [dovecot, customer_mail(ALICE, "Heard in IDLE", "help", message_id="<h@x>")])
    later.start()
    try:
        result = imap_poll.poll(desk.sessions, clock, box_id, settings=desk.settings, idle_window=6)
    finally:
        later.join()
    assert (result.filed, result.again_in) == (1, timedelta(0))  # filed while waiting; the next wait starts at once
    assert [v.ticket.subject for v in all_tickets(desk)] == ["Heard in IDLE"]


# --- real worker processes, killed in the middle -------------------------------------------------------


class WorkerProcess:
    """`python -m zhiban.engine --handlers zhiban.mail.jobs`, as `zhiban worker` runs the mail jobs."""

    def __init__(self, desk: Desk, name: str, log_dir: Path) -> None:
        self.log_path = log_dir / f"{name}.log"
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT / "src"),
            ZHIBAN_SECRET_KEY=desk.secret_key,
            ZHIBAN_VAR_DIR=str(log_dir / "var"),
            ZHIBAN_SMTP_URL="",
        )
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "zhiban.engine",
                    "--database-url",
                    desk.settings.database_url,
                    "--handlers",
                    "zhiban.mail.jobs",
                    "--worker-id",
                    name,
                    "--poll",
                    "0.05",
                    "--lease",
                    "2",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.slow
def test_a_worker_killed_in_the_middle_files_nothing_twice_and_loses_nothing(
    desk: Desk, world: World, dovecot: Dovecot, tmp_path: Path
) -> None:
    box_id = add_mailbox(desk, dovecot, idle=True)
    first = [customer_mail(ALICE, f"Batch one {n}", "help", message_id=f"<k{n}@x>") for n in range(8)]
    append(dovecot, *first)
    workers: list[WorkerProcess] = []
    try:
        a = WorkerProcess(desk, "imap-a", tmp_path)
        workers.append(a)
        wait_until(lambda: len(inbound_ids(desk)) >= 2, f"the first mail filed\n{a.log()}")
        a.kill()  # SIGKILL in the middle of the batch (or just after it): no goodbye to the server or the desk
        killed_at = len(inbound_ids(desk))
        second = [customer_mail(ALICE, f"Batch two {n}", "help", message_id=f"<k{8 + n}@x>") for n in range(3)]
        append(dovecot, *second)
        b = WorkerProcess(desk, "imap-b", tmp_path)
        workers.append(b)
        # The killed run's lease (2 s) runs out; the new worker takes the poll job over and goes on.
        wait_until(lambda: len(inbound_ids(desk)) == 11, f"all 11 filed (killed at {killed_at})\n{b.log()}")
        # The worker now waits in IDLE: a new mail is filed within IDLE_RECHECK (30 s; at once unless it came just
        # as IDLE began), not at the next poll (60 s).
        append(dovecot, customer_mail(ALICE, "While idling", "help", message_id="<k11@x>"))
        wait_until(lambda: len(inbound_ids(desk)) == 12, f"the mail sent while idling\n{b.log()}", timeout=45)
    finally:
        for worker in workers:
            worker.kill()
    ids = inbound_ids(desk)
    assert sorted(ids) == sorted(f"<k{n}@x>" for n in range(12))  # each once: the column is unique, too
    assert len(all_tickets(desk)) == 12
    seen = flags(dovecot)
    assert all(b"\\Seen" in f for f in seen.values()) and len(seen) == 12
    row = mailbox(desk, box_id)
    assert row.last_uid == max(seen) and row.filed == 12

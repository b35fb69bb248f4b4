"""No missed page, no double page: real worker processes on PostgreSQL, SIGKILLed in the middle of a send.

Every person is paged by webhook and by e-mail. A real HTTP receiver checks every request's zhiban
signature and counts pages by idempotency key; a real SMTP server (aiosmtpd) counts mails by Message-ID.
Each holds its first page open until the test has SIGKILLed the worker that sent it; a second worker
then takes over. Every escalation step must fire and each page (incident × step × person × channel)
must be handed over. A webhook page cut by the kill comes again with the same key, for the receiver to
drop; an e-mail never arrives twice: a mail whose hand-off was cut is marked `unknown`, not resent, and
the incident timeline and the auditor report it (docs/DELIVERY.md).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

import zhiban.store.models  # noqa: F401  (every table on Base.metadata)
from tests.notify.notify_fakes import unused_port
from zhiban.core.clock import FrozenClock, SystemClock
from zhiban.core.settings import Settings
from zhiban.desk import Desk
from zhiban.identity import service as identity
from zhiban.identity.model import Role
from zhiban.incidents import integrations, service
from zhiban.incidents.audit import unknown_pages
from zhiban.incidents.store import EscalationStepRow, IncidentEventRow
from zhiban.notify import service as notify
from zhiban.notify.channels.email import derived_message_id
from zhiban.notify.signing import verify_webhook_signature
from zhiban.notify.store import NotificationRow
from zhiban.store.db import Base, make_engine

# The receiver listens on 127.0.0.1, which only an allowlist lets zhiban (and its worker processes) reach.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("allow_loopback_egress")]

ROOT = Path(__file__).parents[2]
SECRET = "crash-receiver-secret-0123"
INCIDENTS = 3
LEVELS = 3
REPEATS = 1  # every level twice: 6 steps per incident
MAIL_FROM = "desk@vendor.test"


class BlockingReceiver:
    """Counts signed webhook pages; the first request is held until `release` is set."""

    def __init__(self) -> None:
        self.keys: Counter[str] = Counter()
        self.bad_signatures = 0
        self.first_arrived = threading.Event()
        self.release = threading.Event()
        self.first_key = ""
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                signature = self.headers.get("X-Zhiban-Signature", "")
                if not verify_webhook_signature(SECRET, signature, body, datetime.now(UTC)):
                    with receiver._lock:
                        receiver.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                key = self.headers.get("Idempotency-Key", "")
                with receiver._lock:
                    receiver.keys[key] += 1
                    first = not receiver.first_arrived.is_set()
                    if first:
                        receiver.first_key = key
                        receiver.first_arrived.set()
                if first:
                    receiver.release.wait(60)
                    return  # the sender is dead by now: drop the connection unanswered
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/page"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class BlockingMailbox:
    """An SMTP server that counts mails by Message-ID; the first mail's DATA is held until `release` is set."""

    def __init__(self) -> None:
        self.message_ids: Counter[str] = Counter()
        self.first_arrived = threading.Event()
        self.release = threading.Event()
        self.first_id = ""
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=unused_port())
        self.controller.start()
        self.url = f"smtp://127.0.0.1:{self.controller.port}?from={MAIL_FROM}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        message_id = str(parsed["Message-ID"])
        with self._lock:
            # Counted on arrival: the relay has the mail, whether or not the sender lives to hear the 250.
            self.message_ids[message_id] += 1
            first = not self.first_arrived.is_set()
            if first:
                self.first_id = message_id
                self.first_arrived.set()
        if first:
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 60)
        return "250 Message accepted for delivery"

    def close(self) -> None:
        self.release.set()
        self.controller.stop()


def _worker(
    db_url: str, name: str, log_dir: Path, base_url: str, smtp_url: str
) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = log_dir / f"{name}.log"
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "src")]),
        ZHIBAN_SECRET_KEY="crash-test-key",
        ZHIBAN_BASE_URL=base_url,
        ZHIBAN_VAR_DIR=str(log_dir / "var"),
        ZHIBAN_SMTP_URL=smtp_url,
    )
    command = [
        sys.executable, "-m", "zhiban.engine", "--database-url", db_url,
        "--handlers", "zhiban.incidents.worker_registry", "--worker-id", name,
        "--poll", "0.05", "--lease", "2", "--retry-base", "0.2", "--retry-cap", "1",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, log_path


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def receiver() -> Iterator[BlockingReceiver]:
    found = BlockingReceiver()
    yield found
    found.close()


@pytest.fixture
def mailbox() -> Iterator[BlockingMailbox]:
    found = BlockingMailbox()
    yield found
    found.close()


def test_sigkill_mid_send_loses_no_page_and_doubles_none(
    pg_url: str, tmp_path: Path, receiver: BlockingReceiver, mailbox: BlockingMailbox
) -> None:
    engine = make_engine(pg_url)
    Base.metadata.create_all(engine)
    settings = Settings(database_url=pg_url, var_dir=str(tmp_path / "var"), demo=False, simulate=False)
    desk = Desk(settings=settings, clock=SystemClock(), engine=engine, secret_key="crash-test-key")
    now = datetime.now(UTC)
    # Incidents opened 30 minutes ago: all their steps are already due, so the chain runs at once.
    past = FrozenClock(now - timedelta(minutes=30))
    with desk.transaction() as s:
        people = []
        for i in range(LEVELS):
            person = identity.create_person(
                s, past, email=f"oncall{i}@vendor.test", name=f"On-call {i}", role=Role.AGENT
            )
            method = notify.add_contact_method(
                s, past, person_id=person.id, channel="webhook", config={"url": receiver.url, "secret": SECRET}
            )
            notify.add_notification_rule(s, past, person_id=person.id, contact_method_id=method.id, delay_minutes=0)
            mail = notify.add_contact_method(
                s, past, person_id=person.id, channel="email", config={"to": [person.email]}
            )
            notify.add_notification_rule(s, past, person_id=person.id, contact_method_id=mail.id, delay_minutes=0)
            people.append(person.id)
        policy = service.create_policy(
            s,
            past,
            name="crash",
            levels=[{"delay_minutes": 1, "targets": [{"kind": "person", "ref": p}]} for p in people],
            repeats=REPEATS,
        )
        svc = service.create_service(s, past, name="media network cn-east", policy=policy.id, ack_timeout_minutes=0)
        key = integrations.create_integration(s, past, type_="events-v2", service_ref=svc.id).key
        for n in range(INCIDENTS):
            integrations.receive_events_v2(
                s,
                past,
                {
                    "routing_key": key,
                    "event_action": "trigger",
                    "dedup_key": f"edge-{n}",
                    "payload": {"summary": f"sh-edge-0{n} loss", "source": "sh-edge", "severity": "critical"},
                },
            )
    expected_steps = INCIDENTS * LEVELS * (REPEATS + 1)
    expected_pages = 2 * expected_steps  # a webhook and an e-mail per step

    first, first_log = _worker(pg_url, "victim", tmp_path, "http://desk.test", mailbox.url)
    second = None
    try:
        assert receiver.first_arrived.wait(60), first_log.read_text(errors="replace")
        assert mailbox.first_arrived.wait(60), first_log.read_text(errors="replace")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        receiver.release.set()
        mailbox.release.set()
        second, second_log = _worker(pg_url, "survivor", tmp_path, "http://desk.test", mailbox.url)

        def settled() -> bool:
            with desk.transaction() as s:
                steps = s.scalars(select(EscalationStepRow.state)).all()
                states = s.execute(select(NotificationRow.channel, NotificationRow.state)).all()
            return (
                sum(1 for st in steps if st == "done") == expected_steps
                and len(states) == expected_pages
                and all(st == "sent" or (ch, st) == ("email", "unknown") for ch, st in states)
            )

        _wait(settled, f"every step fired and every page sent\n{second_log.read_text(errors='replace')[-3000:]}")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(15)

    with desk.transaction() as s:
        steps = list(s.scalars(select(EscalationStepRow)))
        all_pages = list(s.scalars(select(NotificationRow)))
        pages = [p for p in all_pages if p.channel == "webhook"]
        mails = [p for p in all_pages if p.channel == "email"]
        assert all(step.state == "done" for step in steps) and len(steps) == expected_steps
        # One page per step and channel: the person of that step's level, on each of their two rules.
        for channel_pages in (pages, mails):
            by_step = Counter((p.subject_id, p.idempotency_key.split(":")[2]) for p in channel_pages)
            assert len(by_step) == expected_steps and set(by_step.values()) == {1}
        expected_keys = {p.idempotency_key for p in pages}
        interrupted = next(p for p in pages if p.idempotency_key == receiver.first_key)
        assert interrupted.attempts == 2
        # The mail held by the kill: handed over once, then marked unknown, on the timeline and in the audit.
        mail_ids = {derived_message_id(p.idempotency_key, MAIL_FROM): p for p in mails}
        cut_mail = mail_ids[mailbox.first_id]
        assert cut_mail.state == "unknown" and cut_mail.attempts == 1
        unknown = {p.id for p in mails if p.state == "unknown"}
        assert {page.notification_id for page in unknown_pages(s)} == unknown
        page_events = s.scalars(select(IncidentEventRow.data).where(IncidentEventRow.kind == "page_unknown")).all()
        assert {event["notification"] for event in page_events} == unknown
    # At most once for e-mail: no mail arrived twice; every sent one arrived; an unknown one at most once.
    assert set(mailbox.message_ids.values()) == {1}
    sent_ids = {mid for mid, p in mail_ids.items() if p.state == "sent"}
    assert sent_ids <= set(mailbox.message_ids) <= set(mail_ids)
    assert len(unknown) <= 4  # at most the mails the worker's 4 job threads had in flight
    assert receiver.bad_signatures == 0
    assert set(receiver.keys) == expected_keys  # none skipped
    repeats = {k: c for k, c in receiver.keys.items() if c > 1}
    # At least once, never under a new key: the page cut by the kill came again, and so may the pages other
    # job threads had handed over but not yet marked sent (at most the worker's 4 at once), each just once more.
    assert repeats.get(receiver.first_key) == 2
    assert len(repeats) <= 4 and set(repeats.values()) == {2}
    engine.dispose()

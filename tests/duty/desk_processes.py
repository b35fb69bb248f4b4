"""A desk deployment of real processes for end-to-end tests: `zhiban serve` (or `web` + `worker` + `mail listen`)
on a test clock, an aiosmtpd server that receives every mail the desk sends, and the `zhiban` command."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import signal
import smtplib
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from tests.notify.notify_fakes import unused_port
from tests.zhiban_cli import zhiban

ROOT = Path(__file__).parents[2]
ZHIBAN = str(Path(sys.executable).parent / "zhiban")
MAIL_FROM = "desk@vendor.test"
AUTHSERV = "mx.desk.test"
SECRET = "e2e-desk-secret-key-0123456789"
_INCIDENT = re.compile(r"/incidents/([0-9a-f]{32})")
_ACK = re.compile(r"(http://127\.0\.0\.1:\d+/ack/[^\s\"'<>]+)")


@dataclass(frozen=True)
class Received:
    """One mail the desk handed to its SMTP server, and when (time.monotonic()) it arrived."""

    mail: EmailMessage
    to: tuple[str, ...]
    at: float

    @property
    def event(self) -> str:
        return str(self.mail["X-Zhiban-Event"] or "")

    @property
    def text(self) -> str:
        body = self.mail.get_body(("plain",))
        return body.get_content() if body is not None else ""  # type: ignore[no-any-return]

    @property
    def incident_id(self) -> str | None:
        found = _INCIDENT.search(self.text)
        return found.group(1) if found else None

    @property
    def ack_link(self) -> str:
        found = _ACK.search(self.text)
        assert found is not None, self.text
        return found.group(1)


class Mailbox:
    """The desk's outgoing SMTP relay (aiosmtpd): keeps every mail it accepts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self.controller = Controller(self, hostname="127.0.0.1", port=unused_port())
        self.controller.start()
        self.url = f"smtp://127.0.0.1:{self.controller.port}?from={MAIL_FROM}&timeout=5"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self._received.append(Received(parsed, tuple(envelope.rcpt_tos), time.monotonic()))
        return "250 Message accepted for delivery"

    def pages(self) -> list[Received]:
        """The pages received so far (mail whose event is incident.page)."""
        with self._lock:
            return [r for r in self._received if r.event == "incident.page"]

    def close(self) -> None:
        self.controller.stop()


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> float:
    """Poll until true; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class Deployment:
    """One desk of real processes sharing a database, a secret key, a base URL, an SMTP relay and a clock."""

    tmp: Path
    db_url: str
    mailbox: Mailbox | None
    clock_start: str | None = None  # a test clock; None: the real clock
    lease_seconds: int = 60  # short, so that a job a killed worker held is taken over soon
    port: int = field(default_factory=unused_port)
    inbound_port: int = field(default_factory=unused_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base = f"http://127.0.0.1:{self.port}"
        # Every process of the deployment reads the same start and anchor, so they tell the same time.
        self.anchor = datetime.now(UTC).isoformat()

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
            "ZHIBAN_DATABASE_URL": self.db_url,
            "ZHIBAN_VAR_DIR": str(self.tmp / "var"),
            "ZHIBAN_SECRET_KEY": SECRET,
            "ZHIBAN_BASE_URL": self.base,
            "ZHIBAN_SMTP_URL": self.mailbox.url if self.mailbox else "",
            "ZHIBAN_INBOUND_SMTP_PORT": str(self.inbound_port),
            "ZHIBAN_MAIL_AUTHSERV_ID": AUTHSERV,
            "ZHIBAN_MAIL_VERIFY_DKIM": "false",
            "ZHIBAN_SIMULATE": "false",
            "ZHIBAN_LOG_LEVEL": "INFO",
            "ZHIBAN_JOB_LEASE_SECONDS": str(self.lease_seconds),
            "ZHIBAN_EGRESS_ALLOW": "127.0.0.1",
        }
        for name in ("ZHIBAN_CLOCK_START", "ZHIBAN_CLOCK_ANCHOR", "ZHIBAN_ALLOW_TEST_CLOCK"):
            env.pop(name, None)
        if self.clock_start:
            env.update(
                ZHIBAN_CLOCK_START=self.clock_start, ZHIBAN_CLOCK_ANCHOR=self.anchor, ZHIBAN_ALLOW_TEST_CLOCK="true"
            )
        return env

    def log(self, name: str) -> Path:
        return self.tmp / f"{name}.log"

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with self.log(name).open("ab") as log:
            proc = subprocess.Popen([ZHIBAN, *args], env=self.env(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        """SIGKILL: no clean-up, no lease released."""
        proc = self.procs.pop(name)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in self.tmp.glob("*.log"))

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.tmp.glob("*.log"))

    def wait_ready(self, timeout: float = 240.0) -> None:
        def ready() -> bool:
            try:
                with urllib.request.urlopen(self.base + "/readyz", timeout=1):
                    return True
            except OSError:
                dead = [n for n, p in self.procs.items() if p.poll() is not None]
                assert not dead, f"{dead} exited\n{self.logs()}"
                return False

        wait_for(ready, "the desk to answer /readyz", timeout)
        # The demo's knowledge base is imported by a job in one long write: on SQLite every other writer (and the
        # CLI) waits behind it, so the flow starts once it is in.
        wait_for(lambda: "knowledge base imported" in self.log_text(), f"the demo's KB import\n{self.logs()}", timeout)

    def cli(self, *args: str) -> str:
        done = subprocess.run([ZHIBAN, *args], env=self.env(), cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"zhiban {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def cli_here(self, *args: str) -> str:
        """A setup command (`migrate`, `demo`) in this process, in the deployment's environment (tests/zhiban_cli.py):
        the same rows in the database, without a process start that the flow does not test."""
        done = zhiban(*args, env=self.env(), cwd=ROOT)
        assert done.returncode == 0, f"zhiban {' '.join(args)}: {done.stdout}{done.stderr}"
        return str(done.stdout)

    def token(self, email_address: str, *scopes: str) -> str:
        args = ["token", "create", "--email", email_address, "--name", "e2e"]
        for scope in scopes:
            args += ["--scope", scope]
        return self.cli(*args).strip()

    def tokens(self, *emails: str, scopes: tuple[str, ...] | None = None) -> list[str]:
        """API tokens minted into the deployment's database as `zhiban token create` does, in this process (each
        `zhiban` process start costs tens of seconds on a busy machine), on the deployment's clock."""
        import zhiban.store.models  # noqa: F401  (every table on Base.metadata)
        from zhiban.core.clock import clock_from
        from zhiban.identity import service as identity
        from zhiban.identity.model import DEFAULT_SCOPES
        from zhiban.store.db import make_engine, session_factory

        engine = make_engine(self.db_url)
        clock = clock_from(self.clock_start or "", self.anchor, allowed=True)
        try:
            with session_factory(engine)() as session, session.begin():
                minted = []
                for address in emails:
                    person = identity.person_with_email(session, address)
                    assert person is not None, address
                    issued = identity.create_token(
                        session, clock, person_id=person.id, name="e2e", scopes=scopes or DEFAULT_SCOPES
                    )
                    minted.append(issued.plain)
                return minted
        finally:
            engine.dispose()

    def on_call(self, plan: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.cli("oncall", "who", "--plan", plan, "--json"))
        return found

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.clear()


def mail_ticket(port: int, sender: str, subject: str, body: str, message_id: str) -> None:
    """File a ticket as a customer's mail client does, through the desk's MTA (which vouches for DMARC)."""
    msg = EmailMessage()
    msg["Authentication-Results"] = f"{AUTHSERV}; dmarc=pass (p=reject) header.from={sender.rpartition('@')[2]}"
    msg["From"] = sender
    msg["To"] = "support@desk.test"
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg.set_content(body)
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
        smtp.send_message(msg, from_addr=sender, to_addrs=["support@desk.test"])

"""Fixtures for ticket mail: a real outgoing SMTP server (aiosmtpd), the real inbound listener, a worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.mail.dovecot import Dovecot, running_dovecot
from tests.mail.mail_kit import AUTHSERV, BASE_URL, DESK_ADDRESS, Outbox, unused_port
from tests.tenancy import World, build_world
from zhiban.core.clock import FrozenClock
from zhiban.core.settings import get_settings
from zhiban.desk import Desk
from zhiban.engine import Worker
from zhiban.mail.inbound import InboundListener, start_inbound
from zhiban.mail.jobs import registry


@pytest.fixture(autouse=True)
def var_dir_of_the_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The environment's var directory is the test desk's (tmp_path/var): a mailbox's poll job reads the
    environment's settings, and keeps mail attachments there, never in the working directory."""
    monkeypatch.setenv("ZHIBAN_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def outbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[Outbox]:
    """A real aiosmtpd server set as ZHIBAN_SMTP_URL (with the portal's base URL) for the job handlers."""
    box = Outbox(port=unused_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    monkeypatch.setenv("ZHIBAN_SMTP_URL", f"smtp://127.0.0.1:{box.port}?from={DESK_ADDRESS}&timeout=5")
    monkeypatch.setenv("ZHIBAN_BASE_URL", BASE_URL)
    get_settings.cache_clear()
    try:
        yield box
    finally:
        controller.stop()
        get_settings.cache_clear()


@pytest.fixture
def desk(desk: Desk) -> Desk:
    """The desk, trusting the Authentication-Results of its MTA (AUTHSERV), as a deployment behind one does."""
    desk.settings = desk.settings.model_copy(update={"mail_authserv_id": AUTHSERV})
    return desk


@pytest.fixture(autouse=True)
def mail_hooks() -> None:
    """Subscribe the mail feature to ticket events, as the desk does at start-up."""
    import zhiban.mail.hooks  # noqa: F401


@pytest.fixture
def world(desk: Desk) -> World:
    return build_world(desk)


@pytest.fixture
def inbound(desk: Desk) -> Iterator[InboundListener]:
    """The real inbound listener on a free port."""
    listener = start_inbound(desk, host="127.0.0.1", port=unused_port())
    try:
        yield listener
    finally:
        listener.stop()


@pytest.fixture
def worker(desk: Desk, clock: FrozenClock) -> Worker:
    return Worker(desk.sessions, registry, clock, worker_id="mail-test")


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A real Dovecot IMAP server of this test's own (skipped locally without it, a failure in CI)."""
    with running_dovecot() as server:
        yield server

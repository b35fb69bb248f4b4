"""E-mail over SMTP against a real aiosmtpd server started in the test."""

from __future__ import annotations

import email
import email.policy
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.notify.notify_fakes import SINCE, self_signed_certificate, unused_port
from zhiban.core.clock import FrozenClock
from zhiban.core.errors import InvalidInput
from zhiban.notify import Message, PermanentDeliveryError, RetryableDeliveryError, parse_destination
from zhiban.notify.channels.email import EmailChannel, SmtpServer, derived_message_id, parse_smtp_url
from zhiban.notify.registry import ChannelDeps, channel_for

USER, PASSWORD = "desk", "p@ss:word"


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps what it accepts and refuses some recipients like a real server."""

    received: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user"
        if address.startswith("later@"):
            return "451 4.3.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    # handled=False: aiosmtpd then answers 535 itself.
    return AuthResult(success=ok, handled=False)


@contextmanager
def smtp_server(**options: Any) -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = unused_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"), "127.0.0.1", "IP:127.0.0.1")


def to(*addresses: str, **extra: Any) -> Any:
    return parse_destination("email", {"to": list(addresses), **extra}, name="liveco-contacts")


def test_multipart_mail_with_threading_headers(page_zh: Message) -> None:
    reply = Message(
        subject="Re: [#1042] 视频卡顿",
        text="我们已定位到 sh-edge-07。",
        html="<p>我们已定位到 <b>sh-edge-07</b>。</p>",
        idempotency_key="comment:1042:7",
        language="zh",
        message_id="<comment-7.ticket-1042@desk.example.com>",
        references=("<ticket-1042@desk.example.com>", "<abc123@liveco.example>"),
    )
    with smtp_server() as (mailbox, port):
        channel = EmailChannel(
            parse_smtp_url(f"smtp://127.0.0.1:{port}?from=support@desk.example.com"), FrozenClock(SINCE)
        )
        result = channel.send(
            reply, to("dev@liveco.example", cc=["ops@liveco.example"], reply_to="t-1042@desk.example.com")
        )
    assert result.provider_id == "<comment-7.ticket-1042@desk.example.com>"
    [(mail_from, recipients, mail)] = mailbox.received
    assert mail_from == "support@desk.example.com"
    assert recipients == ["dev@liveco.example", "ops@liveco.example"]
    assert mail["Subject"] == "Re: [#1042] 视频卡顿"
    assert mail["To"] == "dev@liveco.example"
    assert mail["Cc"] == "ops@liveco.example"
    assert mail["Reply-To"] == "t-1042@desk.example.com"
    assert mail["Message-ID"] == "<comment-7.ticket-1042@desk.example.com>"
    assert mail["In-Reply-To"] == "<abc123@liveco.example>"
    assert mail["References"].split() == ["<ticket-1042@desk.example.com>", "<abc123@liveco.example>"]
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Content-Language"] == "zh-CN"
    assert mail["Date"] == "Fri, 20 Nov 2026 19:00:00 +0000"
    assert mail.get_content_type() == "multipart/alternative"
    plain = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert plain is not None and plain.get_content().strip() == "我们已定位到 sh-edge-07。"
    assert html is not None and "<b>sh-edge-07</b>" in html.get_content()


def test_rendered_page_without_explicit_id_gets_a_stable_message_id(page_en: Message) -> None:
    with smtp_server() as (mailbox, port):
        channel = EmailChannel(parse_smtp_url(f"smtp://127.0.0.1:{port}?from=pager@desk.example.com"))
        first = channel.send(page_en, to("oncall@vendor.example"))
        second = channel.send(page_en, to("oncall@vendor.example"))
    # A retry of the same delivery carries the same Message-ID, so the mail client shows one message.
    assert first.provider_id == second.provider_id
    assert first.provider_id == mailbox.received[0][2]["Message-ID"]
    assert str(first.provider_id).endswith("@desk.example.com>")
    assert derived_message_id("other-key", "pager@desk.example.com") != first.provider_id
    mail = mailbox.received[0][2]
    assert mail["References"] is None
    plain = mail.get_body(("plain",))
    assert plain is not None and "Acknowledge: https://desk.example.com/ack/inc-42?t=abc" in plain.get_content()


def test_login_with_credentials_from_the_url(page_en: Message) -> None:
    with smtp_server(authenticator=authenticate, auth_require_tls=False) as (mailbox, port):
        good = parse_smtp_url(f"smtp://{USER}:p%40ss%3Aword@127.0.0.1:{port}")
        assert good.password == PASSWORD and PASSWORD not in repr(good)
        EmailChannel(good).send(page_en, to("a@example.com"))
        bad = parse_smtp_url(f"smtp://{USER}:nope@127.0.0.1:{port}")
        with pytest.raises(PermanentDeliveryError) as caught:
            EmailChannel(bad).send(page_en, to("a@example.com"))
    assert caught.value.status == 535
    assert len(mailbox.received) == 1


def test_refused_recipients(page_en: Message) -> None:
    with smtp_server() as (mailbox, port):
        channel = EmailChannel(parse_smtp_url(f"smtp://127.0.0.1:{port}"))
        with pytest.raises(PermanentDeliveryError, match="refused"):
            channel.send(page_en, to("nobody@example.com"))
        with pytest.raises(RetryableDeliveryError, match="refused"):
            channel.send(page_en, to("later@example.com", "nobody@example.com"))
        partial = channel.send(page_en, to("dev@example.com", "nobody@example.com"))
    assert "nobody@example.com" in partial.detail
    assert [recipients for _, recipients, _ in mailbox.received] == [["dev@example.com"]]


def test_starttls_with_a_trusted_certificate(page_en: Message, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    with smtp_server(tls_context=server_context, require_starttls=True) as (mailbox, port):
        url = f"smtp://127.0.0.1:{port}?starttls=true"
        trusted = ssl.create_default_context(cafile=str(cert))
        EmailChannel(parse_smtp_url(url), tls_context=trusted).send(page_en, to("a@example.com"))
        with pytest.raises(PermanentDeliveryError, match="certificate"):
            EmailChannel(parse_smtp_url(url)).send(page_en, to("a@example.com"))
        # Without STARTTLS the server refuses the mail (530): a configuration error, not a retry.
        with pytest.raises(PermanentDeliveryError) as caught:
            EmailChannel(parse_smtp_url(f"smtp://127.0.0.1:{port}")).send(page_en, to("a@example.com"))
    assert caught.value.status == 530
    assert len(mailbox.received) == 1


def test_unreachable_server_is_retryable(page_en: Message) -> None:
    server = SmtpServer("127.0.0.1", unused_port(), timeout=2)
    with pytest.raises(RetryableDeliveryError):
        EmailChannel(server).send(page_en, to("a@example.com"))


def test_without_a_server_mail_is_only_logged(page_en: Message) -> None:
    result = channel_for("email", ChannelDeps(smtp_url="")).send(page_en, to("a@example.com"))
    assert "logged only" in result.detail


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", SmtpServer("mail.example.com", 25)),
        ("smtps://u:p@mail.example.com", SmtpServer("mail.example.com", 465, "u", "p", "tls")),
        ("smtp://mail.example.com:587?starttls=true&from=desk@example.com&timeout=5",
         SmtpServer("mail.example.com", 587, security="starttls", from_address="desk@example.com", timeout=5)),
    ],
)  # fmt: skip
def test_parse_smtp_url(url: str, expected: SmtpServer) -> None:
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(
    "url", ["http://mail.example.com", "smtp://", "smtp://h?starttls=maybe", "smtp://h?tls=1", "smtp://h?timeout=0"]
)
def test_bad_smtp_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        parse_smtp_url(url)


def test_mails_share_one_session_and_a_dropped_session_is_replaced(page_zh: Message) -> None:
    peers: list[Any] = []

    class Counting(Mailbox):
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            peers.append(session.peer)
            return await super().handle_DATA(server, session, envelope)

    mailbox, port = Counting(), unused_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    channel = EmailChannel(parse_smtp_url(f"smtp://127.0.0.1:{port}"), FrozenClock(SINCE))
    try:
        for _ in range(3):
            channel.send(page_zh, to("oncall@vendor.test"))
        assert len(peers) == 3 and len(set(peers)) == 1  # one SMTP session for the three mails
        # The relay restarts: the kept session is dead, and the next mail goes on a new one.
        controller.stop()
        controller = Controller(mailbox, hostname="127.0.0.1", port=port)
        controller.start()
        result = channel.send(page_zh, to("oncall@vendor.test"))
        assert result.detail == "accepted" and len(mailbox.received) == 4 and peers[-1] != peers[0]
    finally:
        channel.close()
        controller.stop()

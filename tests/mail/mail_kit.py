"""Helpers for ticket mail tests: the desk's outgoing SMTP server, and sending mail like a customer."""

from __future__ import annotations

import email
import email.policy
import smtplib
import socket
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

DESK_ADDRESS = "support@desk.test"
BASE_URL = "https://desk.test"
AUTHSERV = "mx.desk.test"  # the desk's receiving MTA, trusted by the `desk` fixture of these tests


def dmarc_pass(sender: str) -> str:
    """The Authentication-Results header the desk's MTA adds to mail that passed DMARC for its From: domain."""
    return f"{AUTHSERV}; dmarc=pass (p=reject) header.from={sender.rpartition('@')[2].rstrip('>')}"


def unused_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Outbox:
    """The desk's outgoing SMTP server: keeps what it accepts; `mode` makes it answer like a failing one."""

    port: int = 0
    mode: str = "ok"  # ok, busy (451 at DATA), refuse (550 at RCPT)
    received: list[EmailMessage] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        if self.mode == "refuse":
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.mode == "busy":
            return "451 4.3.0 Mailbox busy, try again later"
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(parsed)
        return "250 Message accepted for delivery"


@dataclass(frozen=True)
class SmtpAnswer:
    code: int
    text: str
    stage: str  # the command that gave the final answer: mail, rcpt or data


def smtp_send(port: int, raw: bytes, *, mail_from: str, to: str = DESK_ADDRESS, size: bool = False) -> SmtpAnswer:
    """Send one raw mail with smtplib, command by command, and return the server's final answer."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.ehlo()
        options = [f"SIZE={len(raw)}"] if size else []
        code, text = smtp.mail(mail_from, options)
        if code != 250:
            return SmtpAnswer(code, text.decode(errors="replace"), "mail")
        code, text = smtp.rcpt(to)
        if code != 250:
            return SmtpAnswer(code, text.decode(errors="replace"), "rcpt")
        try:
            code, text = smtp.data(raw)
        except smtplib.SMTPDataError as exc:
            return SmtpAnswer(exc.smtp_code, exc.smtp_error.decode(errors="replace"), "data")
        return SmtpAnswer(code, text.decode(errors="replace"), "data")


def customer_mail(
    sender: str,
    subject: str,
    body: str,
    *,
    message_id: str,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    authenticated: bool = True,
    **headers: str,
) -> bytes:
    """A plain-text mail as a customer's client writes it, with the MTA's DMARC pass unless not `authenticated`."""
    msg = EmailMessage()
    if authenticated:
        msg["Authentication-Results"] = dmarc_pass(sender)
    msg["From"] = sender
    msg["To"] = DESK_ADDRESS
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes()

"""The inbound SMTP listener (aiosmtpd): customers' mail becomes tickets and replies.

Refusals happen inside the SMTP conversation, so the sending server bounces to its own user and the
desk never sends backscatter: 550 for senders that are not customer users of the desk, 554 for mail
too broken to read (it never will be: a permanent refusal), 552 for mail over MAX_INBOUND_BYTES
(aiosmtpd's SIZE limit), 451 for the desk's own trouble (the sender retries), 452 while the held-mail
queue is full. Bounces and auto-replies are accepted (250) and dropped; mail from a customer's
address that is not authenticated is accepted (250) and held for an agent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy.orm import Session

from zhiban.core.clock import Clock
from zhiban.core.errors import Forbidden, InvalidInput, TooLarge
from zhiban.core.settings import Settings
from zhiban.desk import Desk
from zhiban.features import load_hooks
from zhiban.mail.auth import DnsTxt
from zhiban.mail.model import MAX_INBOUND_BYTES
from zhiban.mail.service import HeldQueueFull, receive_mail

log = logging.getLogger("zhiban.mail")

IDENT = "zhiban inbound mail"
Transaction = Callable[[], AbstractContextManager[Session]]


def deliver(
    desk: Desk,
    raw: bytes,
    envelope_sender: str | None,
    recipients: Sequence[str] = (),
    dkim_dns: DnsTxt | None = None,
) -> str:
    """Take one mail into the desk in its own transaction; returns the SMTP reply line."""
    return take_mail(desk.transaction, desk.clock, desk.settings, raw, envelope_sender, recipients, dkim_dns)


def take_mail(
    transaction: Transaction,
    clock: Clock,
    settings: Settings,
    raw: bytes,
    envelope_sender: str | None,
    recipients: Sequence[str] = (),
    dkim_dns: DnsTxt | None = None,
    *,
    mailbox_id: str | None = None,
    accepted: Callable[[Session], None] | None = None,
) -> str:
    """`deliver` for any door: the SMTP listener, a pipe, an IMAP mailbox (`mailbox_id`, whose poller moves its
    cursor in `accepted`, called in the transaction that files the mail, before it commits)."""
    try:
        with transaction() as session:
            outcome = receive_mail(
                session,
                clock,
                raw,
                envelope_sender=envelope_sender,
                settings=settings,
                recipients=recipients,
                dkim_dns=dkim_dns,
                mailbox_id=mailbox_id,
            )
            if accepted is not None:
                accepted(session)
    except TooLarge as exc:
        log.warning("inbound mail refused: %s", exc.detail)
        return "552 5.3.4 message too large"
    except Forbidden as exc:
        return f"550 5.7.1 {exc.detail}"
    except InvalidInput as exc:
        log.warning("inbound mail refused as malformed: %s", exc.detail)
        return f"554 5.6.0 message refused: {exc.detail[:200]}"
    except HeldQueueFull as exc:
        return f"452 4.3.1 {exc}"
    except Exception:
        log.exception("inbound mail could not be stored; the sender will retry")
        return "451 4.3.0 temporary failure, try again later"
    return outcome.smtp_reply


class InboundHandler:
    """aiosmtpd handler: any recipient is accepted (this listener is the desk's own mailbox)."""

    def __init__(self, desk: Desk, dkim_dns: DnsTxt | None = None) -> None:
        self.desk = desk
        self.dkim_dns = dkim_dns  # dkimpy's DNS lookup; None: its own resolver

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        # The desk's database calls block: run them off the listener's event loop.
        return await asyncio.get_running_loop().run_in_executor(
            None, deliver, self.desk, bytes(raw), envelope.mail_from, list(envelope.rcpt_tos), self.dkim_dns
        )


class _LoggingSMTP(SMTP):
    """aiosmtpd refuses oversized mail itself; this logs those refusals with the peer."""

    async def push(self, status: Any) -> None:
        text = status.decode(errors="replace") if isinstance(status, bytes) else str(status)
        if text.startswith("552") or text.startswith("500 Line too long"):
            peer = self.session.peer if self.session is not None else "?"
            log.warning("inbound mail refused from %s: %s", peer, text)
        await super().push(status)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _LoggingSMTP(self.handler, **self.SMTP_kwargs)


@dataclass
class InboundListener:
    """A running (or disabled) listener; `stop()` is safe to call once either way."""

    host: str
    port: int
    controller: Controller | None = None

    @property
    def running(self) -> bool:
        return self.controller is not None

    def stop(self) -> None:
        """Close the port and wait for the listener thread to end."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None
            log.info("inbound SMTP listener on %s:%s stopped", self.host, self.port)


def start_inbound(
    desk: Desk,
    *,
    host: str | None = None,
    port: int | None = None,
    max_bytes: int = MAX_INBOUND_BYTES,
    dkim_dns: DnsTxt | None = None,
) -> InboundListener:
    """Start the listener on ZHIBAN_INBOUND_SMTP_PORT (or `port`) in a thread; port 0 returns a disabled handle."""
    bind_host = host or desk.settings.host
    bind_port = desk.settings.inbound_smtp_port if port is None else port
    if not 0 <= bind_port <= 65535:
        raise InvalidInput(f"inbound SMTP port must be 0-65535, not {bind_port}")
    if bind_port == 0:
        log.info("inbound SMTP listener off (ZHIBAN_INBOUND_SMTP_PORT=0)")
        return InboundListener(bind_host, 0)
    # Tickets filed by mail must start SLA clocks, triage, etc. even when the listener runs alone.
    load_hooks()
    # aiosmtpd logs every SMTP command at INFO; our own log line per mail says what matters.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    controller = _Controller(
        InboundHandler(desk, dkim_dns),
        hostname=bind_host,
        port=bind_port,
        data_size_limit=max_bytes,
        ident=IDENT,
    )
    controller.start()
    log.info("inbound SMTP listener on %s:%s", bind_host, bind_port)
    return InboundListener(bind_host, bind_port, controller)

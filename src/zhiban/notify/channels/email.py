"""E-mail over SMTP: multipart text + HTML, with Message-ID and References so ticket replies thread."""

from __future__ import annotations

import hashlib
import logging
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from typing import ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from zhiban.core.clock import Clock, SystemClock
from zhiban.core.errors import InvalidInput
from zhiban.notify.channels.base import config_of
from zhiban.notify.config import EmailConfig
from zhiban.notify.model import (
    DeliveryResult,
    Destination,
    Message,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from zhiban.notify.ratelimit import Rate

log = logging.getLogger(__name__)

CONTENT_LANGUAGE = {"zh": "zh-CN", "en": "en"}
MAX_IDLE = 4  # kept SMTP sessions (one per delivering thread)
IDLE_SECONDS = 30.0  # relays drop idle sessions after a few minutes; ours go well before


@dataclass(frozen=True)
class SmtpServer:
    """Where outgoing mail goes, parsed from ZHIBAN_SMTP_URL."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    # "starttls": upgrade a plain connection (port 587); "tls": TLS from the start (smtps, port 465).
    security: str = "none"
    from_address: str = "zhiban@localhost"
    timeout: float = 10.0

    def __repr__(self) -> str:  # keeps the password out of logs and tracebacks
        return f"SmtpServer({self.host}:{self.port}, security={self.security}, user={self.username!r})"


def parse_smtp_url(url: str) -> SmtpServer:
    """Read smtp://user:pass@host:port?from=desk@example.com&starttls=true (or smtps:// for TLS on connect)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise InvalidInput("SMTP URL must look like smtp://user:pass@host:port or smtps://host")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"from", "starttls", "timeout"}
    if unknown:
        raise InvalidInput(f"unknown SMTP URL parameters: {sorted(unknown)}")
    starttls = query.get("starttls", "false").lower()
    if starttls not in ("true", "false"):
        raise InvalidInput("starttls must be true or false")
    security = "tls" if parts.scheme == "smtps" else ("starttls" if starttls == "true" else "none")
    try:
        port = parts.port or (465 if security == "tls" else 25)
        timeout = float(query.get("timeout", "10"))
    except ValueError as exc:
        raise InvalidInput(f"bad SMTP URL: {exc}") from exc
    if not 0 < timeout <= 120:
        raise InvalidInput("SMTP timeout must be within (0, 120] seconds")
    return SmtpServer(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        security=security,
        from_address=query.get("from", "zhiban@localhost"),
        timeout=timeout,
    )


def derived_message_id(idempotency_key: str, from_address: str) -> str:
    """A Message-ID that is the same on every retry of one delivery, so receivers can drop duplicates."""
    domain = from_address.rpartition("@")[2] or "localhost"
    return f"<zhiban.{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@{domain}>"


def build_email(message: Message, config: EmailConfig, server: SmtpServer, clock: Clock) -> EmailMessage:
    """The MIME message: text/plain, plus text/html as the alternative when the message has HTML."""
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = config.from_address or server.from_address
    mail["To"] = ", ".join(config.to)
    if config.cc:
        mail["Cc"] = ", ".join(config.cc)
    if config.reply_to:
        mail["Reply-To"] = config.reply_to
    mail["Date"] = format_datetime(clock.now())
    mail["Message-ID"] = message.message_id or derived_message_id(message.idempotency_key, server.from_address)
    if message.references:
        mail["In-Reply-To"] = message.references[-1]
        mail["References"] = " ".join(message.references)
    # RFC 3834: auto-responders must not answer, so out-of-office replies do not reopen tickets.
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-Auto-Response-Suppress"] = "All"
    mail["X-Zhiban-Event"] = message.event
    mail.set_content(message.text)
    if message.html:
        mail.add_alternative(message.html, subtype="html")
    # After the body: add_alternative moves Content-* headers into the first part.
    mail["Content-Language"] = CONTENT_LANGUAGE[message.language]
    return mail


class EmailChannel:
    """Sends through one SMTP server; without a server (empty ZHIBAN_SMTP_URL) mail is only logged."""

    type_name: ClassVar[str] = "email"
    rate_limits: ClassVar[tuple[Rate, ...]] = ()

    def __init__(
        self, server: SmtpServer | None, clock: Clock | None = None, tls_context: ssl.SSLContext | None = None
    ) -> None:
        self._server = server
        self._clock: Clock = clock or SystemClock()
        self._tls_context = tls_context or ssl.create_default_context()
        self._idle: list[tuple[smtplib.SMTP, float]] = []  # (session, time.monotonic() it was kept)
        self._idle_lock = threading.Lock()

    def send(self, message: Message, destination: Destination) -> DeliveryResult:
        """Deliver the mail; refused recipients are named in the result's detail."""
        config = config_of(destination, EmailConfig, self.type_name)
        if self._server is None:
            log.info("no SMTP server configured; mail %r to %s not sent", message.subject, config.to)
            return DeliveryResult(self.type_name, detail="logged only: no SMTP server configured")
        mail = build_email(message, config, self._server, self._clock)
        try:
            refused = self._deliver(mail, [*config.to, *config.cc])
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            reason = f"all recipients refused: {exc.recipients!r}"[:500]
            summary = f"recipients refused (SMTP {max(codes, default=0)})"
            if any(400 <= code < 500 for code in codes):
                raise RetryableDeliveryError(self.type_name, reason, summary=summary) from exc
            raise PermanentDeliveryError(self.type_name, reason, summary=summary) from exc
        except smtplib.SMTPResponseException as exc:
            # Covers authentication, sender refused and data errors: 4xx is temporary, 5xx is not.
            reason = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"[:500]
            summary = f"SMTP {exc.smtp_code}"
            if 400 <= exc.smtp_code < 500:
                raise RetryableDeliveryError(self.type_name, reason, status=exc.smtp_code, summary=summary) from exc
            raise PermanentDeliveryError(self.type_name, reason, status=exc.smtp_code, summary=summary) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentDeliveryError(
                self.type_name, f"server lacks a needed extension: {exc}", summary="SMTP extension missing"
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            raise PermanentDeliveryError(
                self.type_name, f"TLS certificate not trusted: {exc}", summary="TLS error"
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            # Refused or dropped connections, timeouts, TLS handshakes cut short.
            raise RetryableDeliveryError(
                self.type_name, f"SMTP connection failed: {exc!r}", summary="connection failed"
            ) from exc
        detail = f"refused: {sorted(refused)}" if refused else "accepted"
        return DeliveryResult(self.type_name, provider_id=str(mail["Message-ID"]), detail=detail)

    def _deliver(self, mail: EmailMessage, recipients: list[str]) -> dict[str, tuple[int, bytes]]:
        server = self._server
        assert server is not None
        kept = self._take_idle()
        if kept is not None:
            try:
                refused = kept.send_message(mail, from_addr=server.from_address, to_addrs=recipients)
            except (smtplib.SMTPServerDisconnected, OSError):
                _quit(kept)  # the relay closed it while it idled: once more on a new connection
            except smtplib.SMTPResponseException as exc:
                _quit(kept)
                if exc.smtp_code != 421:  # 421: the relay is closing this session; a new one may do
                    raise
            except BaseException:
                _quit(kept)
                raise
            else:
                self._keep(kept)
                return refused
        smtp = self._connect(server)
        try:
            refused = smtp.send_message(mail, from_addr=server.from_address, to_addrs=recipients)
        except BaseException:
            _quit(smtp)
            raise
        self._keep(smtp)
        return refused

    def _connect(self, server: SmtpServer) -> smtplib.SMTP:
        smtp: smtplib.SMTP
        if server.security == "tls":
            smtp = smtplib.SMTP_SSL(server.host, server.port, timeout=server.timeout, context=self._tls_context)
        else:
            smtp = smtplib.SMTP(server.host, server.port, timeout=server.timeout)
        try:
            smtp.ehlo()
            if server.security == "starttls":
                smtp.starttls(context=self._tls_context)
                smtp.ehlo()
            if server.username:
                smtp.login(server.username, server.password or "")
        except BaseException:
            _quit(smtp)
            raise
        return smtp

    # A page storm sends hundreds of mails a minute: each would otherwise pay a TCP (and TLS) handshake,
    # EHLO and login. Sessions are kept a little while for the next mail, as relays expect of a sender.
    def _take_idle(self) -> smtplib.SMTP | None:
        now = time.monotonic()
        with self._idle_lock:
            while self._idle:
                smtp, since = self._idle.pop()
                if now - since < IDLE_SECONDS:
                    return smtp
                _quit(smtp)
        return None

    def _keep(self, smtp: smtplib.SMTP) -> None:
        with self._idle_lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append((smtp, time.monotonic()))
                return
        _quit(smtp)

    def close(self) -> None:
        """End the kept SMTP sessions."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for smtp, _ in idle:
            _quit(smtp)


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()

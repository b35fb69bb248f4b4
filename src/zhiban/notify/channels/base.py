"""What every channel is, and the HTTP plumbing that classifies a provider's answer."""

from __future__ import annotations

import json
import logging
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Protocol, TypeVar

import httpx
from pydantic import BaseModel

from zhiban.core.clock import Clock, SystemClock
from zhiban.notify.egress import EgressRefused, guarded_client, is_guarded
from zhiban.notify.model import DeliveryResult, Destination, Message, PermanentDeliveryError, RetryableDeliveryError
from zhiban.notify.ratelimit import Rate

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_RESPONSE_BYTES = 64 * 1024
# Per-read timeouts do not stop an endpoint that trickles its answer; this bounds the whole exchange.
MAX_EXCHANGE_SECONDS = 30.0
MAX_RETRY_AFTER = timedelta(hours=1)
USER_AGENT = "zhiban-notify/0.1"

log = logging.getLogger("zhiban.notify")

ConfigT = TypeVar("ConfigT", bound=BaseModel)


class Channel(Protocol):
    """Sends one message to one destination of its type; blocking, bounded by timeouts."""

    type_name: ClassVar[str]
    rate_limits: ClassVar[tuple[Rate, ...]]

    def send(self, message: Message, destination: Destination) -> DeliveryResult:
        """Deliver, or raise RetryableDeliveryError / PermanentDeliveryError."""
        ...


def config_of(destination: Destination, kind: type[ConfigT], channel: str) -> ConfigT:
    """The destination's config, refused when it belongs to another channel type."""
    if not isinstance(destination.config, kind):
        raise PermanentDeliveryError(channel, f"destination config is {type(destination.config).__name__}")
    return destination.config


def truncate_utf8(text: str, max_bytes: int, marker: str = "…") -> str:
    """Cut text so that its UTF-8 form fits max_bytes, without splitting a character."""
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text
    room = max_bytes - len(marker.encode())
    return raw[:room].decode(errors="ignore") + marker


@dataclass(frozen=True)
class HttpReply:
    """A provider's answer, its body cut to MAX_RESPONSE_BYTES."""

    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def excerpt(self) -> str:
        """A short printable piece of the body for error messages."""
        return self.body[:300].decode(errors="replace")


class HttpChannel:
    """Base of the channels that POST to an HTTP endpoint."""

    type_name: ClassVar[str] = "http"
    rate_limits: ClassVar[tuple[Rate, ...]] = ()

    def __init__(self, client: httpx.Client | None = None, clock: Clock | None = None) -> None:
        # One pooled client per channel object; the worker's threads share it (httpx.Client is thread-safe).
        # URLs come from users, so every request goes through the egress guard (notify.egress).
        if client is not None and not is_guarded(client):
            raise TypeError("channels send only through notify.egress.guarded_client()")
        self._client = client or guarded_client(timeout=DEFAULT_TIMEOUT, headers={"User-Agent": USER_AGENT})
        self._clock: Clock = clock or SystemClock()

    def close(self) -> None:
        """Release the pooled connections."""
        self._client.close()

    def post(
        self, url: str | httpx.URL, *, content: bytes, headers: dict[str, str], auth: httpx.Auth | None = None
    ) -> HttpReply:
        """POST and read a bounded answer; transport failures are retryable, blocked destinations are not."""
        started = time.monotonic()
        try:
            with self._client.stream("POST", url, content=content, headers=headers, auth=auth) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) >= MAX_RESPONSE_BYTES:
                        break
                    if time.monotonic() - started > MAX_EXCHANGE_SECONDS:
                        raise httpx.ReadTimeout("the answer took too long", request=response.request)
                return HttpReply(response.status_code, response.headers, bytes(body[:MAX_RESPONSE_BYTES]))
        except EgressRefused as exc:
            log.warning("%s: not sent: %s", self.type_name, exc.detail)
            if exc.summary == "DNS failure":
                raise RetryableDeliveryError(self.type_name, exc.summary) from exc
            raise PermanentDeliveryError(self.type_name, exc.summary) from exc
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # The request never left: trying again cannot repeat anything.
            summary = transport_summary(exc)
            log.warning("%s: %s: %r", self.type_name, summary, exc)
            raise RetryableDeliveryError(self.type_name, summary) from exc
        except httpx.TransportError as exc:
            # A read timeout or a connection dropped after the request went out: the provider may have taken it.
            summary = transport_summary(exc)
            log.warning("%s: %s (after the request went out): %r", self.type_name, summary, exc)
            raise RetryableDeliveryError(self.type_name, summary, maybe_delivered=True) from exc

    def post_json(self, url: str | httpx.URL, payload: Any, headers: dict[str, str] | None = None) -> HttpReply:
        """POST a JSON body (UTF-8, not ASCII-escaped, so Chinese text stays readable on the wire)."""
        content = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return self.post(url, content=content, headers={"Content-Type": "application/json", **(headers or {})})

    def raise_for_status(self, reply: HttpReply) -> None:
        """Raise the right delivery error for a non-2xx answer."""
        if 200 <= reply.status < 300:
            return
        # The body excerpt stays in `reason` (logs); users see only "HTTP <status>".
        reason = f"HTTP {reply.status}: {reply.excerpt()}"
        if reply.status == 429 or reply.status == 408 or reply.status >= 500:
            retry_after = parse_retry_after(reply.headers.get("Retry-After"), self._clock.now())
            raise RetryableDeliveryError(self.type_name, reason, status=reply.status, retry_after=retry_after)
        raise PermanentDeliveryError(self.type_name, reason, status=reply.status)


def transport_summary(exc: httpx.TransportError) -> str:
    """The short class of a transport failure, without the exception's own text."""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    causes: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(causes) < 5:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    if any(isinstance(c, ConnectionRefusedError) for c in causes) or "refused" in str(exc).lower():
        return "connection refused"
    if any(isinstance(c, ssl.SSLError) for c in causes) or "ssl" in str(exc).lower():
        return "TLS error"
    if isinstance(exc, httpx.ConnectError):
        return "connection failed"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.LocalProtocolError):
        return "protocol error"
    return "connection lost"


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Retry-After as a delay: delta-seconds or an HTTP-date (RFC 9110 §10.2.3), capped at an hour."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        delay = timedelta(seconds=int(value[:7]))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        delay = max(when - now, timedelta(0))
    return min(delay, MAX_RETRY_AFTER)

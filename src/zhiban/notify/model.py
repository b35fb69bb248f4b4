"""What one notification is, where it goes, and how its delivery ended: pure data, no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel

from zhiban.core.errors import InvalidInput

Language = Literal["zh", "en"]
LANGUAGES: tuple[Language, ...] = ("zh", "en")

MAX_SUBJECT = 300
MAX_TEXT = 32_000
MAX_HTML = 256_000
MAX_LINKS = 10
MAX_METADATA = 50
MAX_METADATA_VALUE = 1_000
MAX_REFERENCES = 50
MAX_RULE_DELAY_MINUTES = 24 * 60
MAX_RULES = 20
MAX_CONTACT_LENGTH = 200

_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,200}$")
_EVENT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_MESSAGE_ID = re.compile(r"^<[^<>\s]{3,250}>$")
_URL = re.compile(r"^https?://[^\s<>\"]{1,2000}$")

MetadataValue = str | int | float | bool | None


@dataclass(frozen=True)
class Link:
    """A link shown with the message; `rel` says what it is for ("acknowledge", "incident", "status")."""

    rel: str
    url: str
    label: str

    def __post_init__(self) -> None:
        if not _URL.match(self.url):
            raise InvalidInput(f"link {self.rel!r}: not an http(s) URL: {self.url[:80]!r}")
        if not (0 < len(self.label) <= 80) or not (0 < len(self.rel) <= 32):
            raise InvalidInput("link label must be 1-80 characters and rel 1-32")


@dataclass(frozen=True)
class Message:
    """One notification, already rendered in one language; every channel picks the variant it can show."""

    subject: str
    text: str
    idempotency_key: str
    language: Language = "en"
    html: str | None = None
    # Markdown for IM robots (DingTalk, WeCom, Feishu cards); plain text is used when absent.
    markdown: str | None = None
    # A one-line form for SMS; a form without URLs for text-to-speech.
    short_text: str | None = None
    spoken_text: str | None = None
    links: tuple[Link, ...] = ()
    event: str = "notification"
    # Mail threading: replies to a ticket must land in the same thread of the customer's mail client.
    message_id: str | None = None
    references: tuple[str, ...] = ()
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.subject.strip() or len(self.subject) > MAX_SUBJECT:
            raise InvalidInput(f"subject must be 1-{MAX_SUBJECT} characters")
        if "\r" in self.subject or "\n" in self.subject:
            raise InvalidInput("subject must be one line")
        if not self.text.strip() or len(self.text) > MAX_TEXT:
            raise InvalidInput(f"text must be 1-{MAX_TEXT} characters")
        for name, value, limit in (
            ("html", self.html, MAX_HTML),
            ("markdown", self.markdown, MAX_TEXT),
            ("short_text", self.short_text, 1_600),
            ("spoken_text", self.spoken_text, 4_000),
        ):
            if value is not None and (not value.strip() or len(value) > limit):
                raise InvalidInput(f"{name} must be 1-{limit} characters when given")
        if self.language not in LANGUAGES:
            raise InvalidInput(f"language must be one of {LANGUAGES}, not {self.language!r}")
        if not _IDEMPOTENCY_KEY.match(self.idempotency_key):
            raise InvalidInput("idempotency key must be 1-200 characters of [A-Za-z0-9._:@/+=-]")
        if not _EVENT.match(self.event):
            raise InvalidInput(f"event must match {_EVENT.pattern}")
        if len(self.links) > MAX_LINKS:
            raise InvalidInput(f"at most {MAX_LINKS} links")
        for mid in (self.message_id, *self.references):
            if mid is not None and not _MESSAGE_ID.match(mid):
                raise InvalidInput(f"not a Message-ID (<id@domain>): {mid[:80]!r}")
        if len(self.references) > MAX_REFERENCES:
            raise InvalidInput(f"at most {MAX_REFERENCES} references")
        _check_metadata(self.metadata)

    def link(self, rel: str) -> Link | None:
        """The first link with this rel, if any."""
        return next((link for link in self.links if link.rel == rel), None)


def _check_metadata(metadata: Mapping[str, Any]) -> None:
    if len(metadata) > MAX_METADATA:
        raise InvalidInput(f"at most {MAX_METADATA} metadata entries")
    for key, value in metadata.items():
        if not isinstance(key, str) or not (0 < len(key) <= 64):
            raise InvalidInput("metadata keys must be strings of 1-64 characters")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise InvalidInput(f"metadata {key!r}: only str, int, float, bool or None")
        if isinstance(value, str) and len(value) > MAX_METADATA_VALUE:
            raise InvalidInput(f"metadata {key!r}: longer than {MAX_METADATA_VALUE} characters")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to queue in the outbox (`service.queue_messages`): what, about what, where and when."""

    message: Message
    subject_kind: str
    subject_id: str
    channel: str
    config: Mapping[str, Any]
    due_at: datetime
    person_id: str | None = None
    contact_method_id: str | None = None
    destination_name: str = ""
    ticket_id: int | None = None


@dataclass(frozen=True)
class Destination:
    """One place a message goes: a channel type and its validated config (see notify.registry)."""

    channel: str
    config: BaseModel
    # Names the destination in logs and is the rate-limit key; the registry defaults it to the channel type.
    name: str = ""

    @property
    def rate_key(self) -> str:
        """The key under which this destination's sends are rate limited."""
        return f"{self.channel}:{self.name}"


@dataclass(frozen=True)
class DeliveryResult:
    """A delivery the provider accepted."""

    channel: str
    # The provider's id for what it accepted (Twilio sid, Message-ID), when it gives one.
    provider_id: str | None = None
    status: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class MessageOutcome:
    """Where a queued message stands after an attempt: what notify tells the feature it was sent for."""

    id: str
    subject_kind: str
    subject_id: str
    channel: str
    person_id: str | None
    state: str  # pending (a retry waits; last_error says why) | sent | failed | cancelled | unknown
    last_error: str | None = None
    provider_id: str | None = None  # None for a sent mail: no SMTP server, only logged
    handed_at: datetime | None = None
    sent_at: datetime | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


class DeliveryError(Exception):
    """A delivery that did not go through; `reason` is for logs, `summary` the short class users see."""

    def __init__(self, channel: str, reason: str, *, status: int | None = None, summary: str | None = None) -> None:
        super().__init__(f"{channel}: {reason}")
        self.channel = channel
        self.reason = reason
        self.status = status
        # Never the endpoint's own words or an exception's text: those turn delivery into a port scanner.
        self.summary = (summary or (f"HTTP {status}" if status is not None else reason))[:200]


class RetryableDeliveryError(DeliveryError):
    """Worth trying again later (timeouts, 5xx, rate limits); `retry_after` is the provider's hint."""

    def __init__(
        self,
        channel: str,
        reason: str,
        *,
        status: int | None = None,
        retry_after: timedelta | None = None,
        summary: str | None = None,
        maybe_delivered: bool = False,
    ) -> None:
        super().__init__(channel, reason, status=status, summary=summary)
        self.retry_after = retry_after
        # No answer after the request went out (a read timeout, a dropped connection): the provider may
        # have taken it. E-mail, SMS and voice then do not try again (docs/DELIVERY.md).
        self.maybe_delivered = maybe_delivered


class PermanentDeliveryError(DeliveryError):
    """Trying again will fail the same way (4xx, bad config, refused recipient): tell a human instead."""


@dataclass(frozen=True)
class NotificationRule:
    """Contact a person on `channel` at `contact`, `delay_minutes` after they are paged."""

    channel: str
    contact: str
    delay_minutes: int = 0

    def __post_init__(self) -> None:
        channel = self.channel
        if not isinstance(channel, str) or not 1 <= len(channel) <= 32 or not channel.replace("_", "").isalnum():
            raise InvalidInput("a channel is a name of 1 to 32 letters, digits or underscores")
        if not isinstance(self.contact, str) or not self.contact or len(self.contact) > MAX_CONTACT_LENGTH:
            raise InvalidInput(f"contact must be a non-empty string of at most {MAX_CONTACT_LENGTH} characters")
        if not isinstance(self.delay_minutes, int) or not 0 <= self.delay_minutes <= MAX_RULE_DELAY_MINUTES:
            raise InvalidInput(f"a notification delay is 0 to {MAX_RULE_DELAY_MINUTES} minutes")


class PlannedNotification(NamedTuple):
    channel: str
    contact: str
    due_at: datetime


def _aware(moment: datetime, what: str) -> datetime:
    if not isinstance(moment, datetime):
        raise InvalidInput(f"{what} must be a datetime")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(f"{what} must be timezone-aware")
    return moment.astimezone(UTC)


def notification_plan(
    rules: Sequence[NotificationRule], paged_at: datetime, acknowledged_at: datetime | None = None
) -> list[PlannedNotification]:
    """When to contact a paged person on each channel, in time order, stopping once they acknowledge."""
    if len(rules) > MAX_RULES:
        raise InvalidInput(f"a person has at most {MAX_RULES} notification rules")
    start = _aware(paged_at, "paged_at")
    stop = _aware(acknowledged_at, "acknowledged_at") if acknowledged_at is not None else None
    planned = [
        PlannedNotification(rule.channel, rule.contact, start + timedelta(minutes=rule.delay_minutes)) for rule in rules
    ]
    planned.sort(key=lambda item: item.due_at)  # stable: rules due together keep their order
    return [item for item in planned if stop is None or item.due_at < stop]


@dataclass(frozen=True, slots=True)
class Notice:
    """One in-app notice of a person's inbox, as other features see it (never the table row)."""

    id: int
    person_id: str
    kind: str  # ticket_new | ticket_assigned | sla_warning | sla_breach | page
    key: str
    reason: str
    title: str
    ticket_id: int | None
    incident_id: str | None
    due_at: datetime | None
    data: Mapping[str, Any]
    created_at: datetime
    read_at: datetime | None
    emailed_at: datetime | None
    email_error: str | None

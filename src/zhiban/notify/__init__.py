"""Notification channels: how one message reaches one destination (mail, webhooks, IM robots, SMS, voice)."""

from zhiban.notify.channels.base import Channel
from zhiban.notify.model import (
    DeliveryError,
    DeliveryResult,
    Destination,
    Link,
    Message,
    MessageOutcome,
    NotificationRule,
    PermanentDeliveryError,
    RetryableDeliveryError,
    notification_plan,
)
from zhiban.notify.ratelimit import Rate, RateLimiter
from zhiban.notify.registry import (
    CHANNEL_TYPES,
    ChannelDeps,
    ChannelType,
    channel_for,
    channel_type,
    parse_destination,
    rate_limits_for,
)
from zhiban.notify.render import IncidentNotice, render_incident
from zhiban.notify.signing import verify_webhook_signature

__all__ = [
    "CHANNEL_TYPES",
    "Channel",
    "ChannelDeps",
    "ChannelType",
    "DeliveryError",
    "DeliveryResult",
    "Destination",
    "IncidentNotice",
    "Link",
    "Message",
    "MessageOutcome",
    "NotificationRule",
    "PermanentDeliveryError",
    "Rate",
    "RateLimiter",
    "RetryableDeliveryError",
    "channel_for",
    "channel_type",
    "notification_plan",
    "parse_destination",
    "rate_limits_for",
    "render_incident",
    "verify_webhook_signature",
]

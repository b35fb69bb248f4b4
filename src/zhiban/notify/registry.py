"""Channel types by name: their config schema, their limits, and a channel object to send with."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from zhiban.core.clock import Clock
from zhiban.core.errors import InvalidInput
from zhiban.notify.channels.base import Channel
from zhiban.notify.channels.chat_threads import DingTalkSessionChannel, FeishuThreadChannel, SlackThreadChannel
from zhiban.notify.channels.dingtalk import DingTalkChannel
from zhiban.notify.channels.email import EmailChannel, parse_smtp_url
from zhiban.notify.channels.feishu import FeishuChannel
from zhiban.notify.channels.phone import SmsChannel, SmsProvider, VoiceChannel, VoiceProvider
from zhiban.notify.channels.slack import SlackChannel
from zhiban.notify.channels.webhook import WebhookChannel
from zhiban.notify.channels.wecom import WeComChannel
from zhiban.notify.config import (
    ChannelConfig,
    DingTalkConfig,
    DingTalkSessionConfig,
    EmailConfig,
    FeishuConfig,
    FeishuThreadConfig,
    SlackConfig,
    SlackThreadConfig,
    SmsConfig,
    VoiceConfig,
    WebhookConfig,
    WeComConfig,
)
from zhiban.notify.egress import check_url
from zhiban.notify.model import Destination
from zhiban.notify.ratelimit import FEISHU_RATES, PER_MINUTE_20, SLACK_RATES, Rate


@dataclass(frozen=True)
class ChannelType:
    """A kind of destination the UI and CLI offer."""

    name: str
    title_en: str
    title_zh: str
    config_model: type[ChannelConfig]
    rate_limits: tuple[Rate, ...] = ()
    # Whether a repeat of a hand-off is harmless: the receiver drops it by its idempotency key (webhooks),
    # or it is one more line in a chat room (IM robots). False (e-mail, SMS, voice): a repeat reaches a
    # person again, so a hand-off cut by a crash is marked `unknown`, never made again (docs/DELIVERY.md).
    repeat_safe: bool = True
    # Whether a person may pick it for their own contact methods; a chat thread is a ticket's, not a person's.
    contact: bool = True

    def config_schema(self) -> dict[str, Any]:
        """The JSON Schema of the destination config (for forms and API docs)."""
        return self.config_model.model_json_schema()


CHANNEL_TYPES: tuple[ChannelType, ...] = (
    ChannelType("email", "E-mail", "邮件", EmailConfig, repeat_safe=False),
    ChannelType("webhook", "Webhook", "Webhook", WebhookConfig),
    ChannelType("slack", "Slack", "Slack", SlackConfig, SLACK_RATES),
    ChannelType("feishu", "Feishu / Lark", "飞书", FeishuConfig, FEISHU_RATES),
    ChannelType("dingtalk", "DingTalk", "钉钉", DingTalkConfig, PER_MINUTE_20),
    ChannelType("wecom", "WeCom", "企业微信", WeComConfig, PER_MINUTE_20),
    ChannelType("sms", "SMS", "短信", SmsConfig, repeat_safe=False),
    ChannelType("voice", "Voice call", "语音电话", VoiceConfig, repeat_safe=False),
    # A chat group's thread, answered by the chat app (chat groups mirror agents' replies there): a repeat
    # would show the reply twice in the customer's group, so a hand-off cut by a crash is not made again.
    ChannelType("slack_thread", "Slack thread", "Slack 话题", SlackThreadConfig, SLACK_RATES, False, False),
    ChannelType("feishu_thread", "Feishu thread", "飞书话题", FeishuThreadConfig, FEISHU_RATES, False, False),
    ChannelType(
        "dingtalk_session", "DingTalk conversation", "钉钉会话", DingTalkSessionConfig, PER_MINUTE_20, False, False
    ),
)
_BY_NAME = {channel_type.name: channel_type for channel_type in CHANNEL_TYPES}


def channel_type(name: str) -> ChannelType:
    """The channel type with this name."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise InvalidInput(f"unknown channel type {name!r}; known: {sorted(_BY_NAME)}") from None


def parse_destination(type_name: str, config: Mapping[str, Any], name: str = "") -> Destination:
    """Validate a raw config (from a form, the CLI or the database) into a Destination."""
    kind = channel_type(type_name)
    if len(name) > 200:
        raise InvalidInput("destination name must be at most 200 characters")
    try:
        parsed = kind.config_model.model_validate(dict(config))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or type_name}: {e['msg']}" for e in exc.errors())
        raise InvalidInput(f"{type_name} destination: {problems}") from exc
    return Destination(type_name, parsed, name)


def destination_url(destination: Destination) -> str | None:
    """The URL that delivering to this destination POSTs to (webhooks and IM robots), if any."""
    config = destination.config
    if isinstance(config, WebhookConfig):
        return config.url
    if isinstance(config, SlackConfig | FeishuConfig | DingTalkConfig | WeComConfig):
        return config.webhook_url
    if isinstance(config, SlackThreadConfig | FeishuThreadConfig):
        return config.api_url
    if isinstance(config, DingTalkSessionConfig):
        return config.url
    return None


def check_new_destination(type_name: str, config: Mapping[str, Any], name: str = "") -> Destination:
    """parse_destination, and refuse (BlockedDestination) a URL that points inside: for configs being saved."""
    destination = parse_destination(type_name, config, name)
    url = destination_url(destination)
    if url is not None:
        check_url(url)
    return destination


def rate_limits_for(rate_key: str) -> Sequence[Rate]:
    """Limits for a Destination.rate_key ("<channel>:<name>"): give this to RateLimiter."""
    kind = _BY_NAME.get(rate_key.partition(":")[0])
    return kind.rate_limits if kind else ()


@dataclass(frozen=True)
class ChannelDeps:
    """What channels need from the process: an HTTP client, a clock, the SMTP URL, phone providers."""

    client: httpx.Client | None = None
    clock: Clock | None = None
    smtp_url: str = ""
    sms_provider: SmsProvider | None = None
    voice_provider: VoiceProvider | None = None


def channel_for(type_name: str, deps: ChannelDeps | None = None) -> Channel:
    """A channel object for this type; build one per process (or worker) and reuse it."""
    deps = deps or ChannelDeps()
    channel_type(type_name)
    if type_name == "email":
        server = parse_smtp_url(deps.smtp_url) if deps.smtp_url else None
        return EmailChannel(server, deps.clock)
    if type_name == "sms":
        return SmsChannel(deps.sms_provider)
    if type_name == "voice":
        return VoiceChannel(deps.voice_provider)
    http_channels: dict[str, Callable[[httpx.Client | None, Clock | None], Channel]] = {
        "webhook": WebhookChannel,
        "slack": SlackChannel,
        "feishu": FeishuChannel,
        "dingtalk": DingTalkChannel,
        "wecom": WeComChannel,
        "slack_thread": SlackThreadChannel,
        "feishu_thread": FeishuThreadChannel,
        "dingtalk_session": DingTalkSessionChannel,
    }
    return http_channels[type_name](deps.client, deps.clock)

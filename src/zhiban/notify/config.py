"""Config schemas of each channel type's destinations, for the UI, the CLI and the API to validate."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

_ADDRESS = re.compile(r"^[^@\s<>,;\"]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def _mail_address(value: str) -> str:
    if not _ADDRESS.match(value):
        raise ValueError(f"not an e-mail address: {value[:80]!r}")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(value) > 2_000:
        raise ValueError("must be an http(s) URL")
    return value


def _phone(value: str) -> str:
    if not _E164.match(value):
        raise ValueError("must be an E.164 phone number such as +8613800138000")
    return value


MailAddress = Annotated[str, AfterValidator(_mail_address)]
HttpUrlText = Annotated[str, AfterValidator(_http_url)]
Phone = Annotated[str, AfterValidator(_phone)]


class ChannelConfig(BaseModel):
    """Base of every destination config: unknown keys are refused, values never change after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EmailConfig(ChannelConfig):
    """Mail to people; the SMTP server itself comes from ZHIBAN_SMTP_URL."""

    to: list[MailAddress] = Field(min_length=1, max_length=50)
    cc: list[MailAddress] = Field(default_factory=list, max_length=50)
    reply_to: MailAddress | None = None
    # The From: header when not the relay's sender (a support mailbox's address); bounces still go to the relay's.
    from_address: MailAddress | None = None


class WebhookConfig(ChannelConfig):
    """A customer's or a tool's HTTPS endpoint; bodies are signed with the shared secret."""

    url: HttpUrlText
    secret: SecretStr = Field(min_length=16, max_length=200)


class SlackConfig(ChannelConfig):
    """A Slack incoming webhook (https://hooks.slack.com/services/...)."""

    webhook_url: HttpUrlText


class FeishuConfig(ChannelConfig):
    """A Feishu/Lark custom bot; `secret` is set when the bot's signature check is on."""

    webhook_url: HttpUrlText
    secret: SecretStr | None = Field(default=None, max_length=200)
    format: Literal["card", "text"] = "card"


def _has_query(name: str) -> AfterValidator:
    def check(value: str) -> str:
        if not parse_qs(urlsplit(value).query).get(name):
            raise ValueError(f"the webhook URL must carry its {name}= parameter")
        return value

    return AfterValidator(check)


class DingTalkConfig(ChannelConfig):
    """A DingTalk group robot (.../robot/send?access_token=...); `secret` when signing (加签) is on."""

    webhook_url: Annotated[HttpUrlText, _has_query("access_token")]
    secret: SecretStr | None = Field(default=None, max_length=200)
    format: Literal["markdown", "text"] = "markdown"
    at_mobiles: list[str] = Field(default_factory=list, max_length=20)
    at_all: bool = False


class WeComConfig(ChannelConfig):
    """A WeCom group robot (.../cgi-bin/webhook/send?key=...)."""

    webhook_url: Annotated[HttpUrlText, _has_query("key")]
    format: Literal["markdown", "text"] = "markdown"
    mentioned_mobiles: list[str] = Field(default_factory=list, max_length=20)


class SmsConfig(ChannelConfig):
    """A phone number that receives text messages."""

    to: Phone


class VoiceConfig(ChannelConfig):
    """A phone number that is called and read the page."""

    to: Phone


_PLATFORM_ID = r"^[A-Za-z0-9._:@-]{1,128}$"


class SlackThreadConfig(ChannelConfig):
    """A reply in a Slack thread, posted by the chat bot (chat.postMessage with thread_ts): chat groups' mirror."""

    api_url: HttpUrlText = "https://slack.com/api"
    bot_token: SecretStr = Field(min_length=1, max_length=500)
    channel: str = Field(pattern=_PLATFORM_ID)
    thread_ts: str = Field(pattern=_PLATFORM_ID)


class FeishuThreadConfig(ChannelConfig):
    """A reply to a Feishu message, posted by the chat app (im/v1/messages/{id}/reply): chat groups' mirror."""

    api_url: HttpUrlText = "https://open.feishu.cn"
    app_id: str = Field(pattern=_PLATFORM_ID)
    app_secret: SecretStr = Field(min_length=1, max_length=500)
    message_id: str = Field(pattern=_PLATFORM_ID)


class DingTalkSessionConfig(ChannelConfig):
    """A reply into a DingTalk conversation through the sessionWebhook its last message carried (chat groups)."""

    url: HttpUrlText

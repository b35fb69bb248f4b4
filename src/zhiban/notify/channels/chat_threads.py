"""Replies posted by a chat app into a thread of a customer's group (Slack, Feishu): how an agent's public
answer reaches the thread a ticket came from. The platform's id of the posted message is the provider id, so
the chat feature knows its own message when the platform's event about it comes back."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, ClassVar, NoReturn

import httpx

from zhiban.core.clock import Clock
from zhiban.notify.channels.base import HttpChannel, HttpReply, config_of, truncate_utf8
from zhiban.notify.channels.slack import slack_escape
from zhiban.notify.config import DingTalkSessionConfig, FeishuThreadConfig, SlackThreadConfig
from zhiban.notify.model import (
    DeliveryResult,
    Destination,
    Message,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from zhiban.notify.ratelimit import FEISHU_RATES, PER_MINUTE_20, SLACK_RATES, Rate

# Slack cuts a message's text at 40,000 characters; Feishu's request limit is about 150 KB.
SLACK_TEXT_MAX_BYTES = 30_000
FEISHU_TEXT_MAX_BYTES = 30_000
SLACK_RETRYABLE = frozenset({"ratelimited", "rate_limited", "service_unavailable", "internal_error", "fatal_error"})
FEISHU_RETRYABLE = frozenset({11232, 99991400})  # frequency limited
TOKEN_MARGIN_SECONDS = 300  # a tenant token is renewed this long before it expires


def feishu_text(text: str) -> str:
    """Text as Feishu shows it literally: an `<at user_id="all">` tag in a reply must not ping the whole group."""
    return text.replace("<at", "<\u200bat").replace("<AT", "<\u200bAT")


class SlackThreadChannel(HttpChannel):
    """chat.postMessage answers HTTP 200 with {"ok": true, "ts": …} or {"ok": false, "error": code}."""

    type_name = "slack_thread"
    rate_limits: ClassVar[tuple[Rate, ...]] = SLACK_RATES

    def send(self, message: Message, destination: Destination) -> DeliveryResult:
        config = config_of(destination, SlackThreadConfig, self.type_name)
        payload = {
            "channel": config.channel,
            "thread_ts": config.thread_ts,
            # Escaped: `<!channel>` or `<@U…>` in a reply must not ping the customer's whole channel.
            "text": truncate_utf8(slack_escape(message.text), SLACK_TEXT_MAX_BYTES),
        }
        token = config.bot_token.get_secret_value()
        reply = self.post_json(
            config.api_url.rstrip("/") + "/chat.postMessage", payload, headers={"Authorization": f"Bearer {token}"}
        )
        if reply.status != 200:
            self.raise_for_status(reply)
        body = reply.json()
        if not isinstance(body, dict):
            raise PermanentDeliveryError(self.type_name, f"unexpected answer: {reply.excerpt()}", summary="bad answer")
        if body.get("ok") is True and isinstance(body.get("ts"), str):
            return DeliveryResult(self.type_name, provider_id=body["ts"][:128], status=reply.status)
        error = str(body.get("error", "unknown"))[:60]
        if error in SLACK_RETRYABLE:
            raise RetryableDeliveryError(self.type_name, error, status=reply.status, summary=error)
        raise PermanentDeliveryError(self.type_name, error, status=reply.status, summary=error)


class FeishuThreadChannel(HttpChannel):
    """Replies with a tenant access token, fetched with the app's id and secret and kept until near expiry."""

    type_name = "feishu_thread"
    rate_limits: ClassVar[tuple[Rate, ...]] = FEISHU_RATES

    def __init__(self, client: httpx.Client | None = None, clock: Clock | None = None) -> None:
        super().__init__(client, clock)
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def _code(self, reply: HttpReply) -> tuple[int, dict[str, Any]]:
        if reply.status >= 500 or reply.status == 429:
            self.raise_for_status(reply)
        body = reply.json()
        if not isinstance(body, dict) or not isinstance(body.get("code"), int):
            self.raise_for_status(reply)
            raise PermanentDeliveryError(self.type_name, f"unexpected answer: {reply.excerpt()}", summary="bad answer")
        return body["code"], body

    def _fail(self, code: int, body: dict[str, Any], status: int) -> NoReturn:
        reason = f"code {code}: {str(body.get('msg', ''))[:100]}"
        if code in FEISHU_RETRYABLE:
            raise RetryableDeliveryError(self.type_name, reason, status=status, summary=f"code {code}")
        raise PermanentDeliveryError(self.type_name, reason, status=status, summary=f"code {code}")

    def _token(self, config: FeishuThreadConfig) -> str:
        key = (config.api_url, config.app_id)
        with self._lock:
            held = self._tokens.get(key)
            if held is not None and held[1] > time.monotonic():
                return held[0]
        reply = self.post_json(
            config.api_url.rstrip("/") + "/open-apis/auth/v3/tenant_access_token/internal",
            {"app_id": config.app_id, "app_secret": config.app_secret.get_secret_value()},
        )
        code, body = self._code(reply)
        if code != 0 or not isinstance(body.get("tenant_access_token"), str):
            self._fail(code if code != 0 else -1, body, reply.status)
        expire = body["expire"] if isinstance(body.get("expire"), int) else 0
        token = str(body["tenant_access_token"])
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + max(0, expire - TOKEN_MARGIN_SECONDS))
        return token

    def send(self, message: Message, destination: Destination) -> DeliveryResult:
        config = config_of(destination, FeishuThreadConfig, self.type_name)
        token = self._token(config)
        content = json.dumps(
            {"text": truncate_utf8(feishu_text(message.text), FEISHU_TEXT_MAX_BYTES)}, ensure_ascii=False
        )
        reply = self.post_json(
            f"{config.api_url.rstrip('/')}/open-apis/im/v1/messages/{config.message_id}/reply",
            {"msg_type": "text", "content": content, "uuid": message.idempotency_key[-50:]},
            headers={"Authorization": f"Bearer {token}"},
        )
        code, body = self._code(reply)
        if code != 0:
            if code in (99991663, 99991661):  # the token expired or is invalid: fetch a new one next time
                with self._lock:
                    self._tokens.pop((config.api_url, config.app_id), None)
                raise RetryableDeliveryError(self.type_name, f"code {code}", status=reply.status, summary="token")
            self._fail(code, body, reply.status)
        data: dict[str, Any] = body["data"] if isinstance(body.get("data"), dict) else {}
        provider_id = data.get("message_id") if isinstance(data.get("message_id"), str) else None
        return DeliveryResult(self.type_name, provider_id=provider_id and provider_id[:128], status=reply.status)


DINGTALK_TEXT_MAX_BYTES = 18_000  # the robot's message limit is 20,000 bytes
DINGTALK_RETRYABLE = frozenset({130101, -1})  # sending too fast; system busy


class DingTalkSessionChannel(HttpChannel):
    """Answers HTTP 200 with {"errcode": 0}; a sessionWebhook that expired answers a non-zero errcode."""

    type_name = "dingtalk_session"
    rate_limits: ClassVar[tuple[Rate, ...]] = PER_MINUTE_20

    def send(self, message: Message, destination: Destination) -> DeliveryResult:
        config = config_of(destination, DingTalkSessionConfig, self.type_name)
        payload = {"msgtype": "text", "text": {"content": truncate_utf8(message.text, DINGTALK_TEXT_MAX_BYTES)}}
        reply = self.post_json(config.url, payload)
        if reply.status != 200:
            self.raise_for_status(reply)
        body = reply.json()
        code = body.get("errcode") if isinstance(body, dict) else None
        if code == 0:
            return DeliveryResult(self.type_name, status=reply.status)
        reason = f"errcode {code}"
        if code in DINGTALK_RETRYABLE:
            raise RetryableDeliveryError(self.type_name, reason, status=reply.status, summary=reason[:40])
        raise PermanentDeliveryError(self.type_name, reason, status=reply.status, summary=reason[:40])

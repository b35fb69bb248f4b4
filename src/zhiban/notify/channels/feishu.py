"""Feishu (Lark) custom bot: a signed text message or an interactive card with link buttons."""

from __future__ import annotations

from typing import Any, ClassVar

from zhiban.notify.channels.base import HttpChannel, HttpReply, config_of, truncate_utf8
from zhiban.notify.config import FeishuConfig
from zhiban.notify.model import (
    DeliveryResult,
    Destination,
    Message,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from zhiban.notify.ratelimit import FEISHU_RATES, Rate
from zhiban.notify.signing import feishu_sign

# The documented request limit is 20 KB; stay below it with room for the envelope.
BODY_TEXT_MAX_BYTES = 16_000
# 11232: frequency limited (over 100 a minute or 5 a second); the only code worth a retry.
RETRYABLE_CODES = frozenset({11232})


def feishu_payload(message: Message, card: bool) -> dict[str, Any]:
    """The bot body without signature fields."""
    if not card:
        lines = [message.subject, "", message.text]
        return {"msg_type": "text", "content": {"text": truncate_utf8("\n".join(lines), BODY_TEXT_MAX_BYTES)}}
    elements: list[dict[str, Any]] = [
        {"tag": "markdown", "content": truncate_utf8(message.markdown or message.text, BODY_TEXT_MAX_BYTES)}
    ]
    if message.links:
        elements.append(
            {
                "tag": "action",
                "actions": [
                    {
                        "tag": "button",
                        "text": {"tag": "plain_text", "content": link.label},
                        "type": "primary" if link.rel == "acknowledge" else "default",
                        "url": link.url,
                    }
                    for link in message.links
                ],
            }
        )
    return {
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": True},
            "header": {
                "title": {"tag": "plain_text", "content": message.subject},
                "template": "red" if message.event == "incident.page" else "blue",
            },
            "elements": elements,
        },
    }


class FeishuChannel(HttpChannel):
    """Feishu answers HTTP 200 with {"code": 0} on success and a non-zero code on failure."""

    type_name = "feishu"
    rate_limits: ClassVar[tuple[Rate, ...]] = FEISHU_RATES

    def send(self, message: Message, destination: Destination) -> DeliveryResult:
        """Deliver, signing with the bot's secret when one is set."""
        config = config_of(destination, FeishuConfig, self.type_name)
        payload = feishu_payload(message, card=config.format == "card")
        if config.secret is not None:
            # Seconds, not milliseconds (unlike DingTalk); Feishu refuses a timestamp older than an hour.
            timestamp = int(self._clock.now().timestamp())
            payload = {
                "timestamp": str(timestamp),
                "sign": feishu_sign(config.secret.get_secret_value(), timestamp),
                **payload,
            }
        reply = self.post_json(config.webhook_url, payload)
        return self._result(reply)

    def _result(self, reply: HttpReply) -> DeliveryResult:
        body = reply.json()
        code = None
        if isinstance(body, dict):
            # Current answers carry `code`; older ones `StatusCode`.
            code = body.get("code", body.get("StatusCode"))
        if reply.status >= 500 or reply.status == 429 or code is None:
            self.raise_for_status(reply)
        if code is None:
            raise PermanentDeliveryError(
                self.type_name,
                f"unexpected answer: {reply.excerpt()}",
                status=reply.status,
                summary="unexpected answer",
            )
        if code == 0:
            return DeliveryResult(self.type_name, status=reply.status, detail=reply.excerpt())
        reason = f"code {code}: {body.get('msg') or body.get('StatusMessage') or ''}"
        if code in RETRYABLE_CODES:
            raise RetryableDeliveryError(self.type_name, reason, status=reply.status, summary=f"code {str(code)[:20]}")
        raise PermanentDeliveryError(self.type_name, reason, status=reply.status, summary=f"code {str(code)[:20]}")

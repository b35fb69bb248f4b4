"""Slack incoming webhook: a fallback `text` plus Block Kit blocks with link buttons."""

from __future__ import annotations

from typing import Any, ClassVar

from zhiban.notify.channels.base import HttpChannel, config_of
from zhiban.notify.config import SlackConfig
from zhiban.notify.model import DeliveryResult, Destination, Message
from zhiban.notify.ratelimit import SLACK_RATES, Rate

# Block Kit limits: header text 150 characters, section text 3000, button text 75.
HEADER_MAX = 150
SECTION_MAX = 3_000
BUTTON_MAX = 75


def slack_escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(message: Message) -> dict[str, Any]:
    """The incoming-webhook body for a message."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(message.subject, HEADER_MAX)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(slack_escape(message.text), SECTION_MAX)}},
    ]
    if message.links:
        buttons: list[dict[str, Any]] = []
        for link in message.links:
            button: dict[str, Any] = {
                "type": "button",
                "text": {"type": "plain_text", "text": _cut(link.label, BUTTON_MAX)},
                "url": link.url,
            }
            if link.rel == "acknowledge":
                button["style"] = "primary"
            buttons.append(button)
        blocks.append({"type": "actions", "elements": buttons})
    # `text` is what notifications and screen readers show; blocks are the rich form.
    return {"text": _cut(f"{message.subject}\n{message.text}", SECTION_MAX), "blocks": blocks}


class SlackChannel(HttpChannel):
    """Slack answers 200 "ok"; errors are 4xx with a short code such as invalid_payload, 429 when too fast."""

    type_name = "slack"
    rate_limits: ClassVar[tuple[Rate, ...]] = SLACK_RATES

    def send(self, message: Message, destination: Destination) -> DeliveryResult:
        """Deliver to the incoming webhook."""
        config = config_of(destination, SlackConfig, self.type_name)
        reply = self.post_json(config.webhook_url, slack_payload(message))
        self.raise_for_status(reply)
        return DeliveryResult(self.type_name, status=reply.status, detail=reply.excerpt())

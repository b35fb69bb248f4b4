"""WeCom (企业微信) group robot: markdown or text posted to the robot's webhook URL (its key is the secret)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from zhiban.notify.channels.base import config_of, truncate_utf8
from zhiban.notify.channels.robots import BUSY, ErrcodeRobotChannel
from zhiban.notify.config import WeComConfig
from zhiban.notify.model import DeliveryResult, Destination, Message

# Documented limits: markdown content 4096 bytes, text content 2048 bytes (UTF-8).
MARKDOWN_MAX_BYTES = 4_096
TEXT_MAX_BYTES = 2_048
# 45009: over the API frequency limit (20 messages a minute per robot).
FREQUENCY_LIMIT = 45009


def wecom_payload(message: Message, config: WeComConfig) -> dict[str, Any]:
    """The robot body."""
    if config.format == "markdown":
        content = truncate_utf8(message.markdown or message.text, MARKDOWN_MAX_BYTES)
        return {"msgtype": "markdown", "markdown": {"content": content}}
    text: dict[str, Any] = {"content": truncate_utf8(f"{message.subject}\n{message.text}", TEXT_MAX_BYTES)}
    if config.mentioned_mobiles:
        # Only text messages can mention people by mobile number.
        text["mentioned_mobile_list"] = list(config.mentioned_mobiles)
    return {"msgtype": "text", "text": text}


class WeComChannel(ErrcodeRobotChannel):
    """WeCom answers {"errcode": 0, "errmsg": "ok"}."""

    type_name = "wecom"
    retryable_codes: ClassVar[Mapping[int, timedelta | None]] = {BUSY: None, FREQUENCY_LIMIT: timedelta(minutes=1)}

    def send(self, message: Message, destination: Destination) -> DeliveryResult:
        """Deliver to the robot."""
        config = config_of(destination, WeComConfig, self.type_name)
        return self.result(self.post_json(config.webhook_url, wecom_payload(message, config)))

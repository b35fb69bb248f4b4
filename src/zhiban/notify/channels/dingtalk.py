"""DingTalk group robot: markdown or text, signed (加签) on the query string when a secret is set."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

import httpx

from zhiban.notify.channels.base import config_of, truncate_utf8
from zhiban.notify.channels.robots import BUSY, ErrcodeRobotChannel
from zhiban.notify.config import DingTalkConfig
from zhiban.notify.model import DeliveryResult, Destination, Message
from zhiban.notify.signing import dingtalk_sign

BODY_TEXT_MAX_BYTES = 18_000
# 130101: sent too fast; DingTalk then throttles the robot for 10 minutes.
SENT_TOO_FAST = 130101


def dingtalk_payload(message: Message, config: DingTalkConfig) -> dict[str, Any]:
    """The robot body; @mentions must also appear in the text to be shown."""
    mentions = "".join(f" @{mobile}" for mobile in config.at_mobiles)
    at = {"atMobiles": list(config.at_mobiles), "isAtAll": config.at_all}
    if config.format == "markdown":
        text = truncate_utf8(message.markdown or message.text, BODY_TEXT_MAX_BYTES) + mentions
        return {"msgtype": "markdown", "markdown": {"title": message.subject, "text": text}, "at": at}
    text = truncate_utf8(f"{message.subject}\n{message.text}", BODY_TEXT_MAX_BYTES) + mentions
    return {"msgtype": "text", "text": {"content": text}, "at": at}


class DingTalkChannel(ErrcodeRobotChannel):
    """DingTalk answers {"errcode": 0, "errmsg": "ok"}."""

    type_name = "dingtalk"
    retryable_codes: ClassVar[Mapping[int, timedelta | None]] = {BUSY: None, SENT_TOO_FAST: timedelta(minutes=10)}

    def send(self, message: Message, destination: Destination) -> DeliveryResult:
        """Deliver; the signature rides on the URL as &timestamp=<ms>&sign=<url-encoded base64>."""
        config = config_of(destination, DingTalkConfig, self.type_name)
        url = httpx.URL(config.webhook_url)
        if config.secret is not None:
            timestamp_ms = int(self._clock.now().timestamp() * 1000)
            sign = dingtalk_sign(config.secret.get_secret_value(), timestamp_ms)
            # httpx percent-encodes the value, which is the URL-encoding DingTalk requires (+, / and =).
            url = url.copy_add_param("timestamp", str(timestamp_ms)).copy_add_param("sign", sign)
        return self.result(self.post_json(url, dingtalk_payload(message, config)))

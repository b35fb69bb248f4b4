"""What the DingTalk and WeCom group robots share: an {"errcode": 0} answer and a 20-a-minute limit."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import ClassVar

from zhiban.notify.channels.base import HttpChannel, HttpReply
from zhiban.notify.model import DeliveryResult, PermanentDeliveryError, RetryableDeliveryError
from zhiban.notify.ratelimit import PER_MINUTE_20, Rate

# -1: system busy, try again.
BUSY = -1


class ErrcodeRobotChannel(HttpChannel):
    """A robot that answers HTTP 200 with {"errcode": n, "errmsg": "..."}; 0 is success."""

    rate_limits: ClassVar[tuple[Rate, ...]] = PER_MINUTE_20
    # errcode -> the wait before trying again; codes not listed are permanent.
    retryable_codes: ClassVar[Mapping[int, timedelta | None]] = {BUSY: None}

    def result(self, reply: HttpReply) -> DeliveryResult:
        """Success, or the delivery error that the status and errcode call for."""
        body = reply.json()
        errcode = body.get("errcode") if isinstance(body, dict) else None
        if reply.status >= 500 or reply.status == 429 or not isinstance(errcode, int):
            self.raise_for_status(reply)
            raise PermanentDeliveryError(
                self.type_name,
                f"unexpected answer: {reply.excerpt()}",
                status=reply.status,
                summary="unexpected answer",
            )
        if errcode == 0:
            return DeliveryResult(self.type_name, status=reply.status, detail=reply.excerpt())
        assert isinstance(body, dict)
        reason = f"errcode {errcode}: {body.get('errmsg', '')}"
        if errcode in self.retryable_codes:
            retry_after = self.retryable_codes[errcode]
            raise RetryableDeliveryError(
                self.type_name, reason, status=reply.status, retry_after=retry_after, summary=f"errcode {errcode}"
            )
        raise PermanentDeliveryError(self.type_name, reason, status=reply.status, summary=f"errcode {errcode}")

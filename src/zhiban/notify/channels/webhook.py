"""Generic webhook: the message as signed JSON, for customers' and tools' own endpoints."""

from __future__ import annotations

import json
from typing import Any

from zhiban.notify.channels.base import HttpChannel, config_of
from zhiban.notify.config import WebhookConfig
from zhiban.notify.model import DeliveryResult, Destination, Message
from zhiban.notify.signing import EVENT_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, webhook_signature_header


def webhook_payload(message: Message, sent_at: str) -> dict[str, Any]:
    """The JSON document a webhook receiver gets (documented for customers; keep it stable)."""
    return {
        "event": message.event,
        "idempotency_key": message.idempotency_key,
        "sent_at": sent_at,
        "language": message.language,
        "subject": message.subject,
        "text": message.text,
        "html": message.html,
        "links": [{"rel": link.rel, "url": link.url, "label": link.label} for link in message.links],
        "metadata": dict(message.metadata),
    }


class WebhookChannel(HttpChannel):
    """POSTs JSON signed with HMAC-SHA256 in X-Zhiban-Signature (see notify.signing)."""

    type_name = "webhook"

    def send(self, message: Message, destination: Destination) -> DeliveryResult:
        """Deliver; any 2xx is success, the receiver dedupes on the Idempotency-Key header."""
        config = config_of(destination, WebhookConfig, self.type_name)
        now = self._clock.now()
        body = json.dumps(webhook_payload(message, now.isoformat()), ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: webhook_signature_header(config.secret.get_secret_value(), body, int(now.timestamp())),
            EVENT_HEADER: message.event,
            IDEMPOTENCY_HEADER: message.idempotency_key,
        }
        reply = self.post(config.url, content=body, headers=headers)
        self.raise_for_status(reply)
        return DeliveryResult(self.type_name, status=reply.status, detail=reply.excerpt())

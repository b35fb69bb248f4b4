"""Generic webhook against a real local receiver that checks the signature itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.notify.notify_fakes import provider_server, zhiban_webhook_receiver
from zhiban.core.clock import FrozenClock, SystemClock
from zhiban.notify import Message, PermanentDeliveryError, parse_destination, verify_webhook_signature
from zhiban.notify.channels.webhook import WebhookChannel

SECRET = "whsec-0123456789abcdef"


def test_signed_delivery_is_accepted_and_verifiable(page_zh: Message, http_client: httpx.Client) -> None:
    with provider_server(zhiban_webhook_receiver(SECRET)) as server:
        destination = parse_destination("webhook", {"url": server.url_for("/hooks/zhiban"), "secret": SECRET})
        result = WebhookChannel(http_client, SystemClock()).send(page_zh, destination)
    assert result.status == 202
    [request] = server.received
    assert request.headers["x-zhiban-event"] == "incident.page"
    assert request.headers["idempotency-key"] == "page:inc-42:step-1:alice"
    body = request.json()
    assert body["subject"] == page_zh.subject
    assert body["language"] == "zh"
    assert {link["rel"] for link in body["links"]} == {"acknowledge", "incident"}
    # Chinese is sent as UTF-8, not \\u escapes, and the signature covers those exact bytes.
    assert "视频卡顿" in request.body.decode()
    header = request.headers["x-zhiban-signature"]
    now = datetime.now(UTC)
    assert verify_webhook_signature(SECRET, header, request.body, now)
    assert not verify_webhook_signature(SECRET, header, request.body + b" ", now)
    assert not verify_webhook_signature("another-secret-123", header, request.body, now)
    assert json.loads(request.body)["idempotency_key"] == page_zh.idempotency_key


def test_receiver_refuses_a_stale_signature_and_that_is_permanent(page_en: Message, http_client: httpx.Client) -> None:
    # A sender whose clock is an hour behind signs with an old timestamp; the receiver's 5-minute window refuses it.
    late_clock = FrozenClock(datetime.now(UTC) - timedelta(hours=1))
    with provider_server(zhiban_webhook_receiver(SECRET)) as server:
        destination = parse_destination("webhook", {"url": server.url_for("/h"), "secret": SECRET})
        with pytest.raises(PermanentDeliveryError) as caught:
            WebhookChannel(http_client, late_clock).send(page_en, destination)
    assert caught.value.status == 401

"""Slack incoming webhook, and how HTTP failures are classified (shared by every HTTP channel)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from tests.notify.notify_fakes import Received, Reply, provider_server, slack_webhook, unused_port
from zhiban.core.clock import FrozenClock
from zhiban.notify import Message, PermanentDeliveryError, RetryableDeliveryError, parse_destination
from zhiban.notify.channels.slack import SlackChannel, slack_escape
from zhiban.notify.egress import EgressPolicy, guarded_client

NOW = datetime(2026, 11, 20, 19, 0, tzinfo=UTC)


def test_message_arrives_with_fallback_text_and_buttons(page_en: Message, http_client: httpx.Client) -> None:
    with provider_server(slack_webhook()) as server:
        destination = parse_destination("slack", {"webhook_url": server.url_for("/services/T0/B0/XYZ")})
        result = SlackChannel(http_client).send(page_en, destination)
    assert result.status == 200
    payload = server.received[0].json()
    assert payload["text"].startswith(page_en.subject)
    header, section, actions = payload["blocks"]
    assert header["text"]["text"] == page_en.subject
    assert section["text"]["type"] == "mrkdwn"
    buttons = {button["text"]["text"]: button for button in actions["elements"]}
    assert buttons["Acknowledge"]["url"] == "https://desk.example.com/ack/inc-42?t=abc"
    assert buttons["Acknowledge"]["style"] == "primary"


def test_mrkdwn_control_characters_are_escaped() -> None:
    assert slack_escape("a < b && c > <@U123>") == "a &lt; b &amp;&amp; c &gt; &lt;@U123&gt;"


def test_unknown_hook_is_permanent(page_en: Message, http_client: httpx.Client) -> None:
    with provider_server(slack_webhook()) as server:
        destination = parse_destination("slack", {"webhook_url": server.url_for("/wrong/path")})
        with pytest.raises(PermanentDeliveryError) as caught:
            SlackChannel(http_client).send(page_en, destination)
    assert caught.value.status == 404
    assert "no_service" in caught.value.reason


def _fixed(status: int, headers: dict[str, str] | None = None, body: bytes = b"error") -> Reply:
    return status, {"Content-Type": "text/plain", **(headers or {})}, body


@pytest.mark.parametrize(
    ("status", "headers", "kind", "retry_after"),
    [
        (500, {}, RetryableDeliveryError, None),
        (502, {}, RetryableDeliveryError, None),
        (429, {"Retry-After": "30"}, RetryableDeliveryError, timedelta(seconds=30)),
        (503, {"Retry-After": format_datetime(NOW + timedelta(minutes=2), usegmt=True)}, RetryableDeliveryError,
         timedelta(minutes=2)),
        (429, {"Retry-After": "86400"}, RetryableDeliveryError, timedelta(hours=1)),  # capped
        (429, {"Retry-After": "soon"}, RetryableDeliveryError, None),
        (400, {}, PermanentDeliveryError, None),
        (403, {}, PermanentDeliveryError, None),
        (410, {}, PermanentDeliveryError, None),
        (302, {"Location": "http://127.0.0.1:1/"}, PermanentDeliveryError, None),
    ],
)  # fmt: skip
def test_http_failures_are_classified(
    page_en: Message,
    http_client: httpx.Client,
    status: int,
    headers: dict[str, str],
    kind: type[Exception],
    retry_after: timedelta | None,
) -> None:
    def respond(_: Received) -> Reply:
        return _fixed(status, headers)

    with provider_server(respond) as server:
        destination = parse_destination("slack", {"webhook_url": server.url_for("/services/T/B/X")})
        with pytest.raises(kind) as caught:
            SlackChannel(http_client, FrozenClock(NOW)).send(page_en, destination)
    error = caught.value
    assert isinstance(error, PermanentDeliveryError | RetryableDeliveryError)
    assert error.status == status
    if isinstance(error, RetryableDeliveryError):
        assert error.retry_after == retry_after


def test_connection_refused_is_retryable(page_en: Message, http_client: httpx.Client) -> None:
    destination = parse_destination("slack", {"webhook_url": f"http://127.0.0.1:{unused_port()}/services/T/B/X"})
    with pytest.raises(RetryableDeliveryError) as caught:
        SlackChannel(http_client).send(page_en, destination)
    assert caught.value.status is None


def test_a_slow_endpoint_times_out_as_retryable(page_en: Message) -> None:
    def slow(_: Received) -> Reply:
        time.sleep(1.0)
        return _fixed(200, body=b"ok")

    loopback = EgressPolicy.parse("127.0.0.1")
    with provider_server(slow) as server, guarded_client(policy=loopback, timeout=0.2) as client:
        destination = parse_destination("slack", {"webhook_url": server.url_for("/services/T/B/X")})
        with pytest.raises(RetryableDeliveryError, match="timed out"):
            SlackChannel(client).send(page_en, destination)


def test_a_huge_answer_is_read_only_up_to_the_cap(page_en: Message, http_client: httpx.Client) -> None:
    def huge(_: Received) -> Reply:
        return _fixed(400, body=b"x" * 5_000_000)

    with provider_server(huge) as server:
        destination = parse_destination("slack", {"webhook_url": server.url_for("/services/T/B/X")})
        with pytest.raises(PermanentDeliveryError) as caught:
            SlackChannel(http_client).send(page_en, destination)
    assert len(caught.value.reason) < 1_000

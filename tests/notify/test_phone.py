"""SMS and voice through the Twilio adapter, against a local server speaking Twilio's REST API."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import parse_qs

import httpx
import pytest

from tests.notify.notify_fakes import Received, Reply, json_reply, provider_server, twilio_api
from zhiban.core.errors import InvalidInput
from zhiban.notify import Message, PermanentDeliveryError, RetryableDeliveryError, channel_for, parse_destination
from zhiban.notify.channels.phone import SmsChannel, TwilioProvider, VoiceChannel
from zhiban.notify.registry import ChannelDeps

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-auth-token"
FROM = "+15005550006"


def provider(base_url: str, client: httpx.Client, token: str = TOKEN) -> TwilioProvider:
    return TwilioProvider(SID, token, FROM, base_url=base_url, client=client)


def test_sms_sends_the_short_form(page_zh: Message, http_client: httpx.Client) -> None:
    with provider_server(twilio_api(SID, TOKEN)) as server:
        result = SmsChannel(provider(server.url, http_client)).send(
            page_zh, parse_destination("sms", {"to": "+8613800138000"})
        )
    assert result.provider_id is not None and result.provider_id.startswith("SM")
    assert result.detail == "queued"
    form = {key: values[0] for key, values in parse_qs(server.received[0].body.decode()).items()}
    assert form == {"To": "+8613800138000", "From": FROM, "Body": page_zh.short_text}
    assert "https://desk.example.com/ack/inc-42?t=abc" in form["Body"]


def test_voice_call_reads_the_spoken_form_twice_in_the_message_language(
    page_zh: Message, http_client: httpx.Client
) -> None:
    with provider_server(twilio_api(SID, TOKEN)) as server:
        result = VoiceChannel(provider(server.url, http_client)).send(
            page_zh, parse_destination("voice", {"to": "+8613800138000"})
        )
    assert result.provider_id is not None and result.provider_id.startswith("CA")
    request = server.received[0]
    assert request.path == f"/2010-04-01/Accounts/{SID}/Calls.json"
    twiml = ET.fromstring(parse_qs(request.body.decode())["Twiml"][0])
    says = twiml.findall("Say")
    assert len(says) == 2
    assert says[0].get("language") == "zh-CN"
    assert says[0].text == page_zh.spoken_text
    assert "http" not in (says[0].text or "")


def test_twiml_escapes_markup_in_the_text(http_client: httpx.Client) -> None:
    message = Message(subject="x", text="x", idempotency_key="k", spoken_text="A <b>&</b> B")
    with provider_server(twilio_api(SID, TOKEN)) as server:
        VoiceChannel(provider(server.url, http_client)).send(
            message, parse_destination("voice", {"to": "+15551234567"})
        )
    twiml = ET.fromstring(parse_qs(server.received[0].body.decode())["Twiml"][0])
    assert twiml.find("Say") is not None and twiml.find("Say").text == "A <b>&</b> B"  # type: ignore[union-attr]


def test_bad_credentials_and_bad_number_are_permanent(page_en: Message, http_client: httpx.Client) -> None:
    with provider_server(twilio_api(SID, TOKEN)) as server:
        with pytest.raises(PermanentDeliveryError, match="20003") as caught:
            SmsChannel(provider(server.url, http_client, token="wrong")).send(
                page_en, parse_destination("sms", {"to": "+15551234567"})
            )
        assert caught.value.status == 401
        with pytest.raises(PermanentDeliveryError, match="21211"):
            provider(server.url, http_client).send_sms("+1555abc", "hi")


@pytest.mark.parametrize(
    "reply",
    [
        json_reply(429, {"code": 20429, "message": "Too Many Requests", "status": 429}, {"Retry-After": "5"}),
        json_reply(503, {"code": 20503, "message": "Service Unavailable", "status": 503}),
    ],
)
def test_rate_limit_and_outage_are_retryable(page_en: Message, http_client: httpx.Client, reply: Reply) -> None:
    def respond(_: Received) -> Reply:
        return reply

    with provider_server(respond) as server, pytest.raises(RetryableDeliveryError) as caught:
        SmsChannel(provider(server.url, http_client)).send(page_en, parse_destination("sms", {"to": "+15551234567"}))
    assert caught.value.status == reply[0]


def test_sms_without_a_provider_is_permanent(page_en: Message) -> None:
    channel = channel_for("sms", ChannelDeps())
    with pytest.raises(PermanentDeliveryError, match="no sms provider"):
        channel.send(page_en, parse_destination("sms", {"to": "+15551234567"}))


def test_provider_from_url(http_client: httpx.Client, page_en: Message) -> None:
    with provider_server(twilio_api(SID, TOKEN)) as server:
        host = server.url.removeprefix("http://")
        twilio = TwilioProvider.from_url(
            f"twilio://{SID}:{TOKEN}@{host}?from=%2B15005550006&scheme=http", client=http_client
        )
        receipt = twilio.send_sms("+15551234567", "hello")
    assert receipt.status == "queued"
    with pytest.raises(InvalidInput):
        TwilioProvider.from_url("twilio://sid@api.twilio.com")
    assert TOKEN not in repr(twilio)

"""Feishu, DingTalk and WeCom robots against local servers that check signatures as documented."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import pytest

from tests.notify.notify_fakes import (
    Received,
    Reply,
    dingtalk_robot,
    feishu_bot,
    json_reply,
    provider_server,
    wecom_robot,
)
from zhiban.core.clock import FrozenClock, SystemClock
from zhiban.notify import Message, PermanentDeliveryError, RetryableDeliveryError, parse_destination
from zhiban.notify.channels.dingtalk import DingTalkChannel
from zhiban.notify.channels.feishu import FeishuChannel
from zhiban.notify.channels.wecom import WeComChannel

FEISHU_SECRET = "fs-secret-Q1w2E3"
# A secret whose signs often contain + and /, which must be percent-encoded on the query string.
DING_SECRET = "SEC0f4d8c1e9b7a6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0"
DING_TOKEN = "dt-token-123"
WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"


def late_clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC) - timedelta(hours=2))


# --- Feishu --------------------------------------------------------------------------------------


@pytest.mark.parametrize("format_", ["card", "text"])
def test_feishu_signed_message_is_accepted(page_zh: Message, http_client: httpx.Client, format_: str) -> None:
    with provider_server(feishu_bot(FEISHU_SECRET)) as server:
        config = {
            "webhook_url": server.url_for("/open-apis/bot/v2/hook/abc"),
            "secret": FEISHU_SECRET,
            "format": format_,
        }
        result = FeishuChannel(http_client, SystemClock()).send(page_zh, parse_destination("feishu", config))
    assert result.status == 200
    payload = server.received[0].json()
    assert len(payload["timestamp"]) == 10  # seconds, not milliseconds
    if format_ == "card":
        card = payload["card"]
        assert card["header"]["title"]["content"] == page_zh.subject
        assert card["header"]["template"] == "red"
        assert "**级别**：P1" in card["elements"][0]["content"]
        urls = [action["url"] for action in card["elements"][1]["actions"]]
        assert urls[0] == "https://desk.example.com/ack/inc-42?t=abc"
    else:
        assert payload["content"]["text"].startswith(page_zh.subject)


def test_feishu_unsigned_bot_gets_no_sign_fields(page_en: Message, http_client: httpx.Client) -> None:
    with provider_server(feishu_bot(None)) as server:
        destination = parse_destination("feishu", {"webhook_url": server.url_for("/open-apis/bot/v2/hook/abc")})
        FeishuChannel(http_client).send(page_en, destination)
    assert "sign" not in server.received[0].json()


def test_feishu_sign_failure_is_permanent(page_en: Message, http_client: httpx.Client) -> None:
    with provider_server(feishu_bot(FEISHU_SECRET)) as server:
        config = {"webhook_url": server.url_for("/hook"), "secret": "not-the-secret"}
        with pytest.raises(PermanentDeliveryError, match="19021"):
            FeishuChannel(http_client).send(page_en, parse_destination("feishu", config))


def test_feishu_refuses_a_timestamp_older_than_an_hour(page_en: Message, http_client: httpx.Client) -> None:
    with provider_server(feishu_bot(FEISHU_SECRET)) as server:
        config = {"webhook_url": server.url_for("/hook"), "secret": FEISHU_SECRET}
        with pytest.raises(PermanentDeliveryError, match="19021"):
            FeishuChannel(http_client, late_clock()).send(page_en, parse_destination("feishu", config))


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (json_reply(200, {"code": 11232, "data": {}, "msg": "frequency limited psm[lark.oapi.app_platform_runtime]"}),
         RetryableDeliveryError),
        (json_reply(200, {"code": 19024, "data": {}, "msg": "Key Words Not Found"}), PermanentDeliveryError),
        (json_reply(400, {"code": 9499, "data": {}, "msg": "Bad Request"}), PermanentDeliveryError),
        (json_reply(200, {"StatusCode": 0, "StatusMessage": "success"}), None),
        (json_reply(500, {"code": 500, "msg": "internal"}), RetryableDeliveryError),
        ((200, {"Content-Type": "text/html"}, b"<html>proxy</html>"), PermanentDeliveryError),
    ],
)  # fmt: skip
def test_feishu_codes_are_classified(
    page_en: Message, http_client: httpx.Client, reply: Reply, kind: type[Exception] | None
) -> None:
    def respond(_: Received) -> Reply:
        return reply

    with provider_server(respond) as server:
        destination = parse_destination("feishu", {"webhook_url": server.url_for("/hook")})
        if kind is None:
            assert FeishuChannel(http_client).send(page_en, destination).status == 200
        else:
            with pytest.raises(kind):
                FeishuChannel(http_client).send(page_en, destination)


# --- DingTalk ------------------------------------------------------------------------------------


def ding_config(server_url: str, **extra: object) -> dict[str, object]:
    return {"webhook_url": f"{server_url}/robot/send?access_token={DING_TOKEN}", "secret": DING_SECRET, **extra}


def test_dingtalk_signed_markdown_is_accepted_many_times(page_zh: Message, http_client: httpx.Client) -> None:
    # Several sends, so signs containing "+" or "/" (about 3 in 4 of them) are exercised.
    channel = DingTalkChannel(http_client, SystemClock())
    with provider_server(dingtalk_robot(DING_TOKEN, DING_SECRET)) as server:
        destination = parse_destination("dingtalk", ding_config(server.url, at_mobiles=["13800138000"]))
        for _ in range(5):
            channel.send(page_zh, destination)
    request = server.received[0]
    assert len(request.query()["timestamp"]) == 13  # milliseconds
    payload = request.json()
    assert payload["msgtype"] == "markdown"
    assert payload["markdown"]["title"] == page_zh.subject
    assert "[确认](https://desk.example.com/ack/inc-42?t=abc)" in payload["markdown"]["text"]
    assert payload["markdown"]["text"].endswith("@13800138000")
    assert payload["at"] == {"atMobiles": ["13800138000"], "isAtAll": False}


def test_dingtalk_sign_with_plus_and_slash_is_percent_encoded(page_en: Message, http_client: httpx.Client) -> None:
    # Pick a send time whose sign (by DingTalk's formula, computed here) contains both "+" and "/".
    start = datetime.now(UTC)
    for offset_ms in range(10_000):
        moment = start + timedelta(milliseconds=offset_ms)
        timestamp_ms = int(moment.timestamp() * 1000)
        digest = hmac.new(DING_SECRET.encode(), f"{timestamp_ms}\n{DING_SECRET}".encode(), hashlib.sha256).digest()
        sign = base64.b64encode(digest).decode()
        if "+" in sign and "/" in sign:
            break
    with provider_server(dingtalk_robot(DING_TOKEN, DING_SECRET)) as server:
        DingTalkChannel(http_client, FrozenClock(moment)).send(
            page_en, parse_destination("dingtalk", ding_config(server.url))
        )
    raw_query = server.received[0].raw_query
    assert f"sign={quote(sign, safe='')}" in raw_query
    assert f"timestamp={timestamp_ms}" in raw_query
    assert raw_query.startswith(f"access_token={DING_TOKEN}&")


def test_dingtalk_text_format(page_en: Message, http_client: httpx.Client) -> None:
    with provider_server(dingtalk_robot(DING_TOKEN, DING_SECRET)) as server:
        DingTalkChannel(http_client).send(
            page_en, parse_destination("dingtalk", ding_config(server.url, format="text"))
        )
    assert server.received[0].json()["text"]["content"].startswith(page_en.subject)


def test_dingtalk_wrong_secret_and_stale_timestamp_are_permanent(page_en: Message, http_client: httpx.Client) -> None:
    with provider_server(dingtalk_robot(DING_TOKEN, DING_SECRET)) as server:
        wrong = parse_destination("dingtalk", {**ding_config(server.url), "secret": "SECwrong"})
        with pytest.raises(PermanentDeliveryError, match="310000"):
            DingTalkChannel(http_client).send(page_en, wrong)
        with pytest.raises(PermanentDeliveryError, match="310000"):
            DingTalkChannel(http_client, late_clock()).send(
                page_en, parse_destination("dingtalk", ding_config(server.url))
            )


def test_dingtalk_too_fast_is_retryable_after_ten_minutes(page_en: Message, http_client: httpx.Client) -> None:
    def respond(_: Received) -> Reply:
        return json_reply(200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"})

    with provider_server(respond) as server, pytest.raises(RetryableDeliveryError) as caught:
        DingTalkChannel(http_client).send(page_en, parse_destination("dingtalk", ding_config(server.url)))
    assert caught.value.retry_after == timedelta(minutes=10)


# --- WeCom ---------------------------------------------------------------------------------------


def test_wecom_markdown_is_accepted(page_zh: Message, http_client: httpx.Client) -> None:
    with provider_server(wecom_robot(WECOM_KEY)) as server:
        url = server.url_for(f"/cgi-bin/webhook/send?key={WECOM_KEY}")
        WeComChannel(http_client).send(page_zh, parse_destination("wecom", {"webhook_url": url}))
    payload = server.received[0].json()
    assert payload["msgtype"] == "markdown"
    assert payload["markdown"]["content"] == page_zh.markdown


def test_wecom_long_markdown_is_cut_to_4096_bytes(http_client: httpx.Client) -> None:
    long_message = Message(subject="长消息", text="卡顿", idempotency_key="k", markdown="卡顿" * 3000, language="zh")
    with provider_server(wecom_robot(WECOM_KEY)) as server:
        url = server.url_for(f"/cgi-bin/webhook/send?key={WECOM_KEY}")
        WeComChannel(http_client).send(long_message, parse_destination("wecom", {"webhook_url": url}))
    content = server.received[0].json()["markdown"]["content"]
    assert len(content.encode()) <= 4096
    assert content.endswith("…")


def test_wecom_text_mentions_mobiles(page_en: Message, http_client: httpx.Client) -> None:
    with provider_server(wecom_robot(WECOM_KEY)) as server:
        url = server.url_for(f"/cgi-bin/webhook/send?key={WECOM_KEY}")
        config = {"webhook_url": url, "format": "text", "mentioned_mobiles": ["13800138000"]}
        WeComChannel(http_client).send(page_en, parse_destination("wecom", config))
    assert server.received[0].json()["text"]["mentioned_mobile_list"] == ["13800138000"]


def test_wecom_wrong_key_is_permanent_and_frequency_limit_retryable(
    page_en: Message, http_client: httpx.Client
) -> None:
    with provider_server(wecom_robot(WECOM_KEY)) as server:
        url = server.url_for("/cgi-bin/webhook/send?key=wrong")
        with pytest.raises(PermanentDeliveryError, match="93000"):
            WeComChannel(http_client).send(page_en, parse_destination("wecom", {"webhook_url": url}))

    def limited(_: Received) -> Reply:
        return json_reply(200, {"errcode": 45009, "errmsg": "api freq out of limit"})

    with provider_server(limited) as server:
        url = server.url_for(f"/cgi-bin/webhook/send?key={WECOM_KEY}")
        with pytest.raises(RetryableDeliveryError) as caught:
            WeComChannel(http_client).send(page_en, parse_destination("wecom", {"webhook_url": url}))
    assert caught.value.retry_after == timedelta(minutes=1)

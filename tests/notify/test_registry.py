"""Channel types, destination validation and the message's own checks."""

from __future__ import annotations

import pytest

from zhiban.core.errors import InvalidInput
from zhiban.notify import (
    CHANNEL_TYPES,
    Link,
    Message,
    PermanentDeliveryError,
    channel_for,
    channel_type,
    parse_destination,
)
from zhiban.notify.registry import ChannelDeps

VALID = {
    "email": {"to": ["oncall@vendor.example"]},
    "webhook": {"url": "https://hooks.liveco.example/zhiban", "secret": "0123456789abcdef"},
    "slack": {"webhook_url": "https://hooks.slack.com/services/T0/B0/X"},
    "feishu": {"webhook_url": "https://open.feishu.cn/open-apis/bot/v2/hook/abc", "secret": "s"},
    "dingtalk": {"webhook_url": "https://oapi.dingtalk.com/robot/send?access_token=abc"},
    "wecom": {"webhook_url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc"},
    "sms": {"to": "+8613800138000"},
    "voice": {"to": "+8613800138000"},
    "slack_thread": {"bot_token": "xoxb-1", "channel": "C0123", "thread_ts": "1700000000.000100"},
    "feishu_thread": {"app_id": "cli_a1", "app_secret": "s", "message_id": "om_1"},
    "dingtalk_session": {"url": "https://oapi.dingtalk.com/robot/sendBySession?session=abc"},
}


def test_every_channel_type_has_a_schema_a_valid_example_and_a_channel() -> None:
    assert {kind.name for kind in CHANNEL_TYPES} == set(VALID)
    for kind in CHANNEL_TYPES:
        schema = kind.config_schema()
        assert schema["type"] == "object" and schema["properties"]
        destination = parse_destination(kind.name, VALID[kind.name], name="x")
        assert destination.rate_key == f"{kind.name}:x"
        assert channel_for(kind.name, ChannelDeps()).type_name == kind.name


@pytest.mark.parametrize(
    ("type_name", "config", "complaint"),
    [
        ("email", {"to": []}, "to"),
        ("email", {"to": ["not-an-address"]}, "e-mail address"),
        ("email", {"to": ["a@b.example"], "bcc": ["x@y.example"]}, "bcc"),
        ("webhook", {"url": "ftp://x.example/", "secret": "0123456789abcdef"}, "http(s) URL"),
        ("webhook", {"url": "https://x.example/", "secret": "short"}, "secret"),
        ("dingtalk", {"webhook_url": "https://oapi.dingtalk.com/robot/send"}, "access_token"),
        ("wecom", {"webhook_url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"}, "key="),
        ("feishu", {"webhook_url": "https://open.feishu.cn/x", "format": "post"}, "format"),
        ("sms", {"to": "13800138000"}, "E.164"),
        ("pager", {}, "unknown channel type"),
    ],
)
def test_bad_destinations_are_refused_with_a_clear_reason(
    type_name: str, config: dict[str, object], complaint: str
) -> None:
    with pytest.raises(InvalidInput, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        parse_destination(type_name, config)


def test_secrets_do_not_show_in_repr() -> None:
    destination = parse_destination("webhook", VALID["webhook"])
    assert "0123456789abcdef" not in repr(destination)


def test_a_destination_of_another_type_is_a_permanent_failure() -> None:
    message = Message(subject="s", text="t", idempotency_key="k")
    with pytest.raises(PermanentDeliveryError):
        channel_for("slack").send(message, parse_destination("wecom", VALID["wecom"]))


def test_channel_type_titles_are_bilingual() -> None:
    assert channel_type("dingtalk").title_zh == "钉钉"


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": "two\nlines"},
        {"subject": ""},
        {"subject": "x" * 301},
        {"idempotency_key": "has space"},
        {"language": "fr"},
        {"event": "Has Caps"},
        {"message_id": "no-brackets@example.com"},
        {"references": ("<ok@example.com>", "bad")},
        {"metadata": {"nested": {"a": 1}}},
        {"metadata": {"k": "v" * 1001}},
        {"html": ""},
    ],
)
def test_bad_messages_are_refused(fields: dict[str, object]) -> None:
    base: dict[str, object] = {"subject": "s", "text": "t", "idempotency_key": "k"}
    with pytest.raises(InvalidInput):
        Message(**{**base, **fields})  # type: ignore[arg-type]


def test_links_must_be_http() -> None:
    with pytest.raises(InvalidInput):
        Link("acknowledge", "javascript:alert(1)", "Ack")

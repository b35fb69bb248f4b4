"""The chat thread channels against real local servers answering like Slack's and Feishu's APIs: what they
post, what they take back (the platform's message id), and how each answer is classified."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.notify.notify_fakes import Received, Reply, json_reply, provider_server
from tests.tenancy import bearer, build_world
from zhiban.core.errors import InvalidInput
from zhiban.desk import Desk
from zhiban.notify import Message, PermanentDeliveryError, RetryableDeliveryError, parse_destination
from zhiban.notify import service as notify
from zhiban.notify.channels.chat_threads import FeishuThreadChannel, SlackThreadChannel
from zhiban.notify.egress import EgressPolicy, guarded_client


def _client() -> httpx.Client:
    return guarded_client(policy=EgressPolicy.parse("127.0.0.1"), timeout=httpx.Timeout(2.0, connect=1.0))


def _message(text: str, key: str = "chat.reply.1") -> Message:
    return Message(subject="Ticket #1", text=text, idempotency_key=key, event="chat.reply")


def test_slack_thread_posts_escaped_text_and_classifies_answers() -> None:
    answers = iter(
        [
            json_reply(200, {"ok": True, "ts": "1763665200.000900"}),
            json_reply(200, {"ok": False, "error": "ratelimited"}),
            json_reply(200, {"ok": False, "error": "invalid_auth"}),
            json_reply(503, {"ok": False}),
        ]
    )
    with provider_server(lambda request: next(answers)) as server:
        config = {"api_url": server.url + "/api", "bot_token": "xoxb-9", "channel": "C1", "thread_ts": "1.0001"}
        destination = parse_destination("slack_thread", config, "slack:C1")
        channel = SlackThreadChannel(_client())
        result = channel.send(_message("see <!channel> & <@U0ALL>"), destination)
        assert result.provider_id == "1763665200.000900"
        sent = server.received[0]
        assert sent.path == "/api/chat.postMessage" and sent.headers["authorization"] == "Bearer xoxb-9"
        assert sent.json() == {
            "channel": "C1",
            "thread_ts": "1.0001",
            "text": "see &lt;!channel&gt; &amp; &lt;@U0ALL&gt;",
        }
        with pytest.raises(RetryableDeliveryError):
            channel.send(_message("x"), destination)
        with pytest.raises(PermanentDeliveryError):
            channel.send(_message("x"), destination)
        with pytest.raises(RetryableDeliveryError):
            channel.send(_message("x"), destination)


def test_feishu_thread_keeps_its_tenant_token_and_renews_a_refused_one() -> None:
    tokens = iter(["t-1", "t-2"])
    state = {"valid": ""}

    def respond(request: Received) -> Reply:
        if request.path.endswith("/tenant_access_token/internal"):
            if request.json()["app_secret"] != "s3cret":
                return json_reply(200, {"code": 10014, "msg": "app secret invalid"})
            state["valid"] = next(tokens)
            return json_reply(200, {"code": 0, "tenant_access_token": state["valid"], "expire": 7200})
        if request.headers.get("authorization") != f"Bearer {state['valid']}":
            return json_reply(200, {"code": 99991663, "msg": "token invalid"})
        return json_reply(200, {"code": 0, "data": {"message_id": f"om_{len(request.body)}"}})

    with provider_server(respond) as server:
        config = {"api_url": server.url, "app_id": "cli_1", "app_secret": "s3cret", "message_id": "om_root"}
        destination = parse_destination("feishu_thread", config, "feishu:oc_1")
        channel = FeishuThreadChannel(_client())
        first = channel.send(_message('hi <at user_id="all">all</at>'), destination)
        channel.send(_message("again", "chat.reply.2"), destination)
        paths = [r.path for r in server.received]
        assert paths.count("/open-apis/auth/v3/tenant_access_token/internal") == 1  # kept for the second send
        reply = server.received[1]
        assert reply.path == "/open-apis/im/v1/messages/om_root/reply" and first.provider_id
        text = json.loads(reply.json()["content"])["text"]
        assert '<at user_id="all">' not in text and "all</at>" in text  # shown, not an @all
        state["valid"] = "revoked"
        with pytest.raises(RetryableDeliveryError):
            channel.send(_message("x", "chat.reply.3"), destination)
        channel.send(_message("x", "chat.reply.4"), destination)  # a new token was fetched
        assert [r.path for r in server.received].count("/open-apis/auth/v3/tenant_access_token/internal") == 2
        wrong = parse_destination("feishu_thread", dict(config, app_id="cli_2", app_secret="nope"), "feishu:oc_1")
        with pytest.raises(PermanentDeliveryError):
            channel.send(_message("x", "chat.reply.5"), wrong)


def test_a_chat_thread_is_not_a_persons_contact_method(client: TestClient, desk: Desk) -> None:
    world = build_world(desk)
    config = {"bot_token": "xoxb-1", "channel": "C1", "thread_ts": "1.0001"}
    body = {"channel": "slack_thread", "config": config, "person_id": world.agent_id}
    refused = client.post("/api/v1/contact-methods", json=body, headers=bearer(world.agent_token))
    assert refused.status_code == 422  # the API's own list of channels stops it first
    with pytest.raises(InvalidInput, match="not a channel for a person's contact methods"), desk.transaction() as s:
        notify.add_contact_method(s, desk.clock, person_id=world.agent_id, channel="slack_thread", config=config)

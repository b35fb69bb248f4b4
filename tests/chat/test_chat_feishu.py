"""Feishu groups as a door: events encrypted with the app's Encrypt Key as lark-oapi decrypts them and signed as
its dispatcher checks them; a group message -> ticket -> an agent's public reply appears in the thread exactly
once (a real local server answering like Feishu's open API receives it)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import lark_oapi as lark
from fastapi.testclient import TestClient
from lark_oapi.core.model import RawRequest
from lark_oapi.core.utils.decryptor import AESCipher
from sqlalchemy import select

from tests.chat.chat_kit import (
    FEISHU_BOT,
    FEISHU_CHAT,
    FEISHU_KEY,
    FEISHU_TOKEN,
    comments_of,
    count,
    feishu_api,
    feishu_encrypt,
    feishu_message,
    feishu_post,
    feishu_request,
    pages_to,
    setup,
    tickets_of,
)
from tests.incidents.incident_kit import drain, worker
from tests.notify.notify_fakes import provider_server
from tests.tenancy import bearer
from zhiban.chat import feishu
from zhiban.chat.store import ChatEventRow, ChatMessageRow, ChatThreadRow
from zhiban.desk import Desk
from zhiban.tickets.store import TicketRow

BAD_SIGNATURE = "https://zhiban.dev/problems/chat-bad-signature"


def test_zhiban_decrypts_what_lark_oapi_decrypts() -> None:
    plain = json.dumps({"challenge": "ajls384kdjx98XX", "token": FEISHU_TOKEN, "type": "url_verification"}).encode()
    encrypted = feishu_encrypt(plain)
    assert feishu.decrypt(FEISHU_KEY, encrypted) == AESCipher(FEISHU_KEY).decrypt_str(encrypted).encode() == plain
    # Feishu's documented example: key "test key", plaintext "hello world".
    example = "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk="
    assert feishu.decrypt("test key", example) == AESCipher("test key").decrypt_str(example).encode() == b"hello world"


def test_lark_oapi_dispatcher_and_zhiban_accept_the_same_request(client: TestClient, desk: Desk) -> None:
    setup(client, desk)
    doc = feishu_message("ev_lark_1", "推流失败 push fails", "om_lark_1")
    body, headers = feishu_request(desk, doc)
    heard: list[Any] = []
    handler = (
        lark.EventDispatcherHandler.builder(FEISHU_KEY, FEISHU_TOKEN)
        .register_p2_im_message_receive_v1(heard.append)
        .build()
    )
    request = RawRequest()
    request.uri, request.headers, request.body = "/api/v1/chat/feishu/events", headers, body
    assert handler.do(request).status_code == 200 and heard[0].event.message.chat_id == FEISHU_CHAT
    filed = client.post("/api/v1/chat/feishu/events", content=body, headers=headers)
    assert filed.status_code == 200 and filed.json()["action"] == "created"
    # A signature lark-oapi refuses, zhiban refuses too.
    bad_body, bad_headers = feishu_request(desk, feishu_message("ev_lark_2", "x", "om_lark_2"), sign_key="wrong-key")
    request.headers, request.body = bad_headers, bad_body
    assert handler.do(request).status_code == 500  # lark-oapi's answer to a failed check
    refused = client.post("/api/v1/chat/feishu/events", content=bad_body, headers=bad_headers)
    assert refused.status_code == 401 and refused.json()["type"] == BAD_SIGNATURE


def test_the_challenge_and_every_refusal(client: TestClient, desk: Desk) -> None:
    setup(client, desk)
    challenge = {"challenge": "ajls384kdjx98XX", "token": FEISHU_TOKEN, "type": "url_verification"}
    body = json.dumps({"encrypt": feishu_encrypt(json.dumps(challenge).encode())}).encode()
    answered = client.post("/api/v1/chat/feishu/events", content=body)
    assert answered.status_code == 200 and answered.json() == {"challenge": "ajls384kdjx98XX"}
    wrong_token = dict(challenge, token="guessed")
    body = json.dumps({"encrypt": feishu_encrypt(json.dumps(wrong_token).encode())}).encode()
    assert client.post("/api/v1/chat/feishu/events", content=body).status_code == 401
    message = feishu_message("ev_r1", "hello", "om_r1")
    # Encrypted with another key; a plain event to an app with an Encrypt Key; a wrong verification token.
    other = feishu_post(client, desk, message, key="another-apps-key")
    assert other.status_code == 401 and other.json()["type"] == BAD_SIGNATURE
    plain = client.post("/api/v1/chat/feishu/events", json=message)
    assert plain.status_code == 401 and plain.json()["type"] == BAD_SIGNATURE
    assert feishu_post(client, desk, feishu_message("ev_r2", "hi", "om_r2", token="guessed")).status_code == 401
    # Signed and encrypted right, but the signature is missing or made six minutes ago.
    body, headers = feishu_request(desk, message)
    headers.pop("X-Lark-Signature")
    assert client.post("/api/v1/chat/feishu/events", content=body, headers=headers).status_code == 401
    body, headers = feishu_request(desk, message)
    desk.clock.advance(timedelta(minutes=6))  # type: ignore[attr-defined]
    late = client.post("/api/v1/chat/feishu/events", content=body, headers=headers)
    assert late.status_code == 401 and "window" in late.json()["detail"]
    # Not JSON, not base64, a ciphertext of the wrong length, oversized.
    assert client.post("/api/v1/chat/feishu/events", content=b"{{").status_code == 422
    assert client.post("/api/v1/chat/feishu/events", json={"encrypt": "%%%"}).status_code == 422
    assert client.post("/api/v1/chat/feishu/events", json={"encrypt": "AAAA"}).status_code == 422
    huge = client.post("/api/v1/chat/feishu/events", json={"encrypt": "A" * 70_000})
    assert huge.status_code == 413
    # Verified, but no message in it.
    broken = feishu_message("ev_r3", "x", "om_r3")
    broken["event"]["message"].pop("chat_id")
    answer = feishu_post(client, desk, broken)
    assert answer.status_code == 422 and answer.json()["type"] == "https://zhiban.dev/problems/chat-malformed-event"
    # A group not bound: 200 (Feishu would retry anything else for hours) and no effect.
    stranger = feishu_post(client, desk, feishu_message("ev_r4", "help", "om_r4", chat_id="oc_stranger"))
    assert stranger.status_code == 200 and stranger.json()["action"] == "unbound"
    for table in (TicketRow, ChatEventRow, ChatMessageRow, ChatThreadRow):
        assert count(desk, table) == 0


def test_a_group_message_becomes_a_ticket_and_the_agents_reply_appears_in_the_thread_once(
    client: TestClient, desk: Desk, allow_loopback_egress: None
) -> None:
    with provider_server(feishu_api()) as server:
        chat = setup(client, desk, feishu_api=server.url)
        root = "om_root_8812"
        first = feishu_post(client, desk, feishu_message("ev_1", "直播卡顿 stream stutters in room-8812", root))
        assert first.json()["action"] == "created", first.text
        ticket_id = first.json()["ticket_id"]
        [ticket] = tickets_of(desk)
        assert (ticket.channel, ticket.priority, ticket.requester_id) == ("chat", "P3", chat.world.alice_id)
        assert comments_of(desk, ticket_id) == ["直播卡顿 stream stutters in room-8812"]  # the @bot is not filed
        # Feishu redelivers the event (same event_id): once.
        assert (
            feishu_post(client, desk, feishu_message("ev_1", "直播卡顿 stream stutters in room-8812", root)).json()[
                "action"
            ]
            == "duplicate"
        )
        # A reply in the thread (no mention needed) is the customer's message.
        reply = feishu_message("ev_2", "还是卡 still stutters", "om_reply_a", root_id=root, mention_bot=False)
        assert feishu_post(client, desk, reply).json()["action"] == "replied"
        agent = bearer(chat.world.agent_token)
        said = client.post(
            f"/api/v1/tickets/{ticket_id}/comments", json={"body": "已定位到边缘节点，正在切换"}, headers=agent
        )
        assert said.status_code == 201
        w = worker(desk)
        drain(w)
        desk.clock.advance(timedelta(minutes=10))  # type: ignore[attr-defined]
        drain(w)
        replies = [r for r in server.received if r.path.endswith("/reply")]
        assert len(replies) == 1
        assert replies[0].path == f"/open-apis/im/v1/messages/{root}/reply"
        assert "已定位到边缘节点，正在切换" in json.loads(replies[0].json()["content"])["text"]
        # The reply's own event comes back from Feishu, sent by the app: ignored, no loop, still once.
        with desk.sessions() as s:
            out = s.scalar(select(ChatMessageRow).where(ChatMessageRow.direction == "out"))
            assert out is not None and out.state == "sent" and out.message_id == "om_reply_1"
        echo = feishu_message(
            "ev_3",
            "[#1] Agent Wang: 已定位",
            "om_reply_1",
            root_id=root,
            mention_bot=False,
            sender=FEISHU_BOT,
            sender_type="app",
        )
        assert feishu_post(client, desk, echo).json()["action"] == "ignored"
        drain(w)
        assert len([r for r in server.received if r.path.endswith("/reply")]) == 1
        assert len(comments_of(desk, ticket_id)) == 3


def test_an_urgent_word_in_the_group_pages_the_engineer_on_duty(client: TestClient, desk: Desk) -> None:
    chat = setup(client, desk)
    filed = feishu_post(client, desk, feishu_message("ev_u1", "全部房间宕机 all rooms down", "om_u1"))
    assert filed.json()["action"] == "created"
    assert tickets_of(desk)[0].priority == "P1" and pages_to(desk, chat.primary) == 1
    # "download" is not "down": Latin words stand alone.
    calm = feishu_post(client, desk, feishu_message("ev_u2", "download link for the SDK?", "om_u2"))
    assert calm.json()["action"] == "created" and tickets_of(desk)[1].priority == "P3"
    assert pages_to(desk, chat.primary) == 1

"""DingTalk groups as a door: robot callbacks in the shape dingtalk-stream's ChatbotMessage reads, signed with the
robot's secret as DingTalk signs them; the conversation is the thread; an agent's reply is posted once to the
sessionWebhook the last message carried (a real local server), in the body dingtalk-stream's reply_text posts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

from dingtalk_stream import ChatbotHandler, ChatbotMessage
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.chat.chat_kit import comments_of, count, pages_to, setup, tickets_of
from tests.incidents.incident_kit import drain, worker
from tests.notify.notify_fakes import Received, Reply, json_reply, provider_server
from tests.tenancy import bearer
from zhiban.chat.store import ChatEventRow, ChatMessageRow, ChatThreadRow
from zhiban.desk import Desk
from zhiban.tickets.store import TicketRow

SECRET = "SECxdingtalk-robot-app-secret-0123"
CONVERSATION = "cid6KeBBLoveMJOGXoYKF5x7EeiodoA=="
ALICE = "manager1234"
BAD_SIGNATURE = "https://zhiban.dev/problems/chat-bad-signature"


def _bind(client: TestClient, desk: Desk) -> Any:
    chat = setup(client, desk)
    admin = bearer(chat.world.admin_token)
    app = {"app_secret": SECRET, "app_id": "dingrobot01", "bot_user_id": "$:LWCP_v1:$robot"}
    assert client.put("/api/v1/chat/apps/dingtalk", json=app, headers=admin).status_code == 200
    group = {"platform": "dingtalk", "group_id": CONVERSATION, "organization": "liveco"}
    assert client.post("/api/v1/chat/groups", json=group, headers=admin).status_code == 201
    person = {"platform": "dingtalk", "user_id": ALICE, "person": chat.world.alice_id}
    assert client.put("/api/v1/chat/people", json=person, headers=admin).status_code == 200
    return chat


def _callback(msg_id: str, text: str, webhook: str, *, conversation: str = CONVERSATION) -> dict[str, Any]:
    doc = {
        "conversationId": conversation,
        "atUsers": [{"dingtalkId": "$:LWCP_v1:$robot"}],
        "chatbotCorpId": "dingcorp",
        "chatbotUserId": "$:LWCP_v1:$robot",
        "msgId": msg_id,
        "senderNick": "Alice",
        "isAdmin": False,
        "senderStaffId": ALICE,
        "sessionWebhookExpiredTime": 1763672400000,
        "createAt": 1763665200000,
        "senderCorpId": "dingcorp",
        "conversationType": "2",
        "senderId": "$:LWCP_v1:$alice",
        "conversationTitle": "LiveCo x Vendor",
        "isInAtList": True,
        "sessionWebhook": webhook,
        "text": {"content": " " + text},
        "robotCode": "dingrobot01",
        "msgtype": "text",
    }
    # The SDK reads it as the message DingTalk sends.
    parsed = ChatbotMessage.from_dict(doc)
    assert parsed.conversation_id == conversation and parsed.text.content.strip() == text
    assert parsed.session_webhook == webhook and parsed.message_id == msg_id
    return doc


def _post(client: TestClient, desk: Desk, doc: Any, *, secret: str = SECRET, skew_ms: int = 0) -> Any:
    timestamp = str(int(desk.clock.now().timestamp() * 1000) + skew_ms)
    # DingTalk's documented formula, written out here (not zhiban's).
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    headers = {"timestamp": timestamp, "sign": base64.b64encode(digest).decode()}
    body = doc if isinstance(doc, bytes) else json.dumps(doc, ensure_ascii=False).encode()
    return client.post(
        "/api/v1/chat/dingtalk/events", content=body, headers={**headers, "Content-Type": "application/json"}
    )


def _session_webhook() -> Any:
    def respond(request: Received) -> Reply:
        doc = request.json()
        if doc.get("msgtype") != "text" or not doc["text"]["content"]:
            return json_reply(200, {"errcode": 300001, "errmsg": "bad message"})
        return json_reply(200, {"errcode": 0, "errmsg": "ok"})

    return respond


def test_refusals_leave_nothing(client: TestClient, desk: Desk) -> None:
    _bind(client, desk)
    doc = _callback("msgA==", "help", "https://oapi.dingtalk.com/robot/sendBySession?session=s1")
    for answer in (
        _post(client, desk, doc, secret="another-robot"),
        _post(client, desk, doc, skew_ms=-6 * 60_000),
        client.post("/api/v1/chat/dingtalk/events", json=doc),
    ):
        assert answer.status_code == 401 and answer.json()["type"] == BAD_SIGNATURE
    assert _post(client, desk, b"{oops").status_code == 422
    broken = dict(doc, conversationId="has spaces")
    assert _post(client, desk, broken).status_code == 422
    stranger = _post(client, desk, _callback("msgB==", "help", doc["sessionWebhook"], conversation="cidOther=="))
    assert stranger.status_code == 200 and stranger.json()["action"] == "unbound"
    one_to_one = dict(doc, conversationType="1")
    assert _post(client, desk, one_to_one).json()["action"] == "ignored"
    for table in (TicketRow, ChatEventRow, ChatMessageRow, ChatThreadRow):
        assert count(desk, table) == 0


def test_a_group_message_files_pages_and_the_reply_goes_to_the_session_webhook_once(
    client: TestClient, desk: Desk, allow_loopback_egress: None
) -> None:
    with provider_server(_session_webhook()) as server:
        chat = _bind(client, desk)
        first = _post(
            client,
            desk,
            _callback("msg1==", "直播间全部宕机 room-8812", server.url + "/robot/sendBySession?session=s1"),
        )
        assert first.json()["action"] == "created", first.text
        ticket_id = first.json()["ticket_id"]
        [ticket] = tickets_of(desk)
        assert (ticket.channel, ticket.priority, ticket.requester_id) == ("chat", "P1", chat.world.alice_id)
        assert pages_to(desk, chat.primary) == 1
        # DingTalk delivers it again: once.
        again = _callback("msg1==", "直播间全部宕机 room-8812", server.url + "/robot/sendBySession?session=s1")
        assert _post(client, desk, again).json()["action"] == "duplicate"
        # The next @-message in the conversation answers the open ticket, and brings a fresher webhook.
        newer = server.url + "/robot/sendBySession?session=s2"
        assert _post(client, desk, _callback("msg2==", "还是不行", newer)).json()["action"] == "replied"
        assert comments_of(desk, ticket_id)[-1] == "还是不行"
        said = client.post(
            f"/api/v1/tickets/{ticket_id}/comments",
            json={"body": "正在切换 CDN"},
            headers=bearer(chat.world.agent_token),
        )
        assert said.status_code == 201
        w = worker(desk)
        drain(w)
        desk.clock.advance(timedelta(minutes=5))  # type: ignore[attr-defined]
        drain(w)
        assert len(server.received) == 1
        posted = server.received[0]
        assert posted.raw_query == "session=s2" and "正在切换 CDN" in posted.json()["text"]["content"]
        # dingtalk-stream's own reply to the same conversation posts the same kind of body.
        incoming = ChatbotMessage.from_dict(_callback("msg3==", "x", newer))
        assert ChatbotHandler().reply_text("from the SDK", incoming) == {"errcode": 0, "errmsg": "ok"}
        by_sdk = server.received[1]
        assert by_sdk.json()["msgtype"] == posted.json()["msgtype"] == "text"
        assert set(by_sdk.json()["text"]) == set(posted.json()["text"])
        with desk.sessions() as s:
            out = s.scalar(select(ChatMessageRow).where(ChatMessageRow.direction == "out"))
            assert out is not None and out.state == "sent"

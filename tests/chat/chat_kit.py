"""Shared pieces of the chat tests: a desk whose LiveCo has a Slack channel and a Feishu group bound, on-duty
paging set up as the duty tests do, events signed and encrypted by the platforms' own libraries, and local
HTTP servers that answer like Slack's and Feishu's APIs."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from Crypto.Cipher import AES
from Crypto.Util.Padding import pad
from fastapi.testclient import TestClient
from lark_oapi.core.utils.decryptor import AESCipher
from slack_sdk.signature import Clock as SlackClock
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import func, select

from tests.incidents.incident_kit import build as build_paging
from tests.notify.notify_fakes import Received, Reply, json_reply
from tests.tenancy import World, bearer, build_world
from zhiban.desk import Desk
from zhiban.notify.store import NotificationRow
from zhiban.tickets.store import CommentRow, TicketRow

SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
SLACK_BOT = "U0BOT0ZHIBAN"
SLACK_CHANNEL = "C0LIVECO01"
SLACK_ALICE = "U0ALICE001"
FEISHU_APP = "cli_a1b2c3d4e5"
FEISHU_SECRET = "feishu-app-secret-0123"
FEISHU_TOKEN = "feishu-verification-token-xyz"
FEISHU_KEY = "feishu-encrypt-key-abc123"
FEISHU_BOT = "ou_bot_zhiban"
FEISHU_CHAT = "oc_liveco_group"
FEISHU_ALICE = "ou_alice_liveco"
SERVICE = "media network cn-east"


@dataclass
class ChatWorld:
    world: World
    primary: str  # the engineer on duty the plan pages


class DeskClock(SlackClock):
    """slack_sdk's clock, reading the desk's test clock (slack_sdk checks the window with it)."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    def now(self) -> float:
        return self.desk.clock.now().timestamp()


def setup(client: TestClient, desk: Desk, *, slack_api: str = "", feishu_api: str = "") -> ChatWorld:
    """LiveCo on a standby plan that pages P1, both apps configured, LiveCo's channel and group bound."""
    world = build_world(desk)
    paging = build_paging(desk)
    admin = bearer(world.admin_token)
    support = {"mode": "standby", "paging_service": SERVICE, "urgent_priorities": ["P3"], "urgent_per_day": 1}
    assert client.put("/api/v1/sla/plans/enterprise", json={"support": support}, headers=admin).status_code == 200
    slack_app = {"signing_secret": SLACK_SECRET, "bot_token": SLACK_TOKEN, "bot_user_id": SLACK_BOT}
    if slack_api:
        slack_app["api_url"] = slack_api
    assert client.put("/api/v1/chat/apps/slack", json=slack_app, headers=admin).status_code == 200
    feishu_app = {
        "app_id": FEISHU_APP,
        "app_secret": FEISHU_SECRET,
        "verification_token": FEISHU_TOKEN,
        "encrypt_key": FEISHU_KEY,
        "bot_user_id": FEISHU_BOT,
    }
    if feishu_api:
        feishu_app["api_url"] = feishu_api
    assert client.put("/api/v1/chat/apps/feishu", json=feishu_app, headers=admin).status_code == 200
    for platform, group in (("slack", SLACK_CHANNEL), ("feishu", FEISHU_CHAT)):
        bound = client.post(
            "/api/v1/chat/groups",
            json={"platform": platform, "group_id": group, "organization": "liveco", "name": "LiveCo x Vendor"},
            headers=admin,
        )
        assert bound.status_code == 201, bound.text
    for platform, user in (("slack", SLACK_ALICE), ("feishu", FEISHU_ALICE)):
        mapped = client.put(
            "/api/v1/chat/people", json={"platform": platform, "user_id": user, "person": world.alice_id}, headers=admin
        )
        assert mapped.status_code == 200, mapped.text
    return ChatWorld(world, paging.primary)


# --- Slack ---------------------------------------------------------------------------------------------


def slack_event(
    event_id: str,
    text: str,
    ts: str,
    *,
    kind: str = "app_mention",
    channel: str = SLACK_CHANNEL,
    user: str = SLACK_ALICE,
    thread_ts: str | None = None,
    bot_id: str | None = None,
) -> dict[str, Any]:
    event: dict[str, Any] = {"type": kind, "user": user, "text": text, "ts": ts, "channel": channel, "event_ts": ts}
    if thread_ts:
        event["thread_ts"] = thread_ts
    if bot_id:
        event["bot_id"] = bot_id
    return {
        "token": "legacy-verification-token",
        "team_id": "T0VENDOR",
        "api_app_id": "A0ZHIBAN",
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(float(ts)),
        "authorizations": [{"user_id": SLACK_BOT, "is_bot": True}],
    }


def slack_post(client: TestClient, desk: Desk, doc: Any, *, secret: str = SLACK_SECRET, skew: int = 0) -> Any:
    """POST an event as Slack does: signed by slack_sdk's own SignatureVerifier with the app's secret."""
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    timestamp = str(int(desk.clock.now().timestamp()) + skew)
    signer = SignatureVerifier(secret, clock=DeskClock(desk))
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signer.generate_signature(timestamp=timestamp, body=body),
    }
    # What zhiban accepts, slack_sdk accepts too (and so the other way round for the refusals below).
    return client.post("/api/v1/chat/slack/events", content=body, headers=headers)


def slack_api() -> Any:
    """Answers chat.postMessage as Slack's Web API does (a bot token, JSON with channel, thread_ts, text)."""
    counter = iter(range(1, 10_000))

    def respond(request: Received) -> Reply:
        if request.path != "/api/chat.postMessage":
            return json_reply(404, {"ok": False, "error": "unknown_method"})
        if request.headers.get("authorization") != f"Bearer {SLACK_TOKEN}":
            return json_reply(200, {"ok": False, "error": "invalid_auth"})
        doc = request.json()
        if not doc.get("channel") or not doc.get("text"):
            return json_reply(200, {"ok": False, "error": "invalid_arguments"})
        ts = f"{int(time.time())}.{next(counter):06d}"
        return json_reply(200, {"ok": True, "channel": doc["channel"], "ts": ts, "message": {"text": doc["text"]}})

    return respond


# --- Feishu --------------------------------------------------------------------------------------------


def feishu_encrypt(plain: bytes, key: str = FEISHU_KEY) -> str:
    """Encrypt as Feishu does: base64(iv + AES-256-CBC(PKCS#7), key = SHA-256(Encrypt Key))."""
    iv = os.urandom(16)
    cipher = AES.new(hashlib.sha256(key.encode()).digest(), AES.MODE_CBC, iv)
    encrypted = base64.b64encode(iv + cipher.encrypt(pad(plain, 16))).decode()
    # lark-oapi's own AESCipher reads it back: the envelope is the SDK's.
    assert AESCipher(key).decrypt_str(encrypted).encode() == plain
    return encrypted


def feishu_message(
    event_id: str,
    text: str,
    message_id: str,
    *,
    chat_id: str = FEISHU_CHAT,
    sender: str = FEISHU_ALICE,
    root_id: str | None = None,
    mention_bot: bool = True,
    sender_type: str = "user",
    token: str = FEISHU_TOKEN,
) -> dict[str, Any]:
    mentions = []
    if mention_bot:
        mentions = [{"key": "@_user_1", "id": {"open_id": FEISHU_BOT, "union_id": "on_bot"}, "name": "zhiban"}]
        text = "@_user_1 " + text
    message: dict[str, Any] = {
        "message_id": message_id,
        "chat_id": chat_id,
        "chat_type": "group",
        "message_type": "text",
        "content": json.dumps({"text": text}, ensure_ascii=False),
        "create_time": "1763665200000",
        "mentions": mentions,
    }
    if root_id:
        message["root_id"] = root_id
        message["parent_id"] = root_id
    return {
        "schema": "2.0",
        "header": {
            "event_id": event_id,
            "event_type": "im.message.receive_v1",
            "create_time": "1763665200000",
            "token": token,
            "app_id": FEISHU_APP,
            "tenant_key": "tenant-vendor",
        },
        "event": {
            "sender": {"sender_id": {"open_id": sender, "union_id": "on_x"}, "sender_type": sender_type},
            "message": message,
        },
    }


def feishu_request(
    desk: Desk, doc: dict[str, Any], *, key: str = FEISHU_KEY, sign_key: str | None = None
) -> tuple[bytes, dict[str, str]]:
    """An encrypted, signed request body and headers, as Feishu sends an event to an app with an Encrypt Key."""
    body = json.dumps({"encrypt": feishu_encrypt(json.dumps(doc, ensure_ascii=False).encode(), key)}).encode()
    timestamp = str(int(desk.clock.now().timestamp()))
    nonce = "n0nce-1234"
    signature = hashlib.sha256((timestamp + nonce + (sign_key or key)).encode() + body).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-Lark-Request-Timestamp": timestamp,
        "X-Lark-Request-Nonce": nonce,
        "X-Lark-Signature": signature,
    }
    return body, headers


def feishu_post(client: TestClient, desk: Desk, doc: dict[str, Any], **kwargs: Any) -> Any:
    body, headers = feishu_request(desk, doc, **kwargs)
    return client.post("/api/v1/chat/feishu/events", content=body, headers=headers)


def feishu_api() -> Any:
    """Answers the tenant token and message reply calls as Feishu's open API does."""
    counter = iter(range(1, 10_000))

    def respond(request: Received) -> Reply:
        if request.path == "/open-apis/auth/v3/tenant_access_token/internal":
            doc = request.json()
            if doc != {"app_id": FEISHU_APP, "app_secret": FEISHU_SECRET}:
                return json_reply(200, {"code": 10014, "msg": "app secret invalid"})
            return json_reply(200, {"code": 0, "msg": "ok", "tenant_access_token": "t-vendor-token", "expire": 7200})
        if request.path.startswith("/open-apis/im/v1/messages/") and request.path.endswith("/reply"):
            if request.headers.get("authorization") != "Bearer t-vendor-token":
                return json_reply(200, {"code": 99991663, "msg": "invalid access token"})
            doc = request.json()
            assert doc["msg_type"] == "text" and json.loads(doc["content"])["text"]
            return json_reply(200, {"code": 0, "msg": "success", "data": {"message_id": f"om_reply_{next(counter)}"}})
        return json_reply(404, {"code": 404, "msg": "not found"})

    return respond


# --- what the desk holds ---------------------------------------------------------------------------------


def count(desk: Desk, table: Any) -> int:
    with desk.sessions() as s:
        return s.scalar(select(func.count()).select_from(table)) or 0


def tickets_of(desk: Desk) -> list[TicketRow]:
    with desk.sessions() as s:
        return list(s.scalars(select(TicketRow).order_by(TicketRow.id)))


def comments_of(desk: Desk, ticket_id: int) -> list[str]:
    with desk.sessions() as s:
        return list(s.scalars(select(CommentRow.body).where(CommentRow.ticket_id == ticket_id).order_by(CommentRow.id)))


def pages_to(desk: Desk, person_id: str) -> int:
    with desk.sessions() as s:
        mine = (NotificationRow.person_id == person_id) & (NotificationRow.subject_kind == "incident")
        return s.scalar(select(func.count()).where(mine)) or 0

"""DingTalk robot callbacks (HTTP mode): the `timestamp` + `sign` headers, and a group's @-message as a value.

sign = base64(HMAC-SHA256(key=app secret, message=f"{timestamp}\\n{app secret}")), timestamp in milliseconds.
A DingTalk group has no threads: the conversation is the thread, and a reply goes to the `sessionWebhook` that
each message carries (valid for a while).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from zhiban.chat.model import BadSignature, ChatMessage, MalformedEvent, Platform, is_platform_id, within_window

GROUP_CONVERSATION = "2"  # conversationType: 1 is a one-to-one chat with the robot


def signature(app_secret: str, timestamp: str) -> str:
    """What DingTalk puts in the `sign` header."""
    digest = hmac.new(app_secret.encode(), f"{timestamp}\n{app_secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify(app_secret: str, headers: Mapping[str, str], now: datetime) -> None:
    """Refuse a callback not signed with the robot's secret, or signed outside the window."""
    timestamp = headers.get("timestamp", "")
    given = headers.get("sign", "")
    if not timestamp or not given:
        raise BadSignature("the request carries no DingTalk timestamp and sign")
    if not timestamp.isdigit() or len(timestamp) > 15:
        raise BadSignature("the DingTalk timestamp is not a number of milliseconds")
    if not within_window(datetime.fromtimestamp(int(timestamp) / 1000, UTC), now):
        raise BadSignature("the DingTalk timestamp is outside the five-minute window (a replay?)")
    if not hmac.compare_digest(signature(app_secret, timestamp).encode(), given.encode()):
        raise BadSignature("the DingTalk sign does not match")


def parse(body: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent("the DingTalk callback is not JSON") from exc
    if not isinstance(doc, dict):
        raise MalformedEvent("the DingTalk callback is not a JSON object")
    return doc


def _id(value: Any, what: str) -> str:
    if not is_platform_id(value):
        raise MalformedEvent(f"the DingTalk callback's {what} is missing or malformed")
    return str(value)


def message(doc: Mapping[str, Any], bot_user_id: str) -> ChatMessage | None:
    """The group message a callback carries (None for one-to-one chats and messages that are not text)."""
    if doc.get("conversationType") != GROUP_CONVERSATION or doc.get("msgtype") != "text":
        return None
    text_part = doc.get("text")
    content = text_part.get("content") if isinstance(text_part, dict) else None
    if not isinstance(content, str):
        raise MalformedEvent("the DingTalk message has no text content")
    reply_url = doc.get("sessionWebhook", "")
    if not isinstance(reply_url, str) or len(reply_url) > 500:
        raise MalformedEvent("the DingTalk sessionWebhook is malformed")
    if reply_url and urlsplit(reply_url).scheme not in ("http", "https"):
        raise MalformedEvent("the DingTalk sessionWebhook is not an http(s) URL")
    msg_id = _id(doc.get("msgId"), "msgId")
    conversation = _id(doc.get("conversationId"), "conversationId")
    sender = _id(doc.get("senderStaffId") or doc.get("senderId"), "sender")
    return ChatMessage(
        platform=Platform.DINGTALK,
        event_id=msg_id,  # a callback has no event id of its own: its message's id
        group_id=conversation,
        message_id=msg_id,
        thread_id=conversation,
        user_id=sender,
        text=content.strip(),
        # An outgoing robot hears only messages that @ it.
        mentions_bot=doc.get("isInAtList", True) is not False,
        from_bot=bool(bot_user_id) and doc.get("senderId") == bot_user_id,
        reply_url=reply_url,
    )

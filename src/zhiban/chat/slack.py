"""Slack's Events API: the v0 request signature, the url_verification handshake, and message events as values.

https://api.slack.com/authentication/verifying-requests-from-slack: `v0=` HMAC-SHA256 of `v0:{timestamp}:{body}`
with the app's signing secret, in X-Slack-Signature; X-Slack-Request-Timestamp within five minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from zhiban.chat.model import BadSignature, ChatMessage, MalformedEvent, Platform, is_platform_id, within_window

# Message subtypes that are a person's words; edits, joins, deletions and bots' posts are not filed.
_PERSON_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})
_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The v0 signature Slack puts in X-Slack-Signature."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
    """Refuse (BadSignature) a request Slack did not sign with this secret, or signed outside the window."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    given = headers.get("x-slack-signature", "")
    if not timestamp or not given:
        raise BadSignature("the request carries no Slack signature")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise BadSignature("the Slack request timestamp is not a number of seconds")
    if not within_window(datetime.fromtimestamp(int(timestamp), UTC), now):
        raise BadSignature("the Slack request timestamp is outside the five-minute window (a replay?)")
    if not hmac.compare_digest(signature(secret, timestamp, body).encode(), given.encode()):
        raise BadSignature("the Slack signature does not match")


def parse(body: bytes) -> dict[str, Any]:
    """The event envelope as JSON (MalformedEvent when it is not a JSON object)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent("the Slack event is not JSON") from exc
    if not isinstance(doc, dict):
        raise MalformedEvent("the Slack event is not a JSON object")
    return doc


def _text(value: Any, what: str, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not is_platform_id(value):
        raise MalformedEvent(f"the Slack event's {what} is missing or malformed")
    return value


def message(doc: Mapping[str, Any], bot_user_id: str) -> ChatMessage | None:
    """The message an `event_callback` carries (None for events that are no person's message)."""
    event = doc.get("event")
    if not isinstance(event, dict):
        raise MalformedEvent("the Slack event_callback carries no event")
    kind = event.get("type")
    if kind not in ("app_mention", "message"):
        return None
    if event.get("subtype") not in _PERSON_SUBTYPES:
        return None
    text = event.get("text", "")
    if not isinstance(text, str):
        raise MalformedEvent("the Slack message's text is not a string")
    ts = _text(event.get("ts"), "ts")
    mentioned = {m.group(1) for m in _MENTION.finditer(text)}
    return ChatMessage(
        platform=Platform.SLACK,
        event_id=_text(doc.get("event_id"), "event_id"),
        group_id=_text(event.get("channel"), "channel"),
        message_id=ts,
        thread_id=_text(event.get("thread_ts"), "thread_ts", required=False) or ts,
        user_id=_text(event.get("user") or event.get("bot_id"), "user"),
        text=_MENTION.sub(lambda m: "" if m.group(1) == bot_user_id else m.group(0), text).strip(),
        mentions_bot=kind == "app_mention" or (bool(bot_user_id) and bot_user_id in mentioned),
        from_bot=bool(event.get("bot_id")) or (bool(bot_user_id) and event.get("user") == bot_user_id),
    )

"""Feishu/Lark event subscription: the Encrypt Key's AES-256-CBC envelope, the X-Lark-Signature check, the
verification token, the url_verification challenge, and `im.message.receive_v1` as a value.

Encrypted bodies are `{"encrypt": base64(iv + AES-256-CBC(PKCS#7 plaintext))}` with key = SHA-256(encrypt key);
the signature is hex SHA-256 of timestamp + nonce + encrypt key + the raw body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from zhiban.chat.model import (
    MAX_EVENT_BYTES,
    BadSignature,
    ChatMessage,
    MalformedEvent,
    Platform,
    is_platform_id,
    within_window,
)

_BLOCK = 16


def decrypt(encrypt_key: str, encrypted: str) -> bytes:
    """The plaintext of an `encrypt` field (BadSignature when it was not made with this key)."""
    try:
        raw = base64.b64decode(encrypted, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedEvent("the Feishu event's encrypt field is not base64") from exc
    if len(raw) < 2 * _BLOCK or len(raw) % _BLOCK or len(raw) > MAX_EVENT_BYTES:
        raise MalformedEvent("the Feishu event's encrypt field has no valid ciphertext length")
    key = hashlib.sha256(encrypt_key.encode()).digest()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(raw[:_BLOCK])).decryptor()
    padded = decryptor.update(raw[_BLOCK:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        # A wrong key shows as bad padding: the sender does not hold the app's Encrypt Key.
        raise BadSignature("the Feishu event was not encrypted with this app's Encrypt Key") from exc


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    """What Feishu puts in X-Lark-Signature."""
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()


def verify_signature(encrypt_key: str, headers: Mapping[str, str], body: bytes, now: datetime) -> None:
    """Refuse a request whose X-Lark-Signature is missing, wrong, or made outside the window."""
    timestamp = headers.get("x-lark-request-timestamp", "")
    nonce = headers.get("x-lark-request-nonce", "")
    given = headers.get("x-lark-signature", "")
    if not given or not timestamp:
        raise BadSignature("the Feishu request carries no X-Lark-Signature")
    if not timestamp.isdigit() or len(timestamp) > 12 or len(nonce) > 200:
        raise BadSignature("the Feishu request timestamp is not a number of seconds")
    if not within_window(datetime.fromtimestamp(int(timestamp), UTC), now):
        raise BadSignature("the Feishu request timestamp is outside the five-minute window (a replay?)")
    if not hmac.compare_digest(signature(timestamp, nonce, encrypt_key, body).encode(), given.encode()):
        raise BadSignature("the Feishu signature does not match")


def _object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent(f"the Feishu {what} is not JSON") from exc
    if not isinstance(doc, dict):
        raise MalformedEvent(f"the Feishu {what} is not a JSON object")
    return doc


def open_event(body: bytes, encrypt_key: str) -> dict[str, Any]:
    """The event as JSON: decrypted when it came encrypted. A plain event to an app with an Encrypt Key is refused."""
    outer = _object(body, "event")
    encrypted = outer.get("encrypt")
    if encrypted is None:
        if encrypt_key:
            raise BadSignature("the Feishu app has an Encrypt Key; a plain event is refused")
        return outer
    if not isinstance(encrypted, str) or not encrypt_key:
        raise MalformedEvent("the Feishu event is encrypted but this app has no Encrypt Key")
    return _object(decrypt(encrypt_key, encrypted), "decrypted event")


def token_of(doc: Mapping[str, Any]) -> str:
    """The verification token: v2 events carry it in the header, v1 and the challenge at the top."""
    header = doc.get("header")
    token = header.get("token") if isinstance(header, dict) else doc.get("token")
    return token if isinstance(token, str) else ""


def verify_token(expected: str, doc: Mapping[str, Any]) -> None:
    if not expected or not hmac.compare_digest(token_of(doc).encode(), expected.encode()):
        raise BadSignature("the Feishu verification token does not match")


def is_challenge(doc: Mapping[str, Any]) -> bool:
    return doc.get("type") == "url_verification"


def _id(value: Any, what: str, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not is_platform_id(value):
        raise MalformedEvent(f"the Feishu event's {what} is missing or malformed")
    return value


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def message(doc: Mapping[str, Any], bot_open_id: str) -> ChatMessage | None:
    """The message of an `im.message.receive_v1` event (None for other events and non-text messages)."""
    header = doc.get("header")
    event = doc.get("event")
    if not isinstance(header, dict) or not isinstance(event, dict):
        raise MalformedEvent("the Feishu event has no header or event (only schema 2.0 events are taken)")
    if header.get("event_type") != "im.message.receive_v1":
        return None
    msg = event.get("message")
    sender = event.get("sender")
    if not isinstance(msg, dict) or not isinstance(sender, dict):
        raise MalformedEvent("the Feishu message event has no message or sender")
    if msg.get("message_type") != "text":
        return None  # images, files, stickers: not filed (attachments are another door's work)
    content = msg.get("content")
    if not isinstance(content, str):
        raise MalformedEvent("the Feishu message's content is not a string")
    text = _object(content.encode(), "message content").get("text", "")
    if not isinstance(text, str):
        raise MalformedEvent("the Feishu message's text is not a string")
    sender_ids = _dict(sender.get("sender_id"))
    raw_mentions = msg.get("mentions")
    mentions: list[Any] = raw_mentions if isinstance(raw_mentions, list) else []
    mentions_bot = False
    for mention in mentions[:50]:
        if not isinstance(mention, dict):
            continue
        key = mention.get("key")
        ids = _dict(mention.get("id"))
        if bot_open_id and ids.get("open_id") == bot_open_id:
            mentions_bot = True
            if isinstance(key, str) and key:
                text = text.replace(key, "")  # "@_user_1" stands for the bot in the text
    message_id = _id(msg.get("message_id"), "message_id")
    return ChatMessage(
        platform=Platform.FEISHU,
        event_id=_id(header.get("event_id"), "event_id"),
        group_id=_id(msg.get("chat_id"), "chat_id"),
        message_id=message_id,
        thread_id=_id(msg.get("root_id"), "root_id", required=False) or message_id,
        user_id=_id(sender_ids.get("open_id"), "sender open_id"),
        text=text.strip(),
        mentions_bot=mentions_bot,
        from_bot=sender.get("sender_type") == "app" or (bool(bot_open_id) and sender_ids.get("open_id") == bot_open_id),
    )

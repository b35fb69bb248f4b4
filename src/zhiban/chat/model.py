"""Chat groups in the domain: the platforms, one message heard from a group, and what a message asks for.

A message is a value parsed from a platform's event (`chat.slack`, `chat.feishu`); whether it opens a ticket,
answers one or raises its priority is decided here, from the group's words, without I/O.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from zhiban.core.errors import InvalidInput, Unauthorized


class BadSignature(Unauthorized):
    """The event is not the platform's: wrong or missing signature or token, or signed outside the window."""

    type_ = "chat-bad-signature"
    title = "Chat event not verified"


class MalformedEvent(InvalidInput):
    """The event is verified but not one the desk can read."""

    type_ = "chat-malformed-event"
    title = "Malformed chat event"


class Platform(enum.StrEnum):
    SLACK = "slack"
    FEISHU = "feishu"
    DINGTALK = "dingtalk"


# Every event body is refused past this many bytes (Slack's and Feishu's own events are a few KiB).
MAX_EVENT_BYTES = 64 * 1024
# A message's text as filed; longer text is cut (the ticket says so).
MAX_MESSAGE_TEXT = 20_000
# Signed requests older or newer than this are refused (Slack's documented window; Feishu's too).
REQUEST_WINDOW = timedelta(minutes=5)
# Ids of groups, threads, users and messages as the platforms give them (Slack C…/ts, Feishu oc_…/om_…).
MAX_ID = 128
DEFAULT_URGENT_WORDS = ("urgent", "down", "outage", "紧急", "宕机", "故障")
# A command in the text that raises the ticket to P1 whatever the words.
URGENT_COMMANDS = ("!p1", "!urgent")
MAX_WORDS = 20
MAX_WORD = 40
SUBJECT_MAX = 120

# DingTalk's conversation and message ids are base64-like (cid…==, msg…+/=), its sender ids `$:LWCP_v1:$…`.
_ID = re.compile(r"[A-Za-z0-9._:@$+/=-]{1,128}")


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message heard from a group, as a platform's event carried it."""

    platform: Platform
    event_id: str  # the platform's id of the delivery (retries repeat it)
    group_id: str  # Slack channel id, Feishu chat id
    message_id: str  # Slack ts, Feishu message id
    thread_id: str  # the thread's root message (the message itself when it starts no thread)
    user_id: str  # who wrote it (Slack user id, Feishu open_id)
    text: str
    mentions_bot: bool
    from_bot: bool  # written by a bot (ours included): never filed, so a mirrored reply cannot loop
    # Where a reply to this conversation is posted, when the platform names one per message (DingTalk's
    # sessionWebhook, valid for a while): kept on the thread for agents' replies.
    reply_url: str = ""


@dataclass(frozen=True, slots=True)
class GroupWords:
    """What a group's messages are listened for: keywords that open a ticket without a mention, urgent words."""

    keywords: tuple[str, ...] = ()
    urgent_words: tuple[str, ...] = DEFAULT_URGENT_WORDS


def is_platform_id(value: object) -> bool:
    """Whether a value reads as a platform's id (group, thread, user, message, event)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def check_id(value: str, what: str) -> str:
    """A platform id as stored: short, printable, no spaces (else InvalidInput)."""
    if not is_platform_id(value):
        raise InvalidInput(f"{what} must be 1-{MAX_ID} characters of letters, digits and ._:@$+/=-")
    return value


def clean_words(words: Sequence[str] | None, what: str) -> tuple[str, ...]:
    """Words as a group keeps them: trimmed, lower-cased, unique, bounded."""
    if words is None:
        return ()
    cleaned: list[str] = []
    for word in words:
        word = " ".join(str(word).split()).lower()
        if not word:
            continue
        if len(word) > MAX_WORD:
            raise InvalidInput(f"{what}: a word is at most {MAX_WORD} characters")
        if word not in cleaned:
            cleaned.append(word)
    if len(cleaned) > MAX_WORDS:
        raise InvalidInput(f"{what}: at most {MAX_WORDS} words")
    return tuple(cleaned)


def _has_word(text: str, word: str) -> bool:
    if word.isascii():
        # Latin words stand alone ("down" is not "download"); CJK words have no spaces to stand between.
        return re.search(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", text) is not None
    return word in text


def is_urgent(text: str, words: GroupWords) -> bool:
    """Whether the message says the service is down now: an urgent word or an urgent command."""
    lowered = text.lower()
    if any(command in lowered.split() for command in URGENT_COMMANDS):
        return True
    return any(_has_word(lowered, word) for word in words.urgent_words)


def opens_ticket(message: ChatMessage, words: GroupWords) -> bool:
    """A message addressed to the desk: it mentions the bot, or carries one of the group's keywords."""
    if message.mentions_bot:
        return True
    lowered = message.text.lower()
    return any(_has_word(lowered, word) for word in words.keywords)


def ticket_subject(text: str) -> str:
    """The ticket's subject: the message's first non-empty line, cut to SUBJECT_MAX characters."""
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            return line if len(line) <= SUBJECT_MAX else line[: SUBJECT_MAX - 1] + "…"
    return "Chat message"


def bounded_text(text: str) -> str:
    """The message's text as filed: at most MAX_MESSAGE_TEXT characters."""
    text = text.strip()
    if len(text) > MAX_MESSAGE_TEXT:
        return text[:MAX_MESSAGE_TEXT] + "\n[…cut: the message was longer]"
    return text


def within_window(sent_at: datetime, now: datetime) -> bool:
    """Whether a request's timestamp is within REQUEST_WINDOW of now (either side: clocks drift)."""
    return abs(now - sent_at) <= REQUEST_WINDOW

"""Use cases of chat groups, the feature's entry point: hear a platform's events (a mention opens a ticket, a
reply in its thread answers it, an urgent word raises it to P1). The admins' configuration is `chat.groups`, the
mirror of agents' public replies into the thread (once each, through notify) `chat.mirror`; both re-exported here.

Every event is checked before anything is read for it (signature, window, token); a group not bound, a
message of a bot (ours included) or a repeat is answered with no effect and leaves no row behind.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from zhiban.chat import dingtalk, feishu, slack
from zhiban.chat import store as chat_store

# The feature's entry point: the admins' use cases (groups) and the mirror of agents' replies, re-exported.
from zhiban.chat.groups import app_of
from zhiban.chat.groups import apps as apps
from zhiban.chat.groups import bind_group as bind_group
from zhiban.chat.groups import groups as groups
from zhiban.chat.groups import map_person as map_person
from zhiban.chat.groups import recent_events as recent_events
from zhiban.chat.groups import set_app as set_app
from zhiban.chat.groups import unbind_group as unbind_group
from zhiban.chat.mirror import on_ticket_change as on_ticket_change
from zhiban.chat.mirror import record_result as record_result
from zhiban.chat.model import (
    DEFAULT_URGENT_WORDS,
    ChatMessage,
    GroupWords,
    Platform,
    bounded_text,
    is_urgent,
    opens_ticket,
    ticket_subject,
)
from zhiban.chat.store import (
    ChatAppRow,
    ChatEventRow,
    ChatGroupRow,
    ChatMessageRow,
    ChatPersonRow,
    ChatThreadRow,
)
from zhiban.core.clock import Clock
from zhiban.core.errors import InvalidInput, RateLimited
from zhiban.identity import ratelimit
from zhiban.identity import service as identity
from zhiban.identity.model import Person, Principal, Role
from zhiban.tickets import service as tickets
from zhiban.tickets.model import Channel, Priority, Status

log = logging.getLogger("zhiban.chat")

# Messages a group may file or add per minute; past it the platform is told to retry later (429).
GROUP_RATE = ratelimit.Limit("chat.group", 30, timedelta(minutes=1))
# Acted-on event ids are kept this long (Feishu retries an event for hours; Slack within minutes).
EVENT_MEMORY = timedelta(days=7)
# A message's own claim among the events: keyed by group and message id, so two events of one message file once.
MESSAGE_CLAIM = "msg:"

Action = Literal["created", "replied", "ignored", "duplicate", "unbound", "challenge"]


@dataclass(frozen=True)
class Outcome:
    """What became of one verified event: the platform is answered 200 whatever it is."""

    action: Action
    ticket_id: int | None = None
    reason: str = ""
    challenge: str | None = None


# --- inbound ----------------------------------------------------------------------------------------


def receive_slack(session: Session, clock: Clock, headers: Mapping[str, str], body: bytes) -> Outcome:
    """An Events API request: verified with the signing secret, then the challenge or the message it carries."""
    app = app_of(session, Platform.SLACK)
    slack.verify(app.signing_secret, headers, body, clock.now())
    doc = slack.parse(body)
    kind = doc.get("type")
    if kind == "url_verification":
        challenge = doc.get("challenge")
        if not isinstance(challenge, str) or not 0 < len(challenge) <= 200:
            raise InvalidInput("the url_verification carries no challenge")
        return Outcome("challenge", challenge=challenge)
    if kind != "event_callback":
        return Outcome("ignored", reason=f"not an event_callback ({str(kind)[:40]})")
    message = slack.message(doc, app.bot_user_id)
    if message is None:
        return Outcome("ignored", reason="not a person's message")
    return receive_message(session, clock, app, message)


def receive_feishu(session: Session, clock: Clock, headers: Mapping[str, str], body: bytes) -> Outcome:
    """An event subscription request: decrypted with the Encrypt Key, its signature and token checked."""
    app = app_of(session, Platform.FEISHU)
    doc = feishu.open_event(body, app.encrypt_key)
    feishu.verify_token(app.verification_token, doc)
    if feishu.is_challenge(doc):
        challenge = doc.get("challenge")
        if not isinstance(challenge, str) or not 0 < len(challenge) <= 200:
            raise InvalidInput("the url_verification carries no challenge")
        return Outcome("challenge", challenge=challenge)
    if app.encrypt_key or headers.get("x-lark-signature"):
        # Feishu signs every event to an app with an Encrypt Key; a signature given is checked whatever the app.
        feishu.verify_signature(app.encrypt_key, headers, body, clock.now())
    message = feishu.message(doc, app.bot_user_id)
    if message is None:
        return Outcome("ignored", reason="not a text message")
    return receive_message(session, clock, app, message)


def receive_dingtalk(session: Session, clock: Clock, headers: Mapping[str, str], body: bytes) -> Outcome:
    """A robot callback: its sign checked with the robot's secret, then the group message it carries."""
    app = app_of(session, Platform.DINGTALK)
    dingtalk.verify(app.app_secret, headers, clock.now())
    message = dingtalk.message(dingtalk.parse(body), app.bot_user_id)
    if message is None:
        return Outcome("ignored", reason="not a group's text message")
    return receive_message(session, clock, app, message)


def _requester(session: Session, group: ChatGroupRow, message: ChatMessage) -> Person | None:
    """Who the message is filed as: the platform user's person in the group's organization, else the group's."""
    mapped = session.get(ChatPersonRow, (message.platform.value, message.user_id))
    for person_id in (mapped.person_id if mapped else None, group.requester_id):
        person = identity.person(session, person_id) if person_id else None
        if (
            person
            and person.active
            and person.role == Role.CUSTOMER
            and person.organization_id == group.organization_id
        ):
            return person
    return None


def _words(group: ChatGroupRow) -> GroupWords:
    urgent = DEFAULT_URGENT_WORDS if group.urgent_words is None else tuple(group.urgent_words)
    return GroupWords(keywords=tuple(group.keywords or ()), urgent_words=urgent)


def receive_message(session: Session, clock: Clock, app: ChatAppRow, message: ChatMessage) -> Outcome:
    """File, answer or raise a ticket from a verified message; bots, unbound groups and repeats have no effect."""
    platform = message.platform.value
    if message.from_bot or (app.bot_user_id and message.user_id == app.bot_user_id):
        return Outcome("ignored", reason="a bot's message")  # our own mirrored replies come back this way
    group = chat_store.group_of(session, platform, message.group_id)
    if group is None:
        log.info("chat %s: message in unbound group %s ignored", platform, message.group_id)
        return Outcome("unbound", reason="this group is not bound to an organization")
    if chat_store.event_seen(session, platform, message.event_id):
        return Outcome("duplicate", reason="event already handled")
    seen = chat_store.message_seen(session, platform, message.group_id, message.message_id)
    if seen is not None:
        return Outcome("duplicate", seen.ticket_id, "message already handled")
    thread = chat_store.thread_of(session, platform, message.group_id, message.thread_id)
    words = _words(group)
    follow_up: ChatThreadRow | None = None
    if thread is not None and _closed(session, thread.ticket_id):
        # A closed ticket takes no more messages: a new mention in its thread opens a follow-up ticket there.
        if not opens_ticket(message, words):
            return Outcome("ignored", thread.ticket_id, "the ticket is closed; mention the desk to open a follow-up")
        follow_up, thread = thread, None
    if thread is None and not opens_ticket(message, words):
        return Outcome("ignored", reason="not addressed to the desk")
    text = bounded_text(message.text)
    if not text:
        return Outcome("ignored", reason="an empty message")
    person = _requester(session, group, message)
    if person is None:
        log.warning("chat %s: no requester for user %s in group %s", platform, message.user_id, message.group_id)
        return Outcome("ignored", reason="no customer user for this sender and no group requester")
    now = clock.now()
    key = ratelimit.key_of(platform, message.group_id)
    if ratelimit.exhausted(session, GROUP_RATE, key, now):
        raise RateLimited(f"this group sent more than {GROUP_RATE.limit} messages a minute; try again later")
    claimed = _claim(session, clock, message)
    if claimed is None:
        return Outcome("duplicate", reason="event already handled")
    if ratelimit.hit(session, GROUP_RATE, key, now) == 1:
        chat_store.prune_events(session, now - EVENT_MEMORY)  # once per group and minute, not per event
    principal = identity.principal_of(person)
    urgent = is_urgent(text, words)
    if thread is not None:
        if message.reply_url:
            thread.reply_url = message.reply_url  # DingTalk: the newest sessionWebhook lives longest
        outcome = _reply(session, clock, principal, thread.ticket_id, message, text, urgent)
    else:
        outcome = _open(session, clock, principal, message, text, urgent, follow_up)
    claimed.action, claimed.ticket_id = outcome.action, outcome.ticket_id
    return outcome


def _message_key(message: ChatMessage) -> str:
    """The claim of a message whatever event carries it (Slack sends a mention as app_mention and as message)."""
    digest = hashlib.sha256(f"{message.group_id}\x1f{message.message_id}".encode()).hexdigest()[:40]
    return f"{MESSAGE_CLAIM}{digest}"


def _claim(session: Session, clock: Clock, message: ChatMessage) -> ChatEventRow | None:
    """Record the event id and the message's key (the event's row), or None: a concurrent delivery of either did."""
    now = clock.now()
    platform, group_id = message.platform.value, message.group_id
    event = ChatEventRow(
        platform=platform, event_id=message.event_id, group_id=group_id, action="claimed", received_at=now
    )
    key = ChatEventRow(
        platform=platform,
        event_id=_message_key(message),
        group_id=group_id,
        action=chat_store.MESSAGE_CLAIM_ACTION,
        received_at=now,
    )
    try:
        with session.begin_nested():
            session.add_all([event, key])
            session.flush()
    except IntegrityError:
        return None
    return event


def _record_inbound(
    session: Session, clock: Clock, message: ChatMessage, ticket_id: int, comment_id: int | None
) -> None:
    session.add(
        ChatMessageRow(
            platform=message.platform.value,
            group_id=message.group_id,
            message_id=message.message_id,
            ticket_id=ticket_id,
            comment_id=comment_id,
            direction=chat_store.INBOUND,
            state=chat_store.RECEIVED,
            created_at=clock.now(),
        )
    )
    session.flush()


def _closed(session: Session, ticket_id: int) -> bool:
    found = tickets.summary(session, ticket_id)
    return found is None or found.status == Status.CLOSED.value


def _open(
    session: Session,
    clock: Clock,
    principal: Principal,
    message: ChatMessage,
    text: str,
    urgent: bool,
    follow_up: ChatThreadRow | None = None,
) -> Outcome:
    ticket = tickets.create_ticket(
        session,
        clock,
        principal,
        subject=ticket_subject(text),
        body=text,
        priority=(Priority.P1 if urgent else Priority.P3).value,
        channel=Channel.CHAT,
    )
    if follow_up is not None:
        follow_up.ticket_id = ticket.id  # the thread answers the follow-up from now on
        follow_up.reply_url = message.reply_url or follow_up.reply_url
    else:
        session.add(
            ChatThreadRow(
                platform=message.platform.value,
                group_id=message.group_id,
                thread_id=message.thread_id,
                ticket_id=ticket.id,
                reply_url=message.reply_url or None,
                created_at=clock.now(),
            )
        )
    # The opening message is the ticket's first comment; not read back for its id (a whole ticket view per event).
    _record_inbound(session, clock, message, ticket.id, None)
    log.info(
        "chat %s: group %s filed ticket #%s (%s)", message.platform.value, message.group_id, ticket.id, ticket.priority
    )
    return Outcome("created", ticket.id, "new ticket" + (", urgent" if urgent else ""))


def _reply(
    session: Session, clock: Clock, principal: Principal, ticket_id: int, message: ChatMessage, text: str, urgent: bool
) -> Outcome:
    try:
        comment = tickets.add_comment(session, clock, principal, ticket_id, body=text, public=True)
    except InvalidInput as exc:
        # A closed ticket takes no more messages; the thread's later words are not filed (say so in the log).
        log.info("chat %s: reply to ticket #%s not filed: %s", message.platform.value, ticket_id, exc.detail)
        return Outcome("ignored", ticket_id, "the ticket takes no more messages")
    _record_inbound(session, clock, message, ticket_id, comment.id)
    if urgent:
        _raise_to_p1(session, clock, principal, ticket_id)
    return Outcome("replied", ticket_id, "added to the ticket" + (", urgent" if urgent else ""))


def _raise_to_p1(session: Session, clock: Clock, principal: Principal, ticket_id: int) -> None:
    """Raise the ticket to P1 as its customer would: on-duty paging follows the priority, per the plan."""
    summary = tickets.summary(session, ticket_id)
    if summary is None or summary.priority == Priority.P1.value:
        return
    if summary.status in (Status.SOLVED.value, Status.CLOSED.value):
        return
    tickets.change_priority(session, clock, principal, ticket_id, Priority.P1.value)


def messages_of_ticket(session: Session, principal: Principal, ticket_id: int) -> list[ChatMessageRow]:
    """The chat messages heard and mirrored for a ticket the caller may see (staff: where each came from)."""
    tickets.find(session, principal, ticket_id)
    query = select(ChatMessageRow).where(ChatMessageRow.ticket_id == ticket_id).order_by(ChatMessageRow.id)
    return list(session.scalars(query.limit(500)))

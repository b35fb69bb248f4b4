"""Use cases of chat groups: configure a platform's app, bind groups to organizations, hear their events
(a mention opens a ticket, a reply in its thread answers it, an urgent word raises it to P1), and mirror
agents' public replies back into the thread, once each, through notify.

Every event is checked before anything is read for it (signature, window, token); a group not bound, a
message of a bot (ours included) or a repeat is answered with no effect and leaves no row behind.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from zhiban.chat import dingtalk, feishu, slack
from zhiban.chat import store as chat_store
from zhiban.chat.model import (
    DEFAULT_URGENT_WORDS,
    ChatMessage,
    GroupWords,
    Platform,
    bounded_text,
    check_id,
    clean_words,
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
from zhiban.core.errors import Conflict, InvalidInput, NotFound, RateLimited, ZhibanError
from zhiban.identity import ratelimit
from zhiban.identity import service as identity
from zhiban.identity.model import Person, Principal, Role
from zhiban.notify import Message, MessageOutcome
from zhiban.notify import service as notify
from zhiban.tickets import service as tickets
from zhiban.tickets.model import Channel, EventKind, Priority, Status, TicketChange

log = logging.getLogger("zhiban.chat")

OUTBOX_SUBJECT = "chat_reply"  # notify messages about an outbound chat_messages row
# Reads tickets on the desk's behalf when it mirrors a reply (never used to write).
_DESK = Principal(person_id="desk", role=Role.AGENT, organization_id=None, name="zhiban")
# Messages a group may file or add per minute; past it the platform is told to retry later (429).
GROUP_RATE = ratelimit.Limit("chat.group", 30, timedelta(minutes=1))
# Acted-on event ids are kept this long (Feishu retries an event for hours; Slack within minutes).
EVENT_MEMORY = timedelta(days=7)
MAX_LIST = 200
# A message's own claim among the events: keyed by group and message id, so two events of one message file once.
MESSAGE_CLAIM = "msg:"
MESSAGE_CLAIM_ACTION = "message"
THREAD_CHANNEL = {
    Platform.SLACK: "slack_thread",
    Platform.FEISHU: "feishu_thread",
    Platform.DINGTALK: "dingtalk_session",
}
DEFAULT_API = {
    Platform.SLACK: "https://slack.com/api",
    Platform.FEISHU: "https://open.feishu.cn",
    Platform.DINGTALK: "",
}

Action = Literal["created", "replied", "ignored", "duplicate", "unbound", "challenge"]


@dataclass(frozen=True)
class Outcome:
    """What became of one verified event: the platform is answered 200 whatever it is."""

    action: Action
    ticket_id: int | None = None
    reason: str = ""
    challenge: str | None = None


def _platform(value: str) -> Platform:
    try:
        return Platform(value)
    except ValueError:
        raise InvalidInput(f"platform must be one of {', '.join(p.value for p in Platform)}") from None


# --- the platforms' apps (admins) -------------------------------------------------------------------

_APP_FIELDS = {
    Platform.SLACK: ("signing_secret", "bot_token", "bot_user_id", "api_url"),
    Platform.FEISHU: ("app_id", "app_secret", "verification_token", "encrypt_key", "bot_user_id", "api_url"),
    Platform.DINGTALK: ("app_id", "app_secret", "bot_user_id"),
}
_REQUIRED = {
    Platform.DINGTALK: ("app_secret",),
    Platform.SLACK: ("signing_secret", "bot_token"),
    Platform.FEISHU: ("app_id", "app_secret", "verification_token"),
}


def set_app(
    session: Session, clock: Clock, principal: Principal, platform: str, fields: Mapping[str, str | None]
) -> ChatAppRow:
    """Configure a platform's app: what checks its events and what its bot posts with (admins).

    Fields not given keep their value; a Slack app needs its signing secret and bot token, a Feishu app its id,
    secret and verification token (its Encrypt Key when events are encrypted)."""
    principal.require_admin()
    kind = _platform(platform)
    unknown = set(fields) - set(_APP_FIELDS[kind])
    if unknown:
        raise InvalidInput(f"a {kind.value} app has no {', '.join(sorted(unknown))}")
    row = session.get(ChatAppRow, kind.value)
    if row is None:
        row = ChatAppRow(platform=kind.value, updated_at=clock.now())
        session.add(row)
    for name, value in fields.items():
        if value is None:
            continue
        value = value.strip()
        if len(value) > 500:
            raise InvalidInput(f"{name} is at most 500 characters")
        if name == "api_url" and value:
            from zhiban.notify.egress import check_url

            check_url(value)  # the bot posts there: an internal address is refused as any webhook's is
        if name in ("bot_user_id", "app_id") and value:
            check_id(value, name)
        setattr(row, name, value)
    missing = [name for name in _REQUIRED[kind] if not getattr(row, name)]
    if missing:
        raise InvalidInput(f"a {kind.value} app needs {', '.join(missing)}")
    row.updated_at = clock.now()
    session.flush()
    return row


def apps(session: Session, principal: Principal) -> list[ChatAppRow]:
    principal.require_admin()
    return list(session.scalars(select(ChatAppRow).order_by(ChatAppRow.platform)))


def _app(session: Session, platform: Platform) -> ChatAppRow:
    row = session.get(ChatAppRow, platform.value)
    if row is None:
        raise NotFound(f"no {platform.value} app is configured on this desk")
    return row


# --- groups and people (admins) ----------------------------------------------------------------------


def _customer_of(session: Session, ref: str, organization_id: str, what: str) -> Person:
    person = identity.find_person(session, ref)
    if person is None or not person.active or person.role != Role.CUSTOMER or person.organization_id != organization_id:
        raise InvalidInput(f"{what} must name an active customer user of the group's organization")
    return person


def bind_group(
    session: Session,
    clock: Clock,
    principal: Principal,
    *,
    platform: str,
    group_id: str,
    organization: str,
    requester: str | None = None,
    keywords: Sequence[str] | None = None,
    urgent_words: Sequence[str] | None = None,
    name: str = "",
) -> ChatGroupRow:
    """Bind a group to one organization (admins): its messages file that organization's tickets."""
    principal.require_admin()
    kind = _platform(platform)
    check_id(group_id, "group_id")
    if len(name) > 200:
        raise InvalidInput("name is at most 200 characters")
    org = identity.organization(session, organization) or identity.organization_with_slug(session, organization)
    if org is None:
        raise InvalidInput(f"no organization {organization!r}")
    requester_id = _customer_of(session, requester, org.id, "requester").id if requester else None
    if chat_store.group_of(session, kind.value, group_id) is not None:
        raise Conflict(f"the {kind.value} group {group_id} is already bound; unbind it first")
    row = ChatGroupRow(
        platform=kind.value,
        group_id=group_id,
        name=name.strip(),
        organization_id=org.id,
        requester_id=requester_id,
        keywords=list(clean_words(keywords, "keywords")),
        urgent_words=None if urgent_words is None else list(clean_words(urgent_words, "urgent_words")),
        created_at=clock.now(),
        created_by=principal.person_id,
    )
    session.add(row)
    session.flush()
    log.info("chat group %s:%s bound to %s by %s", kind.value, group_id, org.slug, principal.person_id)
    return row


def _group(session: Session, ref: str) -> ChatGroupRow:
    row = session.get(ChatGroupRow, ref)
    if row is None and ":" in ref:
        platform, _, group_id = ref.partition(":")
        row = chat_store.group_of(session, platform, group_id)
    if row is None:
        raise NotFound(f"no bound chat group {ref[:140]!r}")
    return row


def unbind_group(session: Session, principal: Principal, ref: str) -> None:
    """Unbind a group (by id, or platform:group_id): its messages are refused from now on (admins)."""
    principal.require_admin()
    row = _group(session, ref)
    session.delete(row)
    session.flush()


def groups(session: Session, principal: Principal) -> list[ChatGroupRow]:
    principal.require_admin()
    order = (ChatGroupRow.platform, ChatGroupRow.group_id)
    return list(session.scalars(select(ChatGroupRow).order_by(*order).limit(1000)))


def map_person(session: Session, principal: Principal, *, platform: str, user_id: str, person: str) -> ChatPersonRow:
    """Know a platform user as a customer user (admins): their messages are filed in their name."""
    principal.require_admin()
    kind = _platform(platform)
    check_id(user_id, "user_id")
    found = identity.find_person(session, person)
    if found is None or not found.active or found.role != Role.CUSTOMER or found.organization_id is None:
        raise InvalidInput("person must name an active customer user")
    row = session.get(ChatPersonRow, (kind.value, user_id))
    if row is None:
        row = ChatPersonRow(platform=kind.value, user_id=user_id, person_id=found.id)
        session.add(row)
    row.person_id = found.id
    session.flush()
    return row


def recent_events(session: Session, principal: Principal, *, limit: int = 50) -> list[ChatEventRow]:
    """The events the desk acted on, newest first (admins)."""
    principal.require_admin()
    if not 1 <= limit <= MAX_LIST:
        raise InvalidInput(f"limit must be 1-{MAX_LIST}")
    query = (
        select(ChatEventRow)
        .where(ChatEventRow.action != MESSAGE_CLAIM_ACTION)
        .order_by(ChatEventRow.received_at.desc(), ChatEventRow.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


# --- inbound ----------------------------------------------------------------------------------------


def receive_slack(session: Session, clock: Clock, headers: Mapping[str, str], body: bytes) -> Outcome:
    """An Events API request: verified with the signing secret, then the challenge or the message it carries."""
    app = _app(session, Platform.SLACK)
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
    app = _app(session, Platform.FEISHU)
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
    app = _app(session, Platform.DINGTALK)
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
        action=MESSAGE_CLAIM_ACTION,
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


# --- outbound: agents' public replies into the thread --------------------------------------------------


def on_ticket_change(session: Session, clock: Clock, change: TicketChange) -> None:
    """An agent's public reply on a ticket that came from a chat thread is queued for that thread, once."""
    if change.kind != EventKind.AGENT_REPLY or change.comment_id is None:
        return
    threads = chat_store.threads_of_ticket(session, change.ticket.id)
    if not threads:
        return
    dedup_key = f"out:{change.comment_id}"
    if session.scalar(select(ChatMessageRow.id).where(ChatMessageRow.dedup_key == dedup_key)) is not None:
        return
    thread = threads[0]
    app = session.get(ChatAppRow, thread.platform)
    if app is None:
        log.warning("chat: no %s app to mirror ticket #%s's reply", thread.platform, change.ticket.id)
        return
    view = tickets.get_ticket(session, _DESK, change.ticket.id)
    comment = next((c for c in view.comments if c.id == change.comment_id and c.public), None)
    if comment is None:
        return
    author = identity.person(session, comment.author_id)
    row = ChatMessageRow(
        platform=thread.platform,
        group_id=thread.group_id,
        message_id=None,
        ticket_id=change.ticket.id,
        comment_id=comment.id,
        direction=chat_store.OUTBOUND,
        dedup_key=dedup_key,
        state=chat_store.QUEUED,
        created_at=clock.now(),
    )
    session.add(row)
    session.flush()
    who = author.name if author else "support"
    text = f"[#{change.ticket.id}] {who}:\n{comment.body}"
    message = Message(
        subject=f"Ticket #{change.ticket.id}",
        text=text[:30_000],
        idempotency_key=f"chat.reply.{comment.id}",
        event="chat.reply",
    )
    try:
        notify.queue_message(
            session,
            clock,
            message=message,
            subject_kind=OUTBOX_SUBJECT,
            subject_id=str(row.id),
            channel=THREAD_CHANNEL[Platform(thread.platform)],
            config=_thread_config(app, thread),
            due_at=clock.now(),
            destination_name=f"{thread.platform}:{thread.group_id}",
            ticket_id=change.ticket.id,
        )
    except ZhibanError as exc:
        # The reply itself stands; only its mirror cannot be made (e.g. the app's API URL is refused).
        log.warning("chat: reply %s of ticket #%s cannot be mirrored: %s", comment.id, change.ticket.id, exc.detail)
        row.state, row.error = chat_store.FAILED, exc.detail[:500]


def _thread_config(app: ChatAppRow, thread: ChatThreadRow) -> dict[str, Any]:
    platform = Platform(thread.platform)
    api_url = app.api_url or DEFAULT_API[platform]
    if platform is Platform.SLACK:
        return {
            "api_url": api_url,
            "bot_token": app.bot_token,
            "channel": thread.group_id,
            "thread_ts": thread.thread_id,
        }
    if platform is Platform.DINGTALK:
        return {"url": thread.reply_url or ""}  # none yet: refused by the channel's config, the mirror marked failed
    return {"api_url": api_url, "app_id": app.app_id, "app_secret": app.app_secret, "message_id": thread.thread_id}


def record_result(session: Session, clock: Clock, outcome: MessageOutcome) -> None:
    """Stamp a mirrored reply's fate; its platform id makes the platform's echo of it known as ours."""
    if outcome.subject_kind != OUTBOX_SUBJECT or not outcome.subject_id.isdigit():
        return
    row = session.get(ChatMessageRow, int(outcome.subject_id))
    if row is None:
        return
    if outcome.state == "sent":
        row.state = chat_store.SENT
        if outcome.provider_id:
            row.message_id = outcome.provider_id[:128]
    elif outcome.state in ("failed", "cancelled", "unknown"):
        row.state, row.error = chat_store.FAILED, (outcome.last_error or outcome.state)[:500]


def messages_of_ticket(session: Session, principal: Principal, ticket_id: int) -> list[ChatMessageRow]:
    """The chat messages heard and mirrored for a ticket the caller may see (staff: where each came from)."""
    tickets.find(session, principal, ticket_id)
    query = select(ChatMessageRow).where(ChatMessageRow.ticket_id == ticket_id).order_by(ChatMessageRow.id)
    return list(session.scalars(query.limit(500)))

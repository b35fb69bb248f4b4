"""Agents' public replies mirrored into the chat thread a ticket came from, once per comment, through notify's
outbox; notify's result hands back the platform's id of the posted message, so its echo is known as ours."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from zhiban.chat import store as chat_store
from zhiban.chat.model import (
    Platform,
)
from zhiban.chat.store import (
    ChatAppRow,
    ChatMessageRow,
    ChatThreadRow,
)
from zhiban.core.clock import Clock
from zhiban.core.errors import ZhibanError
from zhiban.identity import service as identity
from zhiban.identity.model import Principal, Role
from zhiban.notify import Message, MessageOutcome
from zhiban.notify import service as notify
from zhiban.tickets import service as tickets
from zhiban.tickets.model import EventKind, TicketChange

log = logging.getLogger("zhiban.chat")

OUTBOX_SUBJECT = "chat_reply"  # notify messages about an outbound chat_messages row
# Reads tickets on the desk's behalf when it mirrors a reply (never used to write).
_DESK = Principal(person_id="desk", role=Role.AGENT, organization_id=None, name="zhiban")
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

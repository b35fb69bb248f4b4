"""The chat tables: each platform's app (its secrets, never shown back), the groups bound to organizations,
platform users mapped to people, the threads that are tickets, every message heard or mirrored, and the
events acted on (their ids refuse a replay)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

import zhiban.identity.store
import zhiban.tickets.store  # noqa: F401  (the tables our foreign keys point at)
from zhiban.store.db import Base, UTCDateTime, new_id

INBOUND = "in"
OUTBOUND = "out"
# States of a mirrored reply; inbound messages are "received".
RECEIVED = "received"
QUEUED = "queued"
SENT = "sent"
FAILED = "failed"
# The action of a message's own claim among the events (not an event of the platform's: never listed).
MESSAGE_CLAIM_ACTION = "message"


class ChatAppRow(Base):
    """One bot per platform: how its events are checked and how it posts (secrets kept as notify keeps them)."""

    __tablename__ = "chat_apps"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    signing_secret: Mapped[str] = mapped_column(String(500), default="")  # Slack
    bot_token: Mapped[str] = mapped_column(String(500), default="")  # Slack xoxb-…
    app_id: Mapped[str] = mapped_column(String(128), default="")  # Feishu cli_…
    app_secret: Mapped[str] = mapped_column(String(500), default="")  # Feishu
    verification_token: Mapped[str] = mapped_column(String(500), default="")  # Feishu
    encrypt_key: Mapped[str] = mapped_column(String(500), default="")  # Feishu
    bot_user_id: Mapped[str] = mapped_column(String(128), default="")  # the bot's own user id / open_id
    api_url: Mapped[str] = mapped_column(String(500), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChatGroupRow(Base):
    """A group bound to one organization by an admin; messages of groups not bound are refused."""

    __tablename__ = "chat_groups"
    __table_args__ = (UniqueConstraint("platform", "group_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    platform: Mapped[str] = mapped_column(String(16))
    group_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200), default="")
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    # Who files for a platform user not mapped to a person: a customer of the organization.
    requester_id: Mapped[str | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), nullable=True)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    urgent_words: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # None: the defaults
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(64))


class ChatPersonRow(Base):
    """A platform user known as a person (a customer user of a bound group's organization)."""

    __tablename__ = "chat_people"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)


class ChatThreadRow(Base):
    """A group's thread that is a ticket: replies in it are the customer's messages, agents' replies go to it."""

    __tablename__ = "chat_threads"
    __table_args__ = (UniqueConstraint("platform", "group_id", "thread_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    group_id: Mapped[str] = mapped_column(String(128))
    thread_id: Mapped[str] = mapped_column(String(128))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    # DingTalk: the conversation's latest sessionWebhook, where replies are posted (it expires after a while).
    reply_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChatMessageRow(Base):
    """A message heard in a ticket's thread, or an agent's reply mirrored to it (once per comment)."""

    __tablename__ = "chat_messages"
    __table_args__ = (
        UniqueConstraint("platform", "group_id", "message_id"),
        Index("ix_chat_messages_ticket", "ticket_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    group_id: Mapped[str] = mapped_column(String(128))
    # The platform's id (Slack ts, Feishu message id); a mirrored reply gets it once the platform took it.
    message_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    comment_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    direction: Mapped[str] = mapped_column(String(4))
    # "out:<comment id>" for a mirrored reply: a comment is mirrored once whatever hears of it again.
    dedup_key: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    state: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChatEventRow(Base):
    """An event the desk acted on: its id refuses a redelivery or a replay; the admin sees the last ones."""

    __tablename__ = "chat_events"
    __table_args__ = (UniqueConstraint("platform", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    platform: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(128))
    group_id: Mapped[str] = mapped_column(String(128))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"), nullable=True)
    action: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


def group_of(session: Session, platform: str, group_id: str) -> ChatGroupRow | None:
    return session.scalar(
        select(ChatGroupRow).where(ChatGroupRow.platform == platform, ChatGroupRow.group_id == group_id)
    )


def thread_of(session: Session, platform: str, group_id: str, thread_id: str) -> ChatThreadRow | None:
    return session.scalar(
        select(ChatThreadRow).where(
            ChatThreadRow.platform == platform, ChatThreadRow.group_id == group_id, ChatThreadRow.thread_id == thread_id
        )
    )


def threads_of_ticket(session: Session, ticket_id: int) -> list[ChatThreadRow]:
    return list(session.scalars(select(ChatThreadRow).where(ChatThreadRow.ticket_id == ticket_id)))


def message_seen(session: Session, platform: str, group_id: str, message_id: str) -> ChatMessageRow | None:
    return session.scalar(
        select(ChatMessageRow).where(
            ChatMessageRow.platform == platform,
            ChatMessageRow.group_id == group_id,
            ChatMessageRow.message_id == message_id,
        )
    )


def event_seen(session: Session, platform: str, event_id: str) -> bool:
    found = select(ChatEventRow.id).where(ChatEventRow.platform == platform, ChatEventRow.event_id == event_id)
    return session.scalar(found) is not None


def prune_events(session: Session, before: datetime, limit: int = 200) -> None:
    """Forget acted-on event ids older than `before` (a replay that old is refused by its timestamp)."""
    old = select(ChatEventRow.id).where(ChatEventRow.received_at < before).limit(limit)
    session.execute(delete(ChatEventRow).where(ChatEventRow.id.in_(old)))

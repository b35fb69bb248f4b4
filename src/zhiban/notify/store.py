"""Tables of people's contact methods, their notification rules, and every outgoing message (the one outbox).

Pages, SLA warnings and breaches, on-call gap notices, customer notices, status updates and ticket mail
are all rows here. A notification row is one message to one destination: pending → sending → sent | failed (or
cancelled when its incident is acknowledged first; or unknown when a hand-off to a channel that cannot
drop repeats was cut by a crash, see docs/DELIVERY.md). Its unique idempotency key is what makes a page
go out once per escalation step and person and contact method, however often a timer fires.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

import zhiban.tickets.store  # noqa: F401  (the inbox's foreign key finds its table)
from zhiban.store.db import Base, UTCDateTime, new_id

JSONType = JSON().with_variant(JSONB(), "postgresql")


class ContactMethodRow(Base):
    __tablename__ = "contact_methods"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    label: Mapped[str] = mapped_column(String(200), default="")
    # The destination config of the channel type (notify.config); secrets included, never shown back.
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class NotificationRuleRow(Base):
    __tablename__ = "notification_rules"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    contact_method_id: Mapped[str] = mapped_column(ForeignKey("contact_methods.id", ondelete="CASCADE"))
    delay_minutes: Mapped[int] = mapped_column(Integer, default=0)
    urgency: Mapped[str] = mapped_column(String(8), default="any")  # any | high | low
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class NotificationRow(Base):
    __tablename__ = "notifications"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    # What it is about: ("incident", id) for pages; kept generic so notices can use it too.
    subject_kind: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    # What sort of message it is (the Message's event: incident.page, sla.breach, ticket.reply, ...).
    kind: Mapped[str] = mapped_column(String(64), default="notification", server_default="notification")
    # The ticket it concerns, when it concerns one (SLA notices, replies by mail); no foreign key: kept for audit.
    ticket_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    person_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    contact_method_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    channel: Mapped[str] = mapped_column(String(32))
    destination: Mapped[dict[str, Any]] = mapped_column(JSONType)
    rate_key: Mapped[str] = mapped_column(String(300))
    # The rendered message fields (notify.model.Message) as JSON.
    message: Mapped[dict[str, Any]] = mapped_column(JSONType)
    state: Mapped[str] = mapped_column(String(16))  # pending | sending | sent | failed | cancelled | unknown
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Each engine job that carries this message gets the next number (rate-limit waits re-arm it).
    job_seq: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    provider_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When a worker handed the message to its channel (the paging-latency benchmark reads this).
    handed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Names the one hand-off in progress (committed with `sending`, before the channel is called), so
    # a later run knows that this hand-off may have happened and the late answer of a hung run is its own.
    handoff_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        Index("ix_notifications_subject", "subject_kind", "subject_id"),
        Index("ix_notifications_rate_key_handed", "rate_key", "handed_at"),
        Index("ix_notifications_kind_created", "kind", "created_at"),
        Index("ix_notifications_ticket", "ticket_id"),
        # A provider's callbacks (Twilio's call status, a page's keypress) name the message by its id there.
        Index("ix_notifications_provider_id", "provider_id"),
    )


class InboxRow(Base):
    """One in-app notice to one person (the agent's inbox): read in the desk, marked read there.

    Every feature writes here through `notify.inbox.post`: SLA warnings and breaches, new tickets for a team,
    tickets assigned, pages. `key` says what the notice is about, so it is recorded once per person however
    often its cause is heard (an SLA notice is once per ticket, clock, cycle and kind).
    """

    __tablename__ = "inbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))  # notify.inbox.KINDS
    key: Mapped[str] = mapped_column(String(200))
    # Why this person hears of it: assignee, team_lead, manager, on_call, dedicated_contact, team, paged.
    reason: Mapped[str] = mapped_column(String(32), default="", server_default="")
    title: Mapped[str] = mapped_column(String(300), default="", server_default="")
    # What it is about. A notice goes with its ticket (a foreign key, ON DELETE CASCADE: an in-app line naming a
    # ticket that is gone leads nowhere). `incident_id` has none: incidents import notify (their pages), so notify
    # may not import theirs, and incidents are never deleted; a page notice of a ticket's incident names the ticket.
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), nullable=True)
    incident_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # e.g. an SLA notice's metric and cycle
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The fate of the notice's mail, when one was sent with it (SLA notices).
    emailed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    email_error: Mapped[str | None] = mapped_column(String(500), nullable=True)

    __table_args__ = (
        UniqueConstraint("person_id", "key", name="uq_inbox_once"),
        Index("ix_inbox_person_created", "person_id", "created_at"),
        Index("ix_inbox_ticket", "ticket_id"),  # the cascade from a deleted ticket
        Index("ix_inbox_created", "created_at"),  # retention (notify.inbox.prune)
    )

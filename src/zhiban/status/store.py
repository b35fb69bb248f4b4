"""Tables of status pages: public updates posted on incidents, subscriptions, private feed tokens, the scan cursor."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

import zhiban.incidents.store  # noqa: F401  (the tables our foreign keys point at)
from zhiban.store.db import Base, UTCDateTime, new_id


class StatusUpdateRow(Base):
    """A public update written for a status page ("identified: rerouting around sh-edge-07")."""

    __tablename__ = "status_updates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    # Components named by this update (regions, "edge network", app ids); empty: keep what was derived.
    components: Mapped[list[str]] = mapped_column(JSON, default=list)
    severity: Mapped[str | None] = mapped_column(String(16), nullable=True)
    author_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The incident's public title from this update on; None: keep the one shown before.
    title: Mapped[str | None] = mapped_column(String(300), nullable=True)


class PublishedServiceRow(Base):
    """A service whose incidents the public status page shows, on a public component under a public title."""

    __tablename__ = "status_published_services"

    service_id: Mapped[str] = mapped_column(ForeignKey("incident_services.id", ondelete="CASCADE"), primary_key=True)
    component: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    updated_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SubscriptionRow(Base):
    """Someone who wants to hear of status changes: by e-mail (confirmed by a link) or by signed webhook."""

    __tablename__ = "status_subscriptions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    # None: the public platform page; otherwise that organization's private page.
    organization_id: Mapped[str | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), nullable=True, index=True
    )
    channel: Mapped[str] = mapped_column(String(16))  # email | webhook
    address: Mapped[str] = mapped_column(String(2000))  # an e-mail address or a webhook URL
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # the notify destination config (webhook secret inside)
    # Secret of the confirm and unsubscribe links; never shown back once mailed.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    language: Mapped[str] = mapped_column(String(2), default="en")
    created_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (Index("ix_status_subscriptions_page_address", "organization_id", "channel", "address"),)


class FeedTokenRow(Base):
    """The secret in a private page's Atom feed URL (feed readers cannot sign in)."""

    __tablename__ = "status_feed_tokens"

    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ScanCursorRow(Base):
    """How far the notifier has read the incidents' public timeline (one row)."""

    __tablename__ = "status_scan_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_event_id: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

"""Tables of customer apps."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from zhiban.store.db import Base, UTCDateTime, new_id


class CustomerAppRow(Base):
    """A customer's RTC app; the ingest key is stored as a lookup prefix and a SHA-256 digest only."""

    __tablename__ = "customer_apps"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    app_id: Mapped[str] = mapped_column(String(64), unique=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    key_lookup: Mapped[str] = mapped_column(String(8), unique=True)
    key_digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    key_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


def app_by_app_id(session: Session, app_id: str) -> CustomerAppRow | None:
    return session.scalar(select(CustomerAppRow).where(CustomerAppRow.app_id == app_id))


def app_by_key_lookup(session: Session, lookup: str) -> CustomerAppRow | None:
    return session.scalar(select(CustomerAppRow).where(CustomerAppRow.key_lookup == lookup))


def list_apps(session: Session, organization_id: str | None = None) -> list[CustomerAppRow]:
    query = select(CustomerAppRow).order_by(CustomerAppRow.app_id)
    if organization_id is not None:
        query = query.where(CustomerAppRow.organization_id == organization_id)
    return list(session.scalars(query))

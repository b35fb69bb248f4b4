"""Attempt budgets kept in the database (rate_counts), so every web process shares them.

A budget is `limit` attempts per key within a fixed window that starts at the key's first attempt.
Keys are hashed: the table holds no e-mail address or client address.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, case, delete, literal, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from zhiban.identity.store import RateCountRow
from zhiban.store.db import UTCDateTime

# Rows idle this long past their window are deleted when a new window opens (keeps the table small).
STALE_AFTER = timedelta(days=1)
PRUNE_BATCH = 200


@dataclass(frozen=True)
class Limit:
    """At most `limit` attempts per key within `window`; `scope` names the budget."""

    scope: str
    limit: int
    window: timedelta


# Failed sign-ins for one e-mail from one client: the lockout hits that pair only, so a stranger
# elsewhere cannot lock a person out of their own account.
LOGIN_PAIR = Limit("login.pair", 5, timedelta(minutes=15))
# Failed sign-ins from one client over every e-mail: slows credential stuffing.
LOGIN_CLIENT = Limit("login.client", 30, timedelta(minutes=15))


def key_of(*parts: str) -> str:
    """The stored key of some parts (SHA-256, hex)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def client_of(host: str | None) -> str:
    """The client a budget is kept for: its IPv4 address, or its IPv6 /64 (one host holds a whole /64)."""
    if not host:
        return "?"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:100]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def used(session: Session, limit: Limit, key: str, now: datetime) -> int:
    """Attempts counted for the key in its current window."""
    # Columns, not the ORM row: the identity map would keep a count that hit() has since changed.
    row = session.execute(
        select(RateCountRow.count, RateCountRow.expires_at).where(
            RateCountRow.scope == limit.scope, RateCountRow.key == key
        )
    ).first()
    if row is None:
        return 0
    count, expires_at = row
    return int(count) if expires_at > now else 0


def exhausted(session: Session, limit: Limit, key: str, now: datetime) -> bool:
    return used(session, limit, key, now) >= limit.limit


def hit(session: Session, limit: Limit, key: str, now: datetime) -> int:
    """Count one attempt, atomically across processes; returns the attempts in the window, this one included."""
    table = cast(Table, RateCountRow.__table__)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    ends = literal(now + limit.window, UTCDateTime())
    expired = table.c.expires_at <= literal(now, UTCDateTime())
    statement = (
        insert(table)
        .values(scope=limit.scope, key=key, count=1, expires_at=now + limit.window)
        .on_conflict_do_update(
            index_elements=["scope", "key"],
            set_={
                "count": case((expired, 1), else_=table.c.count + 1),
                "expires_at": case((expired, ends), else_=table.c.expires_at),
            },
        )
        .returning(table.c.count)
    )
    count = int(session.execute(statement).scalar_one())
    if count == 1:
        _prune(session, now)
    return count


def clear(session: Session, limit: Limit, key: str) -> None:
    """Forget the key's attempts (a success ends a run of failures)."""
    session.execute(delete(RateCountRow).where(RateCountRow.scope == limit.scope, RateCountRow.key == key))


def _prune(session: Session, now: datetime) -> None:
    stale = (
        select(RateCountRow.scope, RateCountRow.key)
        .where(RateCountRow.expires_at < now - STALE_AFTER)
        .limit(PRUNE_BATCH)
    )
    session.execute(delete(RateCountRow).where(tuple_(RateCountRow.scope, RateCountRow.key).in_(stale)))

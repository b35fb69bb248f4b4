"""Tables of SLA plans, policy rules and versions, per-ticket SLA state, clocks, their history, notifications.

`sla_clocks` is a materialized view of the ticket event log (replayed by sla.model.compute_clocks);
`sla_tickets` holds what a replay needs besides the log (the plan, policy and calendar version in force when
the ticket was filed) and the queue's sort key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    any_,
    bindparam,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import InstrumentedAttribute, Mapped, Session, mapped_column

from zhiban.store.db import Base, UTCDateTime


class PlanRow(Base):
    __tablename__ = "sla_plans"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # what OrganizationRow.plan holds, lower case
    name: Mapped[str] = mapped_column(String(100))
    proactive_warning: Mapped[bool] = mapped_column(Boolean, default=False)
    # {"P1": [{"metric": "first_response", "minutes": 15, "calendar": "24x7"}, ...], ...}
    targets: Mapped[dict[str, list[dict[str, Any]]]] = mapped_column(JSON)
    position: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Support mode (sla.model.SupportMode): who is woken for this plan's tickets, and through which service.
    support_mode: Mapped[str] = mapped_column(String(16), default="queue", server_default="queue")
    paging_priorities: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    paging_service_id: Mapped[str | None] = mapped_column(
        ForeignKey("incident_services.id", ondelete="RESTRICT"), nullable=True
    )
    urgent_priorities: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    urgent_per_day: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class PolicyRuleRow(Base):
    """A rule checked before the plans' own rules, in `position` order (e.g. a category or channel exception)."""

    __tablename__ = "sla_policy_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    plan: Mapped[str | None] = mapped_column(String(64), nullable=True)
    priority: Mapped[str | None] = mapped_column(String(2), nullable=True)
    channel: Mapped[str | None] = mapped_column(String(16), nullable=True)
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    targets: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PolicyVersionRow(Base):
    """The whole effective policy (rules, then plan rules) from `created_at` on; never changed."""

    __tablename__ = "sla_policy_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    warning_fraction: Mapped[float] = mapped_column(Float, default=0.75)
    # Each plan's support terms as they were in this version (who was woken, through which service).
    support: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OrganizationCalendarRow(Base):
    """Which calendar an organization's business-hour targets count on (default: its country and zone)."""

    __tablename__ = "sla_organization_calendars"

    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    calendar_id: Mapped[str] = mapped_column(ForeignKey("calendars.id", ondelete="RESTRICT"))


class SlaTicketRow(Base):
    __tablename__ = "sla_tickets"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    plan: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[int] = mapped_column(Integer)
    calendar_id: Mapped[str] = mapped_column(ForeignKey("calendars.id", ondelete="RESTRICT"), index=True)
    calendar_version: Mapped[int] = mapped_column(Integer)
    is_open: Mapped[bool] = mapped_column(Boolean)
    # Nearest due time among running or overdue clocks (overdue ones are in the past, so they sort first);
    # tickets without one sort after, by priority then age. Epoch microseconds: one index serves the queue.
    sort_key: Mapped[int] = mapped_column(BigInteger)
    urgent_metric: Mapped[str | None] = mapped_column(String(32), nullable=True)
    urgent_cycle: Mapped[int | None] = mapped_column(Integer, nullable=True)
    urgent_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_sla_tickets_queue", "is_open", "sort_key", "ticket_id"),)


class ClockRow(Base):
    __tablename__ = "sla_clocks"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    cycle: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    calendar: Mapped[str] = mapped_column(String(16))  # "24x7" or "business"
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    warning_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    business_seconds_used: Mapped[float] = mapped_column(Float)
    target_seconds: Mapped[int] = mapped_column(Integer)
    # When the warning and breach timers are armed (None: no timer); a timer may fire early and re-arm itself.
    warning_timer_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    breach_timer_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (Index("ix_sla_clocks_state_due", "state", "due_at"),)


class ClockChangeRow(Base):
    """History: each time a clock started, moved its due time, paused, resumed, was met or breached."""

    __tablename__ = "sla_clock_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    metric: Mapped[str] = mapped_column(String(32))
    cycle: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reason: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


def plans_in_order(session: Session) -> list[PlanRow]:
    return list(session.scalars(select(PlanRow).order_by(PlanRow.position, PlanRow.key)))


def rules_in_order(session: Session) -> list[PolicyRuleRow]:
    return list(session.scalars(select(PolicyRuleRow).order_by(PolicyRuleRow.position, PolicyRuleRow.id)))


def latest_policy_version(session: Session) -> PolicyVersionRow | None:
    return session.scalar(select(PolicyVersionRow).order_by(PolicyVersionRow.version.desc()).limit(1))


def clocks_of(session: Session, ticket_id: int) -> list[ClockRow]:
    query = select(ClockRow).where(ClockRow.ticket_id == ticket_id).order_by(ClockRow.metric, ClockRow.cycle)
    return list(session.scalars(query))


def history_of(session: Session, ticket_id: int, limit: int = 500) -> list[ClockChangeRow]:
    query = select(ClockChangeRow).where(ClockChangeRow.ticket_id == ticket_id)
    return list(session.scalars(query.order_by(ClockChangeRow.id).limit(limit)))


# -- bulk statements for batch recomputes ----------------------------------------------------------------
# On PostgreSQL a round of rows travels as one array per column (unnest): a short statement with a few
# parameters, instead of thousands of parameters that the driver must parse out of a long SQL text each time.

_PG_ARRAY_TYPES: tuple[tuple[type, str], ...] = (
    (BigInteger, "bigint"),
    (Integer, "integer"),
    (Float, "float8"),
    (Boolean, "boolean"),
    (String, "varchar"),
    (UTCDateTime, "timestamptz"),
)


def _pg_array(column: Column[Any]) -> str:
    for kind, name in _PG_ARRAY_TYPES:
        if isinstance(column.type, kind):
            return f"{name}[]"
    raise TypeError(f"no array type for {column}")  # pragma: no cover - only the columns above are used


def _unnest(table: Table, columns: Sequence[str]) -> str:
    arrays = ", ".join(f"CAST(:{c} AS {_pg_array(table.c[c])})" for c in columns)
    return f"unnest({arrays}) AS v({', '.join(columns)})"


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def ids_in(
    session: Session, column: ColumnElement[int] | InstrumentedAttribute[int], ids: Sequence[int]
) -> ColumnElement[bool]:
    """`column IN ids`, as one array parameter on PostgreSQL."""
    if _is_postgresql(session):
        return column == any_(literal(list(ids), postgresql.ARRAY(Integer)))
    return column.in_(ids)


def bulk_insert(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows that all have the same keys."""
    if not rows:
        return
    if _is_postgresql(session):
        columns = list(rows[0])
        statement = text(f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM {_unnest(table, columns)}")
        session.execute(statement, {c: [r[c] for r in rows] for c in columns})
        return
    session.execute(insert(table), list(rows))


def bulk_update(session: Session, table: Table, key: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Update rows by their `key` column; every row has the same keys (the key and the columns to set)."""
    if not rows:
        return
    columns = list(rows[0])
    values = [c for c in columns if c != key]
    if _is_postgresql(session):
        sets = ", ".join(f"{c} = v.{c}" for c in values)
        statement = text(f"UPDATE {table.name} AS t SET {sets} FROM {_unnest(table, columns)} WHERE t.{key} = v.{key}")
        session.execute(statement, {c: [r[c] for r in rows] for c in columns})
        return
    by_key = update(table).where(table.c[key] == bindparam(f"_{key}")).values({c: bindparam(c) for c in values})
    session.execute(by_key, [{**r, f"_{key}": r[key]} for r in rows])

"""inbox: one in-app inbox of notices; the SLA notices move into it

Revision ID: 0009
Revises: 0008

`sla_notifications` (the SLA's in-app alerts) becomes `inbox`, where new tickets for a team, tickets assigned
and pages are told too. Its rows are copied with their ids, since the outbox names their mail by id
(subject `sla_notification`, idempotency key `sla-notification-<id>`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import zhiban.store.db

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_OLD = sa.table(
    "sla_notifications",
    sa.column("id", sa.Integer()),
    sa.column("person_id", sa.String()),
    sa.column("ticket_id", sa.Integer()),
    sa.column("metric", sa.String()),
    sa.column("cycle", sa.Integer()),
    sa.column("kind", sa.String()),
    sa.column("level", sa.String()),
    sa.column("due_at", zhiban.store.db.UTCDateTime()),
    sa.column("created_at", zhiban.store.db.UTCDateTime()),
    sa.column("read_at", zhiban.store.db.UTCDateTime()),
    sa.column("emailed_at", zhiban.store.db.UTCDateTime()),
    sa.column("email_error", sa.String()),
)
_TICKETS = sa.table("tickets", sa.column("id", sa.Integer()), sa.column("subject", sa.String()))
_CHUNK = 1000


def _inbox_table() -> sa.Table:
    return op.create_table(
        "inbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=32), server_default="", nullable=False),
        sa.Column("title", sa.String(length=300), server_default="", nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("incident_id", sa.String(length=32), nullable=True),
        sa.Column("due_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("read_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("emailed_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("email_error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_inbox_person_id_people"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox")),
        sa.UniqueConstraint("person_id", "key", name="uq_inbox_once"),
    )


def _copy_sla_notices(inbox: sa.Table) -> None:
    bind = op.get_bind()
    query = (
        sa.select(_OLD, _TICKETS.c.subject)
        .select_from(_OLD.outerjoin(_TICKETS, _TICKETS.c.id == _OLD.c.ticket_id))
        .order_by(_OLD.c.id)
    )
    batch: list[dict[str, object]] = []
    for r in bind.execute(query).mappings():
        batch.append(
            {
                "id": r["id"],
                "person_id": r["person_id"],
                "kind": f"sla_{r['kind']}",
                "key": f"sla:{r['ticket_id']}:{r['metric']}:{r['cycle']}:{r['kind']}",
                "reason": r["level"],
                "title": (r["subject"] or "")[:300],
                "ticket_id": r["ticket_id"],
                "due_at": r["due_at"],
                "data": {"metric": r["metric"], "cycle": r["cycle"]},
                "created_at": r["created_at"],
                "read_at": r["read_at"],
                "emailed_at": r["emailed_at"],
                "email_error": r["email_error"],
            }
        )
        if len(batch) >= _CHUNK:
            op.bulk_insert(inbox, batch)
            batch = []
    if batch:
        op.bulk_insert(inbox, batch)
    if bind.dialect.name == "postgresql":
        # Ids were copied: the next notice takes the number after them.
        op.execute(
            "SELECT setval(pg_get_serial_sequence('inbox', 'id'), COALESCE((SELECT MAX(id) FROM inbox), 0) + 1, false)"
        )


def upgrade() -> None:
    inbox = _inbox_table()
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_index("ix_inbox_person_created", ["person_id", "created_at"], unique=False)
    _copy_sla_notices(inbox)
    with op.batch_alter_table("sla_notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sla_notifications_person"))
    op.drop_table("sla_notifications")


def downgrade() -> None:
    # The SLA notices go back; the other notices (tickets, pages) have no place there and are dropped.
    op.create_table(
        "sla_notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("due_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("read_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("emailed_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("email_error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_sla_notifications_person_id_people"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_sla_notifications_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_notifications")),
        sa.UniqueConstraint(
            "ticket_id", "metric", "cycle", "kind", "person_id", name=op.f("uq_sla_notifications_once")
        ),
    )
    with op.batch_alter_table("sla_notifications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sla_notifications_person"), ["person_id", "created_at"], unique=False)
    inbox = sa.table(
        "inbox",
        sa.column("id", sa.Integer()),
        sa.column("person_id", sa.String()),
        sa.column("kind", sa.String()),
        sa.column("reason", sa.String()),
        sa.column("ticket_id", sa.Integer()),
        sa.column("due_at", zhiban.store.db.UTCDateTime()),
        sa.column("data", sa.JSON()),
        sa.column("created_at", zhiban.store.db.UTCDateTime()),
        sa.column("read_at", zhiban.store.db.UTCDateTime()),
        sa.column("emailed_at", zhiban.store.db.UTCDateTime()),
        sa.column("email_error", sa.String()),
    )
    rows = op.get_bind().execute(
        sa.select(inbox).where(inbox.c.kind.in_(["sla_warning", "sla_breach"]), inbox.c.ticket_id.is_not(None))
    )
    back = [
        {
            "id": r.id,
            "person_id": r.person_id,
            "ticket_id": r.ticket_id,
            "metric": str((r.data or {}).get("metric", "")),
            "cycle": int((r.data or {}).get("cycle", 0)),
            "kind": r.kind.removeprefix("sla_"),
            "level": r.reason[:16],
            "due_at": r.due_at,
            "created_at": r.created_at,
            "read_at": r.read_at,
            "emailed_at": r.emailed_at,
            "email_error": r.email_error,
        }
        for r in rows
    ]
    if back:
        op.bulk_insert(_OLD, back)
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_person_created")
    op.drop_table("inbox")

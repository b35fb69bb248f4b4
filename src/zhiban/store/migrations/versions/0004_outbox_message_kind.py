"""one outbox: notifications get a kind and a ticket reference

Every message to a person now goes through notify's `notifications` table. `kind` is the message's event
(incident.page, sla.breach, oncall.gap, ticket.reply, status.update, ...), filled from the stored message for
rows queued before; `ticket_id` names the ticket a message concerns, when it concerns one.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=64), server_default="notification", nullable=False))
        batch_op.add_column(sa.Column("ticket_id", sa.Integer(), nullable=True))
        batch_op.create_index("ix_notifications_kind_created", ["kind", "created_at"], unique=False)
        batch_op.create_index("ix_notifications_ticket", ["ticket_id"], unique=False)
    postgresql = op.get_bind().dialect.name == "postgresql"
    event = "message ->> 'event'" if postgresql else "json_extract(message, '$.event')"
    op.execute(f"UPDATE notifications SET kind = COALESCE({event}, 'notification')")


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_ticket")
        batch_op.drop_index("ix_notifications_kind_created")
        batch_op.drop_column("ticket_id")
        batch_op.drop_column("kind")

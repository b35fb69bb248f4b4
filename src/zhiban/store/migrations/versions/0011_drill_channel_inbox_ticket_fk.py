"""drills file by e-mail too; the inbox goes with its tickets and is pruned

Revision ID: 0011
Revises: 0010

`drills.channel` (api | email) and `drills.intake_key` (the hash of an e-mail drill's one-time key while it
files). `inbox.ticket_id` becomes a foreign key to `tickets` with ON DELETE CASCADE; notices naming a ticket
that no longer exists are deleted first (nothing could show them). Indexes for that cascade and for retention.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("drills", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel", sa.String(length=8), server_default="api", nullable=False))
        batch_op.add_column(sa.Column("intake_key", sa.String(length=64), nullable=True))
    op.execute(
        "DELETE FROM inbox WHERE ticket_id IS NOT NULL AND NOT EXISTS"
        " (SELECT 1 FROM tickets WHERE tickets.id = inbox.ticket_id)"
    )
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_foreign_key(
            batch_op.f("fk_inbox_ticket_id_tickets"), "tickets", ["ticket_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_index("ix_inbox_ticket", ["ticket_id"], unique=False)
        batch_op.create_index("ix_inbox_created", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_created")
        batch_op.drop_index("ix_inbox_ticket")
        batch_op.drop_constraint(batch_op.f("fk_inbox_ticket_id_tickets"), type_="foreignkey")
    with op.batch_alter_table("drills", schema=None) as batch_op:
        batch_op.drop_column("intake_key")
        batch_op.drop_column("channel")

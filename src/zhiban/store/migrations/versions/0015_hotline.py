"""hotline: support lines per plan, calls and their answered steps; people.phone; notifications by provider id

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import zhiban.store.db

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hotline_lines",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.String(length=16), nullable=False),
        sa.Column("plan", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("created_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hotline_lines")),
        sa.UniqueConstraint("number", name=op.f("uq_hotline_lines_number")),
    )
    op.create_table(
        "hotline_calls",
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("line_id", sa.String(length=32), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("caller", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=True),
        sa.Column("organization_id", sa.String(length=32), nullable=True),
        sa.Column("identified_by", sa.String(length=16), nullable=False),
        sa.Column("identify_tries", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("created_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["line_id"], ["hotline_lines.id"], name=op.f("fk_hotline_calls_line_id_hotline_lines"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_hotline_calls_person_id_people"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_hotline_calls_ticket_id_tickets"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_hotline_calls")),
    )
    op.create_index(op.f("ix_hotline_calls_ticket_id"), "hotline_calls", ["ticket_id"], unique=False)
    op.create_table(
        "hotline_steps",
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("created_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("call_id", "step", name=op.f("pk_hotline_steps")),
    )
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone", sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f("ix_people_phone"), ["phone"], unique=False)
    op.create_index("ix_notifications_provider_id", "notifications", ["provider_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_notifications_provider_id", table_name="notifications")
    with op.batch_alter_table("people", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_people_phone"))
        batch_op.drop_column("phone")
    op.drop_table("hotline_steps")
    op.drop_index(op.f("ix_hotline_calls_ticket_id"), table_name="hotline_calls")
    op.drop_table("hotline_calls")
    op.drop_table("hotline_lines")

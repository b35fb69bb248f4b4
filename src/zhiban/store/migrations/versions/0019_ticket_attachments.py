"""ticket_attachments: files kept with a ticket's messages (their bytes are blobs under var/attachments)

Revision ID: 0019
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import zhiban.store.db

revision = "0019"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_attachments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("comment_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=127), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("blob_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"], ["people.id"], name=op.f("fk_ticket_attachments_author_id_people"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["comment_id"],
            ["ticket_comments.id"],
            name=op.f("fk_ticket_attachments_comment_id_ticket_comments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_attachments_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_attachments")),
    )
    with op.batch_alter_table("ticket_attachments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticket_attachments_blob_key"), ["blob_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_attachments_comment_id"), ["comment_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ticket_attachments_ticket_id"), ["ticket_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ticket_attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_attachments_ticket_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_attachments_comment_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_attachments_blob_key"))
    op.drop_table("ticket_attachments")

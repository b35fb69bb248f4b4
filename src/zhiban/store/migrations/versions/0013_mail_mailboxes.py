"""mail_mailboxes: support mailboxes read over IMAP, with their cursors; mail_messages and held_mail.mailbox_id

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import zhiban.store.db

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_mailboxes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("host", sa.String(length=253), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("security", sa.String(length=8), nullable=False),
        sa.Column("username", sa.String(length=254), nullable=False),
        sa.Column("password", sa.String(length=500), nullable=False),
        sa.Column("folder", sa.String(length=200), nullable=False),
        sa.Column("after_filing", sa.String(length=8), nullable=False),
        sa.Column("move_to", sa.String(length=200), nullable=True),
        sa.Column("authserv_id", sa.String(length=200), nullable=False),
        sa.Column("poll_seconds", sa.Integer(), nullable=False),
        sa.Column("max_message_bytes", sa.Integer(), nullable=False),
        sa.Column("idle", sa.Boolean(), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("retry_uid", sa.BigInteger(), nullable=True),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("poll_seq", sa.Integer(), nullable=False),
        sa.Column("filed", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("last_success_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("last_error_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_mailboxes")),
        sa.UniqueConstraint("name", name=op.f("uq_mail_mailboxes_name")),
    )
    with op.batch_alter_table("mail_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mailbox_id", sa.String(length=32), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_mail_messages_mailbox_id_mail_mailboxes"),
            "mail_mailboxes",
            ["mailbox_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("held_mail", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mailbox_id", sa.String(length=32), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_held_mail_mailbox_id_mail_mailboxes"),
            "mail_mailboxes",
            ["mailbox_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    for table in ("held_mail", "mail_messages"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(batch_op.f(f"fk_{table}_mailbox_id_mail_mailboxes"), type_="foreignkey")
            batch_op.drop_column("mailbox_id")
    op.drop_table("mail_mailboxes")

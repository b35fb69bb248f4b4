"""chat: platform apps, groups bound to organizations, mapped users, ticket threads, messages, acted-on events

Revision ID: 0016
Revises: 0014 (written beside 0015, which another branch adds: re-chained to 0015 at merge)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import zhiban.store.db

revision = "0016"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chat_apps",
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("signing_secret", sa.String(length=500), nullable=False),
        sa.Column("bot_token", sa.String(length=500), nullable=False),
        sa.Column("app_id", sa.String(length=128), nullable=False),
        sa.Column("app_secret", sa.String(length=500), nullable=False),
        sa.Column("verification_token", sa.String(length=500), nullable=False),
        sa.Column("encrypt_key", sa.String(length=500), nullable=False),
        sa.Column("bot_user_id", sa.String(length=128), nullable=False),
        sa.Column("api_url", sa.String(length=500), nullable=False),
        sa.Column("updated_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("platform", name=op.f("pk_chat_apps")),
    )
    op.create_table(
        "chat_groups",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("group_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("organization_id", sa.String(length=32), nullable=False),
        sa.Column("requester_id", sa.String(length=32), nullable=True),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("urgent_words", sa.JSON(), nullable=True),
        sa.Column("created_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_chat_groups_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"], ["people.id"], name=op.f("fk_chat_groups_requester_id_people"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_groups")),
        sa.UniqueConstraint("platform", "group_id", name=op.f("uq_chat_groups_platform")),
    )
    with op.batch_alter_table("chat_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chat_groups_organization_id"), ["organization_id"], unique=False)

    op.create_table(
        "chat_people",
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_chat_people_person_id_people"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("platform", "user_id", name=op.f("pk_chat_people")),
    )
    with op.batch_alter_table("chat_people", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chat_people_person_id"), ["person_id"], unique=False)

    op.create_table(
        "chat_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("group_id", sa.String(length=128), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("received_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_chat_events_ticket_id_tickets"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_events")),
        sa.UniqueConstraint("platform", "event_id", name=op.f("uq_chat_events_platform")),
    )
    with op.batch_alter_table("chat_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chat_events_received_at"), ["received_at"], unique=False)

    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("group_id", sa.String(length=128), nullable=False),
        sa.Column("message_id", sa.String(length=128), nullable=True),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("comment_id", sa.Integer(), nullable=True),
        sa.Column("direction", sa.String(length=4), nullable=False),
        sa.Column("dedup_key", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_chat_messages_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_chat_messages_dedup_key")),
        sa.UniqueConstraint("platform", "group_id", "message_id", name=op.f("uq_chat_messages_platform")),
    )
    with op.batch_alter_table("chat_messages", schema=None) as batch_op:
        batch_op.create_index("ix_chat_messages_ticket", ["ticket_id"], unique=False)

    op.create_table(
        "chat_threads",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("group_id", sa.String(length=128), nullable=False),
        sa.Column("thread_id", sa.String(length=128), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("reply_url", sa.String(length=500), nullable=True),
        sa.Column("created_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_chat_threads_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_threads")),
        sa.UniqueConstraint("platform", "group_id", "thread_id", name=op.f("uq_chat_threads_platform")),
    )
    with op.batch_alter_table("chat_threads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chat_threads_ticket_id"), ["ticket_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("chat_threads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chat_threads_ticket_id"))

    op.drop_table("chat_threads")
    with op.batch_alter_table("chat_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_messages_ticket")

    op.drop_table("chat_messages")
    with op.batch_alter_table("chat_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chat_events_received_at"))

    op.drop_table("chat_events")
    with op.batch_alter_table("chat_people", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chat_people_person_id"))

    op.drop_table("chat_people")
    with op.batch_alter_table("chat_groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chat_groups_organization_id"))

    op.drop_table("chat_groups")
    op.drop_table("chat_apps")

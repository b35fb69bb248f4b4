"""ticket ownership and RTC fields: ticket_fields, ticket_tags, ticket_followers, ticket_links, ticket_team_rotation

Revision ID: 0018
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import zhiban.store.db

revision = "0018"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_fields",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.String(length=64), nullable=True),
        sa.Column("channel_name", sa.String(length=128), nullable=True),
        sa.Column("user_ids", sa.JSON(), nullable=False),
        sa.Column("sdk_version", sa.String(length=32), nullable=True),
        sa.Column("platform", sa.String(length=32), nullable=True),
        sa.Column("occurred_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_fields_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_ticket_fields")),
    )
    op.create_index(op.f("ix_ticket_fields_app_id"), "ticket_fields", ["app_id"], unique=False)
    op.create_index(op.f("ix_ticket_fields_sdk_version"), "ticket_fields", ["sdk_version"], unique=False)
    op.create_table(
        "ticket_tags",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_tags_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ticket_id", "tag", name=op.f("pk_ticket_tags")),
    )
    op.create_index("ix_ticket_tags_tag", "ticket_tags", ["tag"], unique=False)
    op.create_table(
        "ticket_followers",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_ticket_followers_person_id_people"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_followers_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ticket_id", "person_id", name=op.f("pk_ticket_followers")),
    )
    op.create_index(op.f("ix_ticket_followers_person_id"), "ticket_followers", ["person_id"], unique=False)
    op.create_table(
        "ticket_links",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("other_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["other_id"], ["tickets.id"], name=op.f("fk_ticket_links_other_id_tickets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_links_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ticket_id", "other_id", name=op.f("pk_ticket_links")),
    )
    op.create_index(op.f("ix_ticket_links_other_id"), "ticket_links", ["other_id"], unique=False)
    op.create_table(
        "ticket_team_rotation",
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("last_person_id", sa.String(length=32), nullable=True),
        sa.Column("at", zhiban.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["last_person_id"],
            ["people.id"],
            name=op.f("fk_ticket_team_rotation_last_person_id_people"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_ticket_team_rotation_team_id_teams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("team_id", name=op.f("pk_ticket_team_rotation")),
    )


def downgrade() -> None:
    op.drop_table("ticket_team_rotation")
    op.drop_index(op.f("ix_ticket_links_other_id"), table_name="ticket_links")
    op.drop_table("ticket_links")
    op.drop_index(op.f("ix_ticket_followers_person_id"), table_name="ticket_followers")
    op.drop_table("ticket_followers")
    op.drop_index("ix_ticket_tags_tag", table_name="ticket_tags")
    op.drop_table("ticket_tags")
    op.drop_index(op.f("ix_ticket_fields_sdk_version"), table_name="ticket_fields")
    op.drop_index(op.f("ix_ticket_fields_app_id"), table_name="ticket_fields")
    op.drop_table("ticket_fields")

"""tickets: search (ticket_texts with PostgreSQL GIN indexes or an SQLite FTS5 table) and saved views

Revision ID: 0017
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TSVECTOR

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# Frozen copies of tickets.store's DDL at this revision (a migration must not change when the models do).
FTS = "ticket_texts_fts"
COLUMNS = "subject_terms, public_terms, internal_terms, organization_id"
NEW = "new.ticket_id, new.subject_terms, new.public_terms, new.internal_terms, new.organization_id"
OLD = "old.ticket_id, old.subject_terms, old.public_terms, old.internal_terms, old.organization_id"
SQLITE_DDL = [
    f"CREATE VIRTUAL TABLE {FTS} USING fts5({COLUMNS},"
    " content='ticket_texts', content_rowid='ticket_id', tokenize='unicode61 remove_diacritics 0')",
    f"CREATE TRIGGER ticket_texts_ai AFTER INSERT ON ticket_texts BEGIN"
    f" INSERT INTO {FTS}(rowid, {COLUMNS}) VALUES ({NEW}); END",
    f"CREATE TRIGGER ticket_texts_ad AFTER DELETE ON ticket_texts BEGIN"
    f" INSERT INTO {FTS}({FTS}, rowid, {COLUMNS}) VALUES ('delete', {OLD}); END",
    f"CREATE TRIGGER ticket_texts_au AFTER UPDATE OF subject_terms, public_terms, internal_terms, organization_id"
    f" ON ticket_texts BEGIN INSERT INTO {FTS}({FTS}, rowid, {COLUMNS}) VALUES ('delete', {OLD});"
    f" INSERT INTO {FTS}(rowid, {COLUMNS}) VALUES ({NEW}); END",
]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    vector = TSVECTOR() if postgres else sa.Text()
    op.create_table(
        "ticket_texts",
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("organization_id", sa.String(32), nullable=False),
        sa.Column("subject_terms", sa.Text(), nullable=False),
        sa.Column("public_terms", sa.Text(), nullable=False),
        sa.Column("internal_terms", sa.Text(), nullable=False),
        sa.Column("public_vector", vector, nullable=True),
        sa.Column("staff_vector", vector, nullable=True),
        sa.Column("last_comment_id", sa.Integer(), nullable=False),
        sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=False),
        postgresql_with={"toast_tuple_target": 128},
    )
    op.create_index("ix_ticket_texts_public", "ticket_texts", ["public_vector"], postgresql_using="gin")
    op.create_index("ix_ticket_texts_staff", "ticket_texts", ["staff_vector"], postgresql_using="gin")
    if not postgres:
        for statement in SQLITE_DDL:
            op.execute(sa.text(statement))
    op.create_table(
        "ticket_views",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("owner_id", sa.String(32), sa.ForeignKey("people.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("query", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ticket_views_owner_id", "ticket_views", ["owner_id"])
    # Tickets filed before this revision have no terms yet: `zhiban tickets reindex` (or any new message on them)
    # cuts them; the migration does not run jieba over the whole history.


def downgrade() -> None:
    op.drop_index("ix_ticket_views_owner_id", table_name="ticket_views")
    op.drop_table("ticket_views")
    if op.get_bind().dialect.name != "postgresql":
        for statement in ("ticket_texts_au", "ticket_texts_ad", "ticket_texts_ai"):
            op.execute(sa.text(f"DROP TRIGGER IF EXISTS {statement}"))
        op.execute(sa.text(f"DROP TABLE IF EXISTS {FTS}"))
    op.drop_table("ticket_texts")

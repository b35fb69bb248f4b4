"""incidents: on PostgreSQL, incident numbers come from a sequence (the counter row serialized new incidents)

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # SQLite keeps the counter row: one writer at a time there anyway
    last = bind.execute(
        sa.text(
            "SELECT GREATEST((SELECT COALESCE(MAX(number), 0) FROM incidents),"
            " (SELECT COALESCE(MAX(last_number), 0) FROM incident_counter))"
        )
    ).scalar_one()
    op.execute(sa.text(f"CREATE SEQUENCE incident_numbers START WITH {int(last) + 1}"))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    # Back to the counter row: it continues after the last number the sequence gave.
    op.execute(
        sa.text(
            "UPDATE incident_counter SET last_number = GREATEST(last_number,"
            " (SELECT COALESCE(MAX(number), 0) FROM incidents))"
        )
    )
    op.execute(sa.text("DROP SEQUENCE incident_numbers"))

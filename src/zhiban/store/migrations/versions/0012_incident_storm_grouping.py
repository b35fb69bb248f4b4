"""incidents: storm grouping rules of services, and the rule that grouped an incident's alerts

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("incident_services", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grouping_rule", sa.String(length=16), server_default="off", nullable=False))
        batch_op.add_column(sa.Column("grouping_fields", JSONType, nullable=True))
        batch_op.add_column(sa.Column("grouping_window_minutes", sa.Integer(), server_default="0", nullable=False))
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grouping", JSONType, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("grouping")
    with op.batch_alter_table("incident_services", schema=None) as batch_op:
        batch_op.drop_column("grouping_window_minutes")
        batch_op.drop_column("grouping_fields")
        batch_op.drop_column("grouping_rule")

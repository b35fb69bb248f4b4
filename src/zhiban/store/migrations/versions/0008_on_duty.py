"""on duty: support modes, dedicated contacts, ticket pages

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import zhiban.store.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_on_duty",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("requested_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("paged_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
        sa.Column("closed_at", zhiban.store.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_on_duty_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_ticket_on_duty")),
        sa.UniqueConstraint("incident_id", name=op.f("uq_ticket_on_duty_incident_id")),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ticket_id", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_incidents_ticket_id"), ["ticket_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_incidents_ticket_id_tickets"), "tickets", ["ticket_id"], ["id"], ondelete="SET NULL"
        )

    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dedicated_contact_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("backup_contact_id", sa.String(length=32), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_organizations_backup_contact_id_people"),
            "people",
            ["backup_contact_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_organizations_dedicated_contact_id_people"),
            "people",
            ["dedicated_contact_id"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("sla_plans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("support_mode", sa.String(length=16), server_default="queue", nullable=False))
        batch_op.add_column(sa.Column("paging_priorities", sa.JSON(), server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("paging_service_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("urgent_priorities", sa.JSON(), server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("urgent_per_day", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_foreign_key(
            batch_op.f("fk_sla_plans_paging_service_id_incident_services"),
            "incident_services",
            ["paging_service_id"],
            ["id"],
            ondelete="RESTRICT",
        )

    with op.batch_alter_table("sla_policy_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("support", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sla_policy_versions", schema=None) as batch_op:
        batch_op.drop_column("support")

    with op.batch_alter_table("sla_plans", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_sla_plans_paging_service_id_incident_services"), type_="foreignkey")
        batch_op.drop_column("urgent_per_day")
        batch_op.drop_column("urgent_priorities")
        batch_op.drop_column("paging_service_id")
        batch_op.drop_column("paging_priorities")
        batch_op.drop_column("support_mode")

    with op.batch_alter_table("organizations", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_organizations_dedicated_contact_id_people"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_organizations_backup_contact_id_people"), type_="foreignkey")
        batch_op.drop_column("backup_contact_id")
        batch_op.drop_column("dedicated_contact_id")

    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_incidents_ticket_id_tickets"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_incidents_ticket_id"), type_="unique")
        batch_op.drop_column("ticket_id")

    op.drop_table("ticket_on_duty")

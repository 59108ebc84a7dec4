"""Threading and classification: undeliverable addresses, app secrets, ticket classification

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 07:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "undeliverable_addresses",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("permanent", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("inbound_id", sa.Integer(), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bounces", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["inbound_id"],
            ["inbound.id"],
            name=op.f("fk_undeliverable_addresses_inbound_id_inbound"),
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_undeliverable_addresses_ticket_id_tickets"),
        ),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_undeliverable_addresses")),
    )
    op.create_table(
        "app_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_app_secrets")),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("classification", sa.JSON(), nullable=False, server_default="{}")
        )
        batch_op.add_column(sa.Column("triage_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("triage_due", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("sla", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("sla_pauses", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("sla_pauses")
        batch_op.drop_column("sla")
        batch_op.drop_column("triage_due")
        batch_op.drop_column("triage_reason")
        batch_op.drop_column("classification")
    op.drop_table("app_secrets")
    op.drop_table("undeliverable_addresses")

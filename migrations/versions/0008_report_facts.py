"""reports: how a ticket was opened, churn risk raised; period indexes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 15:30:00.000000

The KPI report (issue 16) counts tickets by period with aggregate SQL, so the times it
selects on are indexed. Two facts were not recorded and are kept from now on, written where
they happen: ``origin`` (the kind of the mail that opened the ticket; only ``human`` counts
as volume) and ``churn_risk_raised`` (the survey answer raised the customer's churn risk).
Existing tickets get ``origin`` from their first message's inbound kind;
``churn_risk_raised`` cannot be recovered and stays false for them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEXES = (
    ("tickets", "received_at"),
    ("tickets", "first_response_due"),
    ("tickets", "resolved_at"),
    ("tickets", "survey_sent_at"),
    ("tickets", "survey_answered_at"),
    ("credits", "created_at"),
)


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(
            sa.Column("origin", sa.String(length=16), nullable=False, server_default="human")
        )
        batch.add_column(
            sa.Column("churn_risk_raised", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute(
        "UPDATE tickets SET origin = COALESCE(("
        " SELECT inbound.kind FROM messages JOIN inbound ON inbound.id = messages.inbound_id"
        " WHERE messages.ticket_id = tickets.id AND inbound.kind IS NOT NULL"
        " ORDER BY messages.id LIMIT 1), 'human')"
    )
    for table, column in _INDEXES:
        op.create_index(op.f(f"ix_{table}_{column}"), table, [column])


def downgrade() -> None:
    for table, column in reversed(_INDEXES):
        op.drop_index(op.f(f"ix_{table}_{column}"), table_name=table)
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("churn_risk_raised")
        batch.drop_column("origin")

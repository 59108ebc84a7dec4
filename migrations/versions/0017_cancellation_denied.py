"""A cancellation request closed without cancelling (issue 15 part 4, ``#cancel deny``)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 18:30:00.000000

``refund_cases.cancellation_denied_by``, ``cancellation_denied_at`` and
``cancellation_denied_reason``: the agent who closed the cancellation part of a case as
detected by mistake or withdrawn, when, and why (empty when no reason was written). A denied
cancellation can no longer be confirmed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("refund_cases") as batch:
        batch.add_column(sa.Column("cancellation_denied_by", sa.String(320), nullable=True))
        batch.add_column(
            sa.Column("cancellation_denied_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("cancellation_denied_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refund_cases") as batch:
        batch.drop_column("cancellation_denied_reason")
        batch.drop_column("cancellation_denied_at")
        batch.drop_column("cancellation_denied_by")

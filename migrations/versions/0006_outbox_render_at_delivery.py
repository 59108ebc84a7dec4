"""Outbox rows render at delivery: raw may be empty until then; template context and envelope

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 08:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("context", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("envelope", sa.JSON(), nullable=True))
        batch_op.alter_column("raw", existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    op.execute(
        "DELETE FROM outbox_recipients WHERE outbox_id IN (SELECT id FROM outbox WHERE raw IS NULL)"
    )
    op.execute("DELETE FROM outbox WHERE raw IS NULL")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("raw", existing_type=sa.LargeBinary(), nullable=False)
        batch_op.drop_column("envelope")
        batch_op.drop_column("context")

"""Refunds and cancellations complete (issue 15 part 4): both parts of a case, price locks,
who approved a credit

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 17:45:00.000000

``refund_cases`` keeps the cancellation part of a "refund and cancel" request beside its
refund (``cancellation``, and once confirmed ``effective_on``, ``cancelled_by``,
``cancelled_at``) and what sends a case to the Finance Director (``contract_dispute``,
``price_lock``). ``customers.price_lock_until`` is the optional Price_Lock_Until column of the
customer CSV. ``credits.approved_by`` names who approved a partial credit (empty: a credit the
procedures grant by themselves).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("refund_cases") as batch:
        for name in ("cancellation", "contract_dispute", "price_lock"):
            batch.add_column(
                sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false())
            )
        batch.add_column(sa.Column("effective_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("cancelled_by", sa.String(320), nullable=True))
        batch.add_column(sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE refund_cases SET cancellation = true WHERE kind = 'cancellation'")
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("price_lock_until", sa.Date(), nullable=True))
    with op.batch_alter_table("credits") as batch:
        batch.add_column(sa.Column("approved_by", sa.String(320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("credits") as batch:
        batch.drop_column("approved_by")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("price_lock_until")
    with op.batch_alter_table("refund_cases") as batch:
        for name in (
            "cancelled_at",
            "cancelled_by",
            "effective_on",
            "price_lock",
            "contract_dispute",
            "cancellation",
        ):
            batch.drop_column(name)

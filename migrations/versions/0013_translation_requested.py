"""tickets.translation_requested: the customer wrote or prefers a language not written to them

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 17:45:00.000000

§5.4: Spanish and French are written to Enterprise customers in EMEA/LATAM; anyone else who
writes or prefers another language than English gets English and a translation request,
listed by ``mailproc tickets list --translation-requested``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(
            sa.Column(
                "translation_requested", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch.create_index("ix_tickets_translation_requested", ["translation_requested"])


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_index("ix_tickets_translation_requested")
        batch.drop_column("translation_requested")

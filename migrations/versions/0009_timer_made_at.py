"""timers.made_at: when a promised update (Template 2, Template 3) was promised

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 16:10:00.000000

An update timer fires (the Support Manager is alerted) unless staff mail reached the
customer after the promise; the promise's time is kept on the timer. Escalation timers
leave it empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("timers") as batch:
        batch.add_column(sa.Column("made_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("timers") as batch:
        batch.drop_column("made_at")

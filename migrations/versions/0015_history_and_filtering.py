"""History imports and promoted bulk/spam mail (issue 14 parts 4 and 5)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 17:40:00.000000

``inbound.imported_at``: when ``mailproc ingest --history`` stored an old message (its
``received_at`` is then the message's own time); empty for live mail. A history row never
causes mail, now or on a replay. ``inbound.promoted_at``: when an admin said a bulk or spam
message was a person's after all (``mailproc inbound promote``); its ticket is timed from then.
``tickets.imported_at``: the ticket was opened by a history import, already handled (no SLA
clock, timers, survey; not counted in the reports).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound") as batch:
        batch.add_column(sa.Column("imported_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("imported_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("imported_at")
    with op.batch_alter_table("inbound") as batch:
        batch.drop_column("promoted_at")
        batch.drop_column("imported_at")

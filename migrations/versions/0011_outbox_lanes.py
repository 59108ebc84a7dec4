"""Outbox lanes: customer-facing mail is claimed before internal alerts; the claim's index

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 15:50:00.000000

``lane`` 0 is customer-facing mail, 1 internal alerts and reports (set at queue time from the
template's audience). The index on (status, next_attempt_at) covered every row ever sent; the
claim query reads ``ix_outbox_due``, partial on the rows still due (pending or sending), in the
claim's order, so its cost does not grow with the sent history.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the internal templates as of this revision (mailproc.outbound.contexts, audience "internal")
_INTERNAL = (
    "new_ticket_alert",
    "escalation_alert",
    "p0_alert",
    "triage_request",
    "low_score_alert",
    "refund_approval_request",
    "command_error",
    "breach_alert",
    "resolution_alert",
    "incident_alert",
)
_DUE = sa.text("status IN ('pending', 'sending')")


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("lane", sa.SmallInteger(), nullable=False, server_default="0")
        )
    outbox = sa.table("outbox", sa.column("lane", sa.SmallInteger()), sa.column("template"))
    op.execute(outbox.update().where(outbox.c.template.in_(_INTERNAL)).values(lane=1))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.alter_column("lane", existing_type=sa.SmallInteger(), server_default=None)
        batch_op.drop_index("ix_outbox_status_next_attempt_at")
        batch_op.create_index(
            "ix_outbox_due",
            ["lane", "next_attempt_at", "id"],
            postgresql_where=_DUE,
            sqlite_where=_DUE,
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_due")
        batch_op.create_index(
            "ix_outbox_status_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )
        batch_op.drop_column("lane")

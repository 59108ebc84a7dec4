"""IMAP poller: message keys (mailbox, UIDVALIDITY, UID) and leases

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 07:20:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "imap_keys",
        sa.Column("mailbox", sa.String(length=64), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("inbound_id", sa.Integer(), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["inbound_id"], ["inbound.id"], name=op.f("fk_imap_keys_inbound_id_inbound")
        ),
        sa.PrimaryKeyConstraint("mailbox", "uidvalidity", "uid", name=op.f("pk_imap_keys")),
    )
    with op.batch_alter_table("imap_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_imap_keys_inbound_id"), ["inbound_id"], unique=False)

    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    op.drop_table("leases")
    with op.batch_alter_table("imap_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_imap_keys_inbound_id"))

    op.drop_table("imap_keys")

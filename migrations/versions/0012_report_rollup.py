"""reports: the hourly roll-up of the KPI report and the triggers that keep it exact

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 18:00:00.000000

``report_hours`` and ``report_hour_codes`` hold the additive parts of the KPIs per UTC hour
(``mailproc/store/models_reports.py``); ``report_rollup.rolled_until`` says how far they
reach. On PostgreSQL, triggers on tickets, outbox (agent replies), refund cases and credits
write the rolled-up hours a change touches (old and new times) into ``report_dirty_hours``
in the changing transaction; the report computes dirty hours live and the scheduler tick
rolls them up again. SQLite gets the tables but no triggers and no roll-up: its report is
computed live (100,000 tickets in well under 2 s).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTS = (
    "volume",
    "escalated",
    "refunds",
    "due",
    "due_met",
    "resolved_low",
    "resolved_high",
    "high_within",
    "low_within",
    "first_contact",
    "answers",
    "score_sum",
    "negative",
    "negative_followed",
    "sent",
    "sent_answered",
)

_FUNCTIONS = """
CREATE FUNCTION report_mark_hours(VARIADIC times timestamptz[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO report_dirty_hours (hour)
    SELECT DISTINCT date_trunc('hour', t, 'UTC') FROM unnest(times) AS t
    WHERE t < (SELECT rolled_until FROM report_rollup WHERE id = 1)
$$;

CREATE FUNCTION report_tickets_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM report_mark_hours(OLD.received_at, OLD.first_response_due, OLD.resolved_at,
                                  OLD.survey_sent_at, OLD.survey_answered_at);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM report_mark_hours(NEW.received_at, NEW.first_response_due, NEW.resolved_at,
                                  NEW.survey_sent_at, NEW.survey_answered_at);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION report_outbox_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.template = 'agent_reply' THEN
        PERFORM report_mark_hours(t.resolved_at, t.survey_answered_at)
        FROM tickets AS t WHERE t.id = OLD.ticket_id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.template = 'agent_reply' THEN
        PERFORM report_mark_hours(t.resolved_at, t.survey_answered_at)
        FROM tickets AS t WHERE t.id = NEW.ticket_id;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION report_refunds_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM report_mark_hours(t.received_at) FROM tickets AS t WHERE t.id = OLD.ticket_id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM report_mark_hours(t.received_at) FROM tickets AS t WHERE t.id = NEW.ticket_id;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION report_credits_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        PERFORM report_mark_hours(OLD.created_at);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM report_mark_hours(NEW.created_at);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER report_tickets AFTER INSERT OR DELETE OR UPDATE OF
    origin, priority, customer_id, received_at, first_response_due, first_responded_at,
    resolved_at, escalated_to, classification, survey_sent_at, survey_score,
    survey_answered_at, churn_risk_raised
    ON tickets FOR EACH ROW EXECUTE FUNCTION report_tickets_changed();
CREATE TRIGGER report_outbox AFTER INSERT OR DELETE OR UPDATE OF ticket_id, template, created_at
    ON outbox FOR EACH ROW EXECUTE FUNCTION report_outbox_changed();
CREATE TRIGGER report_refunds AFTER INSERT OR DELETE OR UPDATE OF ticket_id
    ON refund_cases FOR EACH ROW EXECUTE FUNCTION report_refunds_changed();
CREATE TRIGGER report_credits AFTER INSERT OR DELETE OR UPDATE OF created_at, amount, currency
    ON credits FOR EACH ROW EXECUTE FUNCTION report_credits_changed();
"""

_DROP = """
DROP TRIGGER report_credits ON credits;
DROP TRIGGER report_refunds ON refund_cases;
DROP TRIGGER report_outbox ON outbox;
DROP TRIGGER report_tickets ON tickets;
DROP FUNCTION report_credits_changed();
DROP FUNCTION report_refunds_changed();
DROP FUNCTION report_outbox_changed();
DROP FUNCTION report_tickets_changed();
DROP FUNCTION report_mark_hours(timestamptz[]);
"""


def upgrade() -> None:
    op.create_table(
        "report_hours",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS),
        sa.Column("credits", sa.Numeric(14, 2), nullable=False),
        sa.PrimaryKeyConstraint("hour", name=op.f("pk_report_hours")),
    )
    op.create_table(
        "report_hour_codes",
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("tickets", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "code", name=op.f("pk_report_hour_codes")),
    )
    op.create_table(
        "report_dirty_hours",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_dirty_hours")),
    )
    op.create_index(op.f("ix_report_dirty_hours_hour"), "report_dirty_hours", ["hour"])
    op.create_table(
        "report_rollup",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rolled_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_rollup")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTIONS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_DROP)
    op.drop_index(op.f("ix_report_dirty_hours_hour"), table_name="report_dirty_hours")
    for table in ("report_rollup", "report_dirty_hours", "report_hour_codes", "report_hours"):
        op.drop_table(table)

"""reports: the hourly roll-up of the KPI report and the triggers that keep it exact

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 18:00:00.000000

``report_hours`` and ``report_hour_codes`` hold the additive parts of the KPIs per UTC hour
(``mailproc/store/models_reports.py``); ``report_rollup.rolled_until`` says how far they
reach. On PostgreSQL, triggers on tickets, outbox (agent replies), refund cases and credits
write the rolled-up hours a change touches (old and new times) into ``report_dirty_hours``
in the changing transaction (statement triggers with transition tables: one insert per
statement or COPY, and only for hours already rolled up); the report computes dirty hours
live and the scheduler tick rolls them up again. SQLite gets the tables but no triggers and
no roll-up: its report is computed live (100,000 tickets in well under 2 s). A partial index
on the survey answers that raised a churn risk serves the report's churn count (distinct
customers, never rolled up).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
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

# (table, times of a changed row that the roll-up counts by, columns whose change matters):
# the times are SQL over the changed row ``r`` (and ``t``, its ticket, where joined)
_TICKET_TIMES = (
    "r.received_at, r.first_response_due, r.resolved_at, r.survey_sent_at, r.survey_answered_at"
)
_WATCHED = {
    "tickets": (
        "{r}",
        _TICKET_TIMES,
        "r.origin, r.priority, r.customer_id, r.received_at, r.first_response_due,"
        " r.first_responded_at, r.resolved_at, r.escalated_to::text, r.classification::text,"
        " r.survey_sent_at, r.survey_score, r.survey_answered_at, r.churn_risk_raised",
    ),
    "outbox": (
        "{r} JOIN tickets AS t ON t.id = r.ticket_id AND r.template = 'agent_reply'",
        "t.resolved_at, t.survey_answered_at",
        "r.ticket_id, r.template, r.created_at",
    ),
    "refund_cases": (
        "{r} JOIN tickets AS t ON t.id = r.ticket_id",
        "t.received_at",
        "r.ticket_id",
    ),
    "credits": ("{r}", "r.created_at", "r.created_at, r.amount, r.currency"),
}


def _mark(rows: str, times: str, where: str = "TRUE") -> str:
    """SQL: the rolled-up hours of ``times`` over ``rows`` into report_dirty_hours."""
    return (
        "INSERT INTO report_dirty_hours (hour)"
        " SELECT DISTINCT date_trunc('hour', at, 'UTC')"
        f" FROM {rows} CROSS JOIN report_rollup AS roll,"
        f" LATERAL unnest(ARRAY[{times}]::timestamptz[]) AS at"
        f" WHERE roll.id = 1 AND at < roll.rolled_until AND {where};"
    )


def _triggers(table: str) -> str:
    """Statement triggers (one insert per statement, COPY included) marking the hours that
    the inserted, deleted and changed rows of ``table`` had and have."""
    rows, times, watched = _WATCHED[table]
    old_rows = rows.format(r="old_rows AS r")
    new_rows = rows.format(r="new_rows AS r")
    changed = rows.format(r="new_rows AS r JOIN old_rows AS o ON o.id = r.id")
    old_watched = watched.replace("r.", "o.")
    sql = []
    for event, body in (
        ("insert", _mark(new_rows, times)),
        ("delete", _mark(old_rows, times)),
        (
            "update",
            _mark(changed, times, f"({watched}) IS DISTINCT FROM ({old_watched})")
            + _mark(
                rows.format(r="old_rows AS r JOIN new_rows AS n ON n.id = r.id"),
                times,
                f"({watched}) IS DISTINCT FROM ({watched.replace('r.', 'n.')})",
            ),
        ),
    ):
        name = f"report_{table}_{event}"
        transition = "NEW TABLE AS new_rows" if event == "insert" else "OLD TABLE AS old_rows"
        if event == "update":
            transition = "OLD TABLE AS old_rows NEW TABLE AS new_rows"
        sql.append(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN {body} RETURN NULL; END $$;"
            f" CREATE TRIGGER {name} AFTER {event.upper()} ON {table}"
            f" REFERENCING {transition} FOR EACH STATEMENT EXECUTE FUNCTION {name}();"
        )
    return "\n".join(sql)


def _drop(table: str) -> str:
    return "\n".join(
        f"DROP TRIGGER report_{table}_{event} ON {table}; DROP FUNCTION report_{table}_{event}();"
        for event in ("insert", "delete", "update")
    )


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
    op.create_index(
        "ix_tickets_churn_answered",
        "tickets",
        ["survey_answered_at"],
        postgresql_where=sa.text("churn_risk_raised"),
        sqlite_where=sa.text("churn_risk_raised"),
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in _WATCHED:
            op.execute(_triggers(table))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _WATCHED:
            op.execute(_drop(table))
    op.drop_index("ix_tickets_churn_answered", table_name="tickets")
    op.drop_index(op.f("ix_report_dirty_hours_hour"), table_name="report_dirty_hours")
    for table in ("report_rollup", "report_dirty_hours", "report_hour_codes", "report_hours"):
        op.drop_table(table)

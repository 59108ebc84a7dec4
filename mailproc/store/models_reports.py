"""The KPI report's hourly roll-up (issue 16, migration 0016; kept on PostgreSQL only).

``report_hours`` holds, per UTC hour, the additive parts of the KPIs of the tickets whose
time of each kind (opened, first response due, resolved, survey sent, survey answered;
credits: granted) falls in that hour; ``report_hour_codes`` the error codes of the tickets
opened in the hour. Database triggers write the hours whose inputs changed into
``report_dirty_hours`` in the same transaction as the change; the report computes those
live until the scheduler tick rolls them up again.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import BigInteger, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from mailproc.store.base import Base, UtcDateTime


class ReportHour(Base):
    """The additive KPI parts of one UTC hour (each counted at its own time of the ticket)."""

    __tablename__ = "report_hours"

    hour: Mapped[dt.datetime] = mapped_column(UtcDateTime, primary_key=True)
    volume: Mapped[int] = mapped_column(Integer, default=0)
    escalated: Mapped[int] = mapped_column(Integer, default=0)
    refunds: Mapped[int] = mapped_column(Integer, default=0)
    due: Mapped[int] = mapped_column(Integer, default=0)
    due_met: Mapped[int] = mapped_column(Integer, default=0)
    resolved_low: Mapped[int] = mapped_column(Integer, default=0)
    resolved_high: Mapped[int] = mapped_column(Integer, default=0)
    high_within: Mapped[int] = mapped_column(Integer, default=0)
    low_within: Mapped[int] = mapped_column(Integer, default=0)
    first_contact: Mapped[int] = mapped_column(Integer, default=0)
    answers: Mapped[int] = mapped_column(Integer, default=0)
    score_sum: Mapped[int] = mapped_column(Integer, default=0)
    negative: Mapped[int] = mapped_column(Integer, default=0)
    negative_followed: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    sent_answered: Mapped[int] = mapped_column(Integer, default=0)
    credits: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=0)


class ReportHourCode(Base):
    """Tickets opened in one UTC hour per error code."""

    __tablename__ = "report_hour_codes"

    hour: Mapped[dt.datetime] = mapped_column(UtcDateTime, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    tickets: Mapped[int] = mapped_column(Integer)


class ReportDirtyHour(Base):
    """An hour whose roll-up is stale (written by the triggers; several rows may name it)."""

    __tablename__ = "report_dirty_hours"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    hour: Mapped[dt.datetime] = mapped_column(UtcDateTime, index=True)


class ReportRollup(Base):
    """How far the roll-up reaches: the hours before ``rolled_until`` are rolled up."""

    __tablename__ = "report_rollup"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rolled_until: Mapped[dt.datetime] = mapped_column(UtcDateTime)

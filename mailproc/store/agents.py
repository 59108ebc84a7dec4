"""Agents added by ``mailproc agents add``: the ``agents`` table and its queries.

The configured ``[identity] agents`` are not stored here; the application merges both
(``workflows/staff.py``), the configured ones winning.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Integer, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mailproc.store.base import Base, UtcDateTime


class AgentRecord(Base):
    """A staff member stored by the CLI: name (unique), roles and addresses (normalized)."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    addresses: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


StoredAgent = tuple[str, tuple[str, ...], tuple[str, ...]]  # name, roles, addresses


def stored_agents(session: Session) -> tuple[StoredAgent, ...]:
    """Every stored agent as plain values, oldest first (one small query: read per batch)."""
    rows = session.execute(
        select(AgentRecord.name, AgentRecord.roles, AgentRecord.addresses).order_by(AgentRecord.id)
    )
    return tuple((name, tuple(roles), tuple(addresses)) for name, roles, addresses in rows)


def add_agent(
    session: Session,
    name: str,
    roles: tuple[str, ...],
    addresses: tuple[str, ...],
    now: dt.datetime,
) -> None:
    """Store one agent (the caller has checked name, roles and addresses)."""
    session.add(
        AgentRecord(name=name, roles=list(roles), addresses=list(addresses), created_at=now)
    )
    session.flush()


def remove_agent(session: Session, name: str) -> bool:
    """Remove the stored agent of this name (case-insensitive); whether there was one."""
    rows = session.scalars(select(AgentRecord)).all()
    found = [row.id for row in rows if row.name.casefold() == name.strip().casefold()]
    if found:
        session.execute(delete(AgentRecord).where(AgentRecord.id.in_(found)))
    return bool(found)

"""Database leases: at most one process at a time runs a named job (an IMAP mailbox's poller)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailproc.store.models import Lease


class LeaseLost(Exception):
    """Another process took over the lease: stop the job without committing more."""


def new_holder() -> str:
    """A name for this process that no other process (here or on another host) shares."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def acquire(session: Session, name: str, holder: str, now: dt.datetime, ttl: dt.timedelta) -> str:
    """Take or extend the lease unless someone else holds an unexpired one; return the holder."""
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    table = Lease.__table__
    statement = (
        module.insert(Lease)
        .values(name=name, holder=holder, expires_at=now + ttl)
        .on_conflict_do_update(
            index_elements=[table.c.name],
            set_={"holder": holder, "expires_at": now + ttl},
            where=(table.c.holder == holder) | (table.c.expires_at < now),
        )
    )
    session.execute(statement)
    return session.scalars(select(Lease.holder).where(Lease.name == name)).one()


def renew(session: Session, name: str, holder: str, now: dt.datetime, ttl: dt.timedelta) -> None:
    """Extend a lease this process holds; raise LeaseLost when another process took it."""
    result = session.execute(
        update(Lease)
        .where(Lease.name == name, Lease.holder == holder)
        .values(expires_at=now + ttl)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost(f"lease {name!r} was taken over by another process")


def release(session: Session, name: str, holder: str) -> None:
    """Give up a lease this process holds (nothing happens if it no longer does)."""
    session.execute(
        delete(Lease)
        .where(Lease.name == name, Lease.holder == holder)
        .execution_options(synchronize_session=False)
    )

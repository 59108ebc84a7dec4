"""A fresh, migrated scratch database for a benchmark run: SQLite file or new PostgreSQL db."""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mailproc.store import migrate
from mailproc.store.db import make_engine


@contextlib.contextmanager
def database(kind: str, postgres: str | None) -> Iterator[str]:
    """The URL of a fresh database at head, dropped afterwards (``kind``: sqlite|postgresql)."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-") as folder:
            url = f"sqlite:///{folder}/bench.db"
            _migrate(url)
            yield url
        return
    assert postgres is not None
    admin_url = make_url(postgres).set(drivername="postgresql+psycopg")
    name = f"mailproc_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        _migrate(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _migrate(url: str) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()

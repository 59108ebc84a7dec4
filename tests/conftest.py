"""Shared fixtures: a migrated database per test on SQLite always and PostgreSQL when configured.

Set MAILPROC_TEST_POSTGRES_URL (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres)
to run every database test on PostgreSQL too; a fresh database is created for the run and
dropped afterwards. When the variable is set, PostgreSQL tests run: they never skip.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mailproc.app import App
from mailproc.clock import FixedClock
from mailproc.config import Settings
from mailproc.store import migrate
from mailproc.store.db import make_engine
from mailproc.store.models import Base

POSTGRES_ENV = "MAILPROC_TEST_POSTGRES_URL"
T0 = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)
GOLDEN = Path(__file__).parent / "golden"
CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


def _backends() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get(POSTGRES_ENV) else ["sqlite"]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, migrated to head, dropped at the end."""
    base = os.environ.get(POSTGRES_ENV)
    if not base:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    admin_url = make_url(base).set(drivername="postgresql+psycopg")
    name = f"mailproc_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _truncate_postgres(url: str) -> None:
    engine = make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in reversed(Base.metadata.sorted_tables))
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        connection.execute(text("ALTER SEQUENCE ticket_number_seq RESTART WITH 10001"))
    engine.dispose()


@pytest.fixture(params=_backends())
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty database: SQLite, and PostgreSQL when configured."""
    if request.param == "sqlite":
        path = tmp_path / "mailproc.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    _truncate_postgres(url)
    return url


@pytest.fixture
def settings(db_url: str) -> Settings:
    """Default settings on the test database."""
    return Settings.model_validate({"database": {"url": db_url}})


@pytest.fixture
def clock() -> FixedClock:
    """A clock standing at T0 until a test moves it."""
    return FixedClock(T0)


@pytest.fixture
def app(settings: Settings, clock: FixedClock) -> Iterator[App]:
    """A configured App on the test database."""
    application = App(settings, clock)
    try:
        yield application
    finally:
        application.close()

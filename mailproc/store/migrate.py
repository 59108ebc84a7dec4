"""Alembic commands (upgrade, downgrade, current, history) driven from mailproc's settings."""

from __future__ import annotations

import io

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, func, inspect, select, table

from mailproc.resources import resource_path


def alembic_config(url: str, output: io.StringIO | None = None) -> Config:
    """An Alembic Config pointing at the shipped migrations/ folder and ``url``."""
    config = Config(stdout=output) if output is not None else Config()
    config.set_main_option("script_location", str(resource_path("migrations")))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to ``revision``."""
    with engine.begin() as connection:
        config = alembic_config(str(engine.url))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrade the schema to ``revision`` (``base`` drops every table).

    SQLite checks foreign keys row by row while it drops a table that still has rows, so
    they are off for the downgrade (PRAGMA foreign_keys only acts outside a transaction).
    """
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            _foreign_keys(connection, "OFF")
        try:
            with connection.begin():
                config = alembic_config(str(engine.url))
                config.attributes["connection"] = connection
                command.downgrade(config, revision)
        finally:
            if sqlite:
                _foreign_keys(connection, "ON")


def _foreign_keys(connection: Connection, state: str) -> None:
    """Switch SQLite's foreign key checks, straight on the driver (no transaction begins)."""
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute(f"PRAGMA foreign_keys = {state}")


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision shipped with this version of mailproc."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def history() -> list[str]:
    """One line per shipped revision, newest first."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [
        f"{rev.revision} <- {rev.down_revision or 'base'}: {rev.doc}"
        for rev in script.walk_revisions()
    ]


def revisions() -> list[str]:
    """The shipped revision ids, oldest first."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def tables_at(revision: str) -> set[str]:
    """The tables the schema has at ``revision`` (built in a scratch in-memory database)."""
    scratch = create_engine("sqlite://")
    try:
        upgrade(scratch, revision)
        return set(inspect(scratch).get_table_names()) - {"alembic_version"}
    finally:
        scratch.dispose()


def data_dropped_by_downgrade(engine: Engine, revision: str) -> dict[str, int]:
    """The tables holding rows that a downgrade to ``revision`` would drop, with their counts."""
    current = set(inspect(engine).get_table_names()) - {"alembic_version"}
    dropped = sorted(current - tables_at(revision))
    with engine.connect() as connection:
        counts = {
            name: connection.execute(select(func.count()).select_from(table(name))).scalar_one()
            for name in dropped
        }
    return {name: count for name, count in counts.items() if count}

"""Alembic commands (upgrade, downgrade, current, history) driven from mailproc's settings."""

from __future__ import annotations

import io

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from mailproc.resources import resource_path
from mailproc.store.db import unavailable_is_transient


def alembic_config(url: str, output: io.StringIO | None = None) -> Config:
    """An Alembic Config pointing at the shipped migrations/ folder and ``url``."""
    config = Config(stdout=output) if output is not None else Config()
    config.set_main_option("script_location", str(resource_path("migrations")))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to ``revision``."""
    with unavailable_is_transient(), engine.begin() as connection:
        config = alembic_config(str(engine.url))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrade the schema to ``revision`` (``base`` drops every table)."""
    with unavailable_is_transient(), engine.begin() as connection:
        config = alembic_config(str(engine.url))
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with unavailable_is_transient(), engine.connect() as connection:
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

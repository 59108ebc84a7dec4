"""Alembic: empty to head, models and migrations agree, downgrade to empty and back."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from mailproc.store import migrate
from mailproc.store.db import make_engine
from mailproc.store.models import Base


def test_head_matches_models_and_downgrade_round_trips(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert migrate.current_revision(engine) == migrate.head_revision()
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        migrate.downgrade(engine, "base")
        assert migrate.current_revision(engine) is None
        leftover = set(inspect(engine).get_table_names()) - {"alembic_version"}
        assert leftover == set()
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_history_lists_every_revision() -> None:
    lines = migrate.history()
    assert lines[-1].startswith("0001 <- base")


def test_postgresql_raw_mail_is_compressed_with_lz4(postgres_url: str) -> None:
    engine = make_engine(postgres_url)

    def compression() -> str:
        with engine.connect() as connection:
            return str(
                connection.exec_driver_sql(
                    "SELECT attcompression FROM pg_attribute "
                    "WHERE attrelid = 'blobs'::regclass AND attname = 'data'"
                ).scalar()
            )

    try:
        with engine.connect() as connection:
            lz4 = connection.exec_driver_sql(
                "SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
                "WHERE name = 'default_toast_compression'"
            ).scalar()
        if not lz4:
            pytest.skip("this PostgreSQL server is built without lz4")
        assert compression() == "l"
        migrate.downgrade(engine, "0006")
        assert compression() == "p"
        migrate.upgrade(engine)
        assert compression() == "l"
    finally:
        engine.dispose()

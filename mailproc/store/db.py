"""Engine and session set-up for SQLite (WAL, durable commits) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from mailproc.errors import TransientError


def make_engine(url: str, busy_timeout_ms: int = 5000, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, synchronous=FULL, foreign keys and BEGIN IMMEDIATE.

    JSON columns go through orjson (a processing batch encodes about 27 values per message).
    """
    kwargs.setdefault("json_serializer", dump_json)
    kwargs.setdefault("json_deserializer", orjson.loads)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000}, **kwargs)
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"connect_timeout": max(1, busy_timeout_ms // 1000)},
        **kwargs,
    )


def dump_json(value: Any) -> str:
    """JSON text of a column value; like ``json.dumps``, non-string keys become strings."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front: a deferred transaction that later needs to write
        # can fail at once with SQLITE_BUSY instead of waiting its turn.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def driver_error(connection: Connection, error: Any) -> exc.DBAPIError:
    """A driver error raised on the raw driver connection, as SQLAlchemy would raise it; a lost
    connection is invalidated, so the pool does not hand it out again."""
    dialect = connection.dialect
    lost = dialect.is_disconnect(error, connection.connection.dbapi_connection, None)
    if lost:
        connection.invalidate(error)
    wrapped: exc.DBAPIError = exc.DBAPIError.instance(
        None, None, error, dialect.loaded_dbapi.Error, connection_invalidated=lost, dialect=dialect
    )
    return wrapped


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values after commit (the CLI prints them afterwards)."""
    return sessionmaker(engine, expire_on_commit=False)


def is_transient(error: BaseException) -> bool:
    """Whether a database error means "try again later" (down, locked, serialization)."""
    if isinstance(error, exc.OperationalError | exc.InterfaceError | exc.TimeoutError):
        return True
    return isinstance(error, exc.DBAPIError) and bool(error.connection_invalidated)


@contextlib.contextmanager
def transaction(factory: sessionmaker[Session], *, commit: bool = True) -> Iterator[Session]:
    """One unit of work, committed at the end (or rolled back when ``commit`` is False).

    Transient database failures (down, locked) become TransientError; nothing is half-written.
    """
    session = factory()
    try:
        session.begin()
        yield session
        if commit:
            session.commit()
        else:
            session.rollback()
    except exc.SQLAlchemyError as error:
        session.rollback()
        if is_transient(error):
            raise TransientError(f"database unavailable: {first_line(error)}") from error
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def first_line(error: BaseException) -> str:
    """The first line of a (driver) error's message, for one-line logs and replies."""
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def missing_sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL when it does not exist yet (None for PostgreSQL, memory)."""
    parsed = make_url(url)
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:":
        return None
    path = Path(name)
    return None if path.exists() else path

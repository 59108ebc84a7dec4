"""Staged rows: append-only rows collected during a unit of work and inserted in bulk.

A processing batch writes thousands of rows nobody reads back in the same unit of work: audit
events, message records and attachments, participants, outbox rows with their recipients and
thread records, escalation timers. Inside ``staging(session)`` they are collected and inserted
when the scope ends, one ``executemany`` per statement, instead of one statement or one ORM
object each. Outside a scope, the same calls insert at once. The scope belongs inside a
savepoint: if the savepoint rolls back, the staged rows go with it (they are never written).

Only stage rows that no query in the same scope needs to see, or call ``write_staged`` first.
Rows that depend on keys the database assigns (an outbox row and its recipients) are staged
under a ``RowWriter``, which writes its whole group itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import Any, Final, Protocol

from sqlalchemy import ColumnDefault, Connection, Executable, Insert, Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailproc.store.db import driver_error
from mailproc.store.models import Base, Ticket

_SCOPE_KEY: Final = "mailproc.staged_rows"


class RowWriter(Protocol):
    """Writes a group of staged rows itself, for rows one INSERT cannot take alone."""

    def write(self, session: Session, rows: list[dict[str, Any]]) -> None: ...


class StagedRows:
    """Rows waiting for their insert; a row may name a ticket not yet flushed (no id yet)."""

    def __init__(self, outer: StagedRows | None = None) -> None:
        self._rows: list[tuple[Executable | RowWriter, dict[str, Any], Ticket | None]] = []
        self.outer = outer  # the enclosing scope, whose rows are not written yet either
        self.memo: dict[str, Any] = {}  # what writers must remember about their staged rows

    def add(
        self,
        statement: Executable | RowWriter,
        values: dict[str, Any],
        ticket: Ticket | None = None,
    ) -> None:
        """Queue one row; ``ticket`` fills its ``ticket_id`` when the row is written."""
        self._rows.append((statement, values, ticket))

    def __len__(self) -> int:
        return len(self._rows)

    def write(self, session: Session) -> None:
        """Run every queued row, statement by statement in first-use order, then forget them."""
        if not self._rows:
            return
        if any(ticket is not None and ticket.id is None for _, _, ticket in self._rows):
            session.flush()  # the tickets the rows point at get their ids
        by_statement: dict[Executable | RowWriter, list[dict[str, Any]]] = {}
        for statement, values, ticket in self._rows:
            if ticket is not None:
                values["ticket_id"] = ticket.id
            by_statement.setdefault(statement, []).append(values)
        self._rows.clear()
        for statement, rows in by_statement.items():
            if isinstance(statement, Executable):
                insert_rows(session, statement, rows)
            else:
                statement.write(session, rows)


def insert_rows(session: Session, statement: Executable, rows: list[dict[str, Any]]) -> None:
    """Run ``statement`` for every row at once: COPY for a plain insert of many rows on
    PostgreSQL, one ``executemany`` otherwise."""
    connection = session.connection()
    copy = connection.dialect.driver == "psycopg" and len(rows) > 1
    table = _COPYABLE.get(statement) if copy else None
    if table is None:
        connection.execute(statement, rows)
    else:
        _copy_rows(connection, table, rows)


def table_of(model: type[Base]) -> Table:
    """The Core table of a mapped class, for statements that skip the ORM's per-row work."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


@contextmanager
def staging(session: Session) -> Iterator[StagedRows]:
    """Collect staged rows for the duration of the block; insert them when it ends cleanly."""
    outer = current_scope(session)
    rows = StagedRows(outer)
    session.info[_SCOPE_KEY] = rows
    try:
        yield rows
        rows.write(session)
    finally:
        if outer is None:
            session.info.pop(_SCOPE_KEY, None)
        else:
            session.info[_SCOPE_KEY] = outer


def current_scope(session: Session) -> StagedRows | None:
    """The innermost open staging scope of ``session``, if any."""
    scope: StagedRows | None = session.info.get(_SCOPE_KEY)
    return scope


def scope_chain(session: Session) -> Iterator[StagedRows]:
    """The open staging scopes, innermost first."""
    scope = current_scope(session)
    while scope is not None:
        yield scope
        scope = scope.outer


def scope_memo(session: Session, name: str) -> dict[Any, Any] | None:
    """The innermost open scope's memo ``name`` (empty at first), None outside a scope.

    A batch's steps keep there what they read once for all of them (requester names, quoted
    articles); what changes it must ``forget_memo``.
    """
    scope = current_scope(session)
    if scope is None:
        return None
    found: dict[Any, Any] = scope.memo.setdefault(name, {})
    return found


def memo_get(session: Session, name: str, key: Any, default: Any = None) -> Any:
    """``key`` in the memo ``name`` of the innermost open scope that has it, else ``default``."""
    for scope in scope_chain(session):
        found = scope.memo.get(name)
        if found is not None and key in found:
            return found[key]
    return default


def forget_memo(session: Session, name: str) -> None:
    """Drop the memo ``name`` in every open scope (what it held has changed)."""
    for scope in scope_chain(session):
        scope.memo.pop(name, None)


def write_staged(session: Session) -> None:
    """Write the innermost scope's rows now, for a query that must see them."""
    scope = current_scope(session)
    if scope is not None:
        scope.write(session)


def stage(
    session: Session,
    model: type[Base],
    values: Mapping[str, Any],
    ticket: Ticket | None = None,
) -> None:
    """Insert one row of ``model``: staged inside a ``staging`` scope, at once outside one."""
    stage_statement(session, plain_insert(model), values, ticket)


def stage_statement(
    session: Session,
    statement: Executable,
    values: Mapping[str, Any],
    ticket: Ticket | None = None,
) -> None:
    """Run ``statement`` (built once, so rows group) with one row of parameters, staged."""
    row = dict(values)
    scope = current_scope(session)
    if scope is not None:
        scope.add(statement, row, ticket)
        return
    if ticket is not None:
        if ticket.id is None:
            session.flush()
        row["ticket_id"] = ticket.id
    session.connection().execute(statement, [row])


@cache
def plain_insert(model: type[Base]) -> Insert:
    """The Core INSERT of a mapped class's table (on PostgreSQL, many rows go by COPY)."""
    statement = insert(table_of(model))
    _COPYABLE[statement] = table_of(model)
    return statement


_COPYABLE: dict[Executable, Table] = {}  # plain inserts, whose rows PostgreSQL can COPY


def _copy_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows with PostgreSQL's COPY: one stream, no per-row statement.

    As an INSERT would: missing columns get their Python-side defaults, and values go through
    the columns' bind processors (JSON, UTC times). A driver error surfaces as SQLAlchemy's,
    so the batch's fallback and retries still apply.
    """
    dialect = connection.dialect
    given = list(rows[0])
    defaults = [
        (column.key, column.default)
        for column in table.columns
        if column.key not in rows[0]
        and isinstance(column.default, ColumnDefault)
        and (column.default.is_scalar or column.default.is_callable)
    ]
    names = [*given, *(name for name, _ in defaults)]
    processors = [
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names
    ]
    quoted = ", ".join(dialect.identifier_preparer.quote(name) for name in names)
    sql = f"COPY {dialect.identifier_preparer.format_table(table)} ({quoted}) FROM STDIN"
    driver = connection.connection.driver_connection
    assert driver is not None
    try:
        with driver.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                values = [row[name] for name in given]
                values += [d.arg if d.is_scalar else d.arg(None) for _, d in defaults]
                copy.write_row(
                    [
                        process(value) if process else value
                        for value, process in zip(values, processors, strict=True)
                    ]
                )
    except dialect.loaded_dbapi.Error as error:
        raise driver_error(connection, error) from error


def insert_new_only(session: Session, model: type[Base]) -> Insert:
    """A Core INSERT that skips rows whose unique key exists (SQLite and PostgreSQL)."""
    return _insert_new_only(session.get_bind().dialect.name, model)


@cache
def _insert_new_only(dialect: str, model: type[Base]) -> Insert:
    module = postgresql if dialect == "postgresql" else sqlite
    statement: Insert = module.insert(table_of(model)).on_conflict_do_nothing()
    return statement

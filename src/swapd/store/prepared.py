"""Statements of the swap path, compiled once per dialect and run on the driver's own cursor.

A swap runs about eighty statements. Through ``Connection.execute`` each one costs some 60-80 µs
of Python in SQLAlchemy (execution context, parameter construction, result metadata, events)
against 10-30 µs in the driver itself: more than the database's work (profiled on SQLite). A
``Prepared`` statement is an ordinary Core statement that is compiled the first time it runs on
a dialect; after that, a run binds the parameters with the same type processors SQLAlchemy would
use, executes the SQL on the DBAPI cursor of the same connection (so inside the same transaction
and savepoints), and converts the result columns with the same result processors. Driver errors
are raised as SQLAlchemy's ``DBAPIError`` subclasses, as ``Connection.execute`` would, and a
connection the driver reports as broken is invalidated.

Statements that need what this path does not do run through ``Connection.execute`` instead,
transparently: expanding ``IN`` parameters, Python-side column defaults that an INSERT or UPDATE
would have to fill in, and result columns whose names cannot be attributes.

PostgreSQL (psycopg): the compiled statement runs through libpq's own calls instead, prepared
once per connection (swapd.store.prepared_pg).
"""

from __future__ import annotations

import keyword
import threading
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from swapd.store.statement_results import PreparedResult, PreparedRow

if TYPE_CHECKING:
    from swapd.store.prepared_pg import PgStatement

__all__ = [
    "Compiled",
    "Prepared",
    "PreparedResult",
    "PreparedRow",
    "commit",
    "discard",
    "flush",
    "run_commands",
    "update_statement",
]

Processor = Callable[[Any], Any]
Statement = sa.Select[Any] | sa.CompoundSelect[Any] | sa.Insert | sa.Update | sa.Delete


class Compiled:
    """One statement on one dialect (and, for INSERT and UPDATE, one set of parameter names)."""

    __slots__ = ("binds", "fixed", "names", "pg", "positional", "processors", "row", "sql")

    def __init__(
        self,
        sql: str,
        names: tuple[str, ...],
        positional: bool,
        fixed: dict[str, Any],
        binds: dict[str, Processor],
        row: type[PreparedRow] | None,
        processors: tuple[tuple[int, Processor], ...],
    ) -> None:
        self.sql = sql
        self.names = names
        self.positional = positional
        self.fixed = fixed
        self.binds = binds
        self.row = row
        self.processors = processors
        self.pg: PgStatement | None = None

    def parameters(self, given: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        values = []
        for name in self.names:
            value = given[name] if name in given else self.fixed[name]
            process = self.binds.get(name)
            values.append(value if process is None or value is None else process(value))
        return values if self.positional else dict(zip(self.names, values, strict=True))

    def convert(self, raw: Sequence[Any]) -> PreparedRow:
        assert self.row is not None
        if not self.processors:
            return self.row(raw)
        values = list(raw)
        for index, process in self.processors:
            values[index] = process(values[index])
        return self.row(values)


_FALLBACK = object()  # marks a (dialect, keys) this path leaves to Connection.execute


class Prepared:
    """A Core statement built once at import time and run with ``run(connection, params)``."""

    def __init__(self, statement: Statement) -> None:
        self.statement = statement
        self._dml = isinstance(statement, sa.Insert | sa.Update | sa.Delete)
        self._compiled: dict[tuple[str, tuple[str, ...] | None], Compiled | object] = {}
        self._lock = threading.Lock()

    def run(
        self, connection: sa.Connection, parameters: Mapping[str, Any] | None = None
    ) -> PreparedResult:
        given = parameters or {}
        compiled = self._compiled_for(connection.dialect, given)
        if not isinstance(compiled, Compiled):
            return _through_sqlalchemy(connection, self.statement, given)
        if compiled.pg is not None:
            return compiled.pg.run(connection, compiled, given)
        return _run(connection, compiled, given)

    def defer(
        self,
        connection: sa.Connection,
        parameters: Mapping[str, Any] | None = None,
        check: Callable[[PreparedResult], None] | None = None,
    ) -> None:
        """Run the statement for its effect alone; ``check`` sees its result and may raise.

        On PostgreSQL it waits for the transaction's next round trip (the next ``run``,
        ``flush`` or ``commit``: swapd.store.prepared_pg), so its error, or what ``check``
        raises, is raised there; elsewhere it runs at once. For writes whose result the caller
        does not need before its next statement, in a transaction that flushes before it
        answers anybody (swapd.store.database does, for every call)."""
        given = parameters or {}
        compiled = self._compiled_for(connection.dialect, given)
        if isinstance(compiled, Compiled) and compiled.pg is not None:
            compiled.pg.defer(connection, compiled, given, check)
            return
        result = self.run(connection, given)
        if check is not None:
            check(result)

    def _compiled_for(self, dialect: Dialect, given: Mapping[str, Any]) -> Compiled | object:
        # An INSERT or UPDATE compiles to the columns it is given; a SELECT to one statement.
        columns = tuple(sorted(given)) if self._dml else None
        key = (dialect.name, columns)
        compiled = self._compiled.get(key)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(key)
                if compiled is None:
                    compiled = _compile(self.statement, dialect, columns)
                    self._compiled[key] = compiled
        return compiled


_UPDATES: dict[tuple[str, str, tuple[str, ...]], Prepared] = {}
_UPDATES_LOCK = threading.Lock()


def update_statement(table: sa.Table, key: str, columns: tuple[str, ...]) -> Prepared:
    """``UPDATE table SET <columns> WHERE <key> = :p_key``, built once per column set; run it
    with ``p_<key>`` and ``v_<column>`` parameters (``Repository.update`` does)."""
    statement = _UPDATES.get((table.name, key, columns))
    if statement is None:
        with _UPDATES_LOCK:
            statement = _UPDATES.get((table.name, key, columns))
            if statement is None:
                statement = Prepared(
                    sa.update(table)
                    .where(table.c[key] == sa.bindparam(f"p_{key}"))
                    .values({name: sa.bindparam(f"v_{name}") for name in columns})
                )
                _UPDATES[(table.name, key, columns)] = statement
    return statement


def _through_sqlalchemy(
    connection: sa.Connection, statement: Statement, given: Mapping[str, Any]
) -> PreparedResult:
    result = connection.execute(statement, dict(given))
    rows = list(result) if result.returns_rows else []
    return PreparedResult(rows, result.rowcount)


def _run(connection: sa.Connection, compiled: Compiled, given: Mapping[str, Any]) -> PreparedResult:
    try:
        values = compiled.parameters(given)
    except Exception as error:  # a bind processor refused a value (e.g. a naive datetime)
        raise sa.exc.StatementError(str(error), compiled.sql, dict(given), error) from error
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(compiled.sql, values)
        rows = [compiled.convert(raw) for raw in cursor.fetchall()] if compiled.row else []
        rowcount = cursor.rowcount
    except connection.dialect.loaded_dbapi.Error as error:
        dialect = connection.dialect
        broken = dialect.is_disconnect(error, dbapi_connection, cursor)
        if broken:
            # As Connection.execute does: the pool must not hand this connection out again.
            connection.invalidate(error)
        raise sa.exc.DBAPIError.instance(
            compiled.sql,
            values,
            error,
            dialect.loaded_dbapi.Error,
            dialect=dialect,
            connection_invalidated=broken,
        ) from error
    finally:
        cursor.close()
    return PreparedResult(rows, rowcount)


def _compile(statement: Statement, dialect: Dialect, keys: tuple[str, ...] | None) -> Compiled | object:
    if keys is not None and _needs_defaults(statement, keys):
        return _FALLBACK
    compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys is not None else None)
    binds = compiled.binds
    if any(bind.expanding for bind in binds.values()):
        return _FALLBACK
    positional = bool(compiled.positional)
    names = tuple(compiled.positiontup or ()) if positional else tuple(binds)
    fixed: dict[str, Any] = {}
    processors: dict[str, Processor] = {}
    for name in names:
        bind = binds[name]
        if bind.callable is not None:
            return _FALLBACK
        if not bind.required:
            fixed[name] = bind.value
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[name] = process
    row, results = _result_shape(statement, dialect)
    if row is _FALLBACK:
        return _FALLBACK
    prepared = Compiled(
        str(compiled),
        names,
        positional,
        fixed,
        processors,
        row if isinstance(row, type) else None,
        results,
    )
    if _on_libpq(dialect):
        from swapd.store.prepared_pg import PgStatement

        prepared.pg = PgStatement(prepared)
    return prepared


def _needs_defaults(statement: Statement, keys: tuple[str, ...]) -> bool:
    """An INSERT or UPDATE whose table fills some column from Python when the statement leaves
    it out: SQLAlchemy's execution context does that, this path does not."""
    table = getattr(statement, "table", None)
    if not isinstance(table, sa.Table):
        return False
    named = set(keys)
    values = getattr(statement, "_values", None) or {}
    named.update(getattr(column, "key", str(column)) for column in values)
    for column in table.columns:
        if column.key in named:
            continue
        if isinstance(statement, sa.Insert) and column.default is not None:
            return True
        if isinstance(statement, sa.Update) and column.onupdate is not None:
            return True
    return False


def _result_shape(
    statement: Statement, dialect: Dialect
) -> tuple[type[PreparedRow] | object | None, tuple[tuple[int, Processor], ...]]:
    # A SELECT's columns, or an INSERT's or UPDATE's RETURNING columns (none without RETURNING).
    columns = list(statement.exported_columns)
    if not columns:
        return None, ()
    fields = tuple(str(column.key) for column in columns)
    if len(set(fields)) != len(fields) or any(
        not name.isidentifier()
        or keyword.iskeyword(name)
        or name.startswith("_")
        or hasattr(tuple, name)  # "count", "index": the tuple's methods would hide them
        for name in fields
    ):
        return _FALLBACK, ()
    processors = []
    for index, column in enumerate(columns):
        # No DBAPI type code is known before the first execution; the processors of the types
        # used on the swap path do not look at it.
        process = column.type.dialect_impl(dialect).result_processor(dialect, None)
        if process is not None:
            processors.append((index, process))
    attributes: dict[str, Any] = {"__slots__": (), "_fields": fields}
    attributes.update({name: property(itemgetter(i)) for i, name in enumerate(fields)})
    row = type("PreparedRow", (PreparedRow,), attributes)
    return row, tuple(processors)


def _on_libpq(dialect: Dialect) -> bool:
    """PostgreSQL through psycopg: the statements run on libpq (swapd.store.prepared_pg), which
    is imported only then, so that a command on SQLite never loads the PostgreSQL driver."""
    return dialect.name == "postgresql" and dialect.driver == "psycopg"


def flush(connection: sa.Connection) -> None:
    """Send the statements ``Prepared.defer`` left waiting (PostgreSQL) and raise what the first
    of them that failed raised; nothing waits elsewhere."""
    if _on_libpq(connection.dialect):
        from swapd.store import prepared_pg

        prepared_pg.flush(connection)


def commit(connection: sa.Connection) -> None:
    """PostgreSQL: the deferred statements and the COMMIT in one round trip (the transaction's
    own commit then finds nothing to do); elsewhere nothing: the transaction commits as usual."""
    if _on_libpq(connection.dialect):
        from swapd.store import prepared_pg

        prepared_pg.commit(connection)


def discard(connection: sa.Connection) -> None:
    """Drop the deferred statements of a transaction or savepoint about to be rolled back."""
    if _on_libpq(connection.dialect):
        from swapd.store import prepared_pg

        prepared_pg.discard(connection)


def run_together(
    connection: sa.Connection, runs: Sequence[tuple[Prepared, Mapping[str, Any]]]
) -> list[PreparedResult]:
    """Statements whose parameters are all known before the first runs (reads that do not need
    each other's rows), in order: on PostgreSQL in one round trip, with what waits to be sent
    (a pipeline); elsewhere one after another. Each still sees what those before it wrote, and
    row locks are taken in the order given. Their results, in the same order."""
    pg_runs = []
    for prepared, given in runs:
        compiled = prepared._compiled_for(connection.dialect, given)
        if not isinstance(compiled, Compiled) or compiled.pg is None:
            return [prepared.run(connection, given) for prepared, given in runs]
        pg_runs.append((compiled, compiled.pg, given))
    from swapd.store import prepared_pg

    return prepared_pg.run_together(connection, pg_runs)


def defer_commands(connection: sa.Connection, *statements: str) -> None:
    """``run_commands``, but on PostgreSQL they wait for the transaction's next round trip (a
    call's SAVEPOINT goes with its first statement); elsewhere they run now."""
    if _on_libpq(connection.dialect):
        from swapd.store import prepared_pg

        prepared_pg.defer_commands(connection, *statements)
        return
    run_commands(connection, *statements)


def rollback_savepoint(connection: sa.Connection, name: str) -> None:
    """Roll back to the savepoint ``name`` (opened with ``defer_commands``) and release it,
    dropping what waits to be sent after it (PostgreSQL: a SAVEPOINT still waiting is simply
    never sent)."""
    if _on_libpq(connection.dialect):
        from swapd.store import prepared_pg

        prepared_pg.rollback_savepoint(connection, name)
        return
    run_commands(connection, f"ROLLBACK TO SAVEPOINT {name}", f"RELEASE SAVEPOINT {name}")


def run_commands(connection: sa.Connection, *statements: str) -> None:
    """Statements with no parameters and no rows (SAVEPOINT, RELEASE) on the driver's
    connection, inside the transaction in progress. On PostgreSQL they go as one message, a
    single round trip (swapd.store.prepared_pg); elsewhere each through the driver's
    ``execute``."""
    if _on_libpq(connection.dialect):
        from swapd.store.prepared_pg import run_commands as run_on_libpq

        run_on_libpq(connection, *statements)
        return
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    for statement in statements:
        dbapi_connection.execute(statement)

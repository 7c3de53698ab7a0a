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

PostgreSQL (psycopg): psycopg's cursor costs some 60 us of CPU a statement on this path
(query conversion, per-call adapters, the non-blocking wait loop), libpq's own blocking call
with psycopg's C adapters about 20 (measured on the 2-core bench machine). A statement is
therefore run one level lower, on the connection's ``PGconn``: prepared once per connection
under a name of its own (the name and SQL kept in the pool's record of that connection, which
is forgotten with it), parameters dumped as text by psycopg's Transformer, rows loaded by the
same loaders a cursor would use. The transaction is psycopg's: a statement on an idle
connection first sends the BEGIN psycopg would have sent, so SQLAlchemy's COMMIT and ROLLBACK
and psycopg's own statements (savepoints) see one transaction. With ``SWAPD_PG_PREPARE=off``
nothing is prepared by name (PgBouncer in transaction mode hands each transaction any server
connection, which would not hold the statement): each run sends its SQL, unnamed.
"""

from __future__ import annotations

import keyword
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

try:  # the PostgreSQL driver; SQLite-only installs may lack it
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg import pq
    from psycopg.adapt import PyFormat, Transformer
except ImportError:  # pragma: no cover - psycopg ships with swapd
    psycopg = None  # type: ignore[assignment]

Processor = Callable[[Any], Any]
Statement = sa.Select[Any] | sa.Insert | sa.Update | sa.Delete


class PreparedRow(tuple[Any, ...]):
    """A result row: a tuple whose items are also attributes (``row.id``) and a mapping
    (``row._mapping["id"]``), like ``sqlalchemy.Row`` for the uses the services make of it."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    @property
    def _mapping(self) -> dict[str, Any]:
        return dict(zip(self._fields, self, strict=True))


class PreparedResult:
    """The rows of one run, fetched at once (the swap path reads a handful of rows at most)."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: Sequence[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return list(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if len(self._rows) != 1:
            if not self._rows:
                raise sa.exc.NoResultFound("No row was found when one was required")
            raise sa.exc.MultipleResultsFound("Multiple rows were found when exactly one was required")
        return self._rows[0]

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]


class _Compiled:
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
        self.pg: _PgStatement | None = None

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
        self._compiled: dict[tuple[str, tuple[str, ...] | None], _Compiled | object] = {}
        self._lock = threading.Lock()

    def run(
        self, connection: sa.Connection, parameters: Mapping[str, Any] | None = None
    ) -> PreparedResult:
        given = parameters or {}
        dialect = connection.dialect
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
        if not isinstance(compiled, _Compiled):
            return _through_sqlalchemy(connection, self.statement, given)
        if compiled.pg is not None:
            return _run_pg(connection, compiled, compiled.pg, given)
        return _run(connection, compiled, given)


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


def _run(connection: sa.Connection, compiled: _Compiled, given: Mapping[str, Any]) -> PreparedResult:
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


def _compile(statement: Statement, dialect: Dialect, keys: tuple[str, ...] | None) -> _Compiled | object:
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
    prepared = _Compiled(
        str(compiled),
        names,
        positional,
        fixed,
        processors,
        row if isinstance(row, type) else None,
        results,
    )
    if dialect.name == "postgresql" and dialect.driver == "psycopg" and psycopg is not None:
        prepared.pg = _PgStatement(prepared)
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


# -- PostgreSQL: libpq's own calls --------------------------------------------------------------

_PYFORMAT = re.compile(r"%\((\w+)\)s|%%")
_NAMES = iter(range(1, 1 << 62))  # statement names, unique in this process
_NAMES_LOCK = threading.Lock()
_REQUIRED = object()  # a parameter the statement has no value of its own for
_STATE_KEY = "swapd_pg"  # the pool record's info: this connection's _PgConnection


def prepare_by_name() -> bool:
    """Whether statements are prepared by name on each connection (off for PgBouncer in
    transaction mode: ``SWAPD_PG_PREPARE=off``); read when a connection first runs one."""
    return os.environ.get("SWAPD_PG_PREPARE", "on").strip().lower() not in ("off", "0", "false", "no")


class _PgStatement:
    """One statement in libpq's form: ``$n`` placeholders, and each parameter's name, fixed
    value and bind processor in the order of the placeholders."""

    __slots__ = ("binds", "name", "order", "sql", "text_formats")

    def __init__(self, compiled: _Compiled) -> None:
        if compiled.positional:  # pragma: no cover - SQLAlchemy's psycopg dialect uses pyformat
            raise ValueError("the psycopg dialect's statements are expected in pyformat")
        numbers: dict[str, int] = {}

        def number(match: re.Match[str]) -> str:
            name = match.group(1)
            if name is None:  # "%%": a literal percent sign
                return "%"
            if name not in numbers:
                numbers[name] = len(numbers) + 1
            return f"${numbers[name]}"

        self.sql = _PYFORMAT.sub(number, compiled.sql).encode()
        self.order = tuple(numbers)
        self.binds = tuple(
            (name, compiled.fixed.get(name, _REQUIRED), compiled.binds.get(name)) for name in self.order
        )
        self.text_formats = [PyFormat.TEXT] * len(self.order)
        with _NAMES_LOCK:
            self.name = f"swapd_{next(_NAMES)}".encode()

    def values(self, given: Mapping[str, Any]) -> list[Any]:
        values = []
        for name, fixed, process in self.binds:
            value = given.get(name, fixed)
            if value is _REQUIRED:
                raise KeyError(name)
            if value is not None and process is not None:
                value = process(value)
            values.append(value)
        return values


class _PgConnection:
    """What this path keeps for one server connection, for as long as the pool keeps it: the
    statements prepared on it, and one Transformer (psycopg's adapters, which cache the dumper
    of each Python type and the loader of each column type they meet)."""

    __slots__ = ("named", "prepared", "transformer")

    def __init__(self, driver: psycopg.Connection[Any]) -> None:
        self.named = prepare_by_name()
        self.prepared: set[bytes] = set()
        self.transformer = Transformer.from_context(driver)


_BINARY = pq.Format.BINARY if psycopg is not None else 1
_IDLE = pq.TransactionStatus.IDLE if psycopg is not None else 0
_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK) if psycopg is not None else ()


def _run_pg(
    connection: sa.Connection, compiled: _Compiled, statement: _PgStatement, given: Mapping[str, Any]
) -> PreparedResult:
    try:
        values = statement.values(given)
    except Exception as error:  # a bind processor refused a value (e.g. a naive datetime)
        raise sa.exc.StatementError(str(error), compiled.sql, dict(given), error) from error
    fairy = connection.connection
    driver = fairy.dbapi_connection
    assert isinstance(driver, psycopg.Connection)
    state: _PgConnection | None = fairy.info.get(_STATE_KEY)
    if state is None:
        state = fairy.info[_STATE_KEY] = _PgConnection(driver)
    pgconn = driver.pgconn
    try:
        transformer = state.transformer
        parameters = transformer.dump_sequence(values, statement.text_formats)
        _begin_if_idle(driver)
        if state.named:
            if statement.name not in state.prepared:
                _check(pgconn.prepare(statement.name, statement.sql))
                state.prepared.add(statement.name)
            result = pgconn.exec_prepared(statement.name, parameters, result_format=_BINARY)
        else:
            result = pgconn.exec_params(statement.sql, parameters, result_format=_BINARY)
        if result.status not in _OK:
            _check(result)
        rows: Sequence[Any] = ()
        if compiled.row is not None:
            transformer.set_pgresult(result)
            rows = [compiled.convert(raw) for raw in transformer.load_rows(0, result.ntuples, tuple)]
        status = result.command_status
        rowcount = int(status.rsplit(b" ", 1)[-1]) if status and status[-1:].isdigit() else -1
    except psycopg.Error as error:
        if isinstance(error, pg_errors.InvalidSqlStatementName):
            # The server has forgotten this connection's statements (DEALLOCATE ALL, DISCARD
            # ALL): prepare them again. The transaction has failed; its retry will.
            state.prepared.clear()
        raise _dbapi_error(connection, driver, compiled.sql, values, error) from error
    return PreparedResult(rows, rowcount)


def run_commands(connection: sa.Connection, *statements: str) -> None:
    """Statements with no parameters and no rows (SAVEPOINT, RELEASE) on the driver's
    connection, inside the transaction in progress (begun here if need be). On PostgreSQL they
    go as one message through libpq's own call (see above), a single round trip: the first
    that fails stops the rest and raises. Elsewhere each through the driver's ``execute``."""
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    if psycopg is None or not isinstance(dbapi_connection, psycopg.Connection):
        for statement in statements:
            dbapi_connection.execute(statement)
        return
    pgconn = dbapi_connection.pgconn
    script = "; ".join(statements).encode()
    if pgconn.transaction_status == _IDLE and not dbapi_connection.autocommit:
        script = dbapi_connection._get_tx_start_command() + b"; " + script
    try:
        _check(pgconn.exec_(script))
    except psycopg.Error as error:
        raise _dbapi_error(connection, dbapi_connection, script.decode(), (), error) from error


def _begin_if_idle(driver: psycopg.Connection[Any]) -> None:
    """Send the BEGIN psycopg would send before a statement outside a transaction."""
    pgconn = driver.pgconn
    if pgconn.transaction_status == _IDLE and not driver.autocommit:
        _check(pgconn.exec_(driver._get_tx_start_command()))


def _check(result: Any) -> None:
    """A failed libpq call as psycopg's own exception for it (SQLSTATE and all)."""
    if result.status in _OK:
        return
    if result.status == pq.ExecStatus.FATAL_ERROR:
        raise pg_errors.error_from_result(result, encoding="utf-8")
    message = result.error_message.decode("utf-8", "replace")
    raise psycopg.OperationalError(message or f"unexpected libpq result {result.status!r}")


def _dbapi_error(
    connection: sa.Connection,
    driver: psycopg.Connection[Any],
    sql: str,
    values: Sequence[Any],
    error: psycopg.Error,
) -> sa.exc.StatementError:
    """The error as ``Connection.execute`` raises it; a connection the driver reports as broken
    is invalidated, so the pool does not hand it out again."""
    dialect = connection.dialect
    broken = driver.pgconn.status == pq.ConnStatus.BAD or dialect.is_disconnect(
        error,  # type: ignore[arg-type]  # psycopg's Error is the dialect's DBAPI error
        connection.connection,
        None,
    )
    if broken:
        connection.invalidate(error)
    return sa.exc.DBAPIError.instance(
        sql, values, error, psycopg.Error, dialect=dialect, connection_invalidated=broken
    )

"""The swap path's statements on PostgreSQL, through libpq's own calls (see swapd.store.prepared).

psycopg's cursor costs some 60 us of CPU a statement on this path (query conversion, per-call
adapters, the non-blocking wait loop), libpq's own blocking call with psycopg's C adapters about
20 (measured on the 2-core bench machine). A statement is therefore run one level lower, on the
connection's ``PGconn``: prepared once per connection under a name of its own (the names kept in
the pool's record of that connection, which is forgotten with it), parameters dumped as text by
psycopg's Transformer, rows loaded by the same loaders a cursor would use. The transaction is
psycopg's: a statement on an idle connection first sends the BEGIN psycopg would have sent, so
SQLAlchemy's COMMIT and ROLLBACK and psycopg's own statements see one transaction. With
``SWAPD_PG_PREPARE=off`` nothing is prepared by name (PgBouncer in transaction mode hands each
transaction any server connection, which would not hold the statement): each run sends its SQL,
unnamed. psycopg's own automatic preparing is off (swapd.store.engine): it answers a ROLLBACK
with DEALLOCATE ALL, which would drop these statements too.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import psycopg
import sqlalchemy as sa
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

from swapd.store.statement_results import PreparedResult, PreparedRow


class Compiled(Protocol):
    """What this module reads of swapd.store.prepared's compiled statement."""

    sql: str
    positional: bool
    fixed: dict[str, Any]
    binds: dict[str, Callable[[Any], Any]]
    row: type[PreparedRow] | None

    def convert(self, raw: Sequence[Any]) -> PreparedRow: ...


_PYFORMAT = re.compile(r"%\((\w+)\)s|%%")
_NAMES = iter(range(1, 1 << 62))  # statement names, unique in this process
_NAMES_LOCK = threading.Lock()
_REQUIRED = object()  # a parameter the statement has no value of its own for
_STATE_KEY = "swapd_pg"  # the pool record's info: this connection's _PgConnection


def prepare_by_name() -> bool:
    """Whether statements are prepared by name on each connection (off for PgBouncer in
    transaction mode: ``SWAPD_PG_PREPARE=off``); read when a connection first runs one."""
    return os.environ.get("SWAPD_PG_PREPARE", "on").strip().lower() not in ("off", "0", "false", "no")


class PgStatement:
    """One statement in libpq's form: ``$n`` placeholders, and each parameter's name, fixed
    value and bind processor in the order of the placeholders."""

    __slots__ = ("binds", "name", "order", "sql", "text_formats")

    def __init__(self, compiled: Compiled) -> None:
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

    def run(
        self, connection: sa.Connection, compiled: Compiled, given: Mapping[str, Any]
    ) -> PreparedResult:
        return _run_pg(connection, compiled, self, given)


class _PgConnection:
    """What this path keeps for one server connection, for as long as the pool keeps it: the
    statements prepared on it, and one Transformer (psycopg's adapters, which cache the dumper
    of each Python type and the loader of each column type they meet)."""

    __slots__ = ("named", "prepared", "transformer")

    def __init__(self, driver: psycopg.Connection[Any]) -> None:
        self.named = prepare_by_name()
        self.prepared: set[bytes] = set()
        self.transformer = Transformer.from_context(driver)


_BINARY = pq.Format.BINARY
_IDLE = pq.TransactionStatus.IDLE
_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)


def _run_pg(
    connection: sa.Connection, compiled: Compiled, statement: PgStatement, given: Mapping[str, Any]
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
    """swapd.store.prepared.run_commands on PostgreSQL: one message, a single round trip (begun
    with the BEGIN psycopg would send if no transaction is open); the first statement that fails
    stops the rest and raises."""
    driver = connection.connection.dbapi_connection
    assert isinstance(driver, psycopg.Connection)
    pgconn = driver.pgconn
    script = "; ".join(statements).encode()
    if pgconn.transaction_status == _IDLE and not driver.autocommit:
        script = driver._get_tx_start_command() + b"; " + script
    try:
        _check(pgconn.exec_(script))
    except psycopg.Error as error:
        raise _dbapi_error(connection, driver, script.decode(), (), error) from error


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

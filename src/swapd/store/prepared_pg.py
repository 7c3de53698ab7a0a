"""The swap path's statements on PostgreSQL, through libpq's own calls (see swapd.store.prepared).

psycopg's cursor costs some 60 us of CPU a statement on this path (query conversion, per-call
adapters, the non-blocking wait loop), libpq's own blocking call with psycopg's C adapters about
20 (measured on the 2-core bench machine). A statement is therefore run one level lower, on the
connection's ``PGconn``: prepared once per connection under a name of its own (the names kept in
the pool's record of that connection, which is forgotten with it), parameters dumped as text by
psycopg's Transformer, rows loaded by the same loaders a cursor would use. The transaction is
psycopg's: a statement on an idle connection first sends the BEGIN psycopg would have sent (in
the statement's round trip, as a pipeline), so SQLAlchemy's COMMIT and ROLLBACK and psycopg's own
statements see one transaction. With
``SWAPD_PG_PREPARE=off`` nothing is prepared by name (PgBouncer in transaction mode hands each
transaction any server connection, which would not hold the statement): each run sends its SQL,
unnamed. psycopg's own automatic preparing is off (swapd.store.engine): it answers a ROLLBACK
with DEALLOCATE ALL, which would drop these statements too.

Deferred statements (``defer``): a write whose result its caller does not need at once waits in
the connection's queue and goes, in libpq's pipeline mode, in one round trip with the next
statement run, with ``flush``, or with the COMMIT (``commit``): each round trip costs some 70 us
of CPU on the two sides here, as much as the statement itself. A call's SAVEPOINT and the RELEASE
before it wait the same way (``defer_commands``); ``rollback_savepoint`` knows whether its
SAVEPOINT was sent. The order of statements is kept,
so later statements see what the deferred ones wrote. A deferred statement's error, or what its
check raises, is raised at that later point: the caller flushes before it answers anybody
(swapd.store.database flushes each call of a group before its savepoint is released). Nothing
queued is ever committed without being sent: a COMMIT through SQLAlchemy flushes first
(``swapd.store.engine``), a rollback and the pool's checkin drop the queue.
"""

from __future__ import annotations

import os
import re
import select
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

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
# Deferred statements a connection holds at most: one more sends them all at once.
MAX_DEFERRED = 64


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

    def defer(
        self,
        connection: sa.Connection,
        compiled: Compiled,
        given: Mapping[str, Any],
        check: Check | None,
    ) -> None:
        """Queue the statement for the connection's next round trip (see the module)."""
        values = _values(compiled, self, given)
        driver, state = _connection_state(connection)
        parameters = _dumped(connection, driver, state, compiled, self, values)
        state.queue.append(_Step(self, compiled, values, parameters, check))
        if len(state.queue) >= MAX_DEFERRED:
            flush(connection)


Check = Callable[[PreparedResult], None]


class _Step(NamedTuple):
    """One statement of a pipeline: what to send, and what to do with its result."""

    statement: PgStatement
    compiled: Compiled
    values: Sequence[Any]
    parameters: Sequence[pq.abc.Buffer | None]
    check: Check | None


class _PgConnection:
    """What this path keeps for one server connection, for as long as the pool keeps it: the
    statements prepared on it, and one Transformer (psycopg's adapters, which cache the dumper
    of each Python type and the loader of each column type they meet)."""

    __slots__ = ("named", "prepared", "queue", "transformer")

    def __init__(self, driver: psycopg.Connection[Any]) -> None:
        self.named = prepare_by_name()
        self.prepared: set[bytes] = set()
        self.transformer = Transformer.from_context(driver)
        # Deferred statements and commands (SAVEPOINT, RELEASE), not sent yet, in order.
        self.queue: list[_Step | bytes] = []


def _connection_state(connection: sa.Connection) -> tuple[psycopg.Connection[Any], _PgConnection]:
    fairy = connection.connection
    driver = fairy.dbapi_connection
    assert isinstance(driver, psycopg.Connection)
    state: _PgConnection | None = fairy.info.get(_STATE_KEY)
    if state is None:
        state = fairy.info[_STATE_KEY] = _PgConnection(driver)
    return driver, state


def _values(compiled: Compiled, statement: PgStatement, given: Mapping[str, Any]) -> list[Any]:
    try:
        return statement.values(given)
    except Exception as error:  # a bind processor refused a value (e.g. a naive datetime)
        raise sa.exc.StatementError(str(error), compiled.sql, dict(given), error) from error


_BINARY = pq.Format.BINARY
_IDLE = pq.TransactionStatus.IDLE
_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)
_ABORTED = pq.ExecStatus.PIPELINE_ABORTED
_SYNC = pq.ExecStatus.PIPELINE_SYNC


def _run_pg(
    connection: sa.Connection, compiled: Compiled, statement: PgStatement, given: Mapping[str, Any]
) -> PreparedResult:
    values = _values(compiled, statement, given)
    driver, state = _connection_state(connection)
    parameters = _dumped(connection, driver, state, compiled, statement, values)
    pgconn = driver.pgconn
    if state.queue or (pgconn.transaction_status == _IDLE and not driver.autocommit):
        # What waits, or the BEGIN psycopg would send first, goes in the statement's round trip.
        last = _Step(statement, compiled, values, parameters, None)
        return _pipeline(connection, driver, state, [*_take(state), last], ())[-1]
    try:
        if state.named:
            if statement.name not in state.prepared:
                _check(pgconn.prepare(statement.name, statement.sql))
                state.prepared.add(statement.name)
            result = pgconn.exec_prepared(
                statement.name,
                parameters,  # type: ignore[arg-type]  # the stub leaves out NULLs; libpq takes them
                result_format=_BINARY,
            )
        else:
            result = pgconn.exec_params(statement.sql, parameters, result_format=_BINARY)
        if result.status not in _OK:
            _check(result)
        return _result_of(compiled, state, result)
    except psycopg.Error as error:
        _forget_if_deallocated(state, error)
        raise _dbapi_error(connection, driver, compiled.sql, values, error) from error


def run_together(
    connection: sa.Connection, runs: Sequence[tuple[Compiled, PgStatement, Mapping[str, Any]]]
) -> list[PreparedResult]:
    """The statements of ``runs``, in order, in one round trip with what waits: their results."""
    driver, state = _connection_state(connection)
    steps: list[_Step | bytes] = []
    for compiled, statement, given in runs:
        values = _values(compiled, statement, given)
        parameters = _dumped(connection, driver, state, compiled, statement, values)
        steps.append(_Step(statement, compiled, values, parameters, None))
    results = _pipeline(connection, driver, state, [*_take(state), *steps], ())
    return results[len(results) - len(runs) :]


def _forget_if_deallocated(state: _PgConnection, error: psycopg.Error) -> None:
    if isinstance(error, pg_errors.InvalidSqlStatementName):
        # The server has forgotten this connection's statements (DEALLOCATE ALL, DISCARD ALL):
        # prepare them again. The transaction has failed; its retry will.
        state.prepared.clear()


def _dumped(
    connection: sa.Connection,
    driver: psycopg.Connection[Any],
    state: _PgConnection,
    compiled: Compiled,
    statement: PgStatement,
    values: Sequence[Any],
) -> Sequence[pq.abc.Buffer | None]:
    try:
        return state.transformer.dump_sequence(values, statement.text_formats)
    except psycopg.Error as error:  # a value the column type cannot take
        raise _dbapi_error(connection, driver, compiled.sql, values, error) from error


def _result_of(compiled: Compiled, state: _PgConnection, result: Any) -> PreparedResult:
    rows: Sequence[Any] = ()
    if compiled.row is not None:
        transformer = state.transformer
        transformer.set_pgresult(result)
        rows = [compiled.convert(raw) for raw in transformer.load_rows(0, result.ntuples, tuple)]
    status = result.command_status
    rowcount = int(status.rsplit(b" ", 1)[-1]) if status and status[-1:].isdigit() else -1
    return PreparedResult(rows, rowcount)


def _take(state: _PgConnection) -> list[_Step | bytes]:
    queued, state.queue = state.queue, []
    return queued


def flush(connection: sa.Connection, *commands: bytes) -> None:
    """Send the deferred statements, then ``commands`` (statements without parameters or rows:
    RELEASE, COMMIT), in one round trip; raise the first error or failed check among them."""
    known: _PgConnection | None = connection.connection.info.get(_STATE_KEY)
    if commands or (known is not None and known.queue):
        driver, state = _connection_state(connection)
        _then_commands(connection, driver, state, _take(state), commands)


def commit(connection: sa.Connection) -> None:
    """The deferred statements and COMMIT in one round trip; nothing when no transaction is
    open and nothing waits (psycopg's own commit would send nothing either)."""
    driver, state = _connection_state(connection)
    if state.queue or driver.pgconn.transaction_status != _IDLE:
        _then_commands(connection, driver, state, _take(state), (b"COMMIT",))


def _then_commands(
    connection: sa.Connection,
    driver: psycopg.Connection[Any],
    state: _PgConnection,
    steps: list[_Step | bytes],
    commands: Sequence[bytes],
) -> None:
    """``steps``, then ``commands``. A statement's error stops the pipeline before the commands,
    but a check runs only once its result is back: so a step with a check goes (with every
    step before it) in a round trip of its own first, lest a COMMIT or RELEASE sent with it
    keep what the check refuses."""
    checked = max(
        (i for i, step in enumerate(steps) if isinstance(step, _Step) and step.check is not None),
        default=-1,
    )
    if checked >= 0 and commands:
        _pipeline(connection, driver, state, steps[: checked + 1], ())
        steps = steps[checked + 1 :]
    _pipeline(connection, driver, state, steps, commands)


def defer_commands(connection: sa.Connection, *statements: str) -> None:
    """Queue statements without parameters or rows (SAVEPOINT, RELEASE) for the connection's
    next round trip, as ``defer`` queues a statement."""
    _, state = _connection_state(connection)
    state.queue.extend(statement.encode() for statement in statements)
    if len(state.queue) >= MAX_DEFERRED:
        flush(connection)


def rollback_savepoint(connection: sa.Connection, name: str) -> None:
    """Undo what was done since ``SAVEPOINT name`` (queued by ``defer_commands``) and release
    it. If that SAVEPOINT is still waiting, nothing after it reached the server: the queue is
    cut there, what came before it still to go. Otherwise everything queued came after it and
    is dropped, and ROLLBACK TO and RELEASE go now."""
    _, state = _connection_state(connection)
    opened = f"SAVEPOINT {name}".encode()
    for index, step in enumerate(state.queue):
        if isinstance(step, bytes) and step == opened:
            del state.queue[index:]
            return
    state.queue.clear()
    run_commands(connection, f"ROLLBACK TO SAVEPOINT {name}", f"RELEASE SAVEPOINT {name}")


def discard(connection: sa.Connection) -> None:
    """Drop the deferred statements: their transaction or savepoint is being rolled back."""
    discard_record(connection.connection.info)


def discard_record(record_info: dict[Any, Any]) -> None:
    """``discard`` for a pooled connection by its pool record's info (the pool's checkin)."""
    state: _PgConnection | None = record_info.get(_STATE_KEY)
    if state is not None:
        state.queue.clear()


def _pipeline(
    connection: sa.Connection,
    driver: psycopg.Connection[Any],
    state: _PgConnection,
    steps: Sequence[_Step | bytes],
    commands: Sequence[bytes],
) -> list[PreparedResult]:
    """Send ``steps`` and then ``commands`` in one pipeline (begun with BEGIN outside a
    transaction) and wait for all of their results: one round trip. Each step's check sees its
    result in order; the first error or failed check is raised once every result is in. What
    it returns is the result of each statement among the steps, in order."""
    pgconn = driver.pgconn
    try:
        pgconn.enter_pipeline_mode()
        try:
            sent, newly_prepared = _send(driver, state, steps, commands)
            pgconn.pipeline_sync()
            results = _pipeline_results(pgconn, len(sent))
        finally:
            if pgconn.pipeline_status != pq.PipelineStatus.OFF:
                pgconn.exit_pipeline_mode()
    except psycopg.Error as error:  # the connection failed under the pipeline
        raise _dbapi_error(connection, driver, "(pipeline)", (), error) from error
    if all(result.status in _OK for result in results):
        state.prepared.update(newly_prepared)
    answers: list[PreparedResult] = []
    for what, result in zip(sent, results, strict=True):
        if result.status == _ABORTED:
            continue  # after an earlier failure, which is raised below
        if result.status not in _OK:
            _raise_failed(connection, driver, state, what, result)
        if isinstance(what, _Step):
            answers.append(_result_of(what.compiled, state, result))
            if what.check is not None:
                what.check(answers[-1])
    return answers


def _send(
    driver: psycopg.Connection[Any],
    state: _PgConnection,
    steps: Sequence[_Step | bytes],
    commands: Sequence[bytes],
) -> tuple[list[_Step | bytes], list[bytes]]:
    """Queue the pipeline's messages; what each result will answer, in order, and the names
    of the statements prepared on the way."""
    pgconn = driver.pgconn
    sent: list[_Step | bytes] = []
    newly_prepared: list[bytes] = []
    if pgconn.transaction_status == _IDLE and not driver.autocommit:
        begin = driver._get_tx_start_command()
        pgconn.send_query_params(begin, None)
        sent.append(begin)
    for step in steps:
        if isinstance(step, bytes):  # a deferred command
            pgconn.send_query_params(step, None)
            sent.append(step)
            continue
        name = step.statement.name
        if not state.named:
            pgconn.send_query_params(step.statement.sql, step.parameters, result_format=_BINARY)
        else:
            if name not in state.prepared and name not in newly_prepared:
                pgconn.send_prepare(name, step.statement.sql)
                sent.append(b"PREPARE")
                newly_prepared.append(name)
            pgconn.send_query_prepared(name, step.parameters, result_format=_BINARY)
        sent.append(step)
    for command in commands:
        pgconn.send_query_params(command, None)
        sent.append(command)
    return sent, newly_prepared


def _raise_failed(
    connection: sa.Connection,
    driver: psycopg.Connection[Any],
    state: _PgConnection,
    what: _Step | bytes,
    result: Any,
) -> None:
    if isinstance(what, _Step):
        sql, values = what.compiled.sql, what.values
    else:
        sql, values = what.decode(), ()
    try:
        _check(result)
    except psycopg.Error as error:
        _forget_if_deallocated(state, error)
        raise _dbapi_error(connection, driver, sql, values, error) from error


def _pipeline_results(pgconn: Any, count: int) -> list[Any]:
    """The results of ``count`` queries sent in one pipeline and its sync, each read once it
    has arrived (libpq's get_result would block holding the GIL)."""
    results: list[Any] = []
    separators = 0
    while True:
        while pgconn.is_busy():
            select.select((pgconn.socket,), (), ())  # the GIL is free while this waits
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:  # the end of one query's results
            separators += 1
            if separators > count or pgconn.status == pq.ConnStatus.BAD:
                raise psycopg.OperationalError("the connection failed during a pipeline")
            continue
        if result.status == _SYNC:
            if len(results) != count:
                raise psycopg.OperationalError(f"{len(results)} of {count} pipeline results")
            return results
        if result.status == pq.ExecStatus.FATAL_ERROR and pgconn.status == pq.ConnStatus.BAD:
            raise pg_errors.error_from_result(result, encoding="utf-8")
        results.append(result)


def run_commands(connection: sa.Connection, *statements: str) -> None:
    """swapd.store.prepared.run_commands on PostgreSQL: one message, a single round trip (begun
    with the BEGIN psycopg would send if no transaction is open); the first statement that fails
    stops the rest and raises. Deferred statements go first, in the same round trip."""
    driver, state = _connection_state(connection)
    if state.queue:
        flush(connection, *(statement.encode() for statement in statements))
        return
    pgconn = driver.pgconn
    script = "; ".join(statements).encode()
    if pgconn.transaction_status == _IDLE and not driver.autocommit:
        script = driver._get_tx_start_command() + b"; " + script
    try:
        _check(pgconn.exec_(script))
    except psycopg.Error as error:
        raise _dbapi_error(connection, driver, script.decode(), (), error) from error


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

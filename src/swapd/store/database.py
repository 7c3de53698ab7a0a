"""Transactions with retry: every service call runs as one database transaction through here."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import queue
import random
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from swapd.domain.errors import Retry
from swapd.domain.plans import Plan
from swapd.ledger.model import Delta
from swapd.logger import get_logger
from swapd.store.calls import MAX_GROUP, Work
from swapd.store.engine import WRITE, open_database, sqlite_file_path
from swapd.store.ledger_book import Book
from swapd.store.prepared import (
    commit,
    defer_commands,
    flush,
    rollback_savepoint,
    run_commands,
)
from swapd.store.repository import Repository
from swapd.store.turns import for_url
from swapd.store.writer import WriterClient

T = TypeVar("T")
log = get_logger(__name__)

MAX_ATTEMPTS = 8
# PostgreSQL: this many call threads each run a group of the event loop's calls in a
# transaction of its own (see ``call``), so that a group waiting for a row lock or its COMMIT
# does not hold up the next. Few: every statement's round trip hands the GIL over, and each
# thread's group holds its rows' locks until it commits.
PG_CALL_THREADS = 4
# PostgreSQL: at most this many calls in a group. Each call that writes is a subtransaction
# with an XID of its own, and past 64 of them in one transaction every other session's
# snapshot must look them up in pg_subtrans instead of in the backend's cache.
PG_MAX_GROUP = 32
# PostgreSQL: serialization failure, deadlock detected, unique violation (two writers racing to
# record the same station event or account: the retry sees the winner's row and answers from it),
# and a prepared statement the server forgot (swapd.store.prepared prepares it again).
_RETRYABLE_PG = {"40001", "40P01", "23505", "26000"}


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to: scenarios, tests and the simulator use it."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def set(self, at: datetime) -> None:
        self._now = at


@dataclass
class Tx:
    """What a service sees of one transaction: the SQL unit of work
    (``swapd.services.ports.UnitOfWork``).

    A transaction in progress is also a place where work runs: ``write`` and ``read`` run it as
    a step of this transaction. So a use case that opens its own (``db.write(work)``) composes
    into a larger one when given the caller's ``Tx`` instead of the ``Database``: a refund
    commits or rolls back with its audit row, a row of an import with the rest of the file."""

    repo: Repository
    book: Book
    now: datetime

    def write(self, work: Callable[[Tx], T]) -> T:
        return work(self)

    def read(self, work: Callable[[Tx], T]) -> T:
        return work(self)


class Transactional(Protocol):
    """Where a SQL use case runs its work: a ``Database`` (a transaction of its own, with
    retries) or a ``Tx`` in progress (a step of the caller's transaction)."""

    def write(self, work: Callable[[Tx], T]) -> T: ...
    def read(self, work: Callable[[Tx], T]) -> T: ...


def _retryable(error: BaseException) -> bool:
    if isinstance(error, Retry):
        return True
    if isinstance(error, sa.exc.DBAPIError):
        code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
        if code in _RETRYABLE_PG:
            return True
        if "database is locked" in str(error.orig):
            return True
    return False


@dataclass(slots=True)
class _Call:
    """A blocking service call submitted from an event loop, and where its outcome goes."""

    function: Callable[[], object]
    context: contextvars.Context
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    # The function's name in the writer process's calls table; empty when no writer runs.
    name: str = ""
    result: object = None
    error: BaseException | None = None


def _answer(group: Sequence[Work]) -> None:
    """Hand each call's outcome to the event loop that waits for it, one wake-up a loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Call]] = {}
    for call in group:
        assert isinstance(call, _Call)
        by_loop.setdefault(call.loop, []).append(call)
    for loop, calls in by_loop.items():
        # A loop that closed meanwhile (shutdown) has nobody waiting for the answers.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, calls)


def _fail_group(group: Sequence[Work], error: BaseException) -> None:
    """An unexpected error of the group machinery itself (not of a call): logged once, and
    every call of the group fails with it."""
    log.exception("call_group_failed")
    for call in group:
        call.result, call.error = None, error


def _settle(calls: list[_Call]) -> None:
    for call in calls:
        if call.future.cancelled():
            continue
        if call.error is not None:
            call.future.set_exception(call.error)
        else:
            call.future.set_result(call.result)


class _Pending:
    """One service call waiting for (or done by) a SQLite group commit."""

    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Callable[[Tx], object]) -> None:
        self.work = work
        self.result: object = None
        self.error: BaseException | None = None
        self.done = False


class Database:
    def __init__(
        self, engine: Engine, clock: Clock | None = None, *, call_threads: int | None = None
    ) -> None:
        """``call_threads``: PostgreSQL, how many call threads run groups of ``call``s at once
        (``PG_CALL_THREADS`` by default); SQLite always has one."""
        self.engine = engine
        self.clock: Clock = clock or SystemClock()
        # SQLite has one writer at a time (BEGIN IMMEDIATE) and each commit costs an fsync
        # (synchronous=FULL). Writers of this process therefore queue here, and whoever holds
        # the commit lock runs every queued call in one transaction, each call in a savepoint
        # of its own: a call that fails rolls back alone, and nobody hears "done" before the
        # one COMMIT that makes all of them durable. Without this, the threads of one server
        # would fight for SQLite's lock through its busy handler, which sleeps 1-100 ms.
        self._grouped = engine.dialect.name == "sqlite"
        self._call_threads = 1 if self._grouped else (call_threads or PG_CALL_THREADS)
        self._max_group = MAX_GROUP if self._grouped else PG_MAX_GROUP
        if self._call_threads < 1:
            raise ValueError(f"call_threads must be at least 1, got {call_threads}")
        self._commit_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._in_group = threading.local()
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._callers: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        self._writer: WriterClient | None = None
        # SQLite: writers of other processes (the writer process, the CLI) take turns with ours.
        self._turns = for_url(engine.url) if self._grouped else None
        # Plans read by transactions that committed (see Repository.plan): written once, never
        # changed, so the swap path need not read its rider's plan again each call.
        self._plans: dict[str, Plan] = {}

    @classmethod
    def open(cls, url: str | None = None, clock: Clock | None = None) -> Database:
        return cls(open_database(url), clock)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def write(self, work: Callable[[Tx], T]) -> T:
        """Run ``work`` in one write transaction, retrying lost races; commit or write nothing."""
        connection = getattr(self._in_group, "connection", None)
        if connection is not None:
            # A service call run by a call thread (see ``call``): a savepoint of its group.
            pending = _Pending(work)
            self._run_savepoint(connection, pending)
            if pending.error is not None:
                raise pending.error
            return pending.result  # type: ignore[return-value]
        if self._grouped:
            return self._write_grouped(work)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with (
                    self.engine.connect().execution_options(**{WRITE: True}) as connection,
                    connection.begin(),
                ):
                    tx = self._new_tx(connection)
                    result = work(tx)
                    tx.book.flush()
                    commit(connection)  # PostgreSQL: with the statements still deferred
                self._plans.update(tx.repo.plans_read)
                return result
            except Exception as error:
                if attempt == MAX_ATTEMPTS or not _retryable(error):
                    raise
                log.info("transaction_retry", attempt=attempt, error=type(error).__name__)
                time.sleep(random.uniform(0, 0.002 * 2**attempt))
        raise AssertionError("unreachable")

    def _write_grouped(self, work: Callable[[Tx], T]) -> T:
        if getattr(self._in_group, "active", False):
            # Would wait for the lock this thread holds; SQLite could not have run it either.
            raise RuntimeError("Database.write called inside another write of the same Database")
        pending = _Pending(work)
        with self._queue_lock:
            self._queue.append(pending)
        with self._commit_lock:
            # Another thread's group may have run this call while we waited for the lock.
            while not pending.done:
                with self._queue_lock:
                    group = self._queue[:MAX_GROUP]
                    del self._queue[:MAX_GROUP]
                self._in_group.active = True
                try:
                    self._run_group(group)
                finally:
                    self._in_group.active = False
                    for item in group:
                        if not item.done:  # only when _run_group itself was interrupted
                            item.error = item.error or RuntimeError("group commit interrupted")
                            item.done = True
        if pending.error is not None:
            raise pending.error
        return pending.result  # type: ignore[return-value]

    def _in_one_transaction(self, run: Callable[[sa.Connection], None]) -> BaseException | None:
        """``run`` in one write transaction, retried while BEGIN or COMMIT fails for a reason
        that passes (another process holds the lock past busy_timeout): then nothing of it was
        written. The error that ended the attempts, or None once committed."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            read: list[dict[str, Plan]] = []
            self._in_group.plans_read = read  # what the calls that did not fail read
            # The operator-side balance changes of the calls that did not fail, written once
            # for the group: each call would update the same few shared rows again (the
            # operator's revenue and consumed allowance), three statements a swap.
            deferred: defaultdict[int, Delta] = defaultdict(Delta)
            self._in_group.deferred = deferred
            self._in_group.unreleased = False  # no savepoint of this transaction yet
            self._in_group.unflushed = False
            self._in_group.poisoned = None
            try:
                with (
                    self._turns.turn() if self._turns is not None else contextlib.nullcontext(),
                    self.engine.connect().execution_options(**{WRITE: True}) as connection,
                    connection.begin(),
                ):
                    run(connection)
                    if self._in_group.poisoned is not None:
                        raise self._in_group.poisoned
                    Book.write_deltas(connection, deferred)
                    commit(connection)  # PostgreSQL: with the statements still deferred
            except Exception as error:
                if attempt == MAX_ATTEMPTS or not _retryable(error):
                    return error
                log.info("transaction_retry", attempt=attempt, error=type(error).__name__)
                time.sleep(random.uniform(0, 0.002 * 2**attempt))
                continue
            finally:
                self._in_group.plans_read = None
                self._in_group.deferred = None
            for plans in read:
                self._plans.update(plans)
            return None
        raise AssertionError("unreachable")

    def _run_group(self, group: list[_Pending]) -> None:
        """Every call of ``group`` in one transaction, each in a savepoint; one COMMIT."""

        def run(connection: sa.Connection) -> None:
            for item in group:
                self._run_savepoint(connection, item)

        error = self._in_one_transaction(run)
        for item in group:
            if error is not None:
                item.result, item.error = None, error
            item.done = True

    def _run_savepoint(self, connection: sa.Connection, item: _Pending) -> None:
        # The savepoint is the driver's own statement, not ``connection.begin_nested()``:
        # SQLAlchemy compiles its SAVEPOINT and RELEASE afresh each time (they are not cached),
        # which cost more than all of a swap's prepared statements together (profiled). The
        # name may repeat: SQLite and PostgreSQL release and roll back to the innermost one of
        # that name. On PostgreSQL, where each is a round trip, a call's RELEASE and the next
        # call's SAVEPOINT wait to go with that call's first statement, and the group's COMMIT
        # releases the last one.
        #
        # PostgreSQL: the writes a call deferred (swapd.store.prepared.Prepared.defer) are sent
        # before its savepoint can be released, so that a failure among them rolls back that
        # call alone. A call that is its group's only one leaves them for the group's COMMIT
        # (one round trip fewer); should it write or read again first, they go before that,
        # and a failure among them then fails the whole transaction (``_flush_earlier``).
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._flush_earlier(connection)
            if getattr(self._in_group, "unreleased", False):
                defer_commands(connection, "RELEASE SAVEPOINT swapd_call", "SAVEPOINT swapd_call")
            else:
                defer_commands(connection, "SAVEPOINT swapd_call")
            self._in_group.unreleased = False
            alone = getattr(self._in_group, "alone", False)
            try:
                tx = self._new_tx(connection)
                result = item.work(tx)
                deltas = tx.book.take_deferred()
                if not alone:
                    flush(connection)
            except Exception as error:
                rollback_savepoint(connection, "swapd_call")
                if attempt < MAX_ATTEMPTS and _retryable(error):
                    log.info("transaction_retry", attempt=attempt, error=type(error).__name__)
                    continue
                item.result, item.error = None, error
                return
            if self._grouped:
                run_commands(connection, "RELEASE SAVEPOINT swapd_call")
            else:
                self._in_group.unreleased = True
                self._in_group.unflushed = alone
            self._in_group.plans_read.append(tx.repo.plans_read)
            for account_id, delta in deltas.items():
                self._in_group.deferred[account_id] += delta
            item.result, item.error = result, None
            return

    def _flush_earlier(self, connection: sa.Connection) -> None:
        """Send what an earlier write of this transaction left deferred (a lone call's, see
        ``_run_savepoint``). That write has answered its caller already, so a failure here
        can only be undone with the whole transaction: it is kept, and the group fails."""
        if not getattr(self._in_group, "unflushed", False):
            return
        self._in_group.unflushed = False
        try:
            flush(connection)
        except Exception as error:
            self._in_group.poisoned = error
            raise

    def read(self, work: Callable[[Tx], T]) -> T:
        connection = getattr(self._in_group, "connection", None)
        if connection is not None:  # inside a call group: read on its transaction
            self._flush_earlier(connection)
            tx = self._new_tx(connection)
            result = work(tx)
            self._in_group.plans_read.append(tx.repo.plans_read)
            return result
        with self.engine.connect() as connection, connection.begin():
            tx = self._new_tx(connection)
            result = work(tx)
        self._plans.update(tx.repo.plans_read)
        return result

    def _new_tx(self, connection: sa.Connection) -> Tx:
        now = self.clock.now()
        return Tx(Repository(connection, self._plans), Book(connection, now), now)

    # -- blocking service calls from an event loop ---------------------------------------------

    async def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking service call (one that uses ``write`` and ``read``) for a coroutine.

        A call thread takes the calls queued from the event loop in groups: it opens one
        transaction, runs each call of the group (each ``write`` of a call in a savepoint of its
        own, so a failing call rolls back alone), commits once, and only then hands every
        outcome back, with one wake-up of the loop per group. Threads blocked one per call (a
        thread pool, or the commit lock that ``write`` takes for callers that are threads) cost
        more CPU in GIL hand-offs and wake-ups than the calls themselves (profiled).

        SQLite: one call thread (one writer at a time, and each commit an fsync).

        PostgreSQL: ``call_threads`` call threads, each group on a connection of its own.
        A group shares one COMMIT and one write of the operator-side balances (every swap
        moves the same few operator accounts: one call a transaction would lock those rows
        once a call). The calls of concurrent groups lock riders, then packs, each in key
        order, as single calls do; a deadlock PostgreSQL breaks anyway rolls back one call's
        savepoint, which is retried.

        With a writer process (``start_writer_process``), every call runs there, and only the
        functions of its calls table may be called: any other raises TypeError here, naming
        it, and runs nowhere.
        """
        name = "" if self._writer is None else self._writer.name_of(function)
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()  # the caller's log context goes with the call
        bound = functools.partial(function, *args, **kwargs)
        future: asyncio.Future[T] = loop.create_future()
        self._call_thread()
        self._calls.put(_Call(bound, context, loop, future, name))
        return await future

    def start_writer_process(self, *, json_logs: bool, calls_module: str) -> None:
        """SQLite: run the event loop's service calls (``call``) in a writer process of its own
        (see swapd.store.writer), so that the writer and the event loop each have a core. On
        PostgreSQL the calls already run in threads, each its own transaction: nothing to do.

        ``calls_module`` names the module whose ``CALLS`` table (swapd.store.calls) lists the
        functions ``call`` may be given: the entrypoint that makes the calls declares it."""
        if not self._grouped or self._writer is not None:
            return
        if sqlite_file_path(self.engine.url) is None:
            return  # in memory: another process would open another database; keep the calls here
        if sys.platform == "win32":
            return  # the writer is handed its socket by pass_fds, which Windows lacks
        writer = WriterClient(
            self.engine.url.render_as_string(hide_password=False),
            json_logs=json_logs,
            calls_module=calls_module,
        )
        writer.start()
        self._writer = writer

    @property
    def writer_pid(self) -> int | None:
        return None if self._writer is None else self._writer.pid

    def _call_thread(self) -> None:
        if self._callers:
            return
        with self._start_lock:
            if not self._callers:
                callers = [
                    threading.Thread(target=self._serve_calls, name=f"swapd-calls-{n}", daemon=True)
                    for n in range(self._call_threads)
                ]
                for caller in callers:
                    caller.start()
                self._callers = callers

    def _serve_calls(self) -> None:
        while True:
            first = self._calls.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < self._max_group:
                try:
                    item = self._calls.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
            if self._writer is not None:
                # Answered from the writer's reply thread; the next group gathers meanwhile.
                try:
                    self._writer.submit(group, self, _answer)
                except Exception as error:
                    # A bug on the way to the writer fails this group, not this thread (and with
                    # it every later call, which would wait forever).
                    _fail_group(group, error)
                    _answer(group)
            else:
                self._run_here(group)
                _answer(group)
            if stop:
                return

    def _run_here(self, group: Sequence[Work]) -> None:
        try:
            self.run_calls(group)
        except Exception as error:  # a bug here must fail this group, not every later call
            _fail_group(group, error)

    def run_calls(self, group: Sequence[Work]) -> None:
        """Run the calls of ``group`` in one transaction (each ``write`` of a call in a savepoint
        of its own), commit once, and fill in each call's outcome."""

        def run(connection: sa.Connection) -> None:
            # The calls' own write() and read() find the group's connection here.
            self._in_group.connection = connection
            self._in_group.alone = len(group) == 1
            try:
                for call in group:
                    try:
                        call.result, call.error = call.context.run(call.function), None
                    except Exception as error:
                        call.result, call.error = None, error
            finally:
                self._in_group.connection = None
                self._in_group.alone = False

        # SQLite: one writer at a time in this process; PostgreSQL: each call thread's group
        # on a connection of its own, concurrently.
        with self._commit_lock if self._grouped else contextlib.nullcontext():
            error = self._in_one_transaction(run)  # a rerun runs every call again: idempotent
        if error is not None:
            for call in group:
                call.result, call.error = None, error

    def dispose(self) -> None:
        if self._callers:
            for _ in self._callers:
                self._calls.put(None)  # one stop for each call thread
            for caller in self._callers:
                caller.join(timeout=10)
            self._callers = []
        if self._writer is not None:
            self._writer.stop()
            self._writer = None
        if self._turns is not None:
            self._turns.close()
        self.engine.dispose()

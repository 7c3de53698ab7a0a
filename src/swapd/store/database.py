"""Transactions with retry: every service call runs as one database transaction through here."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine

from swapd.ledger.book import Book
from swapd.store.engine import WRITE, open_database
from swapd.store.repository import Repository, Retry

T = TypeVar("T")
log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 8
# PostgreSQL: serialization failure, deadlock detected, unique violation (two writers racing to
# record the same station event or account: the retry sees the winner's row and answers from it).
_RETRYABLE_PG = {"40001", "40P01", "23505"}


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
    """What a service sees of one transaction."""

    repo: Repository
    book: Book
    now: datetime


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


class Database:
    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock: Clock = clock or SystemClock()

    @classmethod
    def open(cls, url: str | None = None, clock: Clock | None = None) -> Database:
        return cls(open_database(url), clock)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def write(self, work: Callable[[Tx], T]) -> T:
        """Run ``work`` in one write transaction, retrying lost races; commit or write nothing."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with (
                    self.engine.connect().execution_options(**{WRITE: True}) as connection,
                    connection.begin(),
                ):
                    now = self.clock.now()
                    tx = Tx(Repository(connection), Book(connection, now), now)
                    result = work(tx)
                    tx.book.flush()
                return result
            except Exception as error:
                if attempt == MAX_ATTEMPTS or not _retryable(error):
                    raise
                log.info("transaction_retry", attempt=attempt, error=type(error).__name__)
                time.sleep(random.uniform(0, 0.002 * 2**attempt))
        raise AssertionError("unreachable")

    def read(self, work: Callable[[Tx], T]) -> T:
        with self.engine.connect() as connection, connection.begin():
            now = self.clock.now()
            return work(Tx(Repository(connection), Book(connection, now), now))

    def dispose(self) -> None:
        self.engine.dispose()

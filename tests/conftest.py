"""Databases for tests: a fresh SQLite file per test, and PostgreSQL when reachable.

PostgreSQL tests skip only when no server answers and SWAPD_REQUIRE_POSTGRES is unset;
.ci/run sets it, so in CI an unreachable server fails the run instead of hiding tests.

Every test runs with the sandbox payment provider chosen, as an operator chooses a provider.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog

from swapd import security
from swapd.payments import config as payments_config
from swapd.store.database import Database, ManualClock
from swapd.store.engine import make_engine, upgrade
from swapd.store.prepared import Prepared
from swapd.store.schema import metadata
from tests.pg_databases import require_postgres, temporary_database

START = datetime(2026, 11, 2, 9, 0, 0, tzinfo=UTC)


def pytest_configure(config: pytest.Config) -> None:
    """structlog's unconfigured default renders an exception's traceback with the locals of every
    frame through rich; for an ASGI app's 500 that is half a minute of CPU per logged error.
    Tests keep the default processors but print tracebacks plainly, as `swapd serve` does."""
    processors = list(structlog.get_config()["processors"])
    processors[-1] = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    structlog.configure(processors=processors)


@pytest.fixture(autouse=True)
def structlog_as_configured(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A command run in the test process (``swapd sim`` through CliRunner) configures logging as
    the program does, with loggers cached on first use: a module's logger cached then would keep
    that configuration for the rest of the worker, and ``structlog.testing.capture_logs`` in a
    later test would no longer see its lines. Here such a configuration caches nothing, and the
    configuration every test starts with is restored after each."""
    from swapd import logs

    configured = logs.configure_logging

    def uncached(**options: Any) -> None:
        configured(**options)
        structlog.configure(cache_logger_on_first_use=False)

    monkeypatch.setattr(logs, "configure_logging", uncached)
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


# scrypt with N=2**10 instead of 2**14: 16 times cheaper (about 5 ms instead of 85 per hash).
# A stored hash names its own parameters, so hashes made either way verify anywhere. Tests about
# what a hash costs (floods, lockouts, bounded hash pools) and every test under tests/security
# keep the real cost: mark their module `real_password_cost`.
TEST_SCRYPT_N = 2**10


@pytest.fixture(autouse=True)
def cheap_password_hashes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("real_password_cost") or "security" in request.node.path.parts:
        return
    monkeypatch.setattr(security, "_N", TEST_SCRYPT_N)


@pytest.fixture(autouse=True)
def sandbox_payments(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no provider configured swapd takes no payments, so the apps tests build (and the
    servers they start, which inherit the environment) opt in to the sandbox. A test of the
    unconfigured default deletes the variable with its own monkeypatch."""
    monkeypatch.setenv(payments_config.ENV_PROVIDER, "sandbox")


@pytest.fixture
def prepared_runs(monkeypatch: pytest.MonkeyPatch) -> list[Prepared]:
    """Every statement of the swap path run or deferred from now on in this test, in order, each
    once: for the tests that count what a step sends to the database."""
    runs: list[Prepared] = []
    run, defer = Prepared.run, Prepared.defer
    deferring = threading.local()  # Prepared.defer runs the statement itself off PostgreSQL

    def counted(self: Prepared, connection: sa.Connection, parameters: Any = None) -> Any:
        if not getattr(deferring, "active", False):
            runs.append(self)
        return run(self, connection, parameters)

    def counted_deferred(
        self: Prepared, connection: sa.Connection, parameters: Any = None, check: Any = None
    ) -> None:
        runs.append(self)
        deferring.active = True
        try:
            defer(self, connection, parameters, check)
        finally:
            deferring.active = False

    monkeypatch.setattr(Prepared, "run", counted)
    monkeypatch.setattr(Prepared, "defer", counted_deferred)
    return runs


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A database of its own for this test session, dropped at the end."""
    require_postgres()
    with temporary_database("swapd_test", migrated_to="head") as url:
        yield url


_SEQUENCES: dict[str, list[str]] = {}


def _empty_tables(url: str) -> None:
    """Empty every swapd table of a PostgreSQL test database and restart its id sequences.

    DELETE, not TRUNCATE: a test leaves a few rows, and TRUNCATE of 23 tables makes 23 new files
    (about 0.2 s a test here) where deleting the rows takes 0.02 s. Children go before parents."""
    engine = make_engine(url)
    with engine.begin() as connection:
        sequences = _SEQUENCES.get(url)
        if sequences is None:
            found = connection.execute(
                sa.text(
                    "SELECT pg_get_serial_sequence(quote_ident(table_name), column_name) "
                    "FROM information_schema.columns WHERE table_schema = current_schema()"
                )
            ).scalars()
            sequences = _SEQUENCES[url] = sorted(name for name in found if name is not None)
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())
        for sequence in sequences:
            connection.execute(sa.text(f"ALTER SEQUENCE {sequence} RESTART"))
    engine.dispose()


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite database migrated to the newest revision, once per test session: running
    every migration costs about half a second, a copy of the file half a millisecond."""
    path = tmp_path_factory.mktemp("migrated") / "swapd.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    # The last connection to close checkpoints the WAL into the file and removes it, so the
    # file alone is the whole database; a copy taken with a WAL beside it would lose rows.
    assert not Path(f"{path}-wal").exists(), "the template database still has a WAL"
    return path


def copy_of_migrated_sqlite(template: Path, directory: Path) -> str:
    """The URL of a private copy of the migrated template, in ``directory``."""
    target = directory / "swapd.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated database of each supported kind."""
    if request.param == "sqlite":
        return copy_of_migrated_sqlite(request.getfixturevalue("migrated_sqlite_file"), tmp_path)
    url = str(request.getfixturevalue("pg_url"))
    _empty_tables(url)
    return url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def db(db_url: str, clock: ManualClock) -> Iterator[Database]:
    database = Database(make_engine(db_url), clock)
    yield database
    database.dispose()


@pytest.fixture
def two_processes(db_url: str, clock: ManualClock) -> Iterator[tuple[Database, Database]]:
    """Two Database objects on one database, each with its own engine and pool: what two server
    processes are to each other, for races that must hold across processes."""
    first, second = Database(make_engine(db_url), clock), Database(make_engine(db_url), clock)
    yield first, second
    first.dispose()
    second.dispose()

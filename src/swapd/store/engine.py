"""Engines for the two supported databases, with the settings that keep money safe.

SQLite (the default, one file): WAL with synchronous=FULL, because a swap acknowledged to a station
must survive a power cut (the writer process fsyncs the WAL itself before it answers: see
``wal_synced_by_caller``); every write transaction starts with BEGIN IMMEDIATE so concurrent writers
queue instead of interleaving. PostgreSQL: READ COMMITTED with row locks taken by the services.
"""

from __future__ import annotations

import functools
import os
import random
import re
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

DEFAULT_DATABASE_URL = "sqlite:///swapd.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_PAGE_SIZE = 1024  # bytes; for new files (see _sqlite_engine)
WRITE = "swapd_write"  # execution option: this transaction writes (SQLite: BEGIN IMMEDIATE)


class DatabaseFileError(OSError):
    """The SQLite file named cannot be opened as a database, said in one line that names it.
    An OSError, because every command already turns one into a line on stderr and exit 2."""


_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def database_url(database: str | None = None) -> str:
    """The URL for what the operator named: the argument, else SWAPD_DATABASE_URL, else ./swapd.db.

    Either may be a URL or a plain file path (``./x.db``, ``/srv/swapd/x.db``, ``~/x.db``): a
    path is a SQLite file, relative to the working directory as in ``sqlite:///x.db``. Every
    entry point resolves through here (make_engine, sqlite_file_path, display_url), so a path
    works wherever a URL does."""
    given = database or os.environ.get("SWAPD_DATABASE_URL") or DEFAULT_DATABASE_URL
    if not _URL_SCHEME.match(given):
        return "sqlite:///" + os.path.expanduser(given)
    # psycopg 3 is the driver we ship; accept the plain scheme operators paste from elsewhere.
    for prefix in ("postgresql://", "postgres://"):
        if given.startswith(prefix):
            return "postgresql+psycopg://" + given[len(prefix) :]
    return given


def display_url(url: str | None = None) -> str:
    """The database URL as it may be shown or logged: the password masked."""
    resolved = database_url(url)
    try:
        return sa.make_url(resolved).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return resolved.split("@")[-1]


def sqlite_file_path(url: str | sa.URL | None = None) -> str | None:
    """The file a SQLite URL opens; None for another database and for an in-memory one.

    Everything that needs "is this one file that other processes can open too" asks here: the
    writer process, the turns at the file, and read-only commands that must not create it.
    A URI filename (``sqlite:///file:name?mode=memory&uri=true``) is read as SQLite reads it:
    ``file:`` is a scheme only in URI mode, where ``mode=memory`` means no file at all."""
    try:
        parsed = url if isinstance(url, sa.URL) else sa.make_url(database_url(url))
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port that is not a number
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    path = parsed.database or ""
    if str(parsed.query.get("uri", "")).lower() in ("true", "1"):
        if parsed.query.get("mode") == "memory":
            return None
        path = path.removeprefix("file:")
        if path.startswith("//"):  # file://host/path: SQLite accepts only an empty or local host
            path = "/" + path[2:].split("/", 1)[-1]
    if not path or path == ":memory:":
        return None
    return path


def missing_sqlite_file(url: str | None = None) -> str | None:
    """The path of a SQLite database file that does not exist yet, else None. Opening it would
    create an empty file, which read-only commands should not do."""
    path = sqlite_file_path(url)
    return None if path is None or os.path.exists(path) else path


def make_engine(
    url: str | None = None,
    *,
    pool_size: int = 10,
    wal_autocheckpoint_pages: int | None = None,
    wal_synced_by_caller: bool = False,
) -> Engine:
    """``wal_autocheckpoint_pages``: SQLite only, the WAL size at which a COMMIT checkpoints
    (SQLite's default, 1,000 pages, when None); see swapd.store.checkpoints.

    ``wal_synced_by_caller``: SQLite only, COMMIT does not fsync the WAL (synchronous=NORMAL):
    for the writer process alone, which fsyncs the WAL itself before it answers any call of a
    commit (swapd.store.wal_sync). Anyone else who answered after such a COMMIT could lose an
    acknowledged write to a power cut."""
    resolved = database_url(url)
    try:
        sa.make_url(resolved)
    except ValueError as error:  # a port that is not a number; callers expect ArgumentError
        raise sa.exc.ArgumentError(f"{display_url(url)}: {error}") from error
    if resolved.startswith("sqlite"):
        return _sqlite_engine(resolved, wal_autocheckpoint_pages, wal_synced_by_caller)
    connect_args: dict[str, Any] = {}
    on_psycopg = sa.make_url(resolved).get_driver_name() == "psycopg"
    if on_psycopg:
        # psycopg's own automatic preparing stays off: the swap path prepares its statements
        # itself (swapd.store.prepared), and psycopg answers a ROLLBACK after preparing any
        # statement of its own with DEALLOCATE ALL, which would drop those too.
        connect_args["prepare_threshold"] = None
    engine = sa.create_engine(
        resolved,
        pool_size=pool_size,
        max_overflow=pool_size,
        isolation_level="READ COMMITTED",
        connect_args=connect_args,
    )
    ping_when_idle(engine, PING_AFTER_IDLE_S)
    if on_psycopg:
        _never_commit_unsent(engine)
    return engine


def _never_commit_unsent(engine: Engine) -> None:
    """Statements deferred on a connection (swapd.store.prepared_pg) go before any statement,
    COMMIT or savepoint through SQLAlchemy (which would otherwise overtake them), and are
    dropped with the rollback that undoes them and when the connection goes back to the pool."""
    from swapd.store import prepared_pg

    for sent_before in ("before_execute", "commit", "savepoint"):
        sa.event.listen(engine, sent_before, lambda conn, *_: prepared_pg.flush(conn))
    for dropped_by in ("rollback", "rollback_savepoint"):
        sa.event.listen(engine, dropped_by, lambda conn, *_: prepared_pg.discard(conn))
    sa.event.listen(engine, "checkin", lambda _dbapi, record: prepared_pg.discard_record(record.info))


# PostgreSQL: a pooled connection that has been back in the pool this long is pinged before it
# is handed out again. SQLAlchemy's pool_pre_ping pings on every checkout: a round trip (about
# 70 us of CPU on the two sides here) for each of a swap's three transactions. A connection
# used a moment ago is taken as alive; if the server went away meanwhile, its first statement
# fails as any statement in flight at that moment would, and SQLAlchemy then invalidates every
# connection the pool handed out before the failure, so the next checkouts reconnect.
PING_AFTER_IDLE_S = 1.0
_CHECKED_IN_AT = "swapd_checked_in_at"  # the pool record's info: time.monotonic() at checkin


def ping_when_idle(engine: Engine, idle_s: float) -> None:
    """Ping a connection on checkout when it has been idle in the pool for ``idle_s`` or more
    (a failed ping makes the pool replace the connection, as pool_pre_ping does)."""

    @sa.event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        if checked_in_at is None or time.monotonic() - checked_in_at < idle_s:
            return  # new, or in use a moment ago
        dialect = engine.dialect
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if not dialect.is_disconnect(error, dbapi_connection, None):
                raise
            # The pool answers this by discarding the connection and connecting anew.
            raise sa.exc.DisconnectionError("closed while idle in the pool") from error


def _switch_to_wal(dbapi_connection: Any) -> None:
    """PRAGMA journal_mode=WAL, retried while another connection holds the lock. The first
    switch of a new file needs an exclusive lock, and SQLite answers "database is locked" at
    once, without waiting out busy_timeout, when two connections race for it (two server
    processes starting on a fresh file)."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "database is locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.001, 0.01))


def _file_problem(path: str, error: BaseException) -> DatabaseFileError | None:
    """What is wrong with the file at ``path``, for an error SQLite gave on opening it: its own
    words ("unable to open database file") name neither the file nor the cause."""
    if not isinstance(error, sqlite3.DatabaseError):
        return None
    if "file is not a database" in str(error):
        # Raised reading the header, before SQLite writes anything: the file is left as it was.
        return DatabaseFileError(f"{path} is not an SQLite database")
    directory = os.path.dirname(path) or "."
    if "unable to open database file" in str(error) and not os.path.isdir(directory):
        return DatabaseFileError(f"directory {directory} does not exist (for database {path})")
    return None


def _sqlite_engine(
    url: str, wal_autocheckpoint_pages: int | None = None, wal_synced_by_caller: bool = False
) -> Engine:
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    path = sqlite_file_path(url)

    @sa.event.listens_for(engine, "handle_error")
    def _on_error(context: sa.engine.ExceptionContext) -> BaseException | None:
        # Only errors on connecting (no connection yet): that is where a wrong file shows, on
        # whichever use of the engine comes first (migrating, a read command, the writer).
        if path is None or context.connection is not None:
            return None
        return _file_problem(path, context.original_exception)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so that BEGIN IMMEDIATE below is ours.
        dbapi_connection.isolation_level = None
        # Takes effect on a new, empty file only (before WAL and the first table); a file made
        # before keeps its page size. A swap dirties ~40 B-tree pages scattered over the
        # indexes, and each is written whole to the WAL at COMMIT and again by the checkpoint:
        # with 1 KiB pages the writer wrote 29-32 MB/s in the closed loop instead of 165-216
        # with SQLite's default 4 KiB, at the same swaps/s (bench.swaps; BENCHMARKS.md).
        dbapi_connection.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
        _switch_to_wal(dbapi_connection)
        cursor = dbapi_connection.cursor()
        # FULL: a COMMIT returns once the WAL holding it is on disk. NORMAL (WAL mode): it
        # returns before, the database stays consistent after a power cut, and the WAL is
        # fsynced before each checkpoint; the caller must fsync it before it acknowledges.
        cursor.execute(f"PRAGMA synchronous={'NORMAL' if wal_synced_by_caller else 'FULL'}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if wal_autocheckpoint_pages is not None:
            cursor.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint_pages)}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # A writer takes the write lock up front, so it waits its turn (busy_timeout) instead of
        # failing when it would upgrade a read lock; anything else (reports, checks) stays a
        # plain deferred reader that never blocks the writers.
        writes = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


MIGRATIONS_DIR = Path(__file__).parent / "migrations" / "versions"
_REVISION_LINE = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.MULTILINE)
_QUOTED = re.compile(r"""^["']([^"']+)["']$""")


@functools.cache
def head_revision() -> str | None:
    """The newest migration, read from the ``revision = "..."`` and ``down_revision = "..."``
    lines of the migration files: the one revision no other names as its parent. None when the
    files do not say it plainly (a merge, a tuple, a computed value): then alembic decides.

    Reading a few small files costs well under a millisecond; importing alembic to ask it costs
    about 0.4 s, on every command. Tests check this against alembic's ScriptDirectory."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in MIGRATIONS_DIR.glob("*.py"):
        found: dict[str, str] = {}
        for match in _REVISION_LINE.finditer(path.read_text("utf-8")):
            found.setdefault(match[1], match[2])
        if "revision" not in found:
            continue
        revision = _QUOTED.match(found["revision"])
        if revision is None:
            return None
        revisions.add(revision[1])
        parent = found.get("down_revision", "None")
        if parent != "None":
            quoted = _QUOTED.match(parent)
            if quoted is None:
                return None
            parents.add(quoted[1])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def at_head(engine: Engine) -> bool:
    """Whether the schema is already at the newest migration, asked with one plain SELECT.
    False when it cannot tell (no alembic_version table yet, no such database, a branch):
    then ``upgrade`` runs alembic, which creates, migrates or reports the problem itself."""
    head = head_revision()
    if head is None:
        return False
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    except sa.exc.DBAPIError:
        return False
    return [tuple(row) for row in rows] == [(head,)]


def alembic_config(connection: sa.Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "swapd.store:migrations")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``. Safe to run from several processes at once.

    A database already at the head is left alone without importing alembic (``at_head``), so
    that every command that opens one does not pay for alembic's import."""
    if revision == "head" and at_head(engine):
        return
    _migrate(engine, revision, down=False)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to ``revision`` (for operators undoing a release; data of the
    dropped columns and tables is lost)."""
    _migrate(engine, revision, down=True)


def _pragma(connection: sa.Connection, pragma: str) -> None:
    # On the driver connection: through SQLAlchemy the statement would open a transaction
    # first, and SQLite ignores foreign_keys changes inside one.
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute(f"PRAGMA {pragma}")


def _migrate(engine: Engine, revision: str, *, down: bool) -> None:
    from alembic import command

    with engine.connect().execution_options(**{WRITE: True}) as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # SQLite changes a table by copying it into a new one and dropping the old; with
            # foreign keys on, that drop would cascade into (or be refused by) the child tables.
            # The pragma only takes effect outside a transaction; the check below proves the
            # rebuild left every reference intact before the transaction commits.
            _pragma(connection, "foreign_keys=OFF")
        try:
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    # Two server processes starting together must not both create the tables.
                    connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7270001)")
                config = alembic_config(connection)
                if down:
                    command.downgrade(config, revision)
                else:
                    command.upgrade(config, revision)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"migration to {revision} broke references: {broken[:5]}")
        finally:
            if sqlite:
                _pragma(connection, "foreign_keys=ON")


def open_database(url: str | None = None, *, migrate: bool = True) -> Engine:
    engine = make_engine(url)
    if migrate:
        upgrade(engine)
    return engine

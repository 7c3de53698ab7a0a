"""The connections of a deployment beyond the one primary: a read replica for the reads that may
lag, and a direct connection for LISTEN that a transaction-mode pooler cannot carry.

**The read replica** (``SWAPD_READ_DATABASE_URL``, ``--read-database``): a PostgreSQL streaming
standby of the primary. It is always some milliseconds to seconds behind, so only reads whose
reader accepts a slightly old picture go there: reports, exports, statements and the console's
and the API's lists. Money never does: a swap decision, a top-up, a refund, a ledger check, any
read that a write is then based on reads the primary, because a balance a moment old could
spend the same allowance twice. Each caller says in its own code why its read may lag; this
module only opens the connection. Its transactions are READ ONLY (``BEGIN ... READ ONLY``, per
transaction, so PgBouncer's transaction mode keeps working), and ``ReadOnlyDatabase.write``
refuses at once: a money path wired to the replica by mistake fails loudly in every test, even
where the "replica" is the primary itself.

Without a replica URL the reads go to the primary: ``read_database`` returns it unchanged.

**LISTEN** (``SWAPD_LISTEN_DATABASE_URL``, ``--listen-database``): LISTEN holds a session on one
server connection for as long as it listens. Behind PgBouncer in transaction mode, the server
connection goes back to the pool at the end of each transaction, and the notifications with it.
So the station-command dispatcher listens on a URL of its own, straight to the primary (not the
pooler); NOTIFY (``pg_notify`` inside the queuing transaction) goes through the pooler as usual.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

from swapd.store.database import Clock, Database, Tx
from swapd.store.engine import database_url, make_engine

T = TypeVar("T")

READ_DATABASE_ENV = "SWAPD_READ_DATABASE_URL"
LISTEN_DATABASE_ENV = "SWAPD_LISTEN_DATABASE_URL"
# The lagging reads are lists, pages and exports, fewer and longer than the swap path's calls.
READ_POOL_SIZE = 5

# On a standby: how far behind the primary its replay is. Zero when it has replayed all the WAL
# it received (pg_last_xact_replay_timestamp alone keeps growing while the primary is idle); NULL
# on a primary.
_LAG_SQL = """
SELECT CASE
    WHEN NOT pg_is_in_recovery() THEN NULL
    WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0.0
    ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8
END
"""


class ReplicaWriteError(RuntimeError):
    """A write was given to the read replica: a bug in the caller's routing, never a user error."""


class ReadOnlyDatabase(Database):
    """A ``Database`` on the read replica: ``read`` as usual, every transaction READ ONLY, and no
    ``write``."""

    def write(self, work: Callable[[Tx], T]) -> T:
        raise ReplicaWriteError(
            "a write was sent to the read replica; writes and money go to the primary"
        )


def read_database_url(given: str | None = None) -> str | None:
    """The replica's URL: the argument, else SWAPD_READ_DATABASE_URL; None when neither names one."""
    return given or os.environ.get(READ_DATABASE_ENV) or None


def open_read_database(url: str, clock: Clock | None = None) -> ReadOnlyDatabase:
    """A read-only ``Database`` on the replica at ``url``. Never migrated: a standby follows the
    primary's schema by replaying its WAL (and refuses DDL anyway)."""
    resolved = database_url(url)
    if sa.make_url(resolved).get_backend_name() != "postgresql":
        raise sa.exc.ArgumentError(
            f"the read replica must be PostgreSQL (a streaming standby), got {resolved.split(':')[0]}"
        )
    engine = make_engine(resolved, pool_size=READ_POOL_SIZE)
    # psycopg then opens each transaction as BEGIN ... READ ONLY: per transaction, no SET.
    engine.update_execution_options(postgresql_readonly=True)
    return ReadOnlyDatabase(engine, clock)


def read_database(primary: Database, url: str | None = None) -> Database:
    """Where the reads that may lag go: the replica named by ``url`` (else SWAPD_READ_DATABASE_URL),
    or the primary itself when none is named."""
    resolved = read_database_url(url)
    if resolved is None:
        return primary
    return open_read_database(resolved, primary.clock)


def is_replica(db: Database) -> bool:
    return isinstance(db, ReadOnlyDatabase)


def replica_lag_s(db: Database) -> float | None:
    """How many seconds the standby behind ``db`` is behind its primary; None when ``db`` is not
    a standby (the primary, or SQLite)."""
    if db.dialect != "postgresql":
        return None
    with db.engine.connect() as connection:
        lag = connection.exec_driver_sql(_LAG_SQL).scalar()
    return None if lag is None else max(0.0, float(lag))


def listen_url(primary: Database, given: str | None = None) -> str:
    """The libpq URL the station-command dispatcher LISTENs on: the argument, else
    SWAPD_LISTEN_DATABASE_URL, else the primary's own (right when it is not a transaction-mode
    pooler)."""
    chosen = given or os.environ.get(LISTEN_DATABASE_ENV)
    url = sa.make_url(database_url(chosen)) if chosen else primary.engine.url
    return url.set(drivername="postgresql").render_as_string(hide_password=False)

"""Engines for the two supported databases, with the settings that keep money safe.

SQLite (the default, one file): WAL with synchronous=FULL, because a swap acknowledged to a station
must survive a power cut; every write transaction starts with BEGIN IMMEDIATE so concurrent writers
queue instead of interleaving. PostgreSQL: READ COMMITTED with row locks taken by the services.
"""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

DEFAULT_DATABASE_URL = "sqlite:///swapd.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
WRITE = "swapd_write"  # execution option: this transaction writes (SQLite: BEGIN IMMEDIATE)


def database_url(url: str | None = None) -> str:
    """The URL to use: the argument, else SWAPD_DATABASE_URL, else ./swapd.db."""
    url = url or os.environ.get("SWAPD_DATABASE_URL") or DEFAULT_DATABASE_URL
    # psycopg 3 is the driver we ship; accept the plain scheme operators paste from elsewhere.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str | None = None, *, pool_size: int = 10) -> Engine:
    resolved = database_url(url)
    if resolved.startswith("sqlite"):
        return _sqlite_engine(resolved)
    return sa.create_engine(
        resolved,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        isolation_level="READ COMMITTED",
    )


def _sqlite_engine(url: str) -> Engine:
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so that BEGIN IMMEDIATE below is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # A writer takes the write lock up front, so it waits its turn (busy_timeout) instead of
        # failing when it would upgrade a read lock; anything else (reports, checks) stays a
        # plain deferred reader that never blocks the writers.
        writes = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "swapd.store:migrations")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``. Safe to run from several processes at once."""
    with engine.connect().execution_options(**{WRITE: True}) as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            # Two server processes starting together must not both create the tables.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7270001)")
        command.upgrade(alembic_config(connection), revision)


def open_database(url: str | None = None, *, migrate: bool = True) -> Engine:
    engine = make_engine(url)
    if migrate:
        upgrade(engine)
    return engine

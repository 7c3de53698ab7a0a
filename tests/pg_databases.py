"""PostgreSQL databases of a test's own on the test server (SWAPD_TEST_PG_URL): each made under a
unique name, migrated as far as its caller asks, and dropped afterwards.

``require_postgres`` skips a test when no server answers, or fails it under
SWAPD_REQUIRE_POSTGRES (.ci/run sets it), so that in CI an unreachable server is not hidden.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from swapd.store.engine import make_engine, upgrade

PG_ADMIN_URL = os.environ.get("SWAPD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def unreachable() -> str | None:
    """Why the test server cannot be reached (the error's first line), or None when it answers."""
    try:
        engine = sa.create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as error:  # any failure to connect means "not reachable"
        return str(error).splitlines()[0]


def require_postgres() -> None:
    """Return when the test server answers; skip otherwise, or fail under SWAPD_REQUIRE_POSTGRES."""
    problem = unreachable()
    if problem is not None:
        if os.environ.get("SWAPD_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required (SWAPD_REQUIRE_POSTGRES) but: {problem}")
        pytest.skip(f"PostgreSQL not reachable: {problem}")


@contextmanager
def temporary_database(prefix: str, *, migrated_to: str | None) -> Iterator[str]:
    """The URL of a new database ``<prefix>_<12 hex digits>``, dropped (with any connection
    still open to it) when the block ends. ``migrated_to``: the revision its schema is brought
    to first (``"head"``: the newest), or None for a database with no tables at all."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        if migrated_to is not None:
            engine = make_engine(url)
            upgrade(engine, migrated_to)
            engine.dispose()
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

"""PostgreSQL's pool pings a connection only when it comes back from a rest (store.engine): a
connection in constant use is handed out as it is, one that died while idle is replaced."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from swapd.store import engine as engine_module
from swapd.store.engine import make_engine, ping_when_idle

pytestmark = pytest.mark.postgres


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every ping the PostgreSQL dialect sends from now on in this test."""
    sent: list[object] = []
    dialect_class = type(sa.create_engine("postgresql+psycopg://", module=None).dialect)
    ping = dialect_class.do_ping

    def counted(self: object, dbapi_connection: object) -> bool:
        sent.append(dbapi_connection)
        return bool(ping(self, dbapi_connection))

    monkeypatch.setattr(dialect_class, "do_ping", counted)
    return sent


@pytest.fixture
def killer(pg_url: str) -> Iterator[sa.Engine]:
    other = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    yield other
    other.dispose()


def _use_rest_and_use_again(engine: sa.Engine) -> None:
    """A statement, a rest longer than the tests' 0.05 s limit, and another statement."""
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
    time.sleep(0.1)
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))


def _backend_pid(connection: sa.Connection) -> int:
    return int(connection.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_used_a_moment_ago_is_handed_out_without_a_ping(
    pg_url: str, pings: list[object]
) -> None:
    engine = make_engine(pg_url, pool_size=1)
    try:
        for _ in range(5):
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        assert pings == []
    finally:
        engine.dispose()


def test_a_connection_idle_past_the_limit_is_pinged_once_on_checkout(
    pg_url: str, pings: list[object]
) -> None:
    engine = sa.create_engine(pg_url, pool_size=1, max_overflow=0)
    ping_when_idle(engine, 0.05)
    try:
        _use_rest_and_use_again(engine)
        assert len(pings) == 1
    finally:
        engine.dispose()


def test_a_connection_that_died_while_idle_is_replaced_without_an_error(
    pg_url: str, killer: sa.Engine, pings: list[object]
) -> None:
    engine = sa.create_engine(pg_url, pool_size=1, max_overflow=0)
    ping_when_idle(engine, 0.05)
    try:
        with engine.connect() as connection:
            dead_pid = _backend_pid(connection)
        with killer.connect() as other:
            other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": dead_pid})
        time.sleep(0.1)
        with engine.connect() as connection:
            assert _backend_pid(connection) != dead_pid
        assert len(pings) == 1
    finally:
        engine.dispose()


def test_the_servers_engine_pings_after_its_rest_limit(
    pg_url: str, pings: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 0.05)
    engine = make_engine(pg_url, pool_size=1)
    try:
        _use_rest_and_use_again(engine)
        assert len(pings) == 1
    finally:
        engine.dispose()

"""The server's background loops end when cancelled, even when the cancellation arrives as they
are woken. Python 3.11's asyncio.wait_for swallowed such a cancellation: the loop went on, and
the lifespan's shutdown, awaiting it, hung (seen as a test that never ended)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import structlog
from fastapi.testclient import TestClient

from swapd.gateway import commands, listen, presence, server
from swapd.store.database import Database
from swapd.store.engine import make_engine


async def _stops_when_cancelled_as_woken(
    run: Callable[[], Awaitable[None]], wake: Callable[[], None]
) -> bool:
    task = asyncio.create_task(run())
    await asyncio.sleep(0.05)  # the loop waits for its event
    wake()
    task.cancel()  # in the same turn of the event loop as the wake-up
    done, _ = await asyncio.wait([task], timeout=2)
    if not done:
        task.cancel()  # a second cancellation ends it, so that the test itself ends
        await asyncio.wait([task], timeout=2)
    return bool(done)


def test_the_command_dispatcher_stops_when_cancelled_as_it_is_woken(db: Database) -> None:
    wake = asyncio.Event()

    async def send(_station: str, _action: str, _payload: dict[str, Any]) -> dict[str, Any]:
        return {}

    def run() -> Awaitable[None]:
        return commands.dispatch_forever(db, dict, send, wake)

    assert asyncio.run(_stops_when_cancelled_as_woken(run, wake.set))


def test_the_presence_watch_stops_when_cancelled_as_it_is_woken(db: Database) -> None:
    async def close(_station: str, _connection: str, _code: int, _reason: str) -> bool:
        return False

    watch = presence.PresenceWatch(db, lambda: {"ST1": "c-1"}, close)
    assert asyncio.run(
        _stops_when_cancelled_as_woken(watch.run_forever, lambda: watch.notify("ST1 c-2"))
    )


def test_the_server_stops_even_if_a_background_loop_ignores_its_cancellation(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lifespan's shutdown waits a bounded time for its loops and names the one that did
    not stop: before, it awaited each for ever (a TestClient hung at exit in the full suite)."""
    stubborn_started = threading.Event()

    async def stubborn(_db: Database) -> None:
        stubborn_started.set()
        swallowed = False
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:  # the event loop's own cancellation at its close ends it
                    raise
                swallowed = True  # the first one lost, as wait_for lost it

    monkeypatch.setattr(server, "_expire_offers_forever", stubborn)
    monkeypatch.setattr(server, "SHUTDOWN_TASKS_TIMEOUT_S", 0.5)
    finished = threading.Event()

    def run() -> None:
        with structlog.testing.capture_logs() as logs, TestClient(server.create_app(db)):
            assert stubborn_started.wait(5)
        seen.extend(logs)
        finished.set()

    seen: list[dict[str, object]] = []
    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    assert finished.wait(20), "the server's shutdown waited for the stubborn loop"
    stuck = [e for e in seen if e["event"] == "background_task_did_not_stop"]
    assert [e["task"] for e in stuck] == ["offer_expiry"]


@pytest.mark.postgres
def test_listen_stops_when_cancelled_while_it_connects(pg_url: str) -> None:
    """psycopg's AsyncConnection.connect can swallow a cancellation that arrives while it
    connects (seen here at about 1 ms after the start); the LISTEN loop must end anyway."""
    db = Database(make_engine(pg_url), None)

    async def cancelled_after(delay_s: float) -> bool:
        task = asyncio.create_task(listen.listen_forever(db, {"swapd_test_channel": lambda _p: None}))
        await asyncio.sleep(delay_s)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=3)
        if not done:
            task.cancel()
            await asyncio.wait([task], timeout=3)
        return bool(done)

    try:
        for delay_s in (0.0, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.05):
            assert asyncio.run(cancelled_after(delay_s)), delay_s
    finally:
        db.dispose()


@pytest.mark.postgres
def test_listen_stops_when_cancelled_inside_its_listen_statement(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancellation arriving while LISTEN runs went into psycopg, which may take up to 5 s to
    cancel the statement on the server or, through Python 3.11's wait_for, lose the
    cancellation (seen in CI: the loop still in LISTEN when the shutdown's 5 s ran out). Here
    execute loses it as psycopg can; the loop must end at once all the same, and close its
    connection."""
    channel = "swapd_test_stop_in_listen"
    in_execute = asyncio.Event()
    real_execute = psycopg.AsyncConnection.execute

    async def execute_losing_a_cancellation(self: Any, query: Any, *args: Any, **kw: Any) -> Any:
        in_execute.set()
        work = asyncio.ensure_future(_slow(real_execute(self, query, *args, **kw)))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            return await work  # the cancellation lost, as psycopg can lose it

    monkeypatch.setattr(psycopg.AsyncConnection, "execute", execute_losing_a_cancellation)
    db = Database(make_engine(pg_url), None)

    async def cancelled_in_listen() -> tuple[bool, float]:
        task = asyncio.create_task(listen.listen_forever(db, {channel: lambda _p: None}))
        await asyncio.wait_for(in_execute.wait(), 10)
        started = asyncio.get_running_loop().time()
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=3)
        took_s = asyncio.get_running_loop().time() - started
        if not done:
            task.cancel()
            await asyncio.wait([task], timeout=3)
        return bool(done) and task.cancelled(), took_s

    try:
        stopped, took_s = asyncio.run(cancelled_in_listen())
        assert stopped, "the LISTEN loop outlived its cancellation"
        assert took_s < 2, took_s
        assert _listening_backends(db, channel) == 0
    finally:
        db.dispose()


async def _slow(work: Awaitable[Any]) -> Any:
    await asyncio.sleep(0.2)  # a statement that takes a while: the cancellation lands in it
    return await work


def _listening_backends(db: Database, channel: str) -> int:
    query = "SELECT count(*) FROM pg_stat_activity WHERE query = :q AND pid <> pg_backend_pid()"
    for _ in range(50):  # the server notices a closed connection within moments
        with db.engine.connect() as connection:
            count = int(connection.execute(sa.text(query), {"q": f"LISTEN {channel}"}).scalar_one())
        if count == 0:
            return 0
        time.sleep(0.05)
    return count

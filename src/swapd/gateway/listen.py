"""PostgreSQL's LISTEN for the gateway's loops: one connection per server process, for every
channel a loop wants to hear of.

A notification only wakes a loop early: each loop also polls, so a notification lost while the
connection is re-established (the database restarted) delays the work it announced by at most
that loop's poll interval, and nothing is missed. On SQLite there is nothing to listen to.

The session with the database is never cancelled while it waits on psycopg: psycopg answers a
cancellation inside a query by cancelling the query on the server (a new connection, up to 5 s)
and, on Python 3.11, its waits go through asyncio.wait_for, which can swallow a cancellation;
either made the server's shutdown wait out its bound (seen in CI: the loop still in its LISTEN
statement 5 s after it was cancelled). Instead the session is asked to stop and does so at its
next step, each step being bounded: connecting (CONNECT_TIMEOUT_S), a LISTEN statement, or
waiting for notifications (POLL_S).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

import psycopg
import structlog

from swapd.store import replica
from swapd.store.database import Database

log = structlog.get_logger(__name__)
RECONNECT_AFTER_S = 1.0
CONNECT_TIMEOUT_S = 5  # libpq's connect_timeout: whole seconds
POLL_S = 0.5  # how long one wait for notifications lasts before the session checks its stop
STOP_WITHIN_S = CONNECT_TIMEOUT_S + 1.0  # after that, the session is cancelled as a last resort

# A channel's handler gets the notification's payload; it runs on the event loop and must not
# block (set an event, note a station).
Handler = Callable[[str], None]


async def listen_forever(
    db: Database, handlers: Mapping[str, Handler], *, url: str | None = None
) -> None:
    """LISTEN on every channel of ``handlers`` and call its handler with each payload, until
    cancelled; the cancellation ends it once its session has closed its connection.

    ``url``: where to LISTEN, a direct connection to the primary when the database URL is a
    transaction-mode pooler (see swapd.store.replica.listen_url: SWAPD_LISTEN_DATABASE_URL, else
    the database's own URL)."""
    assert db.dialect == "postgresql", "LISTEN is PostgreSQL's"
    stop = asyncio.Event()
    session = asyncio.ensure_future(_listen_until(stop, url or replica.listen_url(db), handlers))
    try:
        await asyncio.shield(session)
    except asyncio.CancelledError:
        stop.set()
        await asyncio.wait([session], timeout=STOP_WITHIN_S)
        if not session.done():
            session.cancel()
        raise


async def _listen_until(stop: asyncio.Event, url: str, handlers: Mapping[str, Handler]) -> None:
    while not stop.is_set():
        try:
            connection = await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
            async with connection:
                for channel in handlers:
                    if stop.is_set():
                        return
                    await connection.execute(f"LISTEN {channel}")
                while not stop.is_set():
                    async for note in connection.notifies(timeout=POLL_S):
                        handler = handlers.get(note.channel)
                        if handler is not None:
                            handler(note.payload)
        except Exception as error:
            log.warning("listen_reconnect", error=str(error).splitlines()[0] if str(error) else "")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RECONNECT_AFTER_S):
                    await stop.wait()

"""PostgreSQL's LISTEN for the gateway's loops: one connection per server process, for every
channel a loop wants to hear of.

A notification only wakes a loop early: each loop also polls, so a notification lost while the
connection is re-established (the database restarted) delays the work it announced by at most
that loop's poll interval, and nothing is missed. On SQLite there is nothing to listen to.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
import structlog

from swapd.store import replica
from swapd.store.database import Database

log = structlog.get_logger(__name__)
RECONNECT_AFTER_S = 1.0

# A channel's handler gets the notification's payload; it runs on the event loop and must not
# block (set an event, note a station).
Handler = Callable[[str], None]


async def listen_forever(
    db: Database, handlers: Mapping[str, Handler], *, url: str | None = None
) -> None:
    """LISTEN on every channel of ``handlers`` and call its handler with each payload.

    ``url``: where to LISTEN, a direct connection to the primary when the database URL is a
    transaction-mode pooler (see swapd.store.replica.listen_url: SWAPD_LISTEN_DATABASE_URL, else
    the database's own URL)."""
    assert db.dialect == "postgresql", "LISTEN is PostgreSQL's"
    url = url or replica.listen_url(db)
    while True:
        try:
            async with await _connect(url) as connection:
                for channel in handlers:
                    await connection.execute(f"LISTEN {channel}")
                async for note in connection.notifies():
                    handler = handlers.get(note.channel)
                    if handler is not None:
                        handler(note.payload)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("listen_reconnect", error=str(error).splitlines()[0] if str(error) else "")
            await asyncio.sleep(RECONNECT_AFTER_S)


async def _connect(url: str) -> psycopg.AsyncConnection[Any]:
    """psycopg's AsyncConnection.connect, shielded: a cancellation arriving while it connects
    (about 1 ms in) can be swallowed inside it, and this loop would then outlive the server's
    shutdown. Shielded, the cancellation ends the caller at once; a connection made after all
    is closed when it arrives."""
    connecting = asyncio.ensure_future(psycopg.AsyncConnection.connect(url, autocommit=True))
    try:
        return await asyncio.shield(connecting)
    except asyncio.CancelledError:
        connecting.add_done_callback(_close_when_made)
        raise


def _close_when_made(connecting: asyncio.Future[psycopg.AsyncConnection[Any]]) -> None:
    if connecting.cancelled() or connecting.exception() is not None:
        return
    with contextlib.suppress(RuntimeError):  # the event loop is closing: it goes with it
        asyncio.get_running_loop().create_task(connecting.result().close())

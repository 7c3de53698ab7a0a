"""Delivers the commands of swapd.services.station_commands to the stations connected to this
server process: claims them, sends each over its station's socket and writes the answer back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import structlog

from swapd.services.station_commands import CHANNEL, claim, expire_queued, finish
from swapd.store.database import Database
from swapd.store.replica import listen_url as default_listen_url

log = structlog.get_logger(__name__)
POLL_INTERVAL_S = 0.25
EXPIRE_INTERVAL_S = 60.0  # how often queued commands past their expiry are marked so

Sender = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]


async def dispatch_forever(
    db: Database, connected: Callable[[], list[str]], send: Sender, *, listen_url: str | None = None
) -> None:
    """The per-process loop that delivers commands to the stations connected here.

    ``listen_url`` (PostgreSQL): where to LISTEN for new commands, a direct connection to the
    primary when the database URL is a transaction-mode pooler (see swapd.store.replica); by
    default SWAPD_LISTEN_DATABASE_URL, else the database's own URL. The poll every
    ``POLL_INTERVAL_S`` delivers the commands whatever happens to the listener."""
    wake = asyncio.Event()
    in_flight: set[asyncio.Task[None]] = set()  # delivering: kept referenced until done
    listener = None
    if db.dialect == "postgresql":
        listener = asyncio.create_task(_listen(listen_url or default_listen_url(db), wake))
    next_expiry_s = 0.0
    try:
        while True:
            if asyncio.get_running_loop().time() >= next_expiry_s:
                next_expiry_s = asyncio.get_running_loop().time() + EXPIRE_INTERVAL_S
                try:
                    await asyncio.to_thread(expire_queued, db)
                except Exception:
                    log.exception("command_expiry_failed")
            try:
                batch = await asyncio.to_thread(claim, db, connected())
            except Exception:
                log.exception("command_claim_failed")
                batch = []
            for command_id, station_id, action, payload in batch:
                task = asyncio.create_task(_deliver(db, command_id, station_id, action, payload, send))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=POLL_INTERVAL_S)
            wake.clear()
    finally:
        if listener is not None:
            listener.cancel()


async def _deliver(
    db: Database, command_id: int, station_id: str, action: str, payload: dict[str, Any], send: Sender
) -> None:
    try:
        response = await send(station_id, action, payload)
        await asyncio.to_thread(finish, db, command_id, response=response, error=None)
    except Exception as error:
        log.warning("command_failed", command=command_id, station=station_id, error=repr(error))
        await asyncio.to_thread(finish, db, command_id, response=None, error=repr(error))


async def _listen(url: str, wake: asyncio.Event) -> None:
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
                await connection.execute(f"LISTEN {CHANNEL}")
                async for _ in connection.notifies():
                    wake.set()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("command_listen_reconnect")
            await asyncio.sleep(1)

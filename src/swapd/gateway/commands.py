"""Delivers the commands of swapd.services.station_commands to the stations connected to this
server process: claims them, sends each over its station's socket and writes the answer back.

The loop polls every ``POLL_INTERVAL_S``; on PostgreSQL a NOTIFY on
``station_commands.CHANNEL`` sets ``wake`` (swapd.gateway.listen) and the command goes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from swapd.services.station_commands import claim, expire_queued, finish
from swapd.store.database import Database

log = structlog.get_logger(__name__)
POLL_INTERVAL_S = 0.25
EXPIRE_INTERVAL_S = 60.0  # how often queued commands past their expiry are marked so

Sender = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]


async def dispatch_forever(
    db: Database,
    connected: Callable[[], Mapping[str, str]],
    send: Sender,
    wake: asyncio.Event,
) -> None:
    """The per-process loop that delivers commands to the stations connected here.
    ``connected``: those stations with the id of the connection this process holds (see
    station_commands.claim); ``wake``: set when a command may be waiting."""
    in_flight: set[asyncio.Task[None]] = set()  # delivering: kept referenced until done
    next_expiry_s = 0.0
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
        # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that
        # arrives as ``wake`` is set, and the loop would outlive the server's shutdown.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(POLL_INTERVAL_S):
                await wake.wait()
        wake.clear()


async def _deliver(
    db: Database, command_id: int, station_id: str, action: str, payload: dict[str, Any], send: Sender
) -> None:
    try:
        response = await send(station_id, action, payload)
        await asyncio.to_thread(finish, db, command_id, response=response, error=None)
    except Exception as error:
        log.warning("command_failed", command=command_id, station=station_id, error=repr(error))
        await asyncio.to_thread(finish, db, command_id, response=None, error=repr(error))

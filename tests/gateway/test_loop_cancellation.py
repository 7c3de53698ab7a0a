"""The server's background loops end when cancelled, even when the cancellation arrives as they
are woken. Python 3.11's asyncio.wait_for swallowed such a cancellation: the loop went on, and
the lifespan's shutdown, awaiting it, hung (seen as a test that never ended)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from swapd.gateway import commands, presence
from swapd.store.database import Database


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

"""One socket per station across the server processes on one database.

A station that connects again replaces its older socket: in one process the gateway closes the
old one at once (swapd.gateway.server), but the old socket may be held by another process
(``swapd serve --workers N``, or several servers behind one address). The database records each
station's newest connection (``stations.connection_id``); a process keeps a socket only while
the connection it recorded is still the recorded one, and closes it as soon as it learns that
another took its place (or took it and ended since, which leaves no connection recorded):

- on PostgreSQL at once, from the NOTIFY that ``stations.record_connected`` sends
  (``stations.CONNECTIONS_CHANNEL``, through swapd.gateway.listen);
- everywhere every ``SWEEP_INTERVAL_S``, for a notification lost while the listening
  connection was re-established.

A station taken out of service (``stations.set_enabled``) is closed the same way by whichever
process holds its socket, however it was disabled (the API of another process, the CLI).

Only sockets whose connection was recorded before the database is read are compared, so a
socket accepted while the read runs (the database still names the one before it) is never
taken for an old one. Commands never go through an old socket meanwhile: a command is claimed
only through the recorded connection (station_commands.claim).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import structlog

from swapd.services import stations
from swapd.store.database import Database

log = structlog.get_logger(__name__)

SWEEP_INTERVAL_S = 10.0
# Above this many stations to look at, one read of every connected station is cheaper than an
# IN list of their ids.
MAX_LISTED_STATIONS = 200

# Close the station's socket here if it is still the one of this connection id, with a close
# code and reason; True if closed.
Close = Callable[[str, str, int, str], Awaitable[bool]]
REPLACED = "replaced by a new connection"
DISABLED = "station disabled"


@dataclass
class PresenceWatch:
    db: Database
    # The sockets here whose connection is recorded: station id -> connection id.
    recorded: Callable[[], Mapping[str, str]]
    close: Close
    sweep_interval_s: float = SWEEP_INTERVAL_S
    # Stations here that connected elsewhere since the last pass; at most one per socket here.
    notified: set[str] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self, payload: str) -> None:
        """A station connected (``"<station id> <connection id>"``) somewhere, maybe here."""
        station_id, _, connection_id = payload.partition(" ")
        held = self.recorded().get(station_id)
        if held is not None and held != connection_id:
            self.notified.add(station_id)
            self.wake.set()

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep_at = loop.time() + self.sweep_interval_s
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that
            # arrives as the event is set, and the loop would outlive the server's shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_sweep_at - loop.time())):
                    await self.wake.wait()
            self.wake.clear()
            only: set[str] | None = self.notified
            self.notified = set()
            if loop.time() >= next_sweep_at:
                next_sweep_at = loop.time() + self.sweep_interval_s
                only = None
            try:
                await self.check(only)
            except Exception:
                log.exception("presence_check_failed")

    async def check(self, only: set[str] | None = None) -> int:
        """Close the sockets here (of ``only``, or all) whose station's recorded connection is
        another one now, or whose station was disabled; how many were closed."""
        here = dict(self.recorded())  # before the read: see the module's docstring
        if only is not None:
            here = {s: c for s, c in here.items() if s in only}
        if not here:
            return 0
        listed = list(here) if len(here) <= MAX_LISTED_STATIONS else None
        current = await asyncio.to_thread(stations.connections, self.db, listed)
        closed = 0
        for station_id, connection_id in here.items():
            # Not found: a newer connection came and went (only a connection clears its record).
            now = current.get(station_id, stations.Recorded(None, enabled=True))
            if not now.enabled:
                # 1008: policy violation, the close code for "you may not stay connected".
                code, reason = 1008, DISABLED
            elif now.connection_id != connection_id:
                code, reason = 1000, REPLACED
            else:
                continue
            if await self.close(station_id, connection_id, code, reason):
                closed += 1
                log.info("station_socket_closed", station=station_id, reason=reason)
        return closed

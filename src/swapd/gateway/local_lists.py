"""Keeps the local authorization lists of the stations connected to this server process current
(swapd.services.local_lists), debounced per station.

Every ``TICK_S`` the loop reads the newest change mark (``local_list_changes``: a pack moved, a
rider was blocked, a card added, ...). A new mark makes every station here that has a list dirty:
the list is the same for all, and a rider may turn up at any of them. A dirty station gets one
differential update at most every ``DEBOUNCE_S``: the changes of a busy interval go together, in
one push (one or a few SendLocalList messages). A station that has just connected here is asked
its version first (GetLocalListVersion) and gets the whole list if it is not the one stored.
Every ``RESYNC_S`` each station is checked again whatever the marks said: a change made without
a mark (a rider's plan changed) reaches the stations that late at most.

Pushes run in threads (they wait for the stations' answers), ``MAX_CONCURRENT_PUSHES`` at a
time; one that fails is retried after ``RETRY_S``. With no station here, a tick reads nothing;
the marks are trimmed every ``TRIM_INTERVAL_S`` (a write only when some were added).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from swapd.domain.local_lists import EntryKey, ListEntry
from swapd.services import local_lists
from swapd.store.database import Database

log = structlog.get_logger(__name__)

DEBOUNCE_S = 2.0  # at most one update per station per interval
TICK_S = 0.5  # how often the change mark is read
RESYNC_S = 300.0
RETRY_S = 30.0  # after a push failed (the station refused, did not answer, another push held it)
MAX_CONCURRENT_PUSHES = 8
TRIM_INTERVAL_S = 60.0  # how often the change marks older than the newest are deleted


@dataclass
class ListKeeper:
    """The loop's state; ``tick`` is one pass, ``run_forever`` the loop."""

    db: Database
    connected: Callable[[], list[str]]
    debounce_s: float = DEBOUNCE_S
    # Per station: how many times it was marked dirty; a push clears the mark it started from
    # only, so a change that arrives while it runs is sent by the next one.
    dirty: dict[str, int] = field(default_factory=dict)
    unverified: set[str] = field(default_factory=set)  # connected here since the last pass
    next_push_at: dict[str, float] = field(default_factory=dict)  # loop time
    in_flight: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    seen_change: int | None = None
    here: set[str] = field(default_factory=set)
    next_resync_at: float = 0.0
    next_trim_at: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)
    _slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_CONCURRENT_PUSHES))

    def _mark(self, stations: set[str]) -> None:
        for station_id in stations:
            self.dirty[station_id] = self.dirty.get(station_id, 0) + 1

    async def tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now >= self.next_trim_at:
            # The marks only ever say "something changed since": the newest is all that counts.
            self.next_trim_at = now + TRIM_INTERVAL_S
            await asyncio.to_thread(local_lists.trim_changes, self.db)
        connected = set(self.connected())
        if not connected:
            self.here = set()
            return
        enrolled = await asyncio.to_thread(local_lists.enrolled, self.db)
        here = connected & enrolled
        arrived = here - self.here
        self.here = here
        self.unverified = (self.unverified & here) | arrived
        self._mark(arrived)
        if not here:
            return  # no list to keep here: the marks can wait
        change = await asyncio.to_thread(local_lists.last_change, self.db)
        if change != self.seen_change:
            if self.seen_change is not None:
                self._mark(here)
            self.seen_change = change
        if now >= self.next_resync_at:
            self.next_resync_at = now + RESYNC_S
            self._mark(here)
        due = sorted(
            s
            for s in self.dirty
            if s in here and s not in self.in_flight and now >= self.next_push_at.get(s, 0.0)
        )
        for station_id in list(self.dirty):
            if station_id not in here and station_id not in self.in_flight:
                del self.dirty[station_id]  # gone from here: verified again when it is back
        if not due:
            return
        wanted = await asyncio.to_thread(local_lists.wanted, self.db)
        for station_id in due:
            self.next_push_at[station_id] = now + self.debounce_s
            task = asyncio.create_task(self._push(station_id, wanted))
            self.in_flight[station_id] = task
            task.add_done_callback(self._done(station_id))

    def _done(self, station_id: str) -> Callable[[asyncio.Task[None]], None]:
        def forget(_task: asyncio.Task[None]) -> None:
            self.in_flight.pop(station_id, None)

        return forget

    async def _push(self, station_id: str, wanted: Mapping[EntryKey, ListEntry]) -> None:
        mark = self.dirty.get(station_id, 0)
        verify = station_id in self.unverified
        async with self._slots:
            try:
                result = await asyncio.to_thread(
                    local_lists.push,
                    self.db,
                    station_id,
                    verify=verify,
                    wanted_list=wanted,
                    stop=self.stop,
                )
            except local_lists.ListBusy:
                return  # another push (an operator's) is sending it: look again next interval
            except Exception as error:
                log.warning("local_list_push_failed", station=station_id, error=str(error)[:200])
                loop = asyncio.get_running_loop()
                self.next_push_at[station_id] = loop.time() + RETRY_S
                return
        # The interval runs from the end of a push: two updates' messages are never closer.
        self.next_push_at[station_id] = asyncio.get_running_loop().time() + self.debounce_s
        self.unverified.discard(station_id)
        if self.dirty.get(station_id) == mark:
            del self.dirty[station_id]
        if result.messages:
            log.info(
                "local_list_sent",
                station=station_id,
                update=result.update_type,
                version=result.version,
                entries=result.sent_entries,
            )

    async def run_forever(self) -> None:
        try:
            while True:
                try:
                    await self.tick()
                except Exception:
                    log.exception("local_list_tick_failed")
                await asyncio.sleep(TICK_S)
        finally:
            self.stop.set()  # pushes in their threads give up before their next message
            for task in list(self.in_flight.values()):
                task.cancel()


async def keep_lists_forever(db: Database, connected: Callable[[], list[str]]) -> None:
    """The per-process loop that keeps the lists of the stations connected here current."""
    await ListKeeper(db, connected).run_forever()

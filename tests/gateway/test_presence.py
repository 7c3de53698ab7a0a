"""A server process keeps a station's socket only while the database records that socket's
connection as the station's (swapd.gateway.presence), and commands are claimed only through
that connection (station_commands.claim)."""

from __future__ import annotations

import pytest

from swapd.gateway.presence import DISABLED, REPLACED, PresenceWatch
from swapd.services import station_commands, stations
from swapd.store.database import Database
from tests import network as net

pytestmark = pytest.mark.anyio


class Here:
    """The sockets of one process: station -> recorded connection id; what it was told to close."""

    def __init__(self, sockets: dict[str, str]) -> None:
        self.sockets = sockets
        self.closed: list[tuple[str, str, int, str]] = []

    def recorded(self) -> dict[str, str]:
        return dict(self.sockets)

    async def close(self, station_id: str, connection_id: str, code: int, reason: str) -> bool:
        if self.sockets.get(station_id) != connection_id:
            return False
        del self.sockets[station_id]
        self.closed.append((station_id, connection_id, code, reason))
        return True


async def test_a_socket_whose_station_connected_elsewhere_is_closed_and_the_newest_kept(
    db: Database,
) -> None:
    net.stations(db, ("ST1", "ST2", "ST3"))
    stations.record_connected(db, "ST1", "a1")  # this process's connection, still the newest
    stations.record_connected(db, "ST2", "b2")  # another process's, newer than ours (a2)
    # ST3: ours (a3) was replaced by another connection that has ended since: none recorded.
    here = Here({"ST1": "a1", "ST2": "a2", "ST3": "a3"})
    watch = PresenceWatch(db, here.recorded, here.close)

    assert await watch.check() == 2
    assert here.closed == [("ST2", "a2", 1000, REPLACED), ("ST3", "a3", 1000, REPLACED)]
    assert here.sockets == {"ST1": "a1"}
    assert await watch.check() == 0


async def test_the_socket_of_a_station_taken_out_of_service_is_closed(db: Database) -> None:
    net.stations(db, ("ST1", "ST2"))
    stations.record_connected(db, "ST1", "a1")
    stations.record_connected(db, "ST2", "a2")
    stations.set_enabled(db, "ST1", False)  # by another process's API, or the CLI
    here = Here({"ST1": "a1", "ST2": "a2"})
    watch = PresenceWatch(db, here.recorded, here.close)
    watch.notify(f"ST1 {stations.DISABLED}")  # what set_enabled announces on PostgreSQL
    assert watch.notified == {"ST1"}
    assert await watch.check(watch.notified) == 1
    assert here.closed == [("ST1", "a1", 1008, DISABLED)]
    assert here.sockets == {"ST2": "a2"}


async def test_a_notification_marks_only_a_station_held_here_by_another_connection(
    db: Database,
) -> None:
    here = Here({"ST1": "a1", "ST2": "a2"})
    watch = PresenceWatch(db, here.recorded, here.close)
    watch.notify("ST1 a1")  # our own connection, announced to every process
    watch.notify("ST9 b9")  # a station not here
    assert watch.notified == set() and not watch.wake.is_set()
    watch.notify("ST2 b2")
    assert watch.notified == {"ST2"} and watch.wake.is_set()


def test_commands_are_claimed_only_through_the_recorded_connection(db: Database) -> None:
    net.stations(db, ("ST1",))
    stations.record_connected(db, "ST1", "new")
    command_id = station_commands.enqueue(
        db, "ST1", "UnlockConnector", {"evseId": 1, "connectorId": 1}, timeout_s=30
    )
    assert station_commands.claim(db, {"ST1": "old"}) == []  # a process with an older socket
    claimed = station_commands.claim(db, {"ST1": "new"})
    assert [(c[0], c[1], c[2]) for c in claimed] == [(command_id, "ST1", "UnlockConnector")]

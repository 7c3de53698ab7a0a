"""What the gateway keeps about stations: credentials, boot data, liveness and slot availability."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from swapd.domain.errors import InvalidInput, NotFound
from swapd.domain.stations import SlotState
from swapd.security import generate_password, hash_password
from swapd.store import schema as t
from swapd.store.database import Database, Transactional, Tx

# NOTIFY channel of record_connected and set_enabled: "<station id> <connection id>" of a
# station's newest socket, or "<station id> -" (DISABLED) when it was taken out of service.
CONNECTIONS_CHANNEL = "swapd_connections"
DISABLED = "-"


@dataclass(frozen=True, slots=True)
class StationAccess:
    station_id: str
    enabled: bool
    password_hash: str | None


def access(db: Database, station_id: str) -> StationAccess | None:
    """What the WebSocket upgrade needs to admit a station, or None for an unknown station."""

    def work(tx: Tx) -> StationAccess | None:
        row = tx.repo.execute(
            sa.select(t.stations.c.id, t.stations.c.enabled, t.stations.c.password_hash).where(
                t.stations.c.id == station_id
            )
        ).first()
        return None if row is None else StationAccess(row.id, row.enabled, row.password_hash)

    return db.read(work)


def set_password(db: Transactional, station_id: str, password: str | None = None) -> str:
    """Give the station a new Basic-auth password (generated unless given); returns it once."""
    password = password or generate_password()
    if not 16 <= len(password) <= 64 or not password.isprintable():
        raise InvalidInput("a station password has 16-64 printable characters")
    hashed = hash_password(password)

    _update_station(db, station_id, password_hash=hashed)
    return password


def _update_station(db: Transactional, station_id: str, **values: object) -> None:
    """Change columns of one station's row; an unknown station is NotFound, not a no-op."""

    def work(tx: Tx) -> None:
        result = tx.repo.execute(
            sa.update(t.stations).where(t.stations.c.id == station_id).values(**values)
        )
        if result.rowcount != 1:
            raise NotFound(f"unknown station {station_id}")

    db.write(work)


def record_boot(
    db: Database, station_id: str, *, vendor: str, model: str, firmware: str | None
) -> datetime:
    def work(tx: Tx) -> datetime:
        tx.repo.execute(
            sa.update(t.stations)
            .where(t.stations.c.id == station_id)
            .values(
                vendor=vendor[:50],
                model=model[:50],
                firmware=(firmware or "")[:50] or None,
                booted_at=tx.now,
                last_seen_at=tx.now,
            )
        )
        return tx.now

    return db.write(work)


def is_booted(db: Database, station_id: str) -> bool:
    def work(tx: Tx) -> bool:
        booted = tx.repo.execute(
            sa.select(t.stations.c.booted_at).where(t.stations.c.id == station_id)
        ).scalar()
        return booted is not None

    return db.read(work)


def seen(db: Database, station_id: str) -> datetime:
    def work(tx: Tx) -> datetime:
        tx.repo.execute(
            sa.update(t.stations).where(t.stations.c.id == station_id).values(last_seen_at=tx.now)
        )
        return tx.now

    return db.write(work)


@dataclass(frozen=True, slots=True)
class Presence:
    """Whether a server process holds the station's socket now, and when it was last heard from
    (connected, booted, sent a heartbeat or disconnected)."""

    station_id: str
    enabled: bool
    connected_at: datetime | None
    last_seen_at: datetime | None

    @property
    def connected(self) -> bool:
        return self.connected_at is not None

    def offline_text(self) -> str:
        if self.last_seen_at is None:
            return f"station {self.station_id} is not connected (never connected)"
        seen = self.last_seen_at.isoformat(timespec="seconds")
        return f"station {self.station_id} is not connected (last seen {seen})"


def presence(db: Database, station_id: str) -> Presence:
    c = t.stations.c

    def work(tx: Tx) -> Presence:
        row = tx.repo.execute(
            sa.select(c.enabled, c.connected_at, c.last_seen_at).where(c.id == station_id)
        ).first()
        if row is None:
            raise NotFound(f"unknown station {station_id}")
        return Presence(station_id, row.enabled, row.connected_at, row.last_seen_at)

    return db.read(work)


def record_connected(db: Database, station_id: str, connection_id: str) -> datetime:
    """A server process accepted the station's socket: one write per connection, never per
    message, so that presence costs nothing on the swap path. The newest connection is the
    station's: on PostgreSQL a NOTIFY on ``CONNECTIONS_CHANNEL`` ("<station> <connection>")
    tells the other server processes, so that one still holding an older socket of the station
    closes it (swapd.gateway.presence)."""
    c = t.stations.c

    def work(tx: Tx) -> datetime:
        tx.repo.execute(
            sa.update(t.stations)
            .where(c.id == station_id)
            .values(connected_at=tx.now, connection_id=connection_id, last_seen_at=tx.now)
        )
        _announce(tx, station_id, connection_id)
        return tx.now

    return db.write(work)


def _announce(tx: Tx, station_id: str, connection_id: str) -> None:
    """NOTIFY the server processes (PostgreSQL) that the station's socket may have to go."""
    if tx.repo.conn.dialect.name == "postgresql":
        tx.repo.execute(
            sa.text("SELECT pg_notify(:channel, :payload)").bindparams(
                channel=CONNECTIONS_CHANNEL, payload=f"{station_id} {connection_id}"
            )
        )


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the database says of a station's socket: its newest connection, and whether the
    station may be connected at all."""

    connection_id: str | None
    enabled: bool


def connections(db: Database, station_ids: Collection[str] | None = None) -> dict[str, Recorded]:
    """The recorded connection of each station connected or disabled: of ``station_ids`` only,
    or of every station when None."""
    c = t.stations.c

    def work(tx: Tx) -> dict[str, Recorded]:
        query = sa.select(c.id, c.connection_id, c.enabled).where(
            sa.or_(c.connection_id.is_not(None), c.enabled.is_(False))
        )
        if station_ids is not None:
            query = query.where(c.id.in_(list(station_ids)))
        return {row.id: Recorded(row.connection_id, bool(row.enabled)) for row in tx.repo.execute(query)}

    return db.read(work)


def record_disconnected(db: Database, station_id: str, connection_id: str) -> bool:
    """The connection ended. Only the connection that is recorded clears it: when the station has
    connected again meanwhile (here or to another process), the newer connection stays. Returns
    whether this connection was still the recorded one."""
    c = t.stations.c

    def work(tx: Tx) -> bool:
        result = tx.repo.execute(
            sa.update(t.stations)
            .where(c.id == station_id, c.connection_id == connection_id)
            .values(connected_at=None, connection_id=None, last_seen_at=tx.now)
        )
        return result.rowcount == 1

    return db.write(work)


def set_slot_state(db: Database, station_id: str, slot_no: int, state: SlotState) -> None:
    """Availability reported by the station. Occupancy itself follows the swap events: a slot we
    know holds a pack stays occupied, and an emptied slot becomes available again."""

    def work(tx: Tx) -> None:
        station = tx.repo.station(station_id)
        if station is None:
            raise NotFound(f"unknown station {station_id}")
        station.check_slot(slot_no)
        slot = tx.repo.slot(station_id, slot_no)
        assert slot is not None
        if state is SlotState.UNAVAILABLE:
            new_state = SlotState.UNAVAILABLE
        else:
            new_state = SlotState.OCCUPIED if slot.pack_serial else SlotState.AVAILABLE
        if new_state is not slot.state:
            tx.repo.execute(
                sa.update(t.slots)
                .where(t.slots.c.station_id == station_id, t.slots.c.slot_no == slot_no)
                .values(state=new_state.value)
            )

    db.write(work)


def set_enabled(db: Transactional, station_id: str, enabled: bool) -> None:
    """Take a station out of service (its connections are refused with 403, its swaps with
    'station disabled', and the server process holding its socket closes it) or back in."""

    def work(tx: Tx) -> None:
        _update_station(tx, station_id, enabled=enabled)
        if not enabled:
            _announce(tx, station_id, DISABLED)

    db.write(work)

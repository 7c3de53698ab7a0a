"""The queue of commands for stations: a port between whoever asks (a CLI command, the HTTP API)
and the server process that holds the station's socket (swapd.gateway.commands delivers them).

A command is a row in ``station_commands``. Every server process polls for pending commands of
the stations connected to it; on PostgreSQL a NOTIFY on ``CHANNEL`` wakes them at once. A process
claims a row with a conditional UPDATE, so exactly one process sends it, and writes the station's
answer back for the requester to read. Nothing here knows how a command reaches a station.

The requester waits no longer than it takes to see that nobody can answer: a command that no
process takes within ``PICKUP_TIMEOUT_S`` (none holds the station's socket), or whose station's
connection (``stations.connection_id``) ends or changes while it waits, is undelivered at once
instead of waiting out its whole timeout.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from swapd.domain.errors import InvalidInput, NotFound, StationOffline
from swapd.services.station_requests import check_request
from swapd.store import schema as t
from swapd.store.database import Database, Tx

CHANNEL = "swapd_commands"
# Pending commands of connected stations are sent within a poll or two, so this many covers
# every process's stations at once.
MAX_PENDING_SCAN = 5000
# Twenty of the gateway's poll intervals (0.25 s): a process holding the station's socket claims
# a command within one (at once on PostgreSQL), so one still pending after this has no process to
# take it.
PICKUP_TIMEOUT_S = 5.0
WAIT_POLL_S = 0.05
# The longest a queued command waits for its station to connect: a week covers a station that
# is down for maintenance; the operator sees it expire after that.
MAX_QUEUE_S = 7 * 24 * 3600
MAX_TIMEOUT_S = 600.0


class CommandState:
    PENDING = "pending"
    SENT = "sent"
    ANSWERED = "answered"
    FAILED = "failed"
    EXPIRED = "expired"
    UNDELIVERED = "undelivered"  # no connection of the station took it, or its connection ended

    FINAL = frozenset({ANSWERED, FAILED, EXPIRED, UNDELIVERED})


@dataclass(frozen=True, slots=True)
class Outcome:
    state: str
    response: dict[str, Any] | None = None
    error: str | None = None


def enqueue(
    db: Database,
    station_id: str,
    action: str,
    payload: dict[str, Any],
    *,
    timeout_s: float,
    queue_s: float = 0.0,
    requested_by: str | None = None,
    request_id: int | None = None,
) -> int:
    """Queue ``action`` for the station; returns the command's id.

    ``payload`` is the request in the wire's casing, checked against its schema here (a bad one
    is InvalidInput, and nothing is queued). A station that is not connected refuses the command
    at once (StationOffline) unless ``queue_s`` > 0: then it waits up to ``queue_s`` for the
    station to connect, and is sent when it does. ``timeout_s`` bounds a command sent now."""
    check_request(action, payload)
    if not 0 < timeout_s <= MAX_TIMEOUT_S:
        raise InvalidInput(f"timeout_s must be in (0, {MAX_TIMEOUT_S:g}], got {timeout_s:g}")
    if not 0 <= queue_s <= MAX_QUEUE_S:
        raise InvalidInput(f"queue_s must be in [0, {MAX_QUEUE_S}], got {queue_s:g}")

    def work(tx: Tx) -> int:
        station = tx.repo.execute(
            sa.select(t.stations.c.connection_id).where(t.stations.c.id == station_id)
        ).first()
        if station is None:
            raise NotFound(f"unknown station {station_id}")
        queued = station.connection_id is None and queue_s > 0
        if station.connection_id is None and not queued:
            raise StationOffline(
                f"station {station_id} is not connected; queue the command to send it when it connects"
            )
        # A queued command lives until the station connects or queue_s ends; once sent, the
        # answer is bounded by the session's response timeout.
        life_s = queue_s if queued else timeout_s
        command_id = tx.repo.execute(
            sa.insert(t.station_commands)
            .values(
                station_id=station_id,
                action=action,
                payload=payload,
                state=CommandState.PENDING,
                created_at=tx.now,
                expires_at=tx.now + timedelta(seconds=life_s),
                updated_at=tx.now,
                requested_by=requested_by,
                queued=queued,
                request_id=request_id,
            )
            .returning(t.station_commands.c.id)
        ).scalar_one()
        if tx.repo.conn.dialect.name == "postgresql":
            tx.repo.execute(
                sa.text("SELECT pg_notify(:channel, :station)").bindparams(
                    channel=CHANNEL, station=station_id
                )
            )
        return int(command_id)

    return db.write(work)


def wait_for(
    db: Database, command_id: int, *, timeout_s: float, pickup_s: float = PICKUP_TIMEOUT_S
) -> Outcome:
    """Block until the command is answered or failed, or it cannot be any more: undelivered when
    no process took it within ``pickup_s`` or the station's connection ended or changed since the
    first look (the socket that would answer is gone), expired after ``timeout_s``."""
    c, s = t.station_commands.c, t.stations.c
    query = (
        sa.select(c.state, c.response, c.error, s.connection_id)
        .join_from(t.station_commands, t.stations, s.id == c.station_id)
        .where(c.id == command_id)
    )
    start = time.monotonic()
    pickup_deadline, deadline = start + min(pickup_s, timeout_s), start + timeout_s
    first_connection: str | None = None
    for poll_no in range(int(timeout_s / WAIT_POLL_S) + 10):
        row = db.read(lambda tx: tx.repo.execute(query).one())
        if row.state in CommandState.FINAL:
            return Outcome(row.state, row.response, row.error)
        if poll_no == 0:
            first_connection = row.connection_id
        now = time.monotonic()
        gone = row.connection_id is None or (
            row.state == CommandState.SENT and row.connection_id != first_connection
        )
        if gone or (row.state == CommandState.PENDING and now >= pickup_deadline):
            why = "the station's connection ended" if gone else "no server process took it"
            if _end(db, command_id, CommandState.UNDELIVERED, why):
                return Outcome(CommandState.UNDELIVERED, None, why)
            continue  # it was answered meanwhile: read the answer
        if now >= deadline:
            why = "the station did not answer in time"
            if _end(db, command_id, CommandState.EXPIRED, why):
                return Outcome(CommandState.EXPIRED, None, why)
            continue
        time.sleep(WAIT_POLL_S)
    # Not reached: the deadline ends the loop first, unless the clock stood still.
    _end(db, command_id, CommandState.EXPIRED, "the station did not answer in time")
    return Outcome(CommandState.EXPIRED, None, "the station did not answer in time")


def _end(db: Database, command_id: int, state: str, error: str) -> bool:
    """Give up on a command that is still pending or sent; False when it reached an end first."""

    def work(tx: Tx) -> bool:
        result = tx.repo.execute(
            sa.update(t.station_commands)
            .where(
                t.station_commands.c.id == command_id,
                t.station_commands.c.state.in_([CommandState.PENDING, CommandState.SENT]),
            )
            .values(state=state, error=error, updated_at=tx.now)
        )
        return bool(result.rowcount == 1)

    return db.write(work)


def claim(db: Database, connections: Mapping[str, str]) -> list[tuple[int, str, str, dict[str, Any]]]:
    """Take the pending, unexpired commands of these stations: (id, station, action, payload).

    ``connections``: the stations whose sockets the caller holds, each with the id of its
    connection. A command is taken only through the connection the database records as the
    station's (``stations.connection_id``): a process still holding an older socket of a station
    that has connected again elsewhere never takes its commands.

    Polled several times a second with every connected station: the common answer (nothing
    pending here) is a read, never a write transaction, and the station list is matched in
    Python, not sent as an IN list (10,000 stations would be 10,000 bound parameters)."""
    if not connections:
        return []
    c = t.station_commands.c

    def pending(tx: Tx) -> list[Any]:
        # Only the commands of stations connected somewhere: queued commands of stations that
        # are away (they may wait a week) must not crowd out the ones that can go now.
        rows = tx.repo.execute(
            sa.select(c.id, c.station_id, t.stations.c.connection_id)
            .join_from(t.station_commands, t.stations, t.stations.c.id == c.station_id)
            .where(
                c.state == CommandState.PENDING,
                c.expires_at > tx.now,
                t.stations.c.connection_id.is_not(None),
            )
            .order_by(c.id)
            .limit(MAX_PENDING_SCAN)
        ).all()
        return [row.id for row in rows if connections.get(row.station_id) == row.connection_id][:100]

    ids = db.read(pending)
    if not ids:
        return []

    def work(tx: Tx) -> list[tuple[int, str, str, dict[str, Any]]]:
        rows = tx.repo.execute(
            sa.select(c.id, c.station_id, c.action, c.payload, c.expires_at)
            .where(c.id.in_(ids), c.state == CommandState.PENDING)
            .order_by(c.id)
        ).all()
        claimed = []
        for row in rows:
            state = CommandState.SENT if row.expires_at > tx.now else CommandState.EXPIRED
            result = tx.repo.execute(
                sa.update(t.station_commands)
                .where(c.id == row.id, c.state == CommandState.PENDING)
                .values(state=state, updated_at=tx.now)
            )
            if result.rowcount == 1 and state == CommandState.SENT:
                claimed.append((int(row.id), row.station_id, row.action, row.payload))
        return claimed

    return db.write(work)


def finish(db: Database, command_id: int, *, response: dict[str, Any] | None, error: str | None) -> None:
    def work(tx: Tx) -> None:
        tx.repo.execute(
            sa.update(t.station_commands)
            # A requester that gave up (expired, undelivered) keeps its verdict.
            .where(
                t.station_commands.c.id == command_id,
                t.station_commands.c.state == CommandState.SENT,
            )
            .values(
                state=CommandState.FAILED if error else CommandState.ANSWERED,
                response=response,
                error=None if error is None else error[:300],
                updated_at=tx.now,
            )
        )

    db.write(work)


def expire_queued(db: Database) -> int:
    """Mark the queued commands whose station did not connect in time as expired; how many."""
    c = t.station_commands.c

    def work(tx: Tx) -> int:
        result = tx.repo.execute(
            sa.update(t.station_commands)
            .where(c.state == CommandState.PENDING, c.expires_at <= tx.now)
            .values(
                state=CommandState.EXPIRED,
                error="the station did not connect in time",
                updated_at=tx.now,
            )
        )
        return int(result.rowcount)

    return db.write(work)

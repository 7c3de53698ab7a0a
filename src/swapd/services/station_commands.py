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
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from swapd.domain.errors import NotFound
from swapd.store import schema as t
from swapd.store.database import Database, Tx

CHANNEL = "swapd_commands"
# Unexpired pending commands live seconds (an app swap waits <= its timeout), so this many
# covers every process's stations at once.
MAX_PENDING_SCAN = 5000
# Twenty of the gateway's poll intervals (0.25 s): a process holding the station's socket claims
# a command within one (at once on PostgreSQL), so one still pending after this has no process to
# take it.
PICKUP_TIMEOUT_S = 5.0
WAIT_POLL_S = 0.05


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
    db: Database, station_id: str, action: str, payload: dict[str, Any], *, timeout_s: float
) -> int:
    def work(tx: Tx) -> int:
        if tx.repo.station(station_id) is None:
            raise NotFound(f"unknown station {station_id}")
        command_id = tx.repo.execute(
            sa.insert(t.station_commands)
            .values(
                station_id=station_id,
                action=action,
                payload=payload,
                state=CommandState.PENDING,
                created_at=tx.now,
                expires_at=tx.now + timedelta(seconds=timeout_s),
                updated_at=tx.now,
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


def claim(db: Database, station_ids: list[str]) -> list[tuple[int, str, str, dict[str, Any]]]:
    """Take the pending, unexpired commands of these stations: (id, station, action, payload).

    Polled several times a second with every connected station: the common answer (nothing
    pending here) is a read, never a write transaction, and the station list is matched in
    Python, not sent as an IN list (10,000 stations would be 10,000 bound parameters)."""
    if not station_ids:
        return []
    here = set(station_ids)
    c = t.station_commands.c

    def pending(tx: Tx) -> list[Any]:
        rows = tx.repo.execute(
            sa.select(c.id, c.station_id)
            .where(c.state == CommandState.PENDING, c.expires_at > tx.now)
            .order_by(c.id)
            .limit(MAX_PENDING_SCAN)
        ).all()
        return [row.id for row in rows if row.station_id in here][:100]

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

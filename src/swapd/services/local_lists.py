"""Stations' local authorization lists: what each holds, and sending it what changed (OCPP 2.1
SendLocalList and GetLocalListVersion through the command queue, swapd.services.station_commands).

The list is swapd.domain.local_lists' (every rider's cards and every pack, Accepted for the holder,
Blocked otherwise). For each station swapd stores the version and the entries the station holds
as of the last message it accepted (``local_lists``, ``local_list_entries``), so that the next
update is the difference from them. ``push`` sends it: differential by default, full when asked,
when the station's own version (GetLocalListVersion, ``verify``) is not the one stored, or when it
answers VersionMismatch. Each accepted message is stored at once: a push cut short resumes from
the last message the station took.

One push at a time per station: a push holds a lease on the station's row (``lease_until``),
renewed with each message, so that the server's background updates (swapd.gateway.local_lists)
and an operator's ``swapd station local-list`` never interleave their versions.

A station has a list once one was sent to it; from then on the server processes keep it current
(``enrolled``). ``last_change`` is the newest mark in ``local_list_changes``: written whenever a
pack moves, a rider is blocked or unblocked, a card is added or removed or a pack registered.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from swapd.domain.errors import Conflict, NotFound, StationOffline
from swapd.domain.local_lists import (
    EntryKey,
    ListEntry,
    ListFacts,
    ListStatus,
    ListUpdate,
    RiderStanding,
    UpdateType,
    desired_list,
    plan_updates,
)
from swapd.domain.packs import PackStatus
from swapd.domain.riders import RiderStatus
from swapd.services import station_commands
from swapd.services.station_commands import CommandState
from swapd.store import schema as t
from swapd.store.database import Database, Tx

SEND_TIMEOUT_S = 30.0  # one SendLocalList message: its answer, or the push stops
# A push's hold on the station's row, renewed by every accepted message: longer than one
# message's timeout, so a live push never loses it; a crashed one frees the row this soon.
LEASE_S = 2 * SEND_TIMEOUT_S + 30.0
MAX_ERROR_CHARS = 300


class ListBusy(Conflict):
    """Another push holds the station's list: try again once it is done."""


@dataclass(frozen=True, slots=True)
class PushResult:
    station_id: str
    update_type: str | None  # "Full" or "Differential" (of the first message); None: nothing to send
    version: int  # the station's list version after the push
    messages: int  # SendLocalList messages the station accepted
    sent_entries: int  # entries those messages carried (changes, or the whole list)
    entries: int  # entries the station's list holds now


@dataclass(frozen=True, slots=True)
class StationList:
    """A station's list as swapd stored it: version and entries as last accepted."""

    station_id: str
    version: int
    entries: dict[EntryKey, ListEntry]
    last_error: str | None


# -- the facts and the list wanted ----------------------------------------------------------------


def read_facts(tx: Tx) -> ListFacts:
    r, p, c, k = t.riders.c, t.plans.c, t.id_tokens.c, t.packs.c
    riders = {
        row.id: RiderStanding(RiderStatus(row.status), int(row.offline_swaps_max))
        for row in tx.repo.execute(
            sa.select(r.id, r.status, p.offline_swaps_max).join(t.plans, p.id == r.plan_id)
        )
    }
    riders_cards = sa.select(c.type, c.value, c.rider_id).where(c.rider_id.is_not(None))
    cards = [
        (row.type, row.value, row.rider_id)
        for row in tx.repo.execute(riders_cards.order_by(c.type, c.value))
    ]
    packs = [
        (row.serial, row.rider_id if row.status == PackStatus.WITH_RIDER.value else None)
        for row in tx.repo.execute(sa.select(k.serial, k.status, k.rider_id).order_by(k.serial))
    ]
    return ListFacts(riders, cards, packs)


def wanted(db: Database) -> dict[EntryKey, ListEntry]:
    """The list every station should hold now."""
    return desired_list(db.read(read_facts))


def station_list(db: Database, station_id: str) -> StationList:
    def work(tx: Tx) -> StationList:
        if tx.repo.station(station_id) is None:
            raise NotFound(f"unknown station {station_id}")
        row = tx.repo.execute(
            sa.select(t.local_lists).where(t.local_lists.c.station_id == station_id)
        ).first()
        return StationList(
            station_id,
            0 if row is None else int(row.version),
            _entries(tx, station_id),
            None if row is None else row.last_error,
        )

    return db.read(work)


def _entries(tx: Tx, station_id: str) -> dict[EntryKey, ListEntry]:
    e = t.local_list_entries.c
    rows = tx.repo.execute(sa.select(t.local_list_entries).where(e.station_id == station_id))
    return {
        (row.token_type, row.id_token): ListEntry(
            row.token_type, row.id_token, ListStatus(row.status), row.group_id, row.offline_swaps_max
        )
        for row in rows
    }


def enrolled(db: Database) -> set[str]:
    """The stations swapd keeps a list on: every one it has sent a list to."""
    return set(db.read(lambda tx: tx.repo.execute(sa.select(t.local_lists.c.station_id)).scalars()))


def last_change(db: Database) -> int:
    """The newest change mark (0: none yet)."""
    query = sa.select(sa.func.max(t.local_list_changes.c.id))
    return int(db.read(lambda tx: tx.repo.execute(query).scalar()) or 0)


def trim_changes(db: Database) -> int:
    """Delete the marks older than the newest, which only ever said "something changed" and
    are superseded by it; how many. A read when there are none, so an idle server never writes."""
    c = t.local_list_changes.c
    span = sa.select(sa.func.min(c.id), sa.func.max(c.id))
    oldest, newest = db.read(lambda tx: tuple(tx.repo.execute(span).one()))
    if oldest is None or oldest == newest:
        return 0

    def work(tx: Tx) -> int:
        return int(tx.repo.execute(sa.delete(t.local_list_changes).where(c.id < newest)).rowcount)

    return db.write(work)


# -- sending --------------------------------------------------------------------------------------


def station_version(
    db: Database, station_id: str, *, timeout_s: float = SEND_TIMEOUT_S, requested_by: str = "swapd"
) -> int:
    """The list version the station says it holds (GetLocalListVersion)."""
    answer = _ask(db, station_id, "GetLocalListVersion", {}, timeout_s, requested_by)
    version = answer.get("versionNumber")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise Conflict(f"station {station_id} answered GetLocalListVersion with {answer!r}")
    return version


def push(
    db: Database,
    station_id: str,
    *,
    full: bool = False,
    verify: bool = False,
    wanted_list: Mapping[EntryKey, ListEntry] | None = None,
    requested_by: str = "swapd",
    timeout_s: float = SEND_TIMEOUT_S,
    stop: threading.Event | None = None,
) -> PushResult:
    """Bring the station's list to the one wanted (``wanted_list``, else read now): only the
    differences, unless ``full`` or the station holds another version than stored (asked first
    when ``verify``) or answers VersionMismatch. The station must be connected. Raises Conflict
    when another push holds the station, or when the station refused or did not answer (the
    messages it accepted before stay recorded). A station unknown or not connected is refused
    before anything is written; a first push that the station took nothing of leaves nothing."""
    _check_connected(db, station_id)
    held = _claim(db, station_id)
    error: str | None = None
    try:
        wanted_now = dict(wanted(db) if wanted_list is None else wanted_list)
        return _push(db, held, wanted_now, full, verify, requested_by, timeout_s, stop)
    except Exception as failure:
        error = str(failure)[:MAX_ERROR_CHARS] or type(failure).__name__
        raise
    finally:
        _release(db, station_id, error)


def _push(
    db: Database,
    held: StationList,
    wanted_list: dict[EntryKey, ListEntry],
    full: bool,
    verify: bool,
    requested_by: str,
    timeout_s: float,
    stop: threading.Event | None,
) -> PushResult:
    station_id, version, entries = held.station_id, held.version, held.entries
    full = full or version == 0  # a station's first list replaces whatever it held
    if verify:
        theirs = station_version(db, station_id, timeout_s=timeout_s, requested_by=requested_by)
        if theirs != version:
            full, version = True, max(version, theirs)
    retried = False
    sent = messages = 0
    first: str | None = None
    updates = plan_updates(version, {} if full else entries, wanted_list, full=full)
    while updates:
        update = updates.pop(0)
        if stop is not None and stop.is_set():
            raise Conflict(f"the list update of {station_id} stopped: the server is stopping")
        status = _send(db, station_id, update, timeout_s, requested_by)
        if status == "VersionMismatch" and not retried:
            # The station holds a version of its own: read it, and send the whole list above it.
            retried = True
            theirs = station_version(db, station_id, timeout_s=timeout_s, requested_by=requested_by)
            version = max(version, theirs)
            updates = plan_updates(version, {}, wanted_list, full=True)
            continue
        if status != "Accepted":
            raise Conflict(f"station {station_id} answered SendLocalList {update.version} with {status}")
        entries = update.apply(entries)
        version = update.version
        _store(db, station_id, update)
        first = first or update.update_type.value
        messages += 1
        sent += len(update.upserts) + len(update.removals)
    return PushResult(station_id, first, version, messages, sent, len(entries))


def _ask(
    db: Database,
    station_id: str,
    action: str,
    payload: dict[str, Any],
    timeout_s: float,
    requested_by: str,
) -> dict[str, Any]:
    command_id = station_commands.enqueue(
        db, station_id, action, payload, timeout_s=timeout_s, requested_by=requested_by
    )
    outcome = station_commands.wait_for(db, command_id, timeout_s=timeout_s)
    if outcome.state != CommandState.ANSWERED or outcome.response is None:
        why = outcome.error or outcome.state
        if outcome.state == CommandState.UNDELIVERED:
            raise StationOffline(f"station {station_id} did not get {action}: {why}")
        raise Conflict(f"station {station_id} did not answer {action}: {why}")
    return outcome.response


def _send(db: Database, station_id: str, update: ListUpdate, timeout_s: float, requested_by: str) -> str:
    answer = _ask(db, station_id, "SendLocalList", update.to_wire(), timeout_s, requested_by)
    return str(answer.get("status"))


# -- storing what the station holds ---------------------------------------------------------------


def _check_connected(db: Database, station_id: str) -> None:
    def work(tx: Tx) -> str | None:
        row = tx.repo.execute(
            sa.select(t.stations.c.connection_id).where(t.stations.c.id == station_id)
        ).first()
        if row is None:
            raise NotFound(f"unknown station {station_id}")
        return None if row.connection_id is None else str(row.connection_id)

    if db.read(work) is None:
        raise StationOffline(
            f"station {station_id} is not connected: its list goes when it is (swapd serve)"
        )


def _claim(db: Database, station_id: str) -> StationList:
    """Take the station's lease (its row is made on the first push); its list as stored."""

    def work(tx: Tx) -> StationList:
        if tx.repo.station(station_id) is None:
            raise NotFound(f"unknown station {station_id}")
        lists = t.local_lists.c
        row = tx.repo.execute(
            sa.select(t.local_lists).where(lists.station_id == station_id).with_for_update()
        ).first()
        until = tx.now + timedelta(seconds=LEASE_S)
        if row is None:
            tx.repo.execute(
                sa.insert(t.local_lists).values(
                    station_id=station_id, version=0, lease_until=until, updated_at=tx.now
                )
            )
            return StationList(station_id, 0, {}, None)
        if row.lease_until is not None and row.lease_until > tx.now:
            raise ListBusy(f"a local list update of {station_id} is under way; try again shortly")
        tx.repo.execute(
            sa.update(t.local_lists)
            .where(lists.station_id == station_id)
            .values(lease_until=until, updated_at=tx.now)
        )
        return StationList(station_id, int(row.version), _entries(tx, station_id), row.last_error)

    return db.write(work)


def _store(db: Database, station_id: str, update: ListUpdate) -> None:
    """The station accepted ``update``: its entries and version as it holds them now."""
    e = t.local_list_entries.c

    def work(tx: Tx) -> None:
        mine = e.station_id == station_id
        if update.update_type is UpdateType.FULL:
            tx.repo.execute(sa.delete(t.local_list_entries).where(mine))
        else:
            gone = [*update.removals, *(entry.key for entry in update.upserts)]
            for token_type, id_token in gone:
                tx.repo.execute(
                    sa.delete(t.local_list_entries).where(
                        mine, e.token_type == token_type, e.id_token == id_token
                    )
                )
        if update.upserts:
            tx.repo.conn.execute(
                sa.insert(t.local_list_entries),
                [
                    {
                        "station_id": station_id,
                        "token_type": entry.token_type,
                        "id_token": entry.id_token,
                        "status": entry.status.value,
                        "group_id": entry.group_id,
                        "offline_swaps_max": entry.offline_swaps_max,
                    }
                    for entry in update.upserts
                ],
            )
        tx.repo.execute(
            sa.update(t.local_lists)
            .where(t.local_lists.c.station_id == station_id)
            .values(
                version=update.version,
                sent_at=tx.now,
                lease_until=tx.now + timedelta(seconds=LEASE_S),
                last_error=None,
                updated_at=tx.now,
            )
        )

    db.write(work)


def _release(db: Database, station_id: str, error: str | None) -> None:
    """End the push's lease, with its error. A station that never accepted a list is forgotten
    (no row): a failed first push leaves nothing, and the station gets no updates unasked."""

    def work(tx: Tx) -> None:
        lists = t.local_lists.c
        if error is not None:
            never = sa.and_(lists.station_id == station_id, lists.version == 0)
            if tx.repo.execute(sa.delete(t.local_lists).where(never)).rowcount:
                return
        values: dict[str, Any] = {"lease_until": None, "updated_at": tx.now}
        if error is not None:
            values["last_error"] = error
        tx.repo.execute(
            sa.update(t.local_lists).where(t.local_lists.c.station_id == station_id).values(values)
        )

    db.write(work)

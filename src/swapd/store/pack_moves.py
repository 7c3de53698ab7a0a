"""A pack's move as one statement on PostgreSQL: the slot it left emptied, its own row, the slot it
went to filled, and the local lists' change mark, in one data-modifying WITH.

As four statements (``Repository.move_pack`` on SQLite) they cost four round trips and four
statements' work on each side; every swap moves two packs. Together they read one snapshot, which
is safe here because the four write different rows: the slot left is never the slot filled
(``move_pack`` empties it only when they differ), and the pack and the mark are other tables.
The slot filled keeps its condition (empty, or holding this pack already): a concurrent
transaction that filled it first makes it match no row, re-checked against that committed row as
a single UPDATE is, and the caller retries. The SELECT reads the slots and the pack in the
order the four statements took their row locks (left slot, pack, filled slot), so lock order is
unchanged; the mark, read by nothing, runs at the end.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from swapd.domain.errors import Retry
from swapd.domain.packs import PackMoved
from swapd.domain.stations import SlotState
from swapd.store import schema as t
from swapd.store.prepared import Prepared, PreparedResult

_B = sa.bindparam
_s = t.slots.c
_MOVES: dict[tuple[tuple[str, ...], bool, bool], Prepared] = {}
_MOVES_LOCK = threading.Lock()


def move(
    connection: sa.Connection,
    moved: PackMoved,
    values: dict[str, Any],
    *,
    leaves: bool,
    fills: bool,
    now: datetime,
) -> None:
    """Run the move: ``values`` of the pack's row, the slot ``moved.left`` emptied if ``leaves``,
    the slot it goes to filled if ``fills``; Retry if another transaction filled that slot
    (deferred: raised at the transaction's next round trip, see ``Prepared.defer``)."""
    parameters: dict[str, Any] = {f"v_{name}": value for name, value in values.items()}
    parameters.update(p_serial=moved.serial, mark_at=now)
    if leaves:
        assert moved.left is not None
        parameters.update(l_station=moved.left[0], l_slot=moved.left[1])
    if fills:
        parameters.update(f_station=moved.station_id, f_slot=moved.slot_no)
    statement = move_statement(tuple(sorted(values)), leaves=leaves, fills=fills)

    def filled(result: PreparedResult) -> None:
        if fills and result.one().filled != 1:
            assert moved.station_id is not None and moved.slot_no is not None
            raise slot_taken(moved.station_id, moved.slot_no)

    statement.defer(connection, parameters, filled)


def empty_slot(station: str, slot: str) -> sa.Update:
    """Empty the slot named by the parameters ``station`` and ``slot``."""
    return (
        sa.update(t.slots)
        .where(_s.station_id == _B(station), _s.slot_no == _B(slot))
        .values(pack_serial=None, state=SlotState.AVAILABLE.value)
    )


def fill_slot(station: str, slot: str) -> sa.Update:
    """Put the pack ``p_serial`` into the slot named by the parameters ``station`` and ``slot``,
    if it is empty or holds that pack already: the condition sits in the UPDATE itself because
    two transactions can both have read the slot as empty; on PostgreSQL the second one
    re-checks it against the first one's committed row and matches nothing (``slot_taken``)."""
    return (
        sa.update(t.slots)
        .where(
            _s.station_id == _B(station),
            _s.slot_no == _B(slot),
            sa.or_(_s.pack_serial.is_(None), _s.pack_serial == _B("p_serial")),
        )
        .values(pack_serial=_B("p_serial"), state=SlotState.OCCUPIED.value)
    )


def slot_taken(station_id: str, slot_no: int) -> Retry:
    """What a fill that matched no row raises: the caller's transaction runs again."""
    return Retry(f"slot {slot_no} of station {station_id} was taken meanwhile")


def move_statement(columns: tuple[str, ...], *, leaves: bool, fills: bool) -> Prepared:
    """The move of one shape, built once: ``columns`` of the pack set from ``v_<column>``,
    ``leaves`` (empty the slot ``l_station``/``l_slot``), ``fills`` (put the pack, ``p_serial``,
    into ``f_station``/``f_slot``). Its one row's ``filled`` is 1 when the slot took the pack."""
    shape = (columns, leaves, fills)
    statement = _MOVES.get(shape)
    if statement is None:
        with _MOVES_LOCK:
            statement = _MOVES.get(shape) or _MOVES.setdefault(shape, _build(*shape))
    return statement


def _build(columns: tuple[str, ...], leaves: bool, fills: bool) -> Prepared:
    counts: list[Any] = []
    if leaves:
        left = empty_slot("l_station", "l_slot").returning(_s.slot_no).cte("left_slot")
        counts.append(_count(left).label("left"))
    pack = (
        sa.update(t.packs)
        .where(t.packs.c.serial == _B("p_serial"))
        .values({name: _B(f"v_{name}") for name in columns})
        .returning(t.packs.c.serial)
        .cte("moved_pack")
    )
    counts.append(_count(pack).label("moved"))
    if fills:
        filled = fill_slot("f_station", "f_slot").returning(_s.slot_no).cte("filled_slot")
        counts.append(_count(filled).label("filled"))
    mark = sa.insert(t.local_list_changes).values(at=_B("mark_at")).cte("list_change")
    return Prepared(sa.select(*counts).add_cte(mark))


def _count(cte: sa.CTE) -> sa.ScalarSelect[Any]:
    return sa.select(sa.func.count()).select_from(cte).scalar_subquery()

"""Swaps while a station is offline, end to end over real WebSockets (docs/OFFLINE.md): the
station's local list sent and kept current, swaps served from it offline, replayed when the
station is back, and the ledger that comes of it compared with the same swaps made online."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from swapd.domain.riders import IdToken, RiderStatus, TokenType
from swapd.services import catalog, local_lists, payments, swaps
from swapd.services.swaps import BatteryReading
from swapd.store import schema as t
from swapd.store.database import Database, ManualClock
from swapd.store.engine import make_engine
from swapd.store.ledger_check import check_ledger
from tests import network as net
from tests.conftest import START, copy_of_migrated_sqlite
from tests.gateway.conftest import LiveServer
from tests.gateway.offline_station import Online, PackInSlot, StationState, go_online, replay_again
from tests.plans import BUNDLE, ENERGY

pytestmark = pytest.mark.anyio

# Slot, serial, SoC: the three riders' packs (handed over at the start), then charged stock.
PACKS = (
    (1, "A-0", 100),
    (2, "B-0", 100),
    (3, "C-0", 100),
    (4, "S-1", 99),
    (5, "S-2", 98),
    (6, "S-3", 97),
)
RIDERS = (("RA", "A-0", 1), ("RB", "B-0", 2), ("RC", "C-0", 3))
WAIT_S = 15.0


def key(serial: str) -> dict[str, str]:
    return {"idToken": serial, "type": "BatterySerial"}


def seed(db: Database) -> str:
    """ST1 with six packs; RA on the energy plan (10,000 KRW), RB on deliveries with one
    delivery (1,250 KRW) and a card, RC on the energy plan; each holds a pack from ST1. Returns
    ST1's OCPP password."""
    passwords = net.network(db, ENERGY, BUNDLE, station_ids=("ST1",), with_passwords=True)
    for slot_no, serial, soc_pct in PACKS:
        net.pack(db, serial, soc_pct=soc_pct, station_id="ST1", slot_no=slot_no)
    net.rider(db, "RA", top_up_minor=10_000, payment_ref="pay-RA")
    net.rider(db, "RB", plan_id=BUNDLE.id, top_up_minor=1_250, payment_ref="pay-RB")
    net.rider(db, "RC", top_up_minor=10_000, payment_ref="pay-RC")
    net.card(db, "RB", "CARD-B")
    for rider_id, serial, slot_no in RIDERS:
        app = IdToken(TokenType.APP, rider_id)
        assert swaps.authorize(db, "ST1", app).offered_slots == [slot_no]
        reading = BatteryReading(slot_no, serial, 10_000, 10_000)
        swaps.battery_out(db, "ST1", f"issue-{rider_id}", [reading], token=app)
    return passwords["ST1"]


def station_state(password: str) -> StationState:
    stock = {slot: PackInSlot(serial, soc) for slot, serial, soc in PACKS if slot > 3}
    return StationState("ST1", password, stock)


def account_balances(db: Database) -> dict[tuple[str, str, str], tuple[int, int, int, int]]:
    a = t.accounts.c
    with db.engine.connect() as connection:
        rows = connection.execute(
            sa.select(
                a.ledger,
                a.code,
                a.owner,
                a.debits_pending,
                a.debits_posted,
                a.credits_pending,
                a.credits_posted,
            )
        )
        return {(r[0], r[1], r[2]): (r[3], r[4], r[5], r[6]) for r in rows}


Transfers = Counter[tuple[str, str, int, int, str | None]]  # (ledger, code, amount, flags, rider)


def transfer_kinds(db: Database) -> Transfers:
    x = t.transfers.c
    with db.engine.connect() as connection:
        rows = connection.execute(sa.select(x.ledger, x.code, x.amount, x.flags, x.rider_id))
        return Counter((r[0], r[1], int(r[2]), int(r[3]), r[4]) for r in rows)


def alert_kinds(db: Database) -> list[str]:
    with db.engine.connect() as connection:
        kinds = connection.execute(sa.select(t.alerts.c.kind).order_by(t.alerts.c.id)).scalars()
        return [str(kind) for kind in kinds]


def snapshot(db: Database) -> tuple[Any, ...]:
    with db.engine.connect() as connection:
        counts = tuple(
            connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in (t.swaps, t.possessions, t.station_events, t.offline_events)
        )
    return account_balances(db), transfer_kinds(db), alert_kinds(db), counts


async def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {WAIT_S} s: {what}")
        await asyncio.sleep(0.05)


def list_is_current(db: Database, state: StationState) -> Callable[[], bool]:
    def current() -> bool:
        wanted = local_lists.wanted(db)
        held = {k: e.status for k, e in state.entries.items()}
        return held == {k: e.status.value for k, e in wanted.items()}

    return current


def recorded_blocked(db: Database, serial: str) -> Callable[[], bool]:
    """The server recorded that the station took the entry (the station applies a message
    before its answer is back: it must not lose the server before then)."""

    def recorded() -> bool:
        entry = local_lists.station_list(db, "ST1").entries.get(("BatterySerial", serial))
        return entry is not None and entry.status.value == "Blocked"

    return recorded


def online_network(template: Path, directory: Path) -> Database:
    """The same swaps made online on a second network: RB gets the delivery it lacks by paying
    for it (a top-up) where offline it was bought on credit."""
    directory.mkdir()
    db = Database(make_engine(copy_of_migrated_sqlite(template, directory)), ManualClock(START))
    seed(db)
    ra, rb, rc = (IdToken(TokenType.BATTERY_SERIAL, serial) for serial in ("A-0", "B-0", "C-0"))
    assert swaps.authorize(db, "ST1", ra, request_id="on-1").offered_slots == [4]
    swaps.battery_in(db, "ST1", "on-1", [BatteryReading(1, "A-0", 2_000, 10_000)], token=ra)
    swaps.battery_out(db, "ST1", "on-1", [BatteryReading(4, "S-1", 9_900, 10_000)], token=ra)
    payments.top_up(db, "RB", 1_250, "pay-RB-2")
    assert swaps.authorize(db, "ST1", rb, request_id="on-2").offered_slots == [5]
    swaps.battery_in(db, "ST1", "on-2", [BatteryReading(2, "B-0", 3_000, 10_000)], token=rb)
    swaps.battery_out(db, "ST1", "on-2", [BatteryReading(5, "S-2", 9_800, 10_000)], token=rb)
    catalog.set_rider_status(db, "RC", RiderStatus.BLOCKED)
    assert swaps.authorize(db, "ST1", rc).reason == "rider_blocked"
    card = IdToken(TokenType.RFID, "CARD-B")
    assert swaps.authorize(db, "ST1", card).reason == "no_credit"
    return db


async def test_swaps_served_offline_and_replayed_bill_as_online_but_the_overdraw_owed(
    db: Database,
    clock: ManualClock,
    live_server: LiveServer,
    migrated_sqlite_file: Path,
    tmp_path: Path,
) -> None:
    state = station_state(seed(db))
    online: Online = await go_online(live_server, state)
    pushed = await asyncio.to_thread(local_lists.push, db, "ST1", full=True)
    assert (pushed.update_type, pushed.version, pushed.entries) == ("Full", 1, 7)
    assert state.status_of("BatterySerial", "C-0") == "Accepted"
    assert state.status_of("BatterySerial", "S-1") == "Blocked"  # in a slot: nobody's key

    # Staff block RC: the server sends ST1 the change, without being asked.
    catalog.set_rider_status(db, "RC", RiderStatus.BLOCKED)
    await eventually(lambda: state.status_of("BatterySerial", "C-0") == "Blocked", "C-0 blocked")
    await eventually(recorded_blocked(db, "C-0"), "ST1's list recorded with C-0 blocked")
    assert state.updates[-1][1] == "Differential"

    await online.close()
    t1, t2, t3, t4 = (START + timedelta(minutes=m) for m in (10, 20, 30, 40))
    answers = [
        state.serve_offline(key("A-0"), PackInSlot("A-0", 20.0), t1),
        state.serve_offline(key("B-0"), PackInSlot("B-0", 30.0), t2),  # beyond RB's allowance
        state.serve_offline(key("C-0"), PackInSlot("C-0", 40.0), t3),  # its list says Blocked
        state.serve_offline({"idToken": "CARD-B", "type": "ISO14443"}, None, t4),  # limit used
    ]
    assert answers == ["Accepted", "Accepted", "Blocked", "NoCredit"]
    assert len(state.queue) == 4

    clock.set(START + timedelta(hours=1))
    online = await go_online(live_server, state)
    assert not state.queue

    offline_ledger = snapshot(db)
    with db.engine.connect() as connection:
        assert check_ledger(connection).ok
    assert alert_kinds(db) == ["offline_overdraw"]

    # The same swaps online: the same ledger, but for the delivery RB bought on credit (owed,
    # 1,250 KRW) where online RB paid for it (cash).
    other = online_network(migrated_sqlite_file, tmp_path / "online")
    try:
        online_balances, online_transfers = account_balances(other), transfer_kinds(other)
        assert alert_kinds(other) == []
    finally:
        other.dispose()
    offline_balances = dict(offline_ledger[0])
    cash, owed = ("KRW", "cash", ""), ("KRW", "receivable", "RB")
    assert offline_balances.pop(owed) == (0, 1_250, 0, 0)
    assert online_balances.pop(owed) == (0, 0, 0, 0)
    offline_cash, online_cash = offline_balances.pop(cash), online_balances.pop(cash)
    assert online_cash[1] - offline_cash[1] == 1_250
    assert offline_balances == online_balances
    credit: Transfers = Counter(
        {("KRW", "offline_credit", 1_250, 0, "RB"): 1, ("count", "offline_credit", 1, 0, "RB"): 1}
    )
    paid: Transfers = Counter({("KRW", "top_up", 1_250, 0, "RB"): 1, ("count", "top_up", 1, 0, "RB"): 1})
    assert offline_ledger[1] - credit == online_transfers - paid
    assert offline_ledger[1] & credit == credit

    # The lists follow the swaps: S-1 is RA's key now, A-0 nobody's.
    await eventually(list_is_current(db, state), "ST1's list follows the replayed swaps")
    assert state.entries[("BatterySerial", "S-1")].group == "RA"

    # The station lost the answers and replays everything again: nothing changes.
    await online.close()
    again = await go_online(live_server, state, replay=False)
    await replay_again(again.station, state)
    assert snapshot(db) == offline_ledger
    await again.close()


async def test_a_station_that_serves_a_pack_its_list_blocks_is_flagged(
    db: Database, clock: ManualClock, live_server: LiveServer
) -> None:
    state = station_state(seed(db))
    state.honour_blocked = False  # a station that ignores its list
    online = await go_online(live_server, state)
    await asyncio.to_thread(local_lists.push, db, "ST1", full=True)
    catalog.set_rider_status(db, "RC", RiderStatus.BLOCKED)
    await eventually(lambda: state.status_of("BatterySerial", "C-0") == "Blocked", "C-0 blocked")
    await eventually(recorded_blocked(db, "C-0"), "ST1's list recorded with C-0 blocked")
    await online.close()

    served = state.serve_offline(key("C-0"), PackInSlot("C-0", 40.0), START + timedelta(minutes=5))
    assert served == "Accepted"
    clock.set(START + timedelta(hours=1))
    online = await go_online(live_server, state)
    # The swap is billed (the pack is gone with RC), and flagged once for the swap.
    assert alert_kinds(db) == ["offline_blocked_key"]
    with db.engine.connect() as connection:
        holder = connection.execute(
            sa.select(t.packs.c.rider_id).where(t.packs.c.serial == "S-1")
        ).scalar_one()
    assert holder == "RC"
    await online.close()


async def test_list_updates_are_debounced_per_station(db: Database, live_server: LiveServer) -> None:
    """Changes in quick succession reach the station in few differential updates, never two
    within the debounce interval, and the station ends with the list wanted."""
    from swapd.gateway.local_lists import DEBOUNCE_S

    state = station_state(seed(db))
    online = await go_online(live_server, state)
    await asyncio.to_thread(local_lists.push, db, "ST1", full=True)
    sent_before = len(state.updates)
    for n in range(8):
        catalog.add_token(db, TokenType.RFID, f"CARD-{n}", rider_id="RA")
        await asyncio.sleep(0.25)
    await eventually(list_is_current(db, state), "the eight cards reach ST1")
    await asyncio.sleep(DEBOUNCE_S + 0.5)  # nothing more to send: nothing more is sent
    updates = state.updates[sent_before:]
    assert all(kind == "Differential" for _at, kind, _version in updates)
    assert 1 <= len(updates) <= 3  # eight changes over about two seconds
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(updates)]
    assert all(gap >= DEBOUNCE_S - 0.1 for gap in gaps), (gaps, updates)
    assert [v for _at, _kind, v in updates] == list(range(2, 2 + len(updates)))
    await online.close()


async def test_a_pack_reported_at_two_stations_is_placed_by_the_newer_reading(
    db: Database, clock: ManualClock, live_server: LiveServer
) -> None:
    """R holds P. ST1, offline, takes P back from R (R gets Q), then hands P to R2 (who brings
    P2 back). R2 returns P at ST2, online, before ST1 is back. ST1's replay finds P at ST2 since
    later than its readings: they are flagged and change nothing, P stays at ST2, Q is R's."""
    passwords = net.network(db, station_ids=("ST1", "ST2"), with_passwords=True)
    for slot_no, serial, soc_pct in ((1, "P", 100), (2, "P2", 100), (3, "Q", 95)):
        net.pack(db, serial, soc_pct=soc_pct, station_id="ST1", slot_no=slot_no)
    for rider_id, serial, slot_no in (("R", "P", 1), ("R2", "P2", 2)):
        net.rider(db, rider_id, top_up_minor=10_000, payment_ref=f"pay-{rider_id}")
        app = IdToken(TokenType.APP, rider_id)
        assert swaps.authorize(db, "ST1", app).offered_slots == [slot_no]
        reading = BatteryReading(slot_no, serial, 10_000, 10_000)
        swaps.battery_out(db, "ST1", f"issue-{rider_id}", [reading], token=app)
    state = StationState("ST1", passwords["ST1"], {3: PackInSlot("Q", 95.0)})
    online = await go_online(live_server, state)
    await asyncio.to_thread(local_lists.push, db, "ST1", full=True)
    await online.close()

    at = [START + timedelta(minutes=m) for m in (10, 20)]
    assert state.serve_offline(key("P"), PackInSlot("P", 95.0), at[0]) == "Accepted"  # R gets Q
    assert state.serve_offline(key("P2"), PackInSlot("P2", 30.0), at[1]) == "Accepted"  # R2: P
    clock.set(START + timedelta(minutes=30))
    live = swaps.battery_in(db, "ST2", "live", [BatteryReading(4, "P", 5_000, 10_000)], token=None)
    assert live.packs[0].rider_id == "R"  # swapd has P with R until now

    clock.set(START + timedelta(hours=1))
    online = await go_online(live_server, state)
    with db.engine.connect() as connection:
        p = t.packs.c
        places = dict(
            connection.execute(
                sa.select(
                    p.serial,
                    sa.func.coalesce(p.rider_id, p.station_id + ":" + sa.cast(p.slot_no, sa.String)),
                )
            ).all()
        )
        assert check_ledger(connection).ok
    assert places == {"P": "ST2:4", "Q": "R", "P2": "ST1:2"}
    assert alert_kinds(db) == ["offline_conflict", "offline_conflict"]
    await online.close()

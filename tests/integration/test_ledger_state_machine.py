"""Random sequences of top-ups, swaps, returns, repeats, timeouts, refunds and adjustments.

After every step: each ledger sums to zero and cached balances equal those recomputed from the
transfers (``check_ledger``), no limited balance is below zero, every pack is in exactly one
place, a rider's prepaid money is zero whenever their allowance is, and a repeated message
changes nothing at all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from swapd.domain.errors import DomainError
from swapd.domain.plans import Plan, PlanKind
from swapd.domain.quantities import Unit
from swapd.domain.riders import IdToken, TokenType
from swapd.readmodels.money import rider_balance
from swapd.services import catalog, payments, swaps
from swapd.services.swaps import BatteryReading
from swapd.store import schema as t
from swapd.store.database import Database, ManualClock
from swapd.store.engine import make_engine
from swapd.store.ledger_check import check_ledger
from tests import network as net
from tests import soak
from tests.conftest import START, _empty_tables, copy_of_migrated_sqlite

pytestmark = pytest.mark.soak

PLANS = [
    Plan("energy", PlanKind.PREPAID_ENERGY, Unit.ENERGY_WH, "KRW", 300, 1000),
    Plan("time", PlanKind.PREPAID_TIME, Unit.TIME_S, "KRW", 2000, 3600, time_hold_s=1800),
    Plan("bundle", PlanKind.PREPAID_DELIVERIES, Unit.DELIVERIES, "KRW", 1250, 1),
    Plan(
        "sub",
        PlanKind.SUBSCRIPTION,
        Unit.ENERGY_WH,
        "KRW",
        400,
        1000,
        fee_minor=9_000,
        included_units=20_000,
    ),
]
RIDERS = {
    "R-energy": "energy",
    "R-energy2": "energy",
    "R-time": "time",
    "R-bundle": "bundle",
    "R-sub": "sub",
}
STATIONS = {"ST-A": 4, "ST-B": 5}


def snapshot(db: Database) -> list[Any]:
    with db.engine.connect() as connection:
        return [
            sorted(map(tuple, connection.execute(sa.select(table))))
            for table in t.metadata.sorted_tables
        ]


class SwapNetwork(RuleBasedStateMachine):
    url: str = ""

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(START)
        self.db = Database(make_engine(self.url), self.clock)
        self.ids = itertools.count()
        # Every message applied, with its first result, for replays.
        self.sent: list[tuple[str, Callable[[], Any], Any]] = []
        self.offers: dict[int, tuple[str, str]] = {}  # swap id -> (station, rider)

    def teardown(self) -> None:
        self.db.dispose()

    @initialize()
    def network(self) -> None:
        db = self.db
        net.pack_model(db)
        net.plans(db, *PLANS)
        for station, slots in STATIONS.items():
            net.station(db, station, slot_count=slots)
            for slot in range(1, slots - 1):
                net.pack(
                    db,
                    f"{station}-{slot}",
                    soc_pct=100 - 3 * slot,
                    soh_pct=99,
                    station_id=station,
                    slot_no=slot,
                )
        for rider, plan in RIDERS.items():
            net.rider(db, rider, plan_id=plan, vehicle_packs=2 if rider == "R-bundle" else 1)
        net.card(db, "R-energy2", "CARD-1")
        payments.subscribe(db, "R-sub", "sub-pay-1")
        for rider, plan in RIDERS.items():
            if plan != "sub":
                payments.top_up(db, rider, 5_000, f"{rider}-opening")
        self.pack_count = self._count(t.packs)

    # -- helpers ------------------------------------------------------------------------------

    def _count(self, table: sa.Table) -> int:
        with self.db.engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

    def _send(self, label: str, message: Callable[[], Any]) -> Any:
        """Apply a station/payment message and remember it for a later replay."""
        try:
            result = message()
        except DomainError:
            return None
        self.sent.append((label, message, result))
        return result

    def _empty_slots(self, station: str) -> list[int]:
        with self.db.engine.connect() as connection:
            rows = connection.execute(
                sa.select(t.slots.c.slot_no).where(
                    t.slots.c.station_id == station, t.slots.c.pack_serial.is_(None)
                )
            )
            return sorted(r.slot_no for r in rows)

    # -- rules --------------------------------------------------------------------------------

    @rule(rider=st.sampled_from(sorted(RIDERS)), amount=st.integers(1, 20_000), ref=st.integers(0, 5))
    def top_up(self, rider: str, amount: int, ref: int) -> None:
        self._send("top-up", lambda: payments.top_up(self.db, rider, amount, f"{rider}-pay-{ref}"))

    @rule(
        rider=st.sampled_from(sorted(RIDERS)),
        station=st.sampled_from(sorted(STATIONS)),
        how=st.sampled_from(["app", "serial", "card"]),
    )
    def authorize(self, rider: str, station: str, how: str) -> None:
        if how == "serial":
            held = rider_balance(self.db, rider).packs_held
            if not held:
                return
            token = IdToken(TokenType.BATTERY_SERIAL, held[0])
        elif how == "card":
            token = IdToken(TokenType.RFID, "CARD-1")
        else:
            token = IdToken(TokenType.APP, rider)
        result = swaps.authorize(self.db, station, token)
        if result.accepted and result.swap_id is not None and result.rider_id is not None:
            self.offers[result.swap_id] = (station, result.rider_id)

    @rule(rider=st.sampled_from(sorted(RIDERS)), station=st.sampled_from(sorted(STATIONS)))
    def take_pack(self, rider: str, station: str) -> None:
        """The common path in one step: app authorisation, then the rider takes what is offered."""
        token = IdToken(TokenType.APP, rider)
        decision = swaps.authorize(self.db, station, token)
        if not decision.accepted or not decision.offered:
            return
        readings = [BatteryReading(o.slot_no, o.serial, 9_800, 9_900) for o in decision.offered]
        request = f"req-{next(self.ids)}"
        self._send("out", lambda: swaps.battery_out(self.db, station, request, readings, token=token))

    @precondition(lambda self: bool(self.offers))
    @rule(data=st.data(), outcome=st.sampled_from(["take", "timeout", "abandon"]))
    def finish_offer(self, data: st.DataObject, outcome: str) -> None:
        swap_id = data.draw(st.sampled_from(sorted(self.offers)))
        station, rider = self.offers.pop(swap_id)
        offer = swaps.authorize  # keeps mypy quiet about the lambda below
        del offer
        with self.db.engine.connect() as connection:
            offered = connection.execute(
                sa.select(t.swap_offers.c.slot_no, t.swap_offers.c.pack_serial).where(
                    t.swap_offers.c.swap_id == swap_id, t.swap_offers.c.state == "offered"
                )
            ).all()
        request = f"req-{next(self.ids)}"
        token = IdToken(TokenType.APP, rider)
        if outcome == "take" and offered:
            readings = [BatteryReading(r.slot_no, r.pack_serial, 9_500, 9_900) for r in offered]
            self._send(
                "out", lambda: swaps.battery_out(self.db, station, request, readings, token=token)
            )
        elif outcome == "timeout":
            self._send(
                "timeout", lambda: swaps.battery_out_timeout(self.db, station, request, token=token)
            )
        else:
            swaps.abandon_offer(self.db, swap_id)

    @rule(
        rider=st.sampled_from(sorted(RIDERS)),
        station=st.sampled_from(sorted(STATIONS)),
        soc=st.integers(0, 10_000),
    )
    def return_pack(self, rider: str, station: str, soc: int) -> None:
        held = rider_balance(self.db, rider).packs_held
        free = self._empty_slots(station)
        if not held or not free:
            return
        request = f"req-{next(self.ids)}"
        readings = [BatteryReading(free[0], held[0], soc, 9_900)]
        self._send("in", lambda: swaps.battery_in(self.db, station, request, readings))

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        # Stations resend their latest messages far more often than old ones.
        index = data.draw(st.one_of(st.just(len(self.sent) - 1), st.integers(0, len(self.sent) - 1)))
        label, message, first = self.sent[index]
        before = snapshot(self.db)
        result = message()
        assert result.repeated, f"a replayed {label} was applied again"
        assert dataclasses.replace(result, repeated=False) == dataclasses.replace(
            first, repeated=False
        ), f"a replayed {label} answered differently"
        assert snapshot(self.db) == before, f"a replayed {label} changed the database"
        event(f"replayed {label}")

    @rule(rider=st.sampled_from(sorted(RIDERS)), amount=st.integers(1, 5_000), key=st.integers(0, 3))
    def refund(self, rider: str, amount: int, key: int) -> None:
        self._send(
            "refund",
            lambda: payments.refund(
                self.db, rider, amount, reason="test", actor="prop", key=f"{rider}-refund-{key}"
            ),
        )

    @rule(
        rider=st.sampled_from(sorted(RIDERS)),
        units=st.integers(-3_000, 3_000).filter(bool),
        key=st.integers(0, 3),
    )
    def adjust(self, rider: str, units: int, key: int) -> None:
        self._send(
            "adjust",
            lambda: payments.adjust(
                self.db, rider, units, reason="test", actor="prop", key=f"{rider}-adjust-{key}"
            ),
        )

    @rule(minutes=st.integers(1, 600))
    def advance(self, minutes: int) -> None:
        self.clock.set(self.clock.now() + timedelta(minutes=minutes))

    @rule(station=st.sampled_from(sorted(STATIONS)), slot=st.integers(1, 5), soc=st.integers(0, 100))
    def charge(self, station: str, slot: int, soc: int) -> None:
        with contextlib.suppress(DomainError):
            catalog.report_soc(self.db, station, slot, soc)

    @rule(
        station=st.sampled_from(sorted(STATIONS)),
        bad=st.sampled_from(["slot", "soc", "occupied", "amount"]),
    )
    def bad_input(self, station: str, bad: str) -> None:
        occupied = sorted(set(range(1, STATIONS[station] + 1)) - set(self._empty_slots(station)))
        if bad == "occupied" and not occupied:
            return
        before = snapshot(self.db)
        actions: dict[str, Callable[[], Any]] = {
            "slot": lambda: swaps.battery_in(
                self.db, station, "bad", [BatteryReading(99, "ST-A-1", 0, 0)]
            ),
            "soc": lambda: BatteryReading.parse(1, "ST-A-1", 100.5, 90),
            "occupied": lambda: swaps.battery_in(
                self.db, station, "bad", [BatteryReading(occupied[0], "X-1", 0, 0)]
            ),
            "amount": lambda: payments.top_up(self.db, "R-energy", -1, "bad"),
        }
        with pytest.raises(DomainError):
            actions[bad]()
        assert snapshot(self.db) == before

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def ledger_reconciles(self) -> None:
        if not hasattr(self, "pack_count"):
            return
        with self.db.engine.connect() as connection:
            report = check_ledger(connection)
        assert report.ok, report.problems

    @invariant()
    def every_pack_in_one_place(self) -> None:
        if not hasattr(self, "pack_count"):
            return
        with self.db.engine.connect() as connection:
            packs = connection.execute(sa.select(t.packs)).all()
            slot_of = {
                r.pack_serial: (r.station_id, r.slot_no)
                for r in connection.execute(sa.select(t.slots).where(t.slots.c.pack_serial.is_not(None)))
            }
            open_possession = {
                r.pack_serial: r.rider_id
                for r in connection.execute(
                    sa.select(t.possessions).where(t.possessions.c.at_in.is_(None))
                )
            }
        assert len(packs) == self.pack_count
        for pack in packs:
            if pack.status == "in_slot":
                assert slot_of.get(pack.serial) == (pack.station_id, pack.slot_no)
                assert pack.serial not in open_possession
            elif pack.status == "with_rider":
                assert open_possession.get(pack.serial) == pack.rider_id
                assert pack.serial not in slot_of
            else:
                assert pack.serial not in slot_of and pack.serial not in open_possession

    @invariant()
    def money_and_allowance_reach_zero_together(self) -> None:
        if not hasattr(self, "pack_count"):
            return
        for rider in RIDERS:
            balance = rider_balance(self.db, rider)
            assert balance.available_units >= 0 and balance.prepaid_minor >= 0
            if balance.posted_units == 0:
                assert balance.prepaid_minor == 0, balance


def test_random_sequences_on_sqlite(migrated_sqlite_file: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        counter = itertools.count()

        class OnSqlite(SwapNetwork):
            def __init__(self) -> None:
                directory = Path(scratch) / f"m{next(counter)}"
                directory.mkdir()
                type(self).url = copy_of_migrated_sqlite(migrated_sqlite_file, directory)
                super().__init__()

        runner = OnSqlite.TestCase
        runner.settings = settings(
            max_examples=soak.size(12, 30),
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        runner().runTest()


@pytest.mark.postgres
def test_random_sequences_on_postgresql(pg_url: str) -> None:
    class OnPostgres(SwapNetwork):
        def __init__(self) -> None:
            _empty_tables(pg_url)
            type(self).url = pg_url
            super().__init__()

    runner = OnPostgres.TestCase
    runner.settings = settings(
        max_examples=soak.size(5, 10),
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    runner().runTest()

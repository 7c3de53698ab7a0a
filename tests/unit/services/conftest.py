"""One network, two stores: the swap path's tests run on the in-memory unit of work
(``tests/fakes.py``, milliseconds a test) and on SQLite through the real ``Database``, with the
same assertions. The memory runs are the fast unit tests; the SQLite runs keep the fake honest:
a rule the fake got wrong fails on one store and not on the other.

Only the set-up differs: ``MemoryNetwork`` writes the rows into the fake's state, ``SqlNetwork``
goes through the catalog and payment services. Everything a test checks it reads through the
ports (``Network.db``), the same way on both.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pytest
import sqlalchemy as sa
from tests import network as net
from tests.conftest import copy_of_migrated_sqlite
from tests.fakes import MemoryStore
from tests.plans import BUNDLE, ENERGY, SUB, TIME

from swapd.domain.pack_choice import PackPolicy
from swapd.domain.packs import Pack, PackStatus
from swapd.domain.plans import Plan
from swapd.domain.quantities import percent_to_bp
from swapd.domain.riders import Rider, TokenOwner, TokenType
from swapd.domain.right_sizing import Consent
from swapd.domain.stations import Station
from swapd.services import catalog, pack_policy, payments
from swapd.services.money import rider_accounts
from swapd.services.ports import Transactions, UnitOfWork
from swapd.store import schema as t
from swapd.store.database import Database, ManualClock
from swapd.store.engine import make_engine

START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
FULLEST_FIRST = PackPolicy()  # no weights: the fullest pack first
PLANS = {plan.id: plan for plan in (ENERGY, TIME, BUNDLE, SUB)}
NOMINAL_WH = net.MODEL_NOMINAL_WH


@dataclass(frozen=True)
class Balance:
    posted_units: int
    held_units: int
    available_units: int
    prepaid_minor: int


class Network(Protocol):
    db: Transactions
    clock: ManualClock

    def station(self, station_id: str, slot_count: int = 8) -> None: ...
    def pack(
        self,
        serial: str,
        *,
        soc_pct: float = 100,
        soh_pct: float = 100,
        station_id: str | None = None,
        slot_no: int | None = None,
    ) -> None: ...
    def rider(
        self,
        rider_id: str,
        plan: Plan = ENERGY,
        *,
        vehicle_packs: int = 1,
        top_up_minor: int | None = None,
    ) -> None: ...
    def card(self, uid: str, *, rider_id: str | None = None, operator: bool = False) -> None: ...
    def alerts(self) -> list[str]: ...
    def right_size(
        self, station_id: str, floor_bp: int | None, policy: PackPolicy = FULLEST_FIRST
    ) -> None: ...
    def consent(self, rider_id: str, consent: Consent) -> None: ...


class MemoryNetwork:
    def __init__(self) -> None:
        self.clock = ManualClock(START)
        self.store = MemoryStore(self.clock.now)
        self.db: Transactions = self.store
        self.store.state.plans.update(PLANS)

    def station(self, station_id: str, slot_count: int = 8) -> None:
        self.store.state.stations[station_id] = Station(station_id, slot_count)
        for slot_no in range(1, slot_count + 1):
            self.store.state.slots[(station_id, slot_no)] = None

    def pack(
        self,
        serial: str,
        *,
        soc_pct: float = 100,
        soh_pct: float = 100,
        station_id: str | None = None,
        slot_no: int | None = None,
    ) -> None:
        status = PackStatus.IN_STOCK if station_id is None else PackStatus.IN_SLOT
        soc_bp, soh_bp = percent_to_bp(soc_pct, "soc"), percent_to_bp(soh_pct, "soh")
        state = self.store.state
        state.packs[serial] = Pack(
            serial, net.MODEL, NOMINAL_WH, soh_bp, soc_bp, 0, status, station_id, slot_no
        )
        if station_id is not None and slot_no is not None:
            assert state.slots[(station_id, slot_no)] is None
            state.slots[(station_id, slot_no)] = serial

    def rider(
        self,
        rider_id: str,
        plan: Plan = ENERGY,
        *,
        vehicle_packs: int = 1,
        top_up_minor: int | None = None,
    ) -> None:
        self.store.state.riders[rider_id] = Rider(rider_id, plan.id, vehicle_packs=vehicle_packs)
        if plan.is_subscription:
            self.store.state.consumed_units[rider_id] = 0
        if top_up_minor is not None:
            payments.top_up(self.db, rider_id, top_up_minor, f"pay-{rider_id}")

    def card(self, uid: str, *, rider_id: str | None = None, operator: bool = False) -> None:
        self.store.state.tokens[(TokenType.RFID.value, uid)] = TokenOwner(rider_id, operator)

    def alerts(self) -> list[str]:
        return [kind for kind, *_ in self.store.state.alerts]

    def right_size(
        self, station_id: str, floor_bp: int | None, policy: PackPolicy = FULLEST_FIRST
    ) -> None:
        station = self.store.state.stations[station_id]
        self.store.state.stations[station_id] = replace(
            station, right_size_floor_bp=floor_bp, policy=policy
        )

    def consent(self, rider_id: str, consent: Consent) -> None:
        rider = self.store.state.riders[rider_id]
        self.store.state.riders[rider_id] = replace(rider, right_size_consent=consent)


class SqlNetwork:
    def __init__(self, database: Database, clock: ManualClock) -> None:
        self.database = database
        self.db: Transactions = database
        self.clock = clock
        net.pack_model(database)
        net.plans(database, *PLANS.values())

    def station(self, station_id: str, slot_count: int = 8) -> None:
        net.station(self.database, station_id, slot_count=slot_count)

    def pack(
        self,
        serial: str,
        *,
        soc_pct: float = 100,
        soh_pct: float = 100,
        station_id: str | None = None,
        slot_no: int | None = None,
    ) -> None:
        net.pack(
            self.database,
            serial,
            soc_pct=soc_pct,
            soh_pct=soh_pct,
            station_id=station_id,
            slot_no=slot_no,
        )

    def rider(
        self,
        rider_id: str,
        plan: Plan = ENERGY,
        *,
        vehicle_packs: int = 1,
        top_up_minor: int | None = None,
    ) -> None:
        net.rider(
            self.database,
            rider_id,
            plan_id=plan.id,
            vehicle_packs=vehicle_packs,
            top_up_minor=top_up_minor,
            payment_ref=f"pay-{rider_id}",
        )

    def card(self, uid: str, *, rider_id: str | None = None, operator: bool = False) -> None:
        catalog.add_token(self.database, TokenType.RFID, uid, rider_id=rider_id, operator=operator)

    def alerts(self) -> list[str]:
        with self.database.engine.connect() as connection:
            rows = connection.execute(sa.select(t.alerts.c.kind).order_by(t.alerts.c.id))
            return [str(kind) for (kind,) in rows]

    def right_size(
        self, station_id: str, floor_bp: int | None, policy: PackPolicy = FULLEST_FIRST
    ) -> None:
        edit = pack_policy.PackSettingsEdit(
            set_floor=True,
            floor_bp=floor_bp,
            soc_band_bp=policy.soc_band_bp,
            rest_weight=policy.rest_weight,
            cycles_weight=policy.cycles_weight,
            soh_weight=policy.soh_weight,
            retirement_margin_bp=policy.retirement_margin_bp,
        )
        pack_policy.edit_station_settings(self.database, "test", station_id, edit, "test set-up")

    def consent(self, rider_id: str, consent: Consent) -> None:
        pack_policy.set_rider_consent(self.database, rider_id, consent.value)


@pytest.fixture(params=["memory", "sqlite"])
def network(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MemoryNetwork | SqlNetwork]:
    if request.param == "memory":
        yield MemoryNetwork()
        return
    url = copy_of_migrated_sqlite(request.getfixturevalue("migrated_sqlite_file"), tmp_path)
    clock = ManualClock(START)
    database = Database(make_engine(url), clock)
    yield SqlNetwork(database, clock)
    database.dispose()


# -- reads through the ports, the same on both stores ------------------------------------------


def balance(network: Network, rider_id: str) -> Balance:
    def work(uow: UnitOfWork) -> Balance:
        rider = uow.repo.rider(rider_id)
        assert rider is not None
        plan = uow.repo.plan(rider.plan_id)
        assert plan is not None
        accounts = rider_accounts(uow.book, rider_id, plan)
        allowance = accounts.allowance
        return Balance(
            allowance.credit_balance,
            allowance.held,
            allowance.available,
            accounts.prepaid.credit_balance,
        )

    return network.db.write(work)


def pack(network: Network, serial: str) -> Pack:
    found = network.db.read(lambda uow: uow.repo.pack(serial))
    assert found is not None
    return found


def slot_holds(network: Network, station_id: str, slot_no: int) -> str | None:
    slot = network.db.read(lambda uow: uow.repo.slot(station_id, slot_no))
    assert slot is not None
    return slot.pack_serial

"""Bad input is refused with a clear error and writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from swapd.domain.errors import Conflict, DomainError, InvalidInput, NotFound
from swapd.domain.plans import Plan, PlanKind
from swapd.domain.quantities import Unit
from swapd.domain.riders import IdToken, TokenType
from swapd.services import catalog, payments, swaps
from swapd.services.swaps import BatteryReading
from swapd.store import schema as t
from swapd.store.database import Database
from tests import network as net


@pytest.fixture
def network(db: Database) -> Database:
    net.network(db, station_ids=("ST1",), slot_count=4)
    net.packs_in_slots(db, "ST1", (1, 2), serial_format="B-{slot_no}")
    net.rider(db, "R1", top_up_minor=10_000, payment_ref="pay-1")
    swaps.authorize(db, "ST1", IdToken(TokenType.APP, "R1"))
    swaps.battery_out(
        db, "ST1", "o1", [BatteryReading(1, "B-1", 10_000, 10_000)], token=IdToken(TokenType.APP, "R1")
    )
    return db


def _snapshot(db: Database) -> list[object]:
    with db.engine.connect() as connection:
        return [
            sorted(tuple(row) for row in connection.execute(sa.select(table)))
            for table in t.metadata.sorted_tables
        ]


def _reading(slot: object = 3, serial: object = "B-1", soc: object = 20, soh: object = 100) -> Any:
    return lambda: BatteryReading.parse(slot, serial, soc, soh)


def _return(reading: Callable[[], BatteryReading]) -> Callable[[Database], object]:
    return lambda db: swaps.battery_in(db, "ST1", "in-1", [reading()])


CASES: dict[str, tuple[Callable[[Database], object], type[DomainError], str]] = {
    "top-up unknown rider": (
        lambda db: payments.top_up(db, "NOPE", 1000, "p2"),
        NotFound,
        "unknown rider",
    ),
    "top-up negative": (
        lambda db: payments.top_up(db, "R1", -5, "p2"),
        InvalidInput,
        "positive integer",
    ),
    "top-up zero": (lambda db: payments.top_up(db, "R1", 0, "p2"), InvalidInput, "positive integer"),
    "top-up float": (lambda db: payments.top_up(db, "R1", 10.5, "p2"), InvalidInput, "positive integer"),  # type: ignore[arg-type]
    "top-up string": (
        lambda db: payments.top_up(db, "R1", "100", "p2"),
        InvalidInput,
        "positive integer",
    ),  # type: ignore[arg-type]
    "top-up bool": (lambda db: payments.top_up(db, "R1", True, "p2"), InvalidInput, "positive integer"),
    "top-up same ref other amount": (
        lambda db: payments.top_up(db, "R1", 5_000, "pay-1"),
        Conflict,
        "different",
    ),
    "refund unknown rider": (
        lambda db: payments.refund(db, "NOPE", 10, reason="x", actor="a", key="k"),
        NotFound,
        "unknown rider",
    ),
    "refund negative": (
        lambda db: payments.refund(db, "R1", -10, reason="x", actor="a", key="k"),
        InvalidInput,
        "positive",
    ),
    "refund too much": (
        lambda db: payments.refund(db, "R1", 20_000, reason="x", actor="a", key="k"),
        Conflict,
        "prepaid",
    ),
    "adjust zero": (
        lambda db: payments.adjust(db, "R1", 0, reason="x", actor="a", key="k"),
        InvalidInput,
        "non-zero",
    ),
    "adjust below zero": (
        lambda db: payments.adjust(db, "R1", -40_000, reason="x", actor="a", key="k"),
        Conflict,
        "free",
    ),
    "app token unknown rider": (
        lambda db: swaps.authorize(db, "ST1", IdToken(TokenType.APP, "NOPE")),
        NotFound,
        "unknown rider",
    ),
    "soc above 100": (_return(_reading(soc=100.5)), InvalidInput, "between 0 and 100"),
    "soc negative": (_return(_reading(soc=-1)), InvalidInput, "between 0 and 100"),
    "soc nan": (_return(_reading(soc=float("nan"))), InvalidInput, "between 0 and 100"),
    "soc three decimals": (_return(_reading(soc="20.123")), InvalidInput, "two decimals"),
    "soh above 100": (_return(_reading(soh=101)), InvalidInput, "between 0 and 100"),
    "slot zero": (_return(_reading(slot=0)), InvalidInput, "slot 0 does not exist"),
    "slot above S": (_return(_reading(slot=5)), InvalidInput, "slot 5 does not exist"),
    "slot not integer": (_return(_reading(slot="3")), InvalidInput, "slot number must be an integer"),
    "occupied slot": (_return(_reading(slot=2)), Conflict, "already holds pack B-2"),
    "serial too long": (_return(_reading(serial="S" * 51)), InvalidInput, "1-50 printable"),
    "serial with space": (_return(_reading(serial="B 1")), InvalidInput, "1-50 printable"),
    "unknown station": (
        lambda db: swaps.battery_in(db, "NOPE", "r", [BatteryReading(1, "B-1", 0, 0)]),
        NotFound,
        "unknown station",
    ),
    "no batteries": (lambda db: swaps.battery_in(db, "ST1", "r", []), InvalidInput, "1..8 packs"),
    "same pack twice": (
        lambda db: swaps.battery_in(
            db, "ST1", "r", [BatteryReading(3, "B-1", 0, 0), BatteryReading(4, "B-1", 0, 0)]
        ),
        InvalidInput,
        "same pack reported twice",
    ),
    "request id too long": (
        lambda db: swaps.battery_in(db, "ST1", "r" * 65, [BatteryReading(3, "B-1", 0, 0)]),
        InvalidInput,
        "requestId",
    ),
    "register into occupied slot": (
        lambda db: catalog.register_pack(db, "B-9", "G2", station_id="ST1", slot_no=2),
        Conflict,
        "holds pack B-2",
    ),
    "register outside slots": (
        lambda db: catalog.register_pack(db, "B-9", "G2", station_id="ST1", slot_no=9),
        InvalidInput,
        "slots 1..4",
    ),
    "register unknown model": (
        lambda db: catalog.register_pack(db, "B-9", "G9"),
        NotFound,
        "unknown pack model",
    ),
    "duplicate pack": (
        lambda db: catalog.register_pack(db, "B-2", "G2"),
        Conflict,
        "registered already",
    ),
    "duplicate station": (lambda db: catalog.add_station(db, "ST1", 4), Conflict, "exists already"),
    "station with one slot": (
        lambda db: catalog.add_station(db, "ST9", 1),
        InvalidInput,
        "2..512 slots",
    ),
    "duplicate rider": (lambda db: catalog.add_rider(db, "R1", "energy"), Conflict, "exists already"),
    "rider unknown plan": (lambda db: catalog.add_rider(db, "R9", "nope"), NotFound, "unknown plan"),
    "model zero wh": (lambda db: catalog.add_pack_model(db, "G0", 0), InvalidInput, "nominal_wh"),
    "plan zero price": (
        lambda db: catalog.add_plan(
            db, Plan("p0", PlanKind.PREPAID_ENERGY, Unit.ENERGY_WH, "KRW", 0, 1000)
        ),
        InvalidInput,
        "price_minor",
    ),
    "plan unknown currency": (
        lambda db: catalog.add_plan(
            db, Plan("p1", PlanKind.PREPAID_ENERGY, Unit.ENERGY_WH, "XXX", 1, 1)
        ),
        InvalidInput,
        "unknown currency",
    ),
    "restock pack with rider": (
        lambda db: catalog.restock(db, "ST1", 3, "B-1", soc=50),
        Conflict,
        "with rider R1",
    ),
    "report soc empty slot": (lambda db: catalog.report_soc(db, "ST1", 4, 50), Conflict, "empty"),
    # A pack and an app token name their rider themselves: swaps never look them up as cards.
    "register a battery serial as a card": (
        lambda db: catalog.add_token(db, TokenType.BATTERY_SERIAL, "B-1", rider_id=None, operator=True),
        InvalidInput,
        "only RFID cards",
    ),
    "register an app token as a card": (
        lambda db: catalog.add_token(db, TokenType.APP, "R1", rider_id="R1"),
        InvalidInput,
        "only RFID cards",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_and_writes_nothing(network: Database, case: str) -> None:
    action, error, text = CASES[case]
    before = _snapshot(network)
    with pytest.raises(error) as raised:
        action(network)
    assert text in raised.value.message
    assert _snapshot(network) == before

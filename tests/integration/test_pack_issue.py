"""Issuing a rider their first pack outside a swap (services/issue.py), on each database.

An issue is a station hand-over started by staff: the same checks, the same hold and possession,
and the later return at a station is metered against that hold. A refusal writes nothing.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from swapd.domain.decision import RefusalReason
from swapd.domain.errors import Conflict
from swapd.domain.packs import PackStatus
from swapd.domain.riders import IdToken, RiderStatus, TokenType
from swapd.ledger.model import TransferCode, TransferFlags
from swapd.readmodels.alerts import recent_alerts as alerts
from swapd.readmodels.money import rider_balance, transfers_of
from swapd.readmodels.packs import all_packs
from swapd.services import catalog, payments, swaps
from swapd.services.issue import IssueRefused, issue_pack
from swapd.services.swaps import BatteryReading
from swapd.store import schema as t
from swapd.store.database import Database, ManualClock
from swapd.store.engine import make_engine, upgrade
from swapd.store.ledger_check import check_ledger
from tests import network as net


def _network(db: Database) -> None:
    """E1's network: B-0001 (SoC 98, SoH 95) in slot 3 of ST1; R1 has 33,333 Wh."""
    net.network(db)
    net.pack(db, "B-0001", soc_pct=98, soh_pct=95, station_id="ST1", slot_no=3)
    net.pack(db, "B-0002", station_id="ST1", slot_no=4)
    net.rider(db, "R1", top_up_minor=10_000, payment_ref="pay-1")


def _snapshot(db: Database) -> list[list[tuple[object, ...]]]:
    with db.engine.connect() as connection:
        return [
            sorted((tuple(row) for row in connection.execute(sa.select(table))), key=repr)
            for table in t.metadata.sorted_tables
        ]


def _ledger_ok(db: Database) -> None:
    with db.engine.connect() as connection:
        report = check_ledger(connection)
    assert report.ok, report.problems


def _units(db: Database, rider_id: str) -> tuple[int, int, int]:
    balance = rider_balance(db, rider_id)
    return (balance.posted_units, balance.held_units, balance.available_units)


def _pack(db: Database, serial: str) -> tuple[PackStatus, str | None, str | None, int | None]:
    pack = next(p for p in all_packs(db) if p.serial == serial)
    return (pack.status, pack.rider_id, pack.station_id, pack.slot_no)


def test_an_issue_places_the_hold_and_opens_the_possession_as_a_station_hand_over(
    db: Database,
) -> None:
    _network(db)
    issued = issue_pack(db, "ops", "B-0001", "R1")
    assert (issued.station_id, issued.slot_no, issued.hold_units, issued.unit) == ("ST1", 3, 1_583, "Wh")
    assert (issued.available_units, issued.repeated) == (31_750, False)
    assert _units(db, "R1") == (33_333, 1_583, 31_750)
    assert rider_balance(db, "R1").packs_held == ("B-0001",)
    assert _pack(db, "B-0001") == (PackStatus.WITH_RIDER, "R1", None, None)
    holds = [tr for tr in transfers_of(db, "R1") if tr.code is TransferCode.HOLD]
    assert [(tr.amount, tr.flags) for tr in holds] == [(1_583, TransferFlags.PENDING)]
    with db.engine.connect() as connection:
        slot = connection.execute(
            sa.select(t.slots.c.pack_serial).where(t.slots.c.station_id == "ST1", t.slots.c.slot_no == 3)
        ).scalar_one()
        possessions = connection.execute(sa.select(t.possessions)).all()
    assert slot is None
    opened = [(p.rider_id, p.pack_serial, p.station_out, p.slot_out) for p in possessions]
    assert opened == [("R1", "B-0001", "ST1", 3)]
    assert (possessions[0].soc_out_bp, possessions[0].soh_out_bp) == (9_800, 9_500)
    assert (possessions[0].hold_units, possessions[0].at_in) == (1_583, None)
    assert alerts(db) == []
    _ledger_ok(db)


def test_the_return_of_an_issued_pack_is_metered_against_its_hold(
    db: Database, clock: ManualClock
) -> None:
    _network(db)
    issue_pack(db, "ops", "B-0001", "R1")
    clock.set(clock.now() + timedelta(hours=2))
    returned = swaps.battery_in(db, "ST2", "r1", [BatteryReading(5, "B-0001", 2_000, 9_300)])
    (pack,) = returned.packs
    assert (pack.outcome, pack.rider_id, pack.usage_units, pack.charged_units) == (
        "returned",
        "R1",
        1_260,
        1_260,
    )
    assert (pack.beyond_units, pack.revenue_minor, pack.hold_units) == (0, 378, 1_583)
    assert _units(db, "R1") == (32_073, 0, 32_073)
    assert [tr.amount for tr in transfers_of(db, "R1") if tr.code is TransferCode.USAGE] == [1_260]
    assert _pack(db, "B-0001") == (PackStatus.IN_SLOT, None, "ST2", 5)
    _ledger_ok(db)


def test_issuing_the_same_pack_to_the_same_rider_again_is_one_possession_and_one_hold(
    db: Database,
) -> None:
    _network(db)
    first = issue_pack(db, "ops", "B-0001", "R1")
    before = _snapshot(db)
    again = issue_pack(db, "ops", "B-0001", "R1")
    assert again.repeated is True
    assert (again.station_id, again.slot_no, again.hold_units, again.swap_id) == (
        first.station_id,
        first.slot_no,
        first.hold_units,
        first.swap_id,
    )
    assert _snapshot(db) == before


def test_a_pack_held_by_one_rider_is_not_issued_to_another(db: Database) -> None:
    _network(db)
    catalog.add_rider(db, "R2", "energy")
    payments.top_up(db, "R2", 10_000, "pay-2")
    issue_pack(db, "ops", "B-0001", "R1")
    before = _snapshot(db)
    with pytest.raises(IssueRefused) as refused:
        issue_pack(db, "ops", "B-0001", "R2")
    assert refused.value.reason is RefusalReason.PACK_HELD_BY_OTHER
    assert isinstance(refused.value, Conflict)
    assert _snapshot(db) == before


def _poor_rider(db: Database) -> None:
    catalog.add_rider(db, "R2", "energy")
    payments.top_up(db, "R2", 300, "pay-2")  # 1,000 Wh: less than the 1,583 Wh hold


def _full_vehicle(db: Database) -> None:
    issue_pack(db, "ops", "B-0002", "R1")


def _quarantined(db: Database) -> None:
    catalog.move_out_of_slot(db, "B-0001", PackStatus.QUARANTINED)


def _worn(db: Database) -> None:
    catalog.move_out_of_slot(db, "B-0001", PackStatus.RETIRED)
    catalog.register_pack(db, "B-0009", "G2", soc=98, soh=60, station_id="ST1", slot_no=3)


def _flat(db: Database) -> None:
    catalog.register_pack(db, "B-0009", "G2", soc=50, soh=95, station_id="ST1", slot_no=6)


def _blocked(db: Database) -> None:
    catalog.set_rider_status(db, "R1", RiderStatus.BLOCKED)


@pytest.mark.parametrize(
    ("arrange", "serial", "rider_id", "reason"),
    [
        (_poor_rider, "B-0001", "R2", RefusalReason.NO_CREDIT),
        (_full_vehicle, "B-0001", "R1", RefusalReason.VEHICLE_FULL),
        (_quarantined, "B-0001", "R1", RefusalReason.PACK_DAMAGED),
        (_worn, "B-0009", "R1", RefusalReason.PACK_SOH_LOW),
        (_flat, "B-0009", "R1", RefusalReason.NO_CHARGED_PACK),
        (_blocked, "B-0001", "R1", RefusalReason.RIDER_BLOCKED),
    ],
    ids=["no_credit", "vehicle_full", "quarantined", "soh_low", "not_charged", "rider_blocked"],
)
def test_an_issue_a_station_would_refuse_is_refused_with_its_reason_and_writes_nothing(
    db: Database,
    arrange: Callable[[Database], None],
    serial: str,
    rider_id: str,
    reason: RefusalReason,
) -> None:
    _network(db)
    arrange(db)
    before = _snapshot(db)
    with pytest.raises(IssueRefused) as refused:
        issue_pack(db, "ops", serial, rider_id)
    assert refused.value.reason is reason
    assert _snapshot(db) == before


def test_a_pack_in_the_depot_or_offered_in_a_swap_is_not_issued(db: Database) -> None:
    _network(db)
    catalog.register_pack(db, "B-0009", "G2", soc=100, soh=100)  # in the depot
    catalog.add_rider(db, "R2", "energy")
    payments.top_up(db, "R2", 10_000, "pay-2")
    offer = swaps.authorize(db, "ST1", IdToken(TokenType.APP, "R2"))
    assert offer.accepted and offer.offered[0].serial == "B-0002"
    before = _snapshot(db)
    for serial in ("B-0009", "B-0002"):
        with pytest.raises(Conflict, match=serial):
            issue_pack(db, "ops", serial, "R1")
    assert _snapshot(db) == before


def test_a_two_pack_vehicle_is_issued_two_packs_and_no_third(db: Database) -> None:
    _network(db)
    catalog.add_rider(db, "R4", "energy", vehicle_packs=2)
    payments.top_up(db, "R4", 10_000, "pay-4")
    catalog.register_pack(db, "B-0003", "G2", soc=100, soh=100, station_id="ST2", slot_no=1)
    issue_pack(db, "ops", "B-0001", "R4")
    issue_pack(db, "ops", "B-0002", "R4")
    assert rider_balance(db, "R4").packs_held == ("B-0001", "B-0002")
    assert _units(db, "R4")[1] == 1_583 + 1_700
    before = _snapshot(db)
    with pytest.raises(IssueRefused) as refused:
        issue_pack(db, "ops", "B-0003", "R4")
    assert refused.value.reason is RefusalReason.VEHICLE_FULL
    assert _snapshot(db) == before
    _ledger_ok(db)


# -- the command ---------------------------------------------------------------------------------


def _swapd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "swapd.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_swapd_pack_issue_prints_what_was_issued_and_a_refusal_is_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'swapd.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    db = Database.open(url)
    try:
        _network(db)
        catalog.add_rider(db, "R2", "energy")
    finally:
        db.dispose()

    done = _swapd("pack", "issue", "B-0001", "--rider", "R1", "--database", url)
    assert done.returncode == 0, done.stderr
    assert "B-0001 issued to R1 from slot 3 of station ST1" in done.stdout
    assert "hold 1,583 Wh" in done.stdout and "31,750 Wh available" in done.stdout
    again = _swapd("pack", "issue", "B-0001", "--rider", "R1", "--database", url)
    assert again.returncode == 0, again.stderr
    assert "B-0001 was already with R1 from slot 3 of station ST1" in again.stdout

    refused = _swapd("pack", "issue", "B-0002", "--rider", "R2", "--database", url)
    assert refused.returncode == 2
    assert refused.stdout == ""
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "no_credit" in lines[0] and "Traceback" not in refused.stderr

"""One serializer per view: the API's response models hold exactly what the read models' views
give, so the CLI's --json and the API cannot drift apart."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from swapd.api import operator_riders, operator_swaps, rider
from swapd.api.operator_packs import PackOut
from swapd.api.operator_stations import StationOut
from swapd.cli.riders import balance_json, rider_line_json
from swapd.domain.packs import Pack, PackStatus
from swapd.domain.stations import Station
from swapd.readmodels.money import BalanceView, RiderBalance, balance_fields
from swapd.readmodels.packs import pack_view
from swapd.readmodels.riders import RiderLine, RiderRow, SubscriptionLine, rider_line_view
from swapd.readmodels.stations import StationInfo, StationLine, station_line_view
from swapd.readmodels.swaps import SwapRow, swap_view

PACK = Pack("B-0001", "G2", 1_700, 9_500, 9_800, 3, PackStatus.IN_SLOT, "ST1", 3, None, 42)


def test_the_pack_view_is_plain_json_with_the_api_field_names() -> None:
    view = pack_view(PACK)
    assert json.loads(json.dumps(view)) == view
    assert view == {
        "serial": "B-0001",
        "model": "G2",
        "nominal_wh": 1_700,
        "status": "in_slot",
        "place": "slot 3 of station ST1",
        "station_id": "ST1",
        "slot_no": 3,
        "rider_id": None,
        "reserved_swap_id": 42,
        "soc_bp": 9_800,
        "soh_bp": 9_500,
        "deliverable_wh": 1_583,
        "cycle_count": 3,
    }


def test_the_api_pack_model_answers_the_pack_view_field_for_field() -> None:
    assert set(PackOut.model_fields) == set(pack_view(PACK))
    assert PackOut.of(PACK).model_dump(mode="json") == pack_view(PACK)


SEEN_AT = datetime(2026, 3, 1, 12, 30, 15, 250_000, tzinfo=UTC)
LINE = StationLine(Station("ST1", 12), 5, 3, 1, 0, True, "Acme", "S1", "1.2", None, SEEN_AT)
INFO = StationInfo(LINE, "Depot", 37_566_535, 126_977_969)


def test_the_station_line_view_is_plain_json() -> None:
    view = station_line_view(INFO)
    assert json.loads(json.dumps(view)) == view
    assert (view["id"], view["charged_packs"], view["reserved_packs"]) == ("ST1", 3, 1)
    assert (view["booted_at"], view["last_seen_at"]) == (None, "2026-03-01T12:30:15.250000+00:00")


def test_the_api_station_model_is_the_station_line_view_and_whether_it_is_connected() -> None:
    assert set(StationOut.model_fields) == set(station_line_view(INFO)) | {"connected"}
    out = StationOut.of(INFO, connected=True)
    assert out.last_seen_at == SEEN_AT
    assert out.model_dump(exclude={"connected", "last_seen_at"}) == {
        k: v for k, v in station_line_view(INFO).items() if k != "last_seen_at"
    }


BALANCE = RiderBalance("R1", "energy", "active", "Wh", "KRW", 8_333, 3_283, 5_050, 7, 2_500, 1_515, 40,
                       ("B-0001", "B-0002"))  # fmt: skip
CYCLE = SubscriptionLine(2, SEEN_AT, datetime(2026, 4, 1, tzinfo=UTC), 1_000, 250)
BALANCES = (BalanceView(BALANCE, 985, CYCLE), BalanceView(BALANCE, 985, None))


def test_the_balance_view_is_plain_json_with_the_api_field_names() -> None:
    for view in BALANCES:
        fields = balance_fields(view)
        assert json.loads(json.dumps(fields)) == fields
        assert list(fields) == list(rider.BalanceOut.model_fields)
    fields = balance_fields(BALANCES[0])
    assert (fields["rider_id"], fields["plan_id"], fields["quantity"]) == ("R1", "energy", "energy_wh")
    assert (fields["held_value_minor"], fields["packs_held"]) == (985, ["B-0001", "B-0002"])
    assert fields["subscription"]["cycle_start"] == "2026-03-01T12:30:15.250000+00:00"


def test_the_cli_balance_json_is_the_api_balance_and_money_for_people() -> None:
    for view in BALANCES:
        api = rider.BalanceOut.of(view)
        cli = balance_json(view)
        assert set(cli) - set(rider.BalanceOut.model_fields) == {
            "available_value", "held_value", "prepaid", "receivable"
        }  # fmt: skip
        assert rider.BalanceOut.model_validate(cli) == api
    assert balance_json(BALANCES[0])["held_value"] == "985 KRW"


def test_the_operator_rider_balance_is_a_part_of_the_balance_view() -> None:
    fields = balance_fields(BALANCES[0])
    assert set(operator_riders.BalanceOut.model_fields) <= set(fields)
    assert set(operator_riders.RiderOut.model_fields) - {"rider", "plan", "balance"} <= set(fields)
    out = operator_riders.BalanceOut.model_validate(fields)
    assert out.model_dump() == {k: fields[k] for k in operator_riders.BalanceOut.model_fields}


ROW = RiderRow("R1", "energy", "active", 2, SEEN_AT, "r1@example.com")
RIDER_LINE = RiderLine(ROW, "Wh", 8_333, 3_283, 5_050, 1)


def test_the_rider_line_view_is_plain_json_with_the_api_field_names() -> None:
    view = rider_line_view(ROW)
    assert json.loads(json.dumps(view)) == view
    assert set(view) == set(operator_riders.RiderLineOut.model_fields)
    assert (view["id"], view["plan_id"], view["created_at"]) == ("R1", "energy", SEEN_AT.isoformat())


def test_the_cli_rider_line_is_the_api_rider_line_and_the_allowance() -> None:
    cli = rider_line_json(RIDER_LINE)
    assert set(cli) - set(operator_riders.RiderLineOut.model_fields) == {
        "unit", "available_units", "held_units", "posted_units", "packs_held"
    }  # fmt: skip
    assert operator_riders.RiderLineOut.model_validate(cli) == operator_riders.RiderLineOut.of(ROW)
    assert (cli["available_units"], cli["packs_held"]) == (5_050, 1)


SWAP = SwapRow(7, "ST1", "req-7", "R1", "App", "R1", "refused", "no_credit", SEEN_AT, SEEN_AT)


def test_the_swap_view_is_the_api_swap_line() -> None:
    view = swap_view(SWAP)
    assert json.loads(json.dumps(view)) == view
    assert list(view) == list(operator_swaps.SwapOut.model_fields)
    out = operator_swaps.SwapOut.of(SWAP)
    assert out.created_at == SEEN_AT
    assert operator_swaps.SwapOut.model_validate(view) == out
    assert out.model_dump(exclude={"created_at", "updated_at"}) == {
        k: v for k, v in view.items() if k not in {"created_at", "updated_at"}
    }

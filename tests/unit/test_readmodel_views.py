"""One serializer per view: the API's response models hold exactly what the read models' views
give, so the CLI's --json and the API cannot drift apart."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from swapd.api.operator_packs import PackOut
from swapd.api.operator_stations import StationOut
from swapd.domain.packs import Pack, PackStatus
from swapd.domain.stations import Station
from swapd.readmodels.packs import pack_view
from swapd.readmodels.stations import StationInfo, StationLine, station_line_view

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

"""One serializer per view: the API's response model holds exactly what the read model's view
gives, so the CLI's --json and the API cannot drift apart."""

from __future__ import annotations

import json

from swapd.api.operator_packs import PackOut
from swapd.domain.packs import Pack, PackStatus
from swapd.readmodels.packs import pack_view

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

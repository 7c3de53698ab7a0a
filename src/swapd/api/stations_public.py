"""Stations near the rider, with how many charged packs each holds right now."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from swapd.api.deps import Caller, ReadDb
from swapd.api.errors import responses
from swapd.readmodels import paging, stations

router = APIRouter(tags=["stations (riders)"])

MAX_RADIUS_M = 50_000


class NearbyStationOut(BaseModel):
    id: str = Field(description="What the station's QR code holds: POST it to /me/swaps")
    name: str | None
    lat_microdeg: int = Field(description="WGS84 latitude in millionths of a degree")
    lon_microdeg: int
    distance_m: int
    charged_packs: int = Field(description="Packs ready to hand out now (charged, healthy, free)")
    empty_slots: int = Field(description="Slots free to return a pack into")


# The replica (ReadDb): where to ride to; the packs a rider gets are decided by Authorize on the primary.
@router.get(
    "/stations/nearby",
    responses=responses(401, 422),
    summary="Enabled stations within a radius, nearest first, with charged packs now",
)
def nearby(
    _caller: Caller,
    db: ReadDb,
    lat_microdeg: Annotated[int, Query(ge=-90_000_000, le=90_000_000)],
    lon_microdeg: Annotated[int, Query(ge=-180_000_000, le=180_000_000)],
    radius_m: Annotated[int, Query(ge=1, le=MAX_RADIUS_M)] = 5_000,
    limit: Annotated[int, Query(ge=1, le=paging.RIDER_MAX_PAGE)] = 20,
) -> list[NearbyStationOut]:
    return [
        NearbyStationOut(
            id=s.id,
            name=s.name,
            lat_microdeg=s.lat_microdeg,
            lon_microdeg=s.lon_microdeg,
            distance_m=s.distance_m,
            charged_packs=s.charged_packs,
            empty_slots=s.empty_slots,
        )
        for s in stations.nearby(db, lat_microdeg, lon_microdeg, radius_m, limit=limit)
    ]

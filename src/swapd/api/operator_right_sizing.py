"""Right-sizing and the fleet policy for staff: a station's floor and weights (read by all staff,
set by operators, audited), what right-sizing saved per station and day, the fleet's wear, and a
rider's consent."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from swapd.api.deps import Db, Operator, Staff
from swapd.api.errors import responses
from swapd.api.operator_common import PREFIX, Bp
from swapd.domain.errors import InvalidInput
from swapd.domain.pack_choice import MAX_WEIGHT
from swapd.readmodels import right_sizing
from swapd.services import pack_policy

router = APIRouter(prefix=PREFIX, tags=["operator: right-sizing"])

Weight = Annotated[int, Field(ge=0, le=MAX_WEIGHT)]
Consent = Literal["always", "ask", "never"]


class PolicyOut(BaseModel):
    soc_band_bp: int = Field(description="Packs within this much SoC of the fullest compete")
    rest_weight: int = Field(description="Prefer packs that finished charging longest ago")
    cycles_weight: int = Field(description="Prefer packs with the fewest cycles")
    soh_weight: int = Field(description="Keep packs near retirement for short trips")
    retirement_margin_bp: int = Field(description="SoH within this of the station's minimum: worn")


class PackPolicyOut(BaseModel):
    station_id: str
    right_size_floor_bp: int | None = Field(
        description="Lowest SoC offered to a rider short of a full pack; null: right-sizing off"
    )
    policy: PolicyOut


class PackPolicyIn(BaseModel):
    """Fields left out stay as they are; ``preset`` sets every weight first."""

    model_config = ConfigDict(extra="forbid")
    right_size_floor_bp: int | None = Field(
        default=None, ge=1, le=10_000, description="null with right_sizing=false: turn it off"
    )
    right_sizing: bool | None = Field(
        default=None, description="false: turn right-sizing off; true needs right_size_floor_bp"
    )
    preset: Literal["off", "balanced"] | None = None
    soc_band_bp: Bp | None = None
    rest_weight: Weight | None = None
    cycles_weight: Weight | None = None
    soh_weight: Weight | None = None
    retirement_margin_bp: Bp | None = None
    reason: str = Field(min_length=1, max_length=500, description="Why; kept in the audit log")


@router.get(
    "/stations/{station_id}/pack-policy",
    responses=responses(401, 403, 404),
    summary="How a station picks the pack it offers: right-size floor and fleet weights",
)
def get_pack_policy(station_id: str, _caller: Staff, db: Db) -> PackPolicyOut:
    return PackPolicyOut.model_validate(pack_policy.station_settings(db, station_id).to_json())


@router.patch(
    "/stations/{station_id}/pack-policy",
    responses=responses(401, 403, 404, 422),
    summary="Change a station's right-size floor or fleet weights (audited)",
)
def edit_pack_policy(station_id: str, body: PackPolicyIn, caller: Operator, db: Db) -> PackPolicyOut:
    if body.right_sizing is True and body.right_size_floor_bp is None:
        raise InvalidInput("right_sizing=true needs right_size_floor_bp")
    set_floor = body.right_sizing is False or body.right_size_floor_bp is not None
    edit = pack_policy.PackSettingsEdit(
        set_floor=set_floor,
        floor_bp=None if body.right_sizing is False else body.right_size_floor_bp,
        preset=body.preset,
        soc_band_bp=body.soc_band_bp,
        rest_weight=body.rest_weight,
        cycles_weight=body.cycles_weight,
        soh_weight=body.soh_weight,
        retirement_margin_bp=body.retirement_margin_bp,
    )
    settings = pack_policy.edit_station_settings(db, caller.actor, station_id, edit, body.reason)
    return PackPolicyOut.model_validate(settings.to_json())


class StationDayOut(BaseModel):
    station_id: str
    day: str = Field(description="UTC date")
    saved_swaps: int = Field(description="Right-sized packs handed over: riders not turned away")
    asked: int
    declined: int = Field(description="Asked and not taken (expired, or topped up instead)")
    no_credit_refusals: int


@router.get(
    "/right-sizing",
    responses=responses(401, 403, 422),
    summary="Per station and UTC day: swaps right-sizing saved, questions, credit refusals",
)
def right_sizing_days(
    _caller: Staff,
    db: Db,
    since: Annotated[AwareDatetime, Query(alias="from", description="Inclusive")],
    until: Annotated[AwareDatetime, Query(alias="to", description="Exclusive; at most 92 days")],
    station_id: Annotated[str | None, Query(max_length=40)] = None,
) -> list[StationDayOut]:
    lines = right_sizing.station_days(db, since, until, station_id=station_id)
    return [StationDayOut.model_validate(line.to_json()) for line in lines]


class FleetSpreadOut(BaseModel):
    packs: int
    cycles_min: int
    cycles_max: int
    cycles_spread: int
    cycles_mean: float
    cycles_stdev: float
    soh_p10_bp: int
    soh_p50_bp: int
    soh_p90_bp: int


@router.get(
    "/fleet/spread",
    responses=responses(401, 403),
    summary="Wear across the fleet: cycles (hand-overs) and SoH percentiles",
)
def fleet_spread(_caller: Staff, db: Db) -> FleetSpreadOut:
    return FleetSpreadOut.model_validate(right_sizing.fleet_spread(db).to_json())


class ConsentIO(BaseModel):
    model_config = ConfigDict(extra="forbid")
    right_size_consent: Consent = Field(
        description="Take a right-sized pack when the allowance cannot hold a full one"
    )


@router.put(
    "/riders/{rider_id}/right-size",
    responses=responses(401, 403, 404, 422),
    summary="Set a rider's consent to right-sized packs (always, ask, never)",
)
def set_rider_consent(rider_id: str, body: ConsentIO, _caller: Operator, db: Db) -> ConsentIO:
    chosen = pack_policy.set_rider_consent(db, rider_id, body.right_size_consent)
    return ConsentIO(right_size_consent=chosen.value)

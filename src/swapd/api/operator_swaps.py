"""Swaps and alerts for staff: filtered lists, newest first, and one swap with what it moved."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, Field

from swapd.api.deps import ReadDb, Staff
from swapd.api.errors import responses
from swapd.api.operator_common import PREFIX, Limit, Page, page_of
from swapd.api.operator_packs import PossessionOut
from swapd.readmodels import alerts, swaps

router = APIRouter(prefix=PREFIX, tags=["operator: swaps and alerts"])

SwapStateName = Literal["offered", "refused", "completed", "abandoned", "returned"]
# The kinds services/swaps.py raises today; a kind added there must be added here to be
# filtered on (an unknown kind is refused with 422 rather than silently matching nothing).
AlertKind = Literal[
    "foreign_pack",
    "soc_anomaly",
    "pack_two_places",
    "pack_not_assigned",
    "damaged_pack_presented",
    "handover_without_rider",
    "pack_reserved_elsewhere",
    "unoffered_handover",
    "too_many_packs",
    "withdraw_mismatch",
    "token_pack_mismatch",
    "offline_conflict",
    "offline_overdraw",
    "offline_blocked_key",
    "offline_limit_exceeded",
    "offline_out_of_order",
    "offline_clock",
]
StationFilter = Annotated[str | None, Query(max_length=40)]
SerialFilter = Annotated[str | None, Query(max_length=50)]
Before = Annotated[int | None, Query(ge=1, description="Cursor: the last id seen")]


class SwapOut(BaseModel):
    id: int
    station_id: str
    request_id: str | None
    rider_id: str | None
    token_type: str
    token_value: str
    state: str
    reason: str | None  # why it was refused
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: swaps.SwapRow) -> SwapOut:
        return cls.model_validate(swaps.swap_view(row))


class OfferOut(BaseModel):
    pack_serial: str
    slot_no: int
    hold_units: int
    state: str


class ChargeOut(BaseModel):
    """What returning one pack cost: usage in the plan's unit, money in the currency's minor units."""

    pack_serial: str
    usage_units: int
    charged_units: int
    beyond_units: int
    revenue_minor: int
    overage_minor: int


class TransferOut(BaseModel):
    id: int
    created_at: datetime
    ledger: str  # a currency (amount in minor units) or a unit (Wh, s, count)
    amount: int
    code: str
    kind: str
    debit: str
    credit: str


class ChoiceOut(BaseModel):
    """How the offer's packs were chosen among those that qualified (the station's policy)."""

    rule: str = Field(
        description="only_choice, fullest, right_sized, rested, fewest_cycles, soh_kept or slot_order"
    )
    rule_text: str
    detail: str = Field(description="Each offered pack's reason, against the best pack left")
    right_sized: bool = Field(
        description="A pack with less charge, for an allowance short of a full one"
    )
    consent: str | None = Field(description="Right-sized: asked, confirmed or standing (always)")
    required_units: int = Field(description="What the packs offered need (overage plans hold less)")
    full_required_units: int = Field(description="Right-sized: what a full pack would have held")
    confirmed_at: datetime | None


class SwapDetailOut(BaseModel):
    swap: SwapOut
    choice: ChoiceOut | None = Field(default=None, description="None: no offer, or before 0012")
    unit: str | None
    currency: str | None
    offers: list[OfferOut]
    returned: list[PossessionOut]  # meter readings: SoC out and in, usage
    handed_out: list[PossessionOut]
    charges: list[ChargeOut]
    revenue_minor: int
    overage_minor: int
    transfers: list[TransferOut]


class AlertOut(BaseModel):
    id: int
    kind: str
    station_id: str | None
    pack_serial: str | None
    rider_id: str | None
    detail: str
    created_at: datetime


# The replica (ReadDb): a history list, newest first; a swap a moment old shows on the next load.
@router.get(
    "/swaps",
    responses=responses(401, 403),
    summary="Swaps, newest first, by station, rider, pack, time range and state; paged",
)
def list_swaps(
    _caller: Staff,
    db: ReadDb,
    station_id: StationFilter = None,
    rider_id: Annotated[str | None, Query(max_length=40)] = None,
    pack_serial: SerialFilter = None,
    since: Annotated[AwareDatetime | None, Query(alias="from", description="Inclusive")] = None,
    until: Annotated[AwareDatetime | None, Query(alias="to", description="Exclusive")] = None,
    state: SwapStateName | None = None,
    before_id: Before = None,
    limit: Limit = 100,
) -> Page[SwapOut]:
    rows = swaps.swaps(
        db,
        station_id=station_id,
        rider_id=rider_id,
        pack_serial=pack_serial,
        since=since,
        until=until,
        state=state,
        before_id=before_id,
        limit=limit,
    )
    return page_of([SwapOut.of(r) for r in rows], limit, str(rows[-1].id) if rows else None)


# The replica (ReadDb): a finished or running swap as an operator inspects it; nothing is decided on it.
@router.get(
    "/swaps/{swap_id}",
    responses=responses(401, 403, 404),
    summary="One swap: its offers, meter readings, charges and ledger transfers",
)
def get_swap(swap_id: int, _caller: Staff, db: ReadDb) -> SwapDetailOut:
    detail = swaps.swap_detail(db, swap_id)
    choice = swaps.choice_view(detail.choice)
    return SwapDetailOut(
        swap=SwapOut.of(detail.swap),
        choice=None if choice is None else ChoiceOut.model_validate(choice),
        unit=detail.unit,
        currency=detail.currency,
        offers=[OfferOut.model_validate(o, from_attributes=True) for o in detail.offers],
        returned=[PossessionOut.of(p) for p in detail.returned],
        handed_out=[PossessionOut.of(p) for p in detail.handed_out],
        charges=[ChargeOut.model_validate(c, from_attributes=True) for c in detail.charges],
        revenue_minor=sum(c.revenue_minor for c in detail.charges),
        overage_minor=sum(c.overage_minor for c in detail.charges),
        transfers=[TransferOut.model_validate(x, from_attributes=True) for x in detail.transfers],
    )


# The replica (ReadDb): alerts are a report of what happened; a second late is still news.
@router.get(
    "/alerts",
    responses=responses(401, 403),
    summary="Alerts, newest first: foreign packs, SoC anomalies, one pack in two places, ...",
)
def list_alerts(
    _caller: Staff,
    db: ReadDb,
    kind: AlertKind | None = None,
    station_id: StationFilter = None,
    pack_serial: SerialFilter = None,
    since: Annotated[AwareDatetime | None, Query(description="Inclusive")] = None,
    before_id: Before = None,
    limit: Limit = 100,
) -> Page[AlertOut]:
    rows = alerts.alerts(
        db,
        kind=kind,
        station_id=station_id,
        pack_serial=pack_serial,
        since=since,
        before_id=before_id,
        limit=limit,
    )
    return page_of(
        [AlertOut.model_validate(r, from_attributes=True) for r in rows],
        limit,
        str(rows[-1].id) if rows else None,
    )

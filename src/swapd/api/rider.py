"""The rider's own account: balance, swaps (history, and starting one at a station), packs held,
RFID cards. Every route acts on the signed-in rider only; there is no rider id to pass, and the
ids that appear (a card uid) are looked up within the rider's own rows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from swapd.api.deps import Db, IdempotencyKey, Rider, once, service_key
from swapd.api.errors import responses
from swapd.domain.riders import TokenType
from swapd.readmodels import money, packs, paging, plans, riders, swap_history
from swapd.services import app_swaps, cards, pack_policy

router = APIRouter(tags=["rider"])

# How long POST /me/swaps waits for the station to accept the RequestBatterySwap: long enough for
# a station on a mobile link, short enough for a person looking at their phone.
SWAP_REQUEST_TIMEOUT_S = 20.0
_BP = "basis points of a percent: 9850 = 98.50 %"


# -- balance --------------------------------------------------------------------------------------


class SubscriptionOut(BaseModel):
    cycle_no: int
    cycle_start: datetime
    cycle_end: datetime
    carried_in_units: int = Field(description="Units carried in from the previous cycle")
    consumed_units: int

    @classmethod
    def of(cls, sub: riders.SubscriptionLine | None) -> SubscriptionOut | None:
        view = riders.subscription_view(sub)
        return None if view is None else cls.model_validate(view)


class BalanceOut(BaseModel):
    """Allowance in the plan's ``unit`` (spelled ``quantity`` in field names elsewhere: energy_wh,
    time_s, deliveries); money in minor units of ``currency``."""

    rider_id: str
    plan_id: str
    status: str
    unit: str = Field(description="Wh, s or count")
    quantity: str = Field(description="energy_wh, time_s or deliveries")
    available_units: int = Field(description="What the next swap can use: posted less held")
    held_units: int = Field(description="Reserved by packs out and open offers")
    posted_units: int
    overdrawn_units: int = Field(description="Used beyond the allowance; a top-up settles it first")
    currency: str
    available_value_minor: int = Field(description="Prepaid money the available units stand for")
    held_value_minor: int = Field(description="Prepaid money the held units stand for")
    prepaid_minor: int = Field(description="Money paid and not yet earned")
    receivable_minor: int = Field(description="Money owed (subscription overage)")
    packs_held: list[str]
    subscription: SubscriptionOut | None

    @classmethod
    def of(cls, view: money.BalanceView) -> BalanceOut:
        return cls.model_validate(money.balance_fields(view))


@router.get("/me/balance", responses=responses(401, 403), summary="Your allowance and its value")
def my_balance(caller: Rider, db: Db) -> BalanceOut:
    assert caller.rider_id is not None
    return BalanceOut.of(money.balance_view(db, caller.rider_id))


# -- swap history ---------------------------------------------------------------------------------


class ChargeOut(BaseModel):
    """What one returned pack cost."""

    unit: str
    quantity: str
    usage_units: int = Field(description="Metered usage (energy_wh, time_s or deliveries)")
    charged_units: int = Field(description="Taken from the allowance")
    beyond_units: int = Field(description="Used beyond the allowance (overage or overdrawn)")
    currency: str
    amount_minor: int = Field(description="revenue_minor + overage_minor")
    revenue_minor: int = Field(description="Prepaid money the charged units stood for")
    overage_minor: int = Field(description="Billed for units beyond a subscription's allowance")


class ReturnedPackOut(BaseModel):
    serial: str
    model_code: str
    slot_no: int
    taken_at: datetime
    taken_at_station_id: str
    returned_at: datetime
    soc_out_bp: int = Field(description=f"SoC when taken, {_BP}")
    soc_in_bp: int = Field(description=f"SoC when returned, {_BP}")
    soh_in_bp: int
    anomaly: str | None = Field(description="Why the meter reading was doubtful, if it was")
    charge: ChargeOut


class TakenPackOut(BaseModel):
    serial: str
    model_code: str
    slot_no: int
    taken_at: datetime
    soc_out_bp: int = Field(description=_BP)
    soh_out_bp: int
    hold_units: int = Field(description="Allowance held while the pack is out, in unit")
    unit: str
    returned: bool


class SwapOut(BaseModel):
    id: int
    station_id: str
    station_name: str | None
    at: datetime
    outcome: str = Field(description="offered, completed, returned, refused or abandoned")
    reason: str | None = Field(description="Why it was refused")
    returned: list[ReturnedPackOut]
    taken: list[TakenPackOut]


class SwapPage(BaseModel):
    items: list[SwapOut]
    next_before: int | None = Field(description="Pass as ?before= for the next (older) page")


def _swap_out(line: swap_history.RiderSwapLine) -> SwapOut:
    return SwapOut(
        id=line.id,
        station_id=line.station_id,
        station_name=line.station_name,
        at=line.at,
        outcome=line.state,
        reason=line.reason,
        returned=[
            ReturnedPackOut(
                serial=r.serial,
                model_code=r.model_code,
                slot_no=r.slot_no,
                taken_at=r.taken_at,
                taken_at_station_id=r.station_taken_id,
                returned_at=r.returned_at,
                soc_out_bp=r.soc_out_bp,
                soc_in_bp=r.soc_in_bp,
                soh_in_bp=r.soh_in_bp,
                anomaly=r.anomaly,
                charge=ChargeOut(
                    unit=r.charge.unit,
                    quantity=plans.quantity_name(r.charge.unit),
                    usage_units=r.charge.usage_units,
                    charged_units=r.charge.charged_units,
                    beyond_units=r.charge.beyond_units,
                    currency=r.charge.currency,
                    amount_minor=r.charge.amount_minor,
                    revenue_minor=r.charge.revenue_minor,
                    overage_minor=r.charge.overage_minor,
                ),
            )
            for r in line.returned
        ],
        taken=[
            TakenPackOut(
                serial=p.serial,
                model_code=p.model_code,
                slot_no=p.slot_no,
                taken_at=p.taken_at,
                soc_out_bp=p.soc_out_bp,
                soh_out_bp=p.soh_out_bp,
                hold_units=p.hold_units,
                unit=p.unit,
                returned=p.returned,
            )
            for p in line.taken
        ],
    )


@router.get("/me/swaps", responses=responses(401, 403, 422), summary="Your swaps, newest first, paged")
def my_swaps(
    caller: Rider,
    db: Db,
    limit: Annotated[int, Query(ge=1, le=paging.RIDER_MAX_PAGE)] = 20,
    before: Annotated[int | None, Query(ge=1, le=2**62, description="A swap id")] = None,
) -> SwapPage:
    assert caller.rider_id is not None
    lines = swap_history.rider_swaps(db, caller.rider_id, limit=limit, before=before)
    next_before = lines[-1].id if len(lines) == limit else None
    return SwapPage(items=[_swap_out(line) for line in lines], next_before=next_before)


# -- starting a swap ------------------------------------------------------------------------------


class SwapStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    station_id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,39}$",
        max_length=40,
        description="The id the station's QR code holds",
    )
    accept_right_sized: bool = Field(
        default=False,
        description="Yes to a right-sized pack: one with less charge that your allowance covers,"
        " when it cannot cover a full one (the answer to a swap that came back with asks=true)",
    )


class SwapStarted(BaseModel):
    accepted: bool
    reason: str | None = Field(
        description="Why it was refused: no_credit, no_charged_pack, ... (the decision's), or"
        " station_refused, station_no_answer (the station's, after the server accepted)"
    )
    text: str = Field(description="What to tell the rider")
    station_id: str
    swap_id: int | None
    offered_slots: list[int] = Field(description="Open these slots' doors: take the packs there")
    asks: bool = Field(
        default=False,
        description="Not accepted yet: your allowance covers a right-sized pack (offered_slots,"
        " held for you for a few minutes); text is the question. Start the swap again with"
        " accept_right_sized to take it, or top up for a full pack",
    )
    right_sized: bool = Field(default=False, description="The pack offered has less charge")


@router.post(
    "/me/swaps",
    response_model=SwapStarted,
    responses=responses(401, 403, 404, 409, 422),
    summary="Start a swap at a station (scan its QR code); the station opens a slot",
)
def start_swap(
    body: SwapStart, caller: Rider, db: Db, request: Request, idempotency_key: IdempotencyKey
) -> JSONResponse:
    rider_id = caller.rider_id
    assert rider_id is not None

    def work() -> tuple[int, SwapStarted]:
        # Checked before the decision too, so that nothing is decided or recorded for a station
        # the rider cannot use; request_swap checks again (StationOffline) until the station
        # answers, so one that drops off meanwhile is the same 409.
        app_swaps.ensure_connected(db, body.station_id)
        outcome = app_swaps.request_swap(
            db,
            body.station_id,
            rider_id,
            timeout_s=SWAP_REQUEST_TIMEOUT_S,
            key=service_key(caller, idempotency_key),
            accept_right_sized=body.accept_right_sized,
        )
        return 200, SwapStarted(
            accepted=outcome.accepted,
            reason=outcome.reason,
            text=outcome.text,
            station_id=body.station_id,
            swap_id=outcome.swap_id,
            offered_slots=list(outcome.offered_slots),
            asks=outcome.asks,
            right_sized=outcome.right_sized,
        )

    return once(db, caller, idempotency_key, request, body, work)


# -- settings -------------------------------------------------------------------------------------


class RightSizeSetting(BaseModel):
    model_config = ConfigDict(extra="forbid")
    right_size_consent: Literal["always", "ask", "never"] = Field(
        description="When your allowance cannot hold a full pack: take one with less charge that"
        " it covers always, be asked each time (the default), or never (top up instead)"
    )


@router.get(
    "/me/settings/right-size",
    responses=responses(401, 403),
    summary="Whether you take a right-sized pack when a full one is beyond your allowance",
)
def my_right_size(caller: Rider, db: Db) -> RightSizeSetting:
    assert caller.rider_id is not None
    consent = pack_policy.rider_consent(db, caller.rider_id)
    return RightSizeSetting(right_size_consent=consent.value)


@router.put(
    "/me/settings/right-size",
    responses=responses(401, 403, 422),
    summary="Set whether you take a right-sized pack: always, ask or never",
)
def set_my_right_size(body: RightSizeSetting, caller: Rider, db: Db) -> RightSizeSetting:
    assert caller.rider_id is not None
    consent = pack_policy.set_rider_consent(db, caller.rider_id, body.right_size_consent)
    return RightSizeSetting(right_size_consent=consent.value)


# -- packs held -----------------------------------------------------------------------------------


class HeldPackOut(BaseModel):
    serial: str
    model_code: str
    nominal_wh: int
    since: datetime
    station_id: str = Field(description="Where it was taken")
    station_name: str | None
    slot_no: int
    soc_out_bp: int = Field(description=f"SoC when taken, {_BP}")
    soh_out_bp: int
    hold_units: int = Field(description="Allowance held while the pack is out, in unit")
    unit: str


@router.get("/me/packs", responses=responses(401, 403), summary="The packs you hold now")
def my_packs(caller: Rider, db: Db) -> list[HeldPackOut]:
    assert caller.rider_id is not None
    return [
        HeldPackOut(
            serial=p.serial,
            model_code=p.model_code,
            nominal_wh=p.nominal_wh,
            since=p.since,
            station_id=p.station_id,
            station_name=p.station_name,
            slot_no=p.slot_no,
            soc_out_bp=p.soc_out_bp,
            soh_out_bp=p.soh_out_bp,
            hold_units=p.hold_units,
            unit=p.unit,
        )
        for p in packs.packs_held(db, caller.rider_id)
    ]


# -- RFID cards -----------------------------------------------------------------------------------

_UID_DESCRIPTION = "ISO14443 UID: 4, 7 or 10 bytes in hex (stored upper case, as stations send it)"
CardUid = Annotated[
    str, Path(pattern=cards.RFID_UID_PATTERN, max_length=20, description=_UID_DESCRIPTION)
]


class CardIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    uid: str = Field(
        pattern=cards.RFID_UID_PATTERN,
        max_length=20,
        description=_UID_DESCRIPTION,
        examples=["04A1B2C3D4E5F6"],
    )


class CardOut(BaseModel):
    uid: str
    type: str = TokenType.RFID.value


@router.get("/me/cards", responses=responses(401, 403), summary="Your RFID cards")
def my_cards(caller: Rider, db: Db) -> list[CardOut]:
    assert caller.rider_id is not None
    return [CardOut(uid=uid) for uid in riders.cards(db, caller.rider_id)]


@router.post(
    "/me/cards",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": CardOut, "description": "Yours already"}, **responses(401, 403, 409, 422)},
    summary="Register an RFID card: it then starts swaps at stations as you",
)
def add_card(body: CardIn, caller: Rider, db: Db, response: Response) -> CardOut:
    assert caller.rider_id is not None
    if not cards.add_card(db, caller.rider_id, body.uid):
        response.status_code = status.HTTP_200_OK
    return CardOut(uid=cards.normalise_uid(body.uid))


@router.delete(
    "/me/cards/{uid}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(401, 403, 404, 422),
    summary="Remove one of your RFID cards",
)
def remove_card(uid: CardUid, caller: Rider, db: Db) -> None:
    assert caller.rider_id is not None
    cards.remove_card(db, caller.rider_id, uid)

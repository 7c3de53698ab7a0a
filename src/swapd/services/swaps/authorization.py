"""R6: Authorize (or an app request). Decide whether the person at the station may take charged
packs, reserve them and hold their allowance (R2); the pack itself can be the key (R3)."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from swapd.domain.decision import (
    REFUSAL_TEXT,
    Decision,
    RefusalReason,
    check_returned_pack,
    decide,
)
from swapd.domain.errors import Conflict, InvalidInput, NotFound, Retry
from swapd.domain.event_reads import RiderAtStation
from swapd.domain.lifecycle import Swap, SwapState
from swapd.domain.pack_choice import ChoiceRecord
from swapd.domain.plans import Plan
from swapd.domain.revenue import weighted_value
from swapd.domain.riders import IdToken, TokenType
from swapd.domain.right_sizing import ConsentState, ask_text
from swapd.domain.stations import Station
from swapd.services.money import rider_accounts
from swapd.services.ports import Transactions, UnitOfWork
from swapd.services.swaps.checks import check_request_id, check_token
from swapd.services.swaps.lookups import (
    is_operator,
    known_station_and_request,
    plan_of,
    rider_plan,
)
from swapd.services.swaps.offers import abandon, place_offer
from swapd.services.swaps.records import MAX_PACKS_PER_SWAP, AuthorizeResult, OfferedPack


def authorize(
    db: Transactions,
    station_id: str,
    token: IdToken,
    *,
    request_id: str | None = None,
    wanted: int | None = None,
    consented: bool = False,
) -> AuthorizeResult:
    """Decide whether the person at the station may take charged packs, and reserve them.

    With a BatterySerial token the pack is the key (R3): its open possession names the rider.
    An accepted decision reserves the chosen packs and places a pending hold for each (R2);
    a repeated Authorize while that offer is open returns the same offer.

    A right-sized offer (domain.right_sizing) the rider must consent to is reserved and held the
    same way but answered NO_CREDIT with the question: the rider's next Authorize at this station
    while the offer is open (or ``consented``, the app's yes) accepts it; an offer nobody
    accepts expires as any other (``expire_stale_offers``). A station cannot tell a repeat of the
    question's Authorize from the rider presenting again, and both take the offer: the rider
    was asked, and the hold is what the pack can deliver, within the allowance.
    """
    check_token(token)
    if request_id is not None:
        request_id = check_request_id(request_id)
    if wanted is not None and (isinstance(wanted, bool) or not 1 <= wanted <= MAX_PACKS_PER_SWAP):
        raise InvalidInput(f"wanted must be 1..{MAX_PACKS_PER_SWAP}, got {wanted!r}")

    def work(uow: UnitOfWork) -> AuthorizeResult:
        station, existing = known_station_and_request(uow, station_id, request_id)
        if existing is not None:
            return _result_of(uow, existing)
        if is_operator(uow, token):
            return AuthorizeResult(True, None, "Operator", operator=True)
        rider_id, refusal = _identify(uow, station, token)
        if refusal is not None:
            return _refuse(uow, station_id, token, refusal, rider_id=rider_id, request_id=request_id)
        assert rider_id is not None
        key_serial = token.value if token.type is TokenType.BATTERY_SERIAL else None
        seen = uow.repo.rider_at_station(rider_id, station_id, key_serial)
        rider, offered = seen.rider, seen.offered
        assert rider is not None
        if key_serial is not None and _pack_at_other_station(station_id, token, rider_id, seen):
            return _refuse(
                uow,
                station_id,
                token,
                RefusalReason.PACK_AT_OTHER_STATION,
                rider_id=rider_id,
                request_id=request_id,
            )
        open_offer = next((s for s in offered if s.station_id == station_id), None)
        plan = plan_of(uow, rider)
        if open_offer is not None:
            answer = _open_offer_answer(uow, open_offer, request_id, plan)
            if answer is not None:
                return answer
            # What it wrote (an offer abandoned: its packs free again) is read anew.
            seen = uow.repo.rider_at_station(rider_id, station_id, None)
        held = seen.held
        accounts = rider_accounts(uow.book, rider_id, plan)
        decision = decide(
            station=station,
            rider=rider,
            plan=plan,
            available_units=accounts.allowance.available,
            held_count=len(held),
            returning=held,
            stock=seen.stock,
            wanted=wanted,
            out_of_service=seen.out_of_service,
            now=uow.now,
            consented=consented,
        )
        if not decision.accepted and not decision.asks:
            assert decision.reason is not None
            return _refuse(
                uow,
                station_id,
                token,
                decision.reason,
                rider_id=rider_id,
                request_id=request_id,
                unit=plan.unit.value,
                available=decision.available_units,
                required=decision.required_units,
            )
        swap_id = uow.repo.insert_swap(
            station_id, token, SwapState.OFFERED, uow.now, rider_id=rider_id, request_id=request_id
        )
        chosen = []
        for offer in decision.offers:
            pack, units = offer.pack, offer.hold_units
            assert pack.slot_no is not None  # stock: every offered pack sits in a slot
            place_offer(uow, swap_id, rider_id, plan, pack.serial, pack.slot_no, units)
            chosen.append(OfferedPack(pack.slot_no, pack.serial, pack.soc_bp, units))
        record = choice_record(decision, swap_id, station_id, uow.now, consented=consented)
        uow.repo.insert_choice(record)
        # What _result_of would read back, from what this transaction has just written.
        chosen.sort(key=lambda o: o.slot_no)
        if decision.asks:
            return _asking(uow, swap_id, rider_id, plan, tuple(chosen), request_id=request_id)
        return _accepted(
            uow,
            swap_id,
            rider_id,
            plan,
            tuple(chosen),
            right_sized=record.right_sized,
            request_id=request_id,
        )

    return db.write(work)


def choice_record(
    decision: Decision, swap_id: int, station_id: str, now: datetime, *, consented: bool
) -> ChoiceRecord:
    """What the swap's detail shows of how its packs were chosen."""
    assert decision.picks, "an offer names why its packs were chosen"
    consent = None
    if decision.asks:
        consent = ConsentState.ASKED
    elif decision.right_sized:
        consent = ConsentState.CONFIRMED if consented else ConsentState.STANDING
    detail = "; ".join(f"slot {p.pack.slot_no}: {p.detail}" for p in decision.picks)
    return ChoiceRecord(
        swap_id,
        station_id,
        decision.picks[0].rule,
        detail[:500],
        decision.right_sized,
        None if consent is None else consent.value,
        decision.required_units,
        decision.full_required_units,
        now,
        now if consent is ConsentState.CONFIRMED else None,
    )


def _open_offer_answer(
    uow: UnitOfWork, open_offer: Swap, request_id: str | None, plan: Plan
) -> AuthorizeResult | None:
    """The answer of an Authorize that finds the rider's offer open here: the same offer again,
    or, for a right-sized offer asked about, the rider's yes. None: decide anew (an app's offer,
    with its requestId, met by a station's own Authorize, whose events will not name it; or a
    question the rider answered by topping up enough for the full pack: released first)."""
    if open_offer.request_id is not None and request_id is None:
        return None
    choice = uow.repo.choice(open_offer.id)
    if choice is not None and choice.consent == ConsentState.ASKED:
        allowance = rider_accounts(uow.book, open_offer.rider_id or "", plan).allowance
        if allowance.available + choice.required_units >= choice.full_required_units:
            abandon(uow, open_offer)
            return None
        # The rider's yes: from now on an offer like any other, with its own life to be taken.
        # (The app's request keeps the swap's own requestId.)
        uow.repo.confirm_choice(open_offer.id, uow.now)
        uow.repo.set_swap_state(open_offer.id, SwapState.OFFERED, uow.now)
    elif open_offer.request_id is not None:
        return None
    if request_id is not None and open_offer.request_id is None:
        uow.repo.set_swap_request(open_offer.id, request_id, uow.now)
        open_offer = dataclasses.replace(open_offer, request_id=request_id)
    return _result_of(uow, open_offer)


def _pack_at_other_station(station_id: str, token: IdToken, rider_id: str, seen: RiderAtStation) -> bool:
    """The pack presented as the key is the key of a swap still offered at another station (R3:
    one pack, one place). Checked under the rider's lock, so of two stations asking at once one
    sees the other."""
    pack = seen.key_pack  # read again, locked after the rider
    if pack is None or pack.rider_id != rider_id:
        raise Retry()  # the pack moved between reading it and locking its rider
    return any(s.station_id != station_id and s.token == token for s in seen.offered)


def _identify(
    uow: UnitOfWork, station: Station, token: IdToken
) -> tuple[str | None, RefusalReason | None]:
    if token.type is TokenType.BATTERY_SERIAL:
        pack = uow.repo.pack(token.value)
        refusal = check_returned_pack(pack, station)
        if refusal is not None:
            return (pack.rider_id if pack else None), refusal
        assert pack is not None
        return pack.rider_id, None
    if token.type is TokenType.APP:
        if uow.repo.rider(token.value) is None:
            raise NotFound(f"unknown rider {token.value}")
        return token.value, None
    if token.type is TokenType.NO_AUTHORIZATION:
        return None, RefusalReason.UNKNOWN_TOKEN
    owner = uow.repo.token_owner(token.type.value, token.value)
    if owner is None or owner.rider_id is None:
        return None, RefusalReason.UNKNOWN_TOKEN
    return str(owner.rider_id), None


_ALERTING = {
    RefusalReason.UNKNOWN_PACK: "foreign_pack",
    RefusalReason.PACK_NOT_ASSIGNED: "pack_not_assigned",
    RefusalReason.PACK_DAMAGED: "damaged_pack_presented",
    RefusalReason.PACK_AT_OTHER_STATION: "pack_two_places",
}


def _refuse(
    uow: UnitOfWork,
    station_id: str,
    token: IdToken,
    reason: RefusalReason,
    *,
    rider_id: str | None,
    request_id: str | None,
    unit: str | None = None,
    available: int = 0,
    required: int = 0,
) -> AuthorizeResult:
    """Record the refusal (operators count refusals by reason) and raise an alert where one is due."""
    swap_id = uow.repo.insert_swap(
        station_id,
        token,
        SwapState.REFUSED,
        uow.now,
        rider_id=rider_id,
        request_id=request_id,
        reason=reason.value,
    )
    kind = _ALERTING.get(reason)
    if kind is not None:
        uow.repo.alert(
            kind,
            f"{token.type.value} {token.value} presented at {station_id}: {REFUSAL_TEXT[reason]}",
            uow.now,
            station_id=station_id,
            pack_serial=token.value if token.type is TokenType.BATTERY_SERIAL else None,
            rider_id=rider_id,
        )
    return AuthorizeResult(
        False,
        reason.value,
        REFUSAL_TEXT[reason],
        swap_id=swap_id,
        rider_id=rider_id,
        unit=unit,
        available_units=available,
        required_units=required,
    )


def _result_of(uow: UnitOfWork, swap: Swap) -> AuthorizeResult:
    """The answer an existing swap gave, rebuilt from its records (for repeated requests)."""
    if swap.state is SwapState.REFUSED:
        assert swap.reason is not None, "a refused swap records its reason"
        reason = RefusalReason(swap.reason)
        return AuthorizeResult(False, reason.value, REFUSAL_TEXT[reason], swap.id, swap.rider_id)
    offers = uow.repo.offers(swap.id)
    choice = uow.repo.choice(swap.id) if offers else None
    if swap.rider_id is None or not offers:
        # Not an Authorize's swap: a BatterySwap event recorded it under this requestId first.
        raise Conflict(
            f"requestId {swap.request_id} is used at station {swap.station_id} by swap {swap.id}, "
            "which no Authorize made"
        )
    plan = rider_plan(uow, swap.rider_id)
    packs = uow.repo.packs([o.pack_serial for o in offers])
    offered = tuple(
        OfferedPack(o.slot_no, o.pack_serial, packs[o.pack_serial].soc_bp, o.hold_units) for o in offers
    )
    if choice is not None and choice.consent == ConsentState.ASKED and swap.is_open:
        return _asking(uow, swap.id, swap.rider_id, plan, offered, swap.request_id)
    right_sized = choice is not None and choice.right_sized
    return _accepted(
        uow, swap.id, swap.rider_id, plan, offered, right_sized=right_sized, request_id=swap.request_id
    )


def _asking(
    uow: UnitOfWork,
    swap_id: int,
    rider_id: str,
    plan: Plan,
    offered: tuple[OfferedPack, ...],
    request_id: str | None = None,
) -> AuthorizeResult:
    """The question of a right-sized offer: NO_CREDIT for the station, with the offer the rider
    may take. The allowance it names is the one before the offer's own holds."""
    allowance = rider_accounts(uow.book, rider_id, plan).allowance
    held = sum(o.hold_units for o in offered)
    before = allowance.available + held
    text = ask_text(before, plan.unit.value, [(o.slot_no, o.soc_bp) for o in offered])
    return AuthorizeResult(
        False,
        RefusalReason.NO_CREDIT.value,
        text,
        swap_id,
        rider_id,
        offered=offered,
        unit=plan.unit.value,
        available_units=before,
        required_units=held,
        right_sized=True,
        asks=True,
        request_id=request_id,
    )


def _accepted(
    uow: UnitOfWork,
    swap_id: int,
    rider_id: str,
    plan: Plan,
    offered: tuple[OfferedPack, ...],
    *,
    right_sized: bool = False,
    request_id: str | None = None,
) -> AuthorizeResult:
    """An offer's answer, with the rider's balance after its holds (the station shows it)."""
    accounts = rider_accounts(uow.book, rider_id, plan)
    allowance = accounts.allowance
    return AuthorizeResult(
        True,
        None,
        "Accepted",
        swap_id,
        rider_id,
        right_sized=right_sized,
        request_id=request_id,
        offered=offered,
        unit=plan.unit.value,
        available_units=allowance.available,
        required_units=sum(o.hold_units for o in offered),
        currency=plan.currency,
        available_value_minor=weighted_value(
            accounts.prepaid.credit_balance, allowance.credit_balance, allowance.available
        ),
    )

"""Swaps: the decision (R6), returns that identify the rider by pack (R3), metering and charging
(R4, R5), hand-overs with two-phase holds (R2), and abandoned hand-overs.

The events mirror OCPP's battery swap: ``authorize`` answers Authorize (or an app request),
``battery_in`` / ``battery_out`` / ``battery_out_timeout`` are the BatterySwap events. Each event is
applied exactly once per (station, requestId, eventType); a repeat returns the first answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from swapd.domain.charge import split_for_plan
from swapd.domain.decision import (
    REFUSAL_TEXT,
    RefusalReason,
    check_returned_pack,
    decide,
    is_token_pack_mismatch,
)
from swapd.domain.errors import Conflict, InvalidInput, NotFound
from swapd.domain.lifecycle import (
    Offer,
    OfferState,
    PackOutcomeKind,
    Possession,
    PossessionClosed,
    Swap,
)

# Re-exported: the services and the simulator import SwapState from here.
from swapd.domain.lifecycle import SwapState as SwapState  # noqa: PLC0414
from swapd.domain.metering import meter
from swapd.domain.packs import Pack, PackStatus, validate_serial
from swapd.domain.plans import Plan
from swapd.domain.quantities import percent_to_bp
from swapd.domain.riders import CARD_TOKEN_TYPES, IdToken, Rider, TokenType
from swapd.domain.stations import Station
from swapd.ledger.model import AccountCode, TransferCode, TransferFlags, TransferRequest
from swapd.services.money import move, recognise, rider_accounts, weighted_value
from swapd.store import schema as t
from swapd.store.database import Database, Tx
from swapd.store.prepared import Prepared
from swapd.store.repository import Retry, Row

MAX_PACKS_PER_SWAP = 8


class EventType:
    BATTERY_IN = "BatteryIn"
    BATTERY_OUT = "BatteryOut"
    BATTERY_OUT_TIMEOUT = "BatteryOutTimeout"


# The statements of the swap path, built once (see swapd.store.repository for why).
_B = sa.bindparam
_INSERT_SWAP = Prepared(sa.insert(t.swaps).returning(t.swaps.c.id))
# The state is written as a literal so that SQLite can use the partial index ix_swaps_offered.
_OFFERED: sa.ColumnElement[str] = sa.literal_column(f"'{SwapState.OFFERED}'")
_OPEN_OFFER = Prepared(
    sa.select(t.swaps)
    .where(
        t.swaps.c.station_id == _B("station_id"),
        t.swaps.c.rider_id == _B("rider_id"),
        t.swaps.c.state == _OFFERED,
    )
    .order_by(t.swaps.c.id.desc())
)
# Every swap still offered to a rider, newest first: the open offer at this station, and the
# same pack as the key of a swap still open at another station (R3: one pack, one place).
_OFFERED_TO_RIDER = Prepared(
    sa.select(t.swaps)
    .where(t.swaps.c.rider_id == _B("rider_id"), t.swaps.c.state == _OFFERED)
    .order_by(t.swaps.c.id.desc())
)
_INSERT_OFFER = Prepared(sa.insert(t.swap_offers))
_SET_OFFER_STATE = Prepared(
    sa.update(t.swap_offers)
    .where(t.swap_offers.c.swap_id == _B("p_swap_id"), t.swap_offers.c.pack_serial == _B("p_serial"))
    .values(state=_B("v_state"))
)
_INSERT_EVENT = Prepared(sa.insert(t.station_events))
_INSERT_POSSESSION = Prepared(sa.insert(t.possessions))


@dataclass(frozen=True, slots=True)
class BatteryReading:
    """One pack as the station's BMS reader saw it in a slot."""

    slot_no: int
    serial: str
    soc_bp: int
    soh_bp: int

    @classmethod
    def parse(cls, slot_no: object, serial: object, soc: object, soh: object) -> BatteryReading:
        if isinstance(slot_no, bool) or not isinstance(slot_no, int):
            raise InvalidInput(f"slot number must be an integer, got {slot_no!r}")
        return cls(
            slot_no, validate_serial(serial), percent_to_bp(soc, "soc"), percent_to_bp(soh, "soh")
        )


@dataclass(frozen=True, slots=True)
class OfferedPack:
    slot_no: int
    serial: str
    soc_bp: int
    hold_units: int


@dataclass(frozen=True, slots=True)
class AuthorizeResult:
    accepted: bool
    reason: str | None
    text: str
    swap_id: int | None = None
    rider_id: str | None = None
    operator: bool = False
    offered: tuple[OfferedPack, ...] = ()
    unit: str | None = None
    available_units: int = 0  # after the holds of this offer
    required_units: int = 0
    currency: str | None = None
    available_value_minor: int = 0  # the prepaid money the available allowance stands for

    @property
    def offered_slots(self) -> list[int]:
        return [o.slot_no for o in self.offered]


@dataclass(frozen=True, slots=True)
class PackOutcome:
    serial: str
    slot_no: int
    outcome: str  # a PackOutcomeKind (a plain string when read back from a recorded result)
    rider_id: str | None = None
    usage_units: int = 0
    charged_units: int = 0  # taken from the allowance
    beyond_units: int = 0  # used beyond the allowance (overage or overdrawn)
    revenue_minor: int = 0
    overage_minor: int = 0
    hold_units: int = 0
    anomaly: str | None = None


_OUTCOME_FIELDS = tuple(field.name for field in dataclasses.fields(PackOutcome))


@dataclass(frozen=True, slots=True)
class EventResult:
    swap_id: int | None
    event_type: str
    packs: tuple[PackOutcome, ...]
    repeated: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "swap_id": self.swap_id,
            "event_type": self.event_type,
            # Shallow: an outcome holds only plain values (asdict's deep copy cost 2 % of the
            # SQLite writer's time).
            "packs": [{name: getattr(p, name) for name in _OUTCOME_FIELDS} for p in self.packs],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EventResult:
        return cls(
            data["swap_id"],
            data["event_type"],
            tuple(PackOutcome(**p) for p in data["packs"]),
            repeated=True,
        )


# -- validation shared by the events -------------------------------------------------------------


def _check_request_id(request_id: object) -> str:
    if isinstance(request_id, int) and not isinstance(request_id, bool):
        request_id = str(request_id)
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= 64 or not request_id.isprintable():
        raise InvalidInput(f"requestId must be 1-64 printable characters, got {request_id!r}")
    return request_id


def _check_token(token: IdToken) -> IdToken:
    if token.type is TokenType.BATTERY_SERIAL:
        validate_serial(token.value)
    elif token.type is not TokenType.NO_AUTHORIZATION and (
        not 1 <= len(token.value) <= 255 or not token.value.isprintable()
    ):
        raise InvalidInput(f"idToken must be 1-255 printable characters, got {token.value!r}")
    return token


def _check_batteries(station: Station, batteries: Sequence[BatteryReading]) -> None:
    if not 1 <= len(batteries) <= MAX_PACKS_PER_SWAP:
        raise InvalidInput(f"a swap event carries 1..{MAX_PACKS_PER_SWAP} packs, got {len(batteries)}")
    for battery in batteries:
        station.check_slot(battery.slot_no)
    if len({b.slot_no for b in batteries}) != len(batteries):
        raise InvalidInput("two packs reported in the same slot")
    if len({b.serial for b in batteries}) != len(batteries):
        raise InvalidInput("the same pack reported twice in one event")


def _station(tx: Tx, station_id: str) -> Station:
    station = tx.repo.station(station_id)
    if station is None:
        raise NotFound(f"unknown station {station_id}")
    return station


def _is_operator(tx: Tx, token: IdToken | None) -> bool:
    if token is None:
        return False
    if token.type is TokenType.OPERATOR:
        return True
    if token.type not in CARD_TOKEN_TYPES:
        return False  # only cards are in the token table (catalog.add_token)
    owner = tx.repo.token_owner(token.type.value, token.value)
    return owner is not None and bool(owner.operator)


def _rider_plan(tx: Tx, rider_id: str) -> Plan:
    rider = tx.repo.rider(rider_id)
    assert rider is not None
    return _plan_of(tx, rider)


def _plan_of(tx: Tx, rider: Rider) -> Plan:
    plan = tx.repo.plan(rider.plan_id)
    assert plan is not None
    return plan


def _insert_swap(
    tx: Tx,
    station_id: str,
    token: IdToken,
    state: str,
    *,
    rider_id: str | None,
    request_id: str | None = None,
    reason: str | None = None,
) -> int:
    values = {
        "station_id": station_id,
        "request_id": request_id,
        "rider_id": rider_id,
        "token_type": token.type.value,
        "token_value": token.value,
        "state": state,
        "reason": reason,
        "created_at": tx.now,
        "updated_at": tx.now,
    }
    return int(tx.repo.run(_INSERT_SWAP, values).scalar_one())


def _set_swap(tx: Tx, swap_id: int, **values: Any) -> None:
    tx.repo.update(t.swaps, "id", swap_id, {**values, "updated_at": tx.now})


def _open_offer(tx: Tx, station_id: str, rider_id: str) -> Row | None:
    """The rider's offer at this station that no BatterySwap event has claimed yet."""
    return tx.repo.run(_OPEN_OFFER, {"station_id": station_id, "rider_id": rider_id}).first()


def _swap_of(row: Row) -> Swap:
    return Swap(row.id, row.station_id, row.rider_id, SwapState(row.state), row.request_id)


def _offer_of(row: Row) -> Offer:
    return Offer(
        row.swap_id,
        row.pack_serial,
        row.slot_no,
        int(row.hold_units),
        row.hold_transfer_id,
        OfferState(row.state),
    )


def _possession_of(row: Row) -> Possession:
    return Possession(
        row.id,
        row.rider_id,
        row.pack_serial,
        row.plan_id,
        row.at_out,
        row.soc_out_bp,
        row.soh_out_bp,
        row.hold_units,
        row.hold_transfer_id,
        row.at_in,
    )


# -- R6: the decision ----------------------------------------------------------------------------


def authorize(
    db: Database,
    station_id: str,
    token: IdToken,
    *,
    request_id: str | None = None,
    wanted: int | None = None,
) -> AuthorizeResult:
    """Decide whether the person at the station may take charged packs, and reserve them.

    With a BatterySerial token the pack is the key (R3): its open possession names the rider.
    An accepted decision reserves the chosen packs and places a pending hold for each (R2);
    a repeated Authorize while that offer is open returns the same offer.
    """
    _check_token(token)
    if request_id is not None:
        request_id = _check_request_id(request_id)
    if wanted is not None and (isinstance(wanted, bool) or not 1 <= wanted <= MAX_PACKS_PER_SWAP):
        raise InvalidInput(f"wanted must be 1..{MAX_PACKS_PER_SWAP}, got {wanted!r}")

    def work(tx: Tx) -> AuthorizeResult:
        station = _station(tx, station_id)
        if request_id is not None:
            existing = tx.repo.swap_by_request(station_id, request_id)
            if existing is not None:
                return _result_of(tx, existing)
        if _is_operator(tx, token):
            return AuthorizeResult(True, None, "Operator", operator=True)
        rider_id, refusal = _identify(tx, station, token)
        if refusal is not None:
            return _refuse(tx, station_id, token, refusal, rider_id=rider_id, request_id=request_id)
        assert rider_id is not None
        rider = tx.repo.lock_riders([rider_id]).get(rider_id)
        assert rider is not None
        offered = tx.repo.run(_OFFERED_TO_RIDER, {"rider_id": rider_id}).all()
        if token.type is TokenType.BATTERY_SERIAL:
            if tx.repo.locks_rows:  # SQLite has one writer: nothing moved since _identify read it
                pack = tx.repo.pack(token.value, lock=True)
                if pack is None or pack.rider_id != rider_id:
                    raise Retry()  # the pack moved between reading it and locking its rider
            # Checked under the rider's lock, so of two stations asking at once one sees the other.
            if any(
                s.station_id != station_id
                and s.token_type == TokenType.BATTERY_SERIAL.value
                and s.token_value == token.value
                for s in offered
            ):
                return _refuse(
                    tx,
                    station_id,
                    token,
                    RefusalReason.PACK_AT_OTHER_STATION,
                    rider_id=rider_id,
                    request_id=request_id,
                )
        open_offer = next((s for s in offered if s.station_id == station_id), None)
        if open_offer is not None and open_offer.request_id is None:
            if request_id is not None:
                _set_swap(tx, open_offer.id, request_id=request_id)
            return _result_of(tx, open_offer)
        plan = _plan_of(tx, rider)
        held = tx.repo.packs_of_rider(rider_id)
        accounts = rider_accounts(tx.book, rider_id, plan)
        decision = decide(
            station=station,
            rider=rider,
            plan=plan,
            available_units=accounts.allowance.available,
            held_count=len(held),
            returning=held,
            stock=tx.repo.packs_at(station_id),
            wanted=wanted,
        )
        if not decision.accepted:
            assert decision.reason is not None
            return _refuse(
                tx,
                station_id,
                token,
                decision.reason,
                rider_id=rider_id,
                request_id=request_id,
                unit=plan.unit.value,
                available=decision.available_units,
                required=decision.required_units,
            )
        swap_id = _insert_swap(
            tx, station_id, token, SwapState.OFFERED, rider_id=rider_id, request_id=request_id
        )
        for offer in decision.offers:
            if not tx.repo.reserve_pack(offer.pack.serial, swap_id, tx.now):
                raise Retry()  # another swap reserved it since we read the stock
            hold_id = _hold(tx, f"offer:{swap_id}:{offer.pack.serial}", rider_id, plan, offer.hold_units)
            tx.repo.run(
                _INSERT_OFFER,
                {
                    "swap_id": swap_id,
                    "pack_serial": offer.pack.serial,
                    "slot_no": offer.pack.slot_no,
                    "hold_units": offer.hold_units,
                    "hold_transfer_id": hold_id,
                    "state": OfferState.OFFERED,
                },
            )
        # What _result_of would read back, from what this transaction has just written.
        offered = []
        for o in decision.offers:
            assert o.pack.slot_no is not None  # stock: every offered pack sits in a slot
            offered.append(OfferedPack(o.pack.slot_no, o.pack.serial, o.pack.soc_bp, o.hold_units))
        offered.sort(key=lambda o: o.slot_no)
        return _accepted(tx, swap_id, rider_id, plan, tuple(offered))

    return db.write(work)


def _identify(tx: Tx, station: Station, token: IdToken) -> tuple[str | None, RefusalReason | None]:
    if token.type is TokenType.BATTERY_SERIAL:
        pack = tx.repo.pack(token.value)
        refusal = check_returned_pack(pack, station)
        if refusal is not None:
            return (pack.rider_id if pack else None), refusal
        assert pack is not None
        return pack.rider_id, None
    if token.type is TokenType.APP:
        if tx.repo.rider(token.value) is None:
            raise NotFound(f"unknown rider {token.value}")
        return token.value, None
    if token.type is TokenType.NO_AUTHORIZATION:
        return None, RefusalReason.UNKNOWN_TOKEN
    owner = tx.repo.token_owner(token.type.value, token.value)
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
    tx: Tx,
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
    swap_id = _insert_swap(
        tx,
        station_id,
        token,
        SwapState.REFUSED,
        rider_id=rider_id,
        request_id=request_id,
        reason=reason.value,
    )
    kind = _ALERTING.get(reason)
    if kind is not None:
        tx.repo.alert(
            kind,
            f"{token.type.value} {token.value} presented at {station_id}: {REFUSAL_TEXT[reason]}",
            tx.now,
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


def _result_of(tx: Tx, swap: Row) -> AuthorizeResult:
    """The answer an existing swap gave, rebuilt from the database (for repeated requests)."""
    if swap.state == SwapState.REFUSED:
        reason = RefusalReason(swap.reason)
        return AuthorizeResult(False, reason.value, REFUSAL_TEXT[reason], swap.id, swap.rider_id)
    plan = _rider_plan(tx, swap.rider_id)
    offers = tx.repo.offers(swap.id)
    packs = tx.repo.packs([o.pack_serial for o in offers])
    offered = tuple(
        OfferedPack(o.slot_no, o.pack_serial, packs[o.pack_serial].soc_bp, o.hold_units) for o in offers
    )
    return _accepted(tx, swap.id, swap.rider_id, plan, offered)


def _accepted(
    tx: Tx, swap_id: int, rider_id: str, plan: Plan, offered: tuple[OfferedPack, ...]
) -> AuthorizeResult:
    """An offer's answer, with the rider's balance after its holds (the station shows it)."""
    accounts = rider_accounts(tx.book, rider_id, plan)
    allowance = accounts.allowance
    return AuthorizeResult(
        True,
        None,
        "Accepted",
        swap_id,
        rider_id,
        offered=offered,
        unit=plan.unit.value,
        available_units=allowance.available,
        required_units=sum(o.hold_units for o in offered),
        currency=plan.currency,
        available_value_minor=weighted_value(
            accounts.prepaid.credit_balance, allowance.credit_balance, allowance.available
        ),
    )


def _hold(tx: Tx, key: str, rider_id: str, plan: Plan, units: int) -> int | None:
    if units <= 0:
        return None
    accounts = rider_accounts(tx.book, rider_id, plan)
    consumed = tx.book.account(plan.unit.value, AccountCode.ALLOWANCE_CONSUMED)
    transfer = tx.book.transfer(
        TransferRequest(
            key=f"{key}:hold",
            ledger=plan.unit.value,
            debit_account_id=accounts.allowance.id,
            credit_account_id=consumed.id,
            amount=units,
            code=TransferCode.HOLD,
            flags=TransferFlags.PENDING,
            rider_id=rider_id,
        )
    )
    return transfer.id


def _release(tx: Tx, key: str, hold_transfer_id: int | None, rider_id: str) -> None:
    if hold_transfer_id is None or tx.book.is_resolved(hold_transfer_id):
        return
    pending = tx.book.transfer_by_id(hold_transfer_id)
    assert pending is not None, "a hold names a transfer that exists"
    tx.book.transfer(
        TransferRequest(
            key=f"{key}:release",
            ledger=pending.ledger,
            debit_account_id=pending.debit_account_id,
            credit_account_id=pending.credit_account_id,
            amount=pending.amount,
            code=TransferCode.RELEASE,
            flags=TransferFlags.VOID_PENDING,
            pending_id=hold_transfer_id,
            rider_id=rider_id,
        )
    )


# -- events --------------------------------------------------------------------------------------


def _already(tx: Tx, station_id: str, request_id: str, event_type: str) -> EventResult | None:
    row = tx.repo.station_event(station_id, request_id, event_type)
    return None if row is None else EventResult.from_json(row.result)


def _record(tx: Tx, station_id: str, request_id: str, result: EventResult) -> EventResult:
    tx.repo.run(
        _INSERT_EVENT,
        {
            "station_id": station_id,
            "request_id": request_id,
            "event_type": result.event_type,
            "received_at": tx.now,
            "result": result.to_json(),
        },
    )
    return result


def battery_in(
    db: Database,
    station_id: str,
    request_id: str,
    batteries: Sequence[BatteryReading],
    *,
    token: IdToken | None = None,
) -> EventResult:
    """Packs inserted into empty slots. Each pack names its rider (R3); its possession is closed,
    metered (R4) and charged (R5). Packs that nobody holds raise an alert and change nothing."""
    request_id = _check_request_id(request_id)
    if token is not None:
        _check_token(token)

    def work(tx: Tx) -> EventResult:
        station = _station(tx, station_id)
        _check_batteries(station, batteries)
        repeated = _already(tx, station_id, request_id, EventType.BATTERY_IN)
        if repeated is not None:
            return repeated
        serials = [b.serial for b in batteries]
        packs = tx.repo.packs(serials)
        holders = {s: p.rider_id for s, p in packs.items() if p.rider_id}
        if tx.repo.locks_rows:  # riders first, then packs; the holders may have changed since
            # (SQLite's write transaction holds the whole database: nothing to lock or re-read.)
            tx.repo.lock_riders(sorted(set(holders.values())))
            packs = tx.repo.packs(serials, lock=True)
            if {s: p.rider_id for s, p in packs.items() if p.rider_id} != holders:
                raise Retry()
        for battery in batteries:
            slot = tx.repo.slot(station_id, battery.slot_no)
            assert slot is not None
            if slot.pack_serial is not None and slot.pack_serial != battery.serial:
                raise Conflict(
                    f"slot {battery.slot_no} of station {station_id} already holds pack "
                    f"{slot.pack_serial}; {battery.serial} cannot be inserted there"
                )
        operator = _is_operator(tx, token)
        swap_id = _swap_for_return(tx, station_id, request_id, token, holders, serials)
        outcomes = []
        for battery in batteries:
            pack = packs.get(battery.serial)
            outcomes.append(_return_one(tx, station, swap_id, request_id, battery, pack, operator))
        return _record(
            tx, station_id, request_id, EventResult(swap_id, EventType.BATTERY_IN, tuple(outcomes))
        )

    return db.write(work)


def _swap_for_return(
    tx: Tx,
    station_id: str,
    request_id: str,
    token: IdToken | None,
    holders: dict[str, str],
    serials: Sequence[str],
) -> int:
    existing = tx.repo.swap_by_request(station_id, request_id)
    if existing is not None:
        return int(existing.id)
    rider_id = next((holders[s] for s in serials if s in holders), None)
    if rider_id is not None:
        offer = _open_offer(tx, station_id, rider_id)
        if offer is not None and offer.request_id is None:
            _set_swap(tx, offer.id, request_id=request_id)
            return int(offer.id)
    used = token or IdToken(TokenType.BATTERY_SERIAL, serials[0])
    swap_id = _insert_swap(
        tx, station_id, used, SwapState.RETURNED, rider_id=rider_id, request_id=request_id
    )
    # Rare: the packs' holder has no offer here, yet a card or app token names someone.
    if rider_id is not None and token is not None and token.type is not TokenType.BATTERY_SERIAL:
        _check_token_against_packs(tx, station_id, request_id, swap_id, token, holders, serials)
    return swap_id


def _check_token_against_packs(
    tx: Tx,
    station_id: str,
    request_id: str,
    swap_id: int,
    token: IdToken,
    holders: dict[str, str],
    serials: Sequence[str],
) -> None:
    """The packs decide who is billed (R3); a token naming someone else is an alert, and the
    offer that token was given here is abandoned now instead of at its timeout. Runs once per
    BatteryIn: a repeated event is answered from its record before getting here."""
    token_rider_id = _token_rider(tx, token)
    if not is_token_pack_mismatch(token_rider_id, set(holders.values())):
        return
    assert token_rider_id is not None
    offer = _open_offer(tx, station_id, token_rider_id)
    released = ""
    if offer is not None and offer.request_id is None:  # unbound: it was given for this token
        outcomes = _abandon(tx, offer)
        released = f"; offer {offer.id} to {token_rider_id} released ({len(outcomes)} packs)"
    held = [s for s in serials if s in holders]
    tx.repo.alert(
        "token_pack_mismatch",
        f"{token.type.value} token of rider {token_rider_id} returned {', '.join(held)} held by "
        f"{', '.join(sorted(set(holders.values())))} at {station_id} "
        f"(request {request_id}, swap {swap_id}); the pack's holder is billed{released}",
        tx.now,
        station_id=station_id,
        pack_serial=held[0],
        rider_id=token_rider_id,
    )


def _return_one(
    tx: Tx,
    station: Station,
    swap_id: int,
    request_id: str,
    battery: BatteryReading,
    pack: Pack | None,
    operator: bool,
) -> PackOutcome:
    serial, slot_no = battery.serial, battery.slot_no
    if pack is None:
        tx.repo.alert(
            "foreign_pack",
            f"unknown pack {serial} inserted into slot {slot_no}",
            tx.now,
            station_id=station.id,
            pack_serial=serial,
        )
        return PackOutcome(serial, slot_no, PackOutcomeKind.FOREIGN_PACK)
    if pack.status is PackStatus.WITH_RIDER:
        return _close_possession(tx, station, swap_id, request_id, battery, pack)
    if pack.status is PackStatus.IN_SLOT and (pack.station_id, pack.slot_no) == (
        station.id,
        slot_no,
    ):
        return PackOutcome(serial, slot_no, PackOutcomeKind.ALREADY_IN_SLOT)
    if operator and pack.status in (PackStatus.IN_STOCK, PackStatus.QUARANTINED):
        _place(tx, pack.serial, station.id, slot_no, battery)
        return PackOutcome(serial, slot_no, PackOutcomeKind.RESTOCKED)
    kind = (
        PackOutcomeKind.PACK_TWO_PLACES
        if pack.status is PackStatus.IN_SLOT
        else PackOutcomeKind.PACK_NOT_ASSIGNED
    )
    tx.repo.alert(
        kind,
        f"pack {serial} ({pack.place()}) reported in slot {slot_no}",
        tx.now,
        station_id=station.id,
        pack_serial=serial,
    )
    return PackOutcome(serial, slot_no, kind)


def _place(tx: Tx, serial: str, station_id: str, slot_no: int, battery: BatteryReading) -> None:
    tx.repo.update_pack(
        serial,
        tx.now,
        status=PackStatus.IN_SLOT.value,
        station_id=station_id,
        slot_no=slot_no,
        rider_id=None,
        reserved_swap_id=None,
        soc_bp=battery.soc_bp,
        soh_bp=battery.soh_bp,
    )
    tx.repo.set_slot(station_id, slot_no, serial)


@dataclass(frozen=True, slots=True)
class Charge:
    usage_units: int
    charged_units: int
    beyond_units: int
    revenue_minor: int
    overage_minor: int


def _close_possession(
    tx: Tx, station: Station, swap_id: int, request_id: str, battery: BatteryReading, pack: Pack
) -> PackOutcome:
    row = tx.repo.open_possession(pack.serial)
    assert row is not None, "a pack with a rider has an open possession"
    possession = _possession_of(row)
    plan = tx.repo.plan(possession.plan_id)
    assert plan is not None
    usage = meter(
        plan,
        nominal_wh=pack.nominal_wh,
        soh_out_bp=possession.soh_out_bp,
        soc_out_bp=possession.soc_out_bp,
        soc_in_bp=battery.soc_bp,
        handed_over_at=possession.at_out,
        returned_at=tx.now,
    )
    rider_id = possession.rider_id
    key = f"{station.id}:{request_id}:{pack.serial}:{EventType.BATTERY_IN}"
    charge = _charge(
        tx, key, rider_id, plan, possession.held_units, possession.hold_transfer_id, usage.units
    )
    if usage.anomaly:
        tx.repo.alert(
            "soc_anomaly",
            f"pack {pack.serial}: {usage.anomaly}",
            tx.now,
            station_id=station.id,
            pack_serial=pack.serial,
            rider_id=rider_id,
        )
    closed = possession.close(
        swap_in_id=swap_id,
        station_in=station.id,
        slot_in=battery.slot_no,
        at_in=tx.now,
        soc_in_bp=battery.soc_bp,
        soh_in_bp=battery.soh_bp,
        usage_units=usage.units,
        anomaly=usage.anomaly,
    )
    tx.repo.update(t.possessions, "id", closed.possession_id, _closed_columns(closed))
    _place(tx, pack.serial, station.id, battery.slot_no, battery)
    if plan.is_subscription:
        tx.repo.execute(
            sa.update(t.subscriptions)
            .where(t.subscriptions.c.rider_id == rider_id)
            .values(consumed_units=t.subscriptions.c.consumed_units + charge.charged_units)
        )
    return PackOutcome(
        pack.serial,
        battery.slot_no,
        PackOutcomeKind.RETURNED,
        rider_id,
        usage.units,
        charge.charged_units,
        charge.beyond_units,
        charge.revenue_minor,
        charge.overage_minor,
        possession.hold_units,
        usage.anomaly,
    )


def _closed_columns(closed: PossessionClosed) -> dict[str, Any]:
    """The possession's columns a return sets: the event's fields are named after them."""
    return {
        field.name: getattr(closed, field.name)
        for field in dataclasses.fields(closed)
        if field.name != "possession_id"
    }


def _charge(
    tx: Tx,
    key: str,
    rider_id: str,
    plan: Plan,
    held_units: int,
    hold_transfer_id: int | None,
    usage_units: int,
) -> Charge:
    """R5: post the usage against the hold, take any rest from the free allowance, and bill
    what is beyond it as overage (subscriptions) or owe it (overdrawn, settled by a top-up).
    ``held_units`` is what the pending hold ``hold_transfer_id`` covers (0 without one)."""
    accounts = rider_accounts(tx.book, rider_id, plan)
    split = split_for_plan(
        plan, usage_units, held_units=held_units, available_units=accounts.allowance.available
    )
    from_hold, beyond = split.from_hold_units, split.beyond_units
    revenue = recognise(tx.book, f"{key}:revenue", rider_id, plan, split.charged_units)
    consumed = tx.book.account(plan.unit.value, AccountCode.ALLOWANCE_CONSUMED)
    if hold_transfer_id is not None:
        pending = tx.book.transfer_by_id(hold_transfer_id)
        assert pending is not None, "a hold names a transfer that exists"
        flags = TransferFlags.POST_PENDING if from_hold > 0 else TransferFlags.VOID_PENDING
        tx.book.transfer(
            TransferRequest(
                key=f"{key}:post",
                ledger=plan.unit.value,
                debit_account_id=pending.debit_account_id,
                credit_account_id=pending.credit_account_id,
                amount=from_hold if from_hold > 0 else pending.amount,
                code=TransferCode.USAGE if from_hold > 0 else TransferCode.RELEASE,
                flags=flags,
                pending_id=hold_transfer_id,
                rider_id=rider_id,
            )
        )
    move(
        tx.book,
        f"{key}:usage",
        accounts.allowance,
        consumed,
        split.from_free_units,
        TransferCode.USAGE,
        rider_id=rider_id,
    )
    if beyond > 0:
        if split.overage_billed:
            issued = tx.book.account(plan.unit.value, AccountCode.ALLOWANCE_ISSUED)
            move(
                tx.book,
                f"{key}:overage",
                issued,
                consumed,
                beyond,
                TransferCode.OVERAGE,
                rider_id=rider_id,
            )
            revenue_account = tx.book.account(plan.currency, AccountCode.REVENUE)
            move(
                tx.book,
                f"{key}:overage:money",
                accounts.receivable,
                revenue_account,
                split.overage_minor,
                TransferCode.OVERAGE,
                rider_id=rider_id,
            )
        else:
            move(
                tx.book,
                f"{key}:overdrawn",
                accounts.overdrawn,
                consumed,
                beyond,
                TransferCode.OVERDRAWN,
                rider_id=rider_id,
            )
    return Charge(usage_units, split.charged_units, beyond, revenue, split.overage_minor)


def battery_out(
    db: Database,
    station_id: str,
    request_id: str,
    batteries: Sequence[BatteryReading],
    *,
    token: IdToken | None = None,
) -> EventResult:
    """Packs taken out of their slots: each opens a possession (R2) that carries the hold placed
    when it was offered. Offered packs that were not taken are released."""
    request_id = _check_request_id(request_id)
    if token is not None:
        _check_token(token)

    def work(tx: Tx) -> EventResult:
        station = _station(tx, station_id)
        _check_batteries(station, batteries)
        repeated = _already(tx, station_id, request_id, EventType.BATTERY_OUT)
        if repeated is not None:
            return repeated
        if _is_operator(tx, token):
            withdrawn = tuple(_withdraw(tx, station, b) for b in batteries)
            return _record(
                tx, station_id, request_id, EventResult(None, EventType.BATTERY_OUT, withdrawn)
            )
        swap = _swap_for_event(tx, station_id, request_id, token)
        # Without an offer the token still says who took the packs (the station let them go).
        rider_id = _token_rider(tx, token) if swap is None else swap.rider_id
        rider = None if rider_id is None else tx.repo.lock_riders([rider_id]).get(rider_id)
        packs = tx.repo.packs([b.serial for b in batteries], lock=True)
        offers = {} if swap is None else {o.pack_serial: o for o in tx.repo.offers(swap.id)}
        outcomes = []
        for battery in batteries:
            outcomes.append(
                _hand_over(
                    tx,
                    station,
                    swap,
                    rider,
                    request_id,
                    battery,
                    packs.get(battery.serial),
                    offers.get(battery.serial),
                )
            )
        if swap is not None:
            taken = {b.serial for b in batteries}
            for serial, offer in offers.items():
                if serial not in taken and offer.state == OfferState.OFFERED:
                    outcomes.append(_release_offer(tx, swap, offer))
            _set_swap(tx, swap.id, state=_swap_of(swap).complete().state)
        swap_id = None if swap is None else int(swap.id)
        return _record(
            tx, station_id, request_id, EventResult(swap_id, EventType.BATTERY_OUT, tuple(outcomes))
        )

    return db.write(work)


def _token_rider(tx: Tx, token: IdToken | None) -> str | None:
    """The rider a token names, if any (a battery serial names the pack's holder)."""
    if token is None or token.type is TokenType.NO_AUTHORIZATION:
        return None
    if token.type is TokenType.APP:
        return token.value if tx.repo.rider(token.value) is not None else None
    if token.type is TokenType.BATTERY_SERIAL:
        pack = tx.repo.pack(token.value)
        return pack.rider_id if pack else None
    owner = tx.repo.token_owner(token.type.value, token.value)
    return None if owner is None or owner.rider_id is None else str(owner.rider_id)


def _swap_for_event(tx: Tx, station_id: str, request_id: str, token: IdToken | None) -> Row | None:
    """The swap a BatterySwap event belongs to: by requestId, else the open offer of the rider
    the token names (battery-as-key and RFID swaps learn their requestId here)."""
    swap = tx.repo.swap_by_request(station_id, request_id)
    if swap is not None:
        return swap
    rider_id = _token_rider(tx, token)
    if rider_id is None:
        return None
    offer = _open_offer(tx, station_id, rider_id)
    if offer is None or offer.request_id is not None:
        return None
    _set_swap(tx, offer.id, request_id=request_id)
    return tx.repo.swap(offer.id)


def _hand_over(
    tx: Tx,
    station: Station,
    swap: Row | None,
    rider: Rider | None,
    request_id: str,
    battery: BatteryReading,
    pack: Pack | None,
    offer: Row | None,
) -> PackOutcome:
    serial, slot_no = battery.serial, battery.slot_no
    rider_id = None if rider is None else rider.id
    if pack is None:
        tx.repo.alert(
            "foreign_pack",
            f"unknown pack {serial} taken from slot {slot_no}",
            tx.now,
            station_id=station.id,
            pack_serial=serial,
        )
        return PackOutcome(serial, slot_no, PackOutcomeKind.FOREIGN_PACK)
    if pack.status is not PackStatus.IN_SLOT or pack.station_id != station.id:
        tx.repo.alert(
            "pack_two_places",
            f"pack {serial} ({pack.place()}) reported taken from slot {slot_no}",
            tx.now,
            station_id=station.id,
            pack_serial=serial,
        )
        return PackOutcome(serial, slot_no, PackOutcomeKind.PACK_TWO_PLACES)
    if rider_id is None:
        # The pack left the station and we cannot tell with whom: take it out of service.
        tx.repo.alert(
            "handover_without_rider",
            f"pack {serial} taken from slot {slot_no} "
            f"without an authorized rider (request {request_id})",
            tx.now,
            station_id=station.id,
            pack_serial=serial,
        )
        if pack.slot_no is not None:
            tx.repo.set_slot(station.id, pack.slot_no, None)
        tx.repo.update_pack(
            serial,
            tx.now,
            status=PackStatus.QUARANTINED.value,
            station_id=None,
            slot_no=None,
            reserved_swap_id=None,
        )
        return PackOutcome(serial, slot_no, PackOutcomeKind.HANDOVER_WITHOUT_RIDER)
    assert rider is not None and rider_id is not None
    plan = _plan_of(tx, rider)
    if offer is not None and offer.state == OfferState.OFFERED:
        taken = _offer_of(offer).take()
        hold_units, hold_id = taken.hold_units, taken.hold_transfer_id
        tx.repo.run(
            _SET_OFFER_STATE,
            {"p_swap_id": taken.swap_id, "p_serial": serial, "v_state": taken.state},
        )
    else:
        if pack.reserved_swap_id is not None and (swap is None or pack.reserved_swap_id != swap.id):
            tx.repo.alert(
                "pack_reserved_elsewhere",
                f"pack {serial} was offered in swap "
                f"{pack.reserved_swap_id} but taken in request {request_id}",
                tx.now,
                station_id=station.id,
                pack_serial=serial,
                rider_id=rider_id,
            )
        # Not offered by us, but physically gone with the rider: hold what the allowance covers.
        accounts = rider_accounts(tx.book, rider_id, plan)
        need = plan.requirement_for(pack)
        hold_units = min(need, accounts.allowance.available)
        hold_id = _hold(
            tx,
            f"{station.id}:{request_id}:{serial}:{EventType.BATTERY_OUT}",
            rider_id,
            plan,
            hold_units,
        )
        if hold_units < need or swap is None or offer is None:
            tx.repo.alert(
                "unoffered_handover",
                f"pack {serial} handed to {rider_id} without an "
                f"offer; held {hold_units} of {need} {plan.unit}",
                tx.now,
                station_id=station.id,
                pack_serial=serial,
                rider_id=rider_id,
            )
    held_now = len(tx.repo.packs_of_rider(rider_id))
    if held_now + 1 > rider.vehicle_packs:
        tx.repo.alert(
            "too_many_packs",
            f"rider {rider_id} now holds {held_now + 1} packs; the vehicle takes {rider.vehicle_packs}",
            tx.now,
            station_id=station.id,
            pack_serial=serial,
            rider_id=rider_id,
        )
    tx.repo.run(
        _INSERT_POSSESSION,
        {
            "rider_id": rider_id,
            "pack_serial": serial,
            "plan_id": plan.id,
            "swap_out_id": None if swap is None else swap.id,
            "station_out": station.id,
            "slot_out": pack.slot_no,
            "at_out": tx.now,
            "soc_out_bp": battery.soc_bp,
            "soh_out_bp": battery.soh_bp,
            "hold_units": hold_units,
            "hold_transfer_id": hold_id,
        },
    )
    if pack.slot_no is not None:
        tx.repo.set_slot(station.id, pack.slot_no, None)
    tx.repo.update_pack(
        serial,
        tx.now,
        status=PackStatus.WITH_RIDER.value,
        station_id=None,
        slot_no=None,
        rider_id=rider_id,
        reserved_swap_id=None,
        soc_bp=battery.soc_bp,
        soh_bp=battery.soh_bp,
    )
    return PackOutcome(
        serial, pack.slot_no or slot_no, PackOutcomeKind.HANDED_OVER, rider_id, hold_units=hold_units
    )


def _withdraw(tx: Tx, station: Station, battery: BatteryReading) -> PackOutcome:
    pack = tx.repo.pack(battery.serial, lock=True)
    if pack is None or pack.status is not PackStatus.IN_SLOT or pack.station_id != station.id:
        tx.repo.alert(
            "withdraw_mismatch",
            f"operator took {battery.serial} from slot {battery.slot_no}, which we did not have there",
            tx.now,
            station_id=station.id,
            pack_serial=battery.serial,
        )
        return PackOutcome(battery.serial, battery.slot_no, PackOutcomeKind.WITHDRAW_MISMATCH)
    if pack.reserved_swap_id is not None:
        swap = tx.repo.swap(pack.reserved_swap_id)
        offer = next(o for o in tx.repo.offers(pack.reserved_swap_id) if o.pack_serial == pack.serial)
        if swap is not None:
            _release_offer(tx, swap, offer)
    if pack.slot_no is not None:
        tx.repo.set_slot(station.id, pack.slot_no, None)
    tx.repo.update_pack(
        pack.serial,
        tx.now,
        status=PackStatus.IN_STOCK.value,
        station_id=None,
        slot_no=None,
        reserved_swap_id=None,
        soc_bp=battery.soc_bp,
        soh_bp=battery.soh_bp,
    )
    return PackOutcome(battery.serial, battery.slot_no, PackOutcomeKind.WITHDRAWN)


def _release_offer(tx: Tx, swap: Row, offer: Row) -> PackOutcome:
    """Void an open offer's hold and clear its pack's reservation. An offer is open whenever its
    pack is still reserved for its swap (taking or releasing it clears the reservation)."""
    released = _offer_of(offer).release()
    serial = released.pack_serial
    _release(tx, f"offer:{swap.id}:{serial}", released.hold_transfer_id, swap.rider_id)
    tx.repo.execute(
        sa.update(t.swap_offers)
        .where(t.swap_offers.c.swap_id == swap.id, t.swap_offers.c.pack_serial == serial)
        .values(state=released.state)
    )
    tx.repo.execute(
        sa.update(t.packs)
        .where(t.packs.c.serial == serial, t.packs.c.reserved_swap_id == swap.id)
        .values(reserved_swap_id=None, updated_at=tx.now)
    )
    return PackOutcome(
        serial,
        released.slot_no,
        PackOutcomeKind.RELEASED,
        swap.rider_id,
        hold_units=released.hold_units,
    )


def battery_out_timeout(
    db: Database,
    station_id: str,
    request_id: str,
    batteries: Sequence[BatteryReading] = (),
    *,
    token: IdToken | None = None,
) -> EventResult:
    """The offered packs were not taken: release their holds; they stay in stock."""
    request_id = _check_request_id(request_id)
    if token is not None:
        _check_token(token)

    def work(tx: Tx) -> EventResult:
        station = _station(tx, station_id)
        if batteries:
            _check_batteries(station, batteries)
        repeated = _already(tx, station_id, request_id, EventType.BATTERY_OUT_TIMEOUT)
        if repeated is not None:
            return repeated
        swap = _swap_for_event(tx, station_id, request_id, token)
        outcomes = [] if swap is None else _abandon(tx, swap)
        swap_id = None if swap is None else int(swap.id)
        result = EventResult(swap_id, EventType.BATTERY_OUT_TIMEOUT, tuple(outcomes))
        return _record(tx, station_id, request_id, result)

    return db.write(work)


def _abandon(tx: Tx, swap: Row) -> list[PackOutcome]:
    """Release every pack still offered in an open swap and mark it abandoned."""
    current = _swap_of(swap)
    if not current.is_open:
        return []
    abandoned = current.abandon()
    if current.rider_id is not None:
        tx.repo.lock_riders([current.rider_id])
    offers = tx.repo.offers(current.id)
    outcomes = [_release_offer(tx, swap, o) for o in offers if o.state == OfferState.OFFERED]
    _set_swap(tx, current.id, state=abandoned.state)
    return outcomes


def abandon_offer(db: Database, swap_id: int) -> EventResult:
    """Server-side: give up an offer no station event ever answered (the rider walked away)."""

    def work(tx: Tx) -> EventResult:
        swap = tx.repo.swap(swap_id)
        if swap is None:
            raise NotFound(f"unknown swap {swap_id}")
        return EventResult(swap_id, EventType.BATTERY_OUT_TIMEOUT, tuple(_abandon(tx, swap)))

    return db.write(work)


def expire_stale_offers(db: Database, *, older_than_s: int) -> list[int]:
    """Abandon offers that no station event answered in time: their packs go back in stock and
    their holds are released. The gateway runs this now and then; returns the swaps abandoned."""
    if older_than_s <= 0:
        raise InvalidInput("older_than_s must be positive")

    def stale(tx: Tx) -> list[int]:
        cutoff = tx.now - timedelta(seconds=older_than_s)
        rows = tx.repo.execute(
            sa.select(t.swaps.c.id)
            .where(t.swaps.c.state == SwapState.OFFERED, t.swaps.c.updated_at < cutoff)
            .order_by(t.swaps.c.id)
            .limit(500)
        )
        return [int(r.id) for r in rows]

    expired = []
    for swap_id in db.read(stale):
        result = abandon_offer(db, swap_id)
        if result.packs:
            expired.append(swap_id)
    return expired

"""BatteryIn: packs inserted into empty slots. Each pack names its rider (R3); its possession is
closed, metered (R4) and charged (R5). Packs that nobody holds raise an alert and change nothing.

A BatteryIn reads as load -> domain -> save. ``_load`` reads what the event decides from before
anything is written: the packs (riders locked first, then packs), the slots they go in, the open
possession of each pack with a rider and its plan, whether the token is an operator's, and the
swap the event belongs to. ``_save_swap`` writes that swap. Then, pack by pack in the order
reported, ``_close`` reads the rider's allowance (an earlier pack of the same rider has moved it),
the domain meters the usage, splits its charge and closes the possession, and the save functions
post the ledger transfers and write the rows, in the same order for every event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from swapd.domain.charge import ChargeSplit, split_for_plan
from swapd.domain.decision import is_token_pack_mismatch
from swapd.domain.errors import Conflict, Retry
from swapd.domain.event_reads import ReturnAtStation
from swapd.domain.lifecycle import PackOutcomeKind, Possession, PossessionClosed, Swap, SwapState
from swapd.domain.metering import Usage, meter
from swapd.domain.packs import Pack, PackStatus
from swapd.domain.plans import Plan
from swapd.domain.riders import IdToken, TokenType
from swapd.domain.stations import Slot, Station
from swapd.services.money import rider_accounts
from swapd.services.ports import Transactions, UnitOfWork
from swapd.services.swaps import offline
from swapd.services.swaps.checks import check_batteries, check_request_id, check_token
from swapd.services.swaps.event_records import record, station_and_repeat
from swapd.services.swaps.lookups import is_operator, token_rider
from swapd.services.swaps.offers import abandon
from swapd.services.swaps.postings import post_charge
from swapd.services.swaps.records import BatteryReading, EventResult, EventType, PackOutcome


@dataclass(frozen=True, slots=True)
class _Mismatch:
    """A card or app token naming a rider who holds none of the returned packs (the packs'
    holders are billed, R3). Only looked for when the holder has no offer at the station."""

    rider_id: str
    offer: Swap | None  # the token rider's unclaimed offer here: given for this token, abandoned


@dataclass(frozen=True, slots=True)
class _SwapFound:
    """The swap a BatteryIn belongs to, as found before anything is written."""

    existing_id: int | None  # the swap this requestId already has at the station
    offer_id: int | None  # the holder's offer here that no event has claimed: this one claims it
    rider_id: str | None  # the first returned pack's holder, for whom a new swap is recorded
    mismatch: _Mismatch | None = None


@dataclass(frozen=True, slots=True)
class _Loaded:
    """Everything a BatteryIn decides from, read before it writes."""

    packs: dict[str, Pack]  # the reported packs the server knows, by serial
    holders: dict[str, str]  # serial -> the rider holding that pack
    possessions: dict[str, Possession]  # serial -> its open possession (packs with a rider)
    plans: dict[str, Plan]  # plan id -> plan, for those possessions
    operator: bool  # the token is an operator's: packs from the depot are restocked
    swap: _SwapFound
    holders_then: dict[str, str]  # a replay's: serial -> its rider at the event's time


def battery_in(
    db: Transactions,
    station_id: str,
    request_id: str,
    batteries: Sequence[BatteryReading],
    *,
    token: IdToken | None = None,
    offline_at: datetime | None = None,
) -> EventResult:
    """Packs inserted into empty slots. Each pack names its rider (R3); its possession is closed,
    metered (R4) and charged (R5). Packs that nobody holds raise an alert and change nothing.
    ``offline_at``: a station replays a return it took while offline, at that time (offline.py)."""
    request_id = check_request_id(request_id)
    if token is not None:
        check_token(token)

    def work(uow: UnitOfWork) -> EventResult:
        station, repeated = station_and_repeat(uow, station_id, request_id, EventType.BATTERY_IN)
        check_batteries(station, batteries)
        if repeated is not None:
            return repeated
        replay = offline.replay_of(offline_at, uow.now)
        at = uow.now if replay is None else replay.at
        # A replay's slots are checked pack by pack (offline.resolve_return), not refused whole.
        loaded = _load(uow, station, request_id, batteries, token, None if replay is None else at)
        swap_id = _save_swap(uow, station_id, request_id, token, loaded, batteries)
        outcomes = tuple(
            _return_one(uow, station, swap_id, request_id, battery, loaded, at, replay is not None)
            for battery in batteries
        )
        result = EventResult(swap_id, EventType.BATTERY_IN, outcomes)
        if replay is not None:
            event = EventType.BATTERY_IN
            offline.note_event(uow, station_id, request_id, event, replay, token, batteries, outcomes)
        return record(uow, station_id, request_id, result)

    return db.write(work)


# -- load -----------------------------------------------------------------------------------------


def _load(
    uow: UnitOfWork,
    station: Station,
    request_id: str,
    batteries: Sequence[BatteryReading],
    token: IdToken | None,
    replayed_at: datetime | None,
) -> _Loaded:
    """``replayed_at``: the time of a replayed event, whose packs name the riders who held them
    then (a later reading may have moved one since: offline.resolve_return)."""
    serials = [b.serial for b in batteries]
    first = uow.repo.packs(serials)  # unlocked: who to lock first
    holders = _holders(first)
    then = dict(holders)
    if replayed_at is not None:
        for serial in serials:
            holder = None if serial in holders else uow.repo.holder_at(serial, replayed_at)
            if holder is not None:
                then[serial] = holder
    offer_rider = next((then[s] for s in serials if s in then), None)
    seen = uow.repo.return_at_station(
        station.id,
        request_id,
        serials,
        holders=sorted(set(holders.values())),
        # A replay's slots are checked pack by pack (offline.resolve_return), not refused whole.
        slot_nos=[b.slot_no for b in batteries] if replayed_at is None else [],
        offer_rider=offer_rider,
    )
    packs = seen.packs
    if _holders(packs) != holders:  # a holder changed between the read and the locks
        raise Retry()
    if replayed_at is None:
        _check_slots_free(station.id, batteries, seen.slots)
    possessions = _possessions(packs.values(), seen.possessions)
    plans = _load_plans(uow, possessions.values())
    operator = is_operator(uow, token)
    swap = _found_swap(uow, station.id, token, then, offer_rider, seen)
    return _Loaded(packs, holders, possessions, plans, operator, swap, then)


def _holders(packs: dict[str, Pack]) -> dict[str, str]:
    return {serial: p.rider_id for serial, p in packs.items() if p.rider_id}


def _check_slots_free(
    station_id: str, batteries: Sequence[BatteryReading], slots: Mapping[int, Slot | None]
) -> None:
    for battery in batteries:
        slot = slots[battery.slot_no]
        assert slot is not None
        if slot.pack_serial is not None and slot.pack_serial != battery.serial:
            raise Conflict(
                f"slot {battery.slot_no} of station {station_id} already holds pack "
                f"{slot.pack_serial}; {battery.serial} cannot be inserted there"
            )


def _possessions(packs: Iterable[Pack], found: Mapping[str, Possession]) -> dict[str, Possession]:
    possessions = {}
    for pack in packs:
        if pack.status is PackStatus.WITH_RIDER:
            possession = found.get(pack.serial)
            assert possession is not None, "a pack with a rider has an open possession"
            possessions[pack.serial] = possession
    return possessions


def _load_plans(uow: UnitOfWork, possessions: Iterable[Possession]) -> dict[str, Plan]:
    plans = {}
    for possession in possessions:
        plan = uow.repo.plan(possession.plan_id)
        assert plan is not None
        plans[possession.plan_id] = plan
    return plans


def _found_swap(
    uow: UnitOfWork,
    station_id: str,
    token: IdToken | None,
    holders: dict[str, str],
    rider_id: str | None,
    seen: ReturnAtStation,
) -> _SwapFound:
    """The swap this event belongs to: the one its requestId names already, the offer its
    packs' holder (``rider_id``) has here, or a new one."""
    if seen.by_request is not None:
        return _SwapFound(seen.by_request.id, None, None)
    if rider_id is None:
        return _SwapFound(None, None, None)
    offer = seen.offer
    if offer is not None and offer.request_id is None:
        return _SwapFound(None, offer.id, rider_id)
    # Rare: the packs' holder has no offer here, yet a card or app token names someone.
    return _SwapFound(None, None, rider_id, _load_mismatch(uow, station_id, token, holders))


def _load_mismatch(
    uow: UnitOfWork, station_id: str, token: IdToken | None, holders: dict[str, str]
) -> _Mismatch | None:
    if token is None or token.type is TokenType.BATTERY_SERIAL:
        return None
    token_rider_id = token_rider(uow, token)
    if not is_token_pack_mismatch(token_rider_id, set(holders.values())):
        return None
    assert token_rider_id is not None
    offer = uow.repo.open_offer(station_id, token_rider_id)
    unclaimed = offer is not None and offer.request_id is None
    return _Mismatch(token_rider_id, offer if unclaimed else None)


# -- save the swap --------------------------------------------------------------------------------


def _save_swap(
    uow: UnitOfWork,
    station_id: str,
    request_id: str,
    token: IdToken | None,
    loaded: _Loaded,
    batteries: Sequence[BatteryReading],
) -> int:
    """The swap's id: the one the requestId has, the holder's offer this event claims, or a new
    swap of returned packs."""
    found = loaded.swap
    if found.existing_id is not None:
        return found.existing_id
    if found.offer_id is not None:
        uow.repo.set_swap_request(found.offer_id, request_id, uow.now)
        return found.offer_id
    used = token or IdToken(TokenType.BATTERY_SERIAL, batteries[0].serial)
    swap_id = uow.repo.insert_swap(
        station_id, used, SwapState.RETURNED, uow.now, rider_id=found.rider_id, request_id=request_id
    )
    if found.mismatch is not None:
        assert token is not None, "only a token names another rider"
        _save_mismatch(uow, station_id, request_id, swap_id, token, found.mismatch, loaded, batteries)
    return swap_id


def _save_mismatch(
    uow: UnitOfWork,
    station_id: str,
    request_id: str,
    swap_id: int,
    token: IdToken,
    mismatch: _Mismatch,
    loaded: _Loaded,
    batteries: Sequence[BatteryReading],
) -> None:
    """An alert naming the token's rider and the packs' holders; the offer that token was given
    here is abandoned now instead of at its timeout. Once per BatteryIn: a repeat is answered
    from its record."""
    released = ""
    if mismatch.offer is not None:
        outcomes = abandon(uow, mismatch.offer)
        released = f"; offer {mismatch.offer.id} to {mismatch.rider_id} released ({len(outcomes)} packs)"
    held = [b.serial for b in batteries if b.serial in loaded.holders]
    uow.repo.alert(
        "token_pack_mismatch",
        f"{token.type.value} token of rider {mismatch.rider_id} returned {', '.join(held)} held by "
        f"{', '.join(sorted(set(loaded.holders.values())))} at {station_id} "
        f"(request {request_id}, swap {swap_id}); the pack's holder is billed{released}",
        uow.now,
        station_id=station_id,
        pack_serial=held[0],
        rider_id=mismatch.rider_id,
    )


# -- each pack: domain, then save -----------------------------------------------------------------


def _return_one(
    uow: UnitOfWork,
    station: Station,
    swap_id: int,
    request_id: str,
    battery: BatteryReading,
    loaded: _Loaded,
    at: datetime,
    replayed: bool,
) -> PackOutcome:
    """One reported pack: returned by its rider, already in that slot, restocked by an operator,
    or not where the server has it (an alert; nothing else changes). ``at``: when it happened
    (a replayed event's own time), so that its readings are judged by it (``replayed``)."""
    pack = loaded.packs.get(battery.serial)
    if replayed and not loaded.operator:
        possession = loaded.possessions.get(battery.serial)
        holder = loaded.holders_then.get(battery.serial)
        resolved = offline.resolve_return(uow, station, battery, pack, possession, at, holder)
        if resolved is not None:
            return resolved
    kind = _return_kind(pack, station.id, battery.slot_no, operator=loaded.operator)
    if kind is PackOutcomeKind.RETURNED:
        assert pack is not None
        return _close(uow, station, swap_id, request_id, battery, pack, loaded, at)
    if kind is PackOutcomeKind.RESTOCKED:
        assert pack is not None
        moved = pack.into_slot(station.id, battery.slot_no, battery.soc_bp, battery.soh_bp)
        uow.repo.move_pack(moved, at)
    elif kind is not PackOutcomeKind.ALREADY_IN_SLOT:
        _alert_misplaced(uow, station.id, battery, pack, kind)
    return PackOutcome(battery.serial, battery.slot_no, kind)


def _return_kind(pack: Pack | None, station_id: str, slot_no: int, *, operator: bool) -> PackOutcomeKind:
    if pack is None:
        return PackOutcomeKind.FOREIGN_PACK
    if pack.status is PackStatus.WITH_RIDER:
        return PackOutcomeKind.RETURNED
    if pack.status is PackStatus.IN_SLOT and (pack.station_id, pack.slot_no) == (station_id, slot_no):
        return PackOutcomeKind.ALREADY_IN_SLOT
    if operator and pack.status in (PackStatus.IN_STOCK, PackStatus.QUARANTINED):
        return PackOutcomeKind.RESTOCKED
    if pack.status is PackStatus.IN_SLOT:
        return PackOutcomeKind.PACK_TWO_PLACES
    return PackOutcomeKind.PACK_NOT_ASSIGNED


@dataclass(frozen=True, slots=True)
class _Closing:
    """What the domain makes of one returned pack: its usage (R4), the charge split (R5), and the
    possession's closing readings."""

    usage: Usage
    split: ChargeSplit
    closed: PossessionClosed


def _close(
    uow: UnitOfWork,
    station: Station,
    swap_id: int,
    request_id: str,
    battery: BatteryReading,
    pack: Pack,
    loaded: _Loaded,
    at: datetime,
) -> PackOutcome:
    """R3-R5 for a pack with a rider: load its rider's accounts, let the domain meter, split and
    close, then post the charge and write the return."""
    possession = loaded.possessions[pack.serial]
    plan = loaded.plans[possession.plan_id]
    # Read here, not in _load: an earlier pack of the same rider in this event has moved them.
    accounts = rider_accounts(uow.book, possession.rider_id, plan)
    available = accounts.allowance.available
    closing = _closing(plan, pack, possession, battery, swap_id, station.id, at, available)
    key = f"{station.id}:{request_id}:{pack.serial}:{EventType.BATTERY_IN}"
    revenue_minor = post_charge(
        uow, key, possession.rider_id, plan, accounts, closing.split, possession.hold_transfer_id
    )
    _save_return(uow, pack, possession, plan, closing.closed, closing.split)
    usage, split = closing.usage, closing.split
    return PackOutcome(
        pack.serial,
        battery.slot_no,
        PackOutcomeKind.RETURNED,
        possession.rider_id,
        usage.units,
        split.charged_units,
        split.beyond_units,
        revenue_minor,
        split.overage_minor,
        possession.hold_units,
        usage.anomaly,
    )


def _closing(
    plan: Plan,
    pack: Pack,
    possession: Possession,
    battery: BatteryReading,
    swap_id: int,
    station_id: str,
    now: datetime,
    available_units: int,
) -> _Closing:
    """Pure: meter the possession from its hand-over readings and this return's, split the usage
    over its hold and the ``available_units`` of the allowance, and close it."""
    usage = meter(
        plan,
        nominal_wh=pack.nominal_wh,
        soh_out_bp=possession.soh_out_bp,
        soc_out_bp=possession.soc_out_bp,
        soc_in_bp=battery.soc_bp,
        handed_over_at=possession.at_out,
        returned_at=now,
    )
    split = split_for_plan(
        plan, usage.units, held_units=possession.held_units, available_units=available_units
    )
    closed = possession.close(
        swap_in_id=swap_id,
        station_in=station_id,
        slot_in=battery.slot_no,
        at_in=now,
        soc_in_bp=battery.soc_bp,
        soh_in_bp=battery.soh_bp,
        usage_units=usage.units,
        anomaly=usage.anomaly,
    )
    return _Closing(usage, split, closed)


# -- save -----------------------------------------------------------------------------------------


def _save_return(
    uow: UnitOfWork,
    pack: Pack,
    possession: Possession,
    plan: Plan,
    closed: PossessionClosed,
    split: ChargeSplit,
) -> None:
    """Write a closed possession: its anomaly alert, its return readings, the pack in its slot,
    and a subscription's consumption."""
    serial, rider_id = possession.pack_serial, possession.rider_id
    if closed.anomaly:
        uow.repo.alert(
            "soc_anomaly",
            f"pack {serial}: {closed.anomaly}",
            uow.now,
            station_id=closed.station_in,
            pack_serial=serial,
            rider_id=rider_id,
        )
    uow.repo.close_possession(closed)
    moved = pack.into_slot(closed.station_in, closed.slot_in, closed.soc_in_bp, closed.soh_in_bp)
    uow.repo.move_pack(moved, closed.at_in)
    if plan.is_subscription:
        uow.repo.add_consumed(rider_id, split.charged_units)


def _alert_misplaced(
    uow: UnitOfWork, station_id: str, battery: BatteryReading, pack: Pack | None, kind: PackOutcomeKind
) -> None:
    if pack is None:
        text = f"unknown pack {battery.serial} inserted into slot {battery.slot_no}"
    else:
        text = f"pack {battery.serial} ({pack.place()}) reported in slot {battery.slot_no}"
    uow.repo.alert(kind, text, uow.now, station_id=station_id, pack_serial=battery.serial)

"""Swaps a station served from its local list while it could not reach swapd, replayed when it is
back (docs/OFFLINE.md). A replayed BatterySwap event goes through ``battery_in`` /
``battery_out`` like a live one, applied once per (station, requestId, eventType), with its own
time (``offline_at``): the possession it opens or closes is metered with that time, and the pack
it moves is recorded as placed at that time. What is particular to a replay is here:

- the pack's readings against what swapd knows (``resolve_return``, ``resolve_hand_out``): a
  reading older than where swapd has known the pack since is stale and changes nothing; a newer
  one from a place swapd did not expect moves the pack there. Both raise an ``offline_conflict``
  alert, and a pack is never in two places;
- a hand-over beyond the rider's allowance (``cover_shortfall``): what the allowance lacks for
  the pack is bought on credit at the plan's price, the money owed as a receivable, with an
  ``offline_overdraw`` alert; the hold then covers the pack as an offer's would;
- flags on the event as a whole (``note_event``): a key the station's list marked Blocked, the
  rider's offline limit passed, a replay out of time order, a station clock ahead.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from swapd.domain.lifecycle import PackOutcomeKind, Possession
from swapd.domain.local_lists import ListStatus
from swapd.domain.offline import (
    ReplayTime,
    beyond_offline_limit,
    is_stale,
    offline_credit,
    replay_time,
)
from swapd.domain.packs import Pack, PackStatus
from swapd.domain.plans import Plan
from swapd.domain.riders import IdToken, Rider, TokenType
from swapd.domain.stations import Station
from swapd.ledger.model import AccountCode, TransferCode
from swapd.services.money import RiderAccounts, move, rider_accounts
from swapd.services.ports import UnitOfWork
from swapd.services.swaps.records import BatteryReading, EventType, PackOutcome


def replay_of(offline_at: datetime | None, now: datetime) -> ReplayTime | None:
    """The replay an event is, or None for a live event."""
    return None if offline_at is None else replay_time(offline_at, now)


def _when(at: datetime) -> str:
    return at.isoformat(timespec="seconds")


def _stale(
    uow: UnitOfWork,
    station: Station,
    battery: BatteryReading,
    at: datetime,
    known: str,
    since: datetime | None,
    rider_id: str | None = None,
) -> PackOutcome:
    since_text = "" if since is None else f" since {_when(since)}"
    uow.repo.alert(
        "offline_conflict",
        f"pack {battery.serial} reported in slot {battery.slot_no} of {station.id} at {_when(at)} "
        f"(replayed), but swapd has known it {known}{since_text}: the older reading changes nothing",
        uow.now,
        station_id=station.id,
        pack_serial=battery.serial,
        rider_id=rider_id,
    )
    return PackOutcome(battery.serial, battery.slot_no, PackOutcomeKind.STALE_READING, rider_id)


def _occupant_conflict(
    uow: UnitOfWork, station: Station, battery: BatteryReading, at: datetime
) -> PackOutcome | None:
    """The slot a replayed return names holds another pack in swapd's records: the station's
    reading and swapd's disagree about that slot, and neither pack is moved on a guess."""
    slot = uow.repo.slot(station.id, battery.slot_no)
    if slot is None or slot.pack_serial in (None, battery.serial):
        return None
    known = f"out of it (slot {battery.slot_no} holds {slot.pack_serial})"
    return _stale(uow, station, battery, at, known, None)


def resolve_return(
    uow: UnitOfWork,
    station: Station,
    battery: BatteryReading,
    pack: Pack | None,
    possession: Possession | None,
    at: datetime,
    holder_then: str | None,
) -> PackOutcome | None:
    """A replayed BatteryIn's pack checked against what swapd knows: an outcome when the replay
    decides it here (stale, or relocated from another slot), None when it is returned, in its
    slot already, or refused as a live event would refuse it. ``holder_then``: the rider who
    held it at ``at``, named in the alert of a stale reading."""
    if pack is None:
        return None
    if pack.status is PackStatus.WITH_RIDER:
        assert possession is not None, "a pack with a rider has an open possession"
        if is_stale(at, possession.at_out):
            known = f"with rider {possession.rider_id}"
            return _stale(uow, station, battery, at, known, possession.at_out, possession.rider_id)
        return _occupant_conflict(uow, station, battery, at)
    if pack.status is not PackStatus.IN_SLOT or (pack.station_id, pack.slot_no) == (
        station.id,
        battery.slot_no,
    ):
        return None
    placed_at = uow.repo.pack_placed_at(pack.serial)
    if is_stale(at, placed_at):
        return _stale(uow, station, battery, at, f"in {pack.place()}", placed_at, holder_then)
    conflict = _occupant_conflict(uow, station, battery, at)
    if conflict is not None:
        return conflict
    # The newer reading wins: the pack left its slot there without a report, and is here now.
    uow.repo.alert(
        "offline_conflict",
        f"pack {pack.serial} reported in slot {battery.slot_no} of {station.id} at {_when(at)} "
        f"(replayed), later than swapd had it in {pack.place()}: moved here; nobody is billed "
        "for the time between",
        uow.now,
        station_id=station.id,
        pack_serial=pack.serial,
    )
    moved = pack.into_slot(station.id, battery.slot_no, battery.soc_bp, battery.soh_bp)
    uow.repo.move_pack(moved, at)
    return PackOutcome(battery.serial, battery.slot_no, PackOutcomeKind.RELOCATED)


def resolve_hand_out(
    uow: UnitOfWork, station: Station, battery: BatteryReading, pack: Pack | None, at: datetime
) -> tuple[PackOutcome | None, Pack | None]:
    """A replayed BatteryOut's pack checked against what swapd knows: (outcome, pack) with an
    outcome when the replay decides it here (stale, or with a rider swapd has it with), else
    (None, the pack to hand over): a pack newer in another station's slot is first moved into
    the slot the station names."""
    if pack is None or pack.status not in (PackStatus.IN_SLOT, PackStatus.WITH_RIDER):
        return None, pack  # refused as a live event refuses it
    if pack.status is PackStatus.WITH_RIDER:
        possession = uow.repo.open_possession(pack.serial)
        since = None if possession is None else possession.at_out
        # Whether older or newer, swapd cannot tell when its holder brought it back.
        return _stale(uow, station, battery, at, f"with rider {pack.rider_id}", since), pack
    placed_at = uow.repo.pack_placed_at(pack.serial)
    if is_stale(at, placed_at):
        return _stale(uow, station, battery, at, f"in {pack.place()}", placed_at), pack
    if pack.station_id == station.id:
        return None, pack
    slot = uow.repo.slot(station.id, battery.slot_no)
    if slot is not None and slot.pack_serial not in (None, pack.serial):
        known = f"in {pack.place()} (slot {battery.slot_no} holds {slot.pack_serial})"
        return _stale(uow, station, battery, at, known, None), pack
    uow.repo.alert(
        "offline_conflict",
        f"pack {pack.serial} taken from slot {battery.slot_no} of {station.id} at {_when(at)} "
        f"(replayed), later than swapd had it in {pack.place()}: handed over from here",
        uow.now,
        station_id=station.id,
        pack_serial=pack.serial,
    )
    moved = pack.into_slot(station.id, battery.slot_no, battery.soc_bp, battery.soh_bp)
    uow.repo.move_pack(moved, at)
    return None, uow.repo.pack(pack.serial, lock=True)


def cover_shortfall(
    uow: UnitOfWork,
    key: str,
    station: Station,
    rider: Rider,
    plan: Plan,
    serial: str,
    need_units: int,
    accounts: RiderAccounts,
    at: datetime,
) -> RiderAccounts:
    """An offline station handed ``serial`` to a rider whose allowance lacks some of the
    ``need_units`` it requires: the station had no way to know, and the pack is gone. What is
    lacking is bought on credit at the plan's price (domain.offline.offline_credit): the money
    owed as a receivable, the units onto the allowance; an ``offline_overdraw`` alert tells the
    operator. Returns the rider's accounts after (unchanged when nothing lacks). Idempotent by
    ``key`` (the hand-over's), as every transfer of the swap path."""
    shortfall = max(0, need_units - accounts.allowance.available)
    credit = offline_credit(plan, shortfall)
    if credit is None:
        return accounts
    code, book = TransferCode.OFFLINE_CREDIT, uow.book
    issued = book.account(plan.unit.value, AccountCode.ALLOWANCE_ISSUED)
    money, units = credit.amount_minor, credit.units
    move(
        book,
        f"{key}:credit:money",
        accounts.receivable,
        accounts.prepaid,
        money,
        code,
        rider_id=rider.id,
    )
    move(book, f"{key}:credit:units", issued, accounts.allowance, units, code, rider_id=rider.id)
    uow.repo.alert(
        "offline_overdraw",
        f"{station.id} handed pack {serial} to {rider.id} offline at {_when(at)} beyond the "
        f"allowance: {shortfall} {plan.unit} short of the {need_units} it requires; "
        f"{credit.units} {plan.unit} booked for {credit.amount_minor} {plan.currency} minor units "
        "as a receivable",
        uow.now,
        station_id=station.id,
        pack_serial=serial,
        rider_id=rider.id,
    )
    return rider_accounts(uow.book, rider.id, plan)


def note_event(
    uow: UnitOfWork,
    station_id: str,
    request_id: str,
    event_type: str,
    replay: ReplayTime,
    token: IdToken | None,
    batteries: Sequence[BatteryReading],
    outcomes: Sequence[PackOutcome],
) -> None:
    """Record a replayed event and flag what is wrong with it as a whole."""
    at = replay.at
    served = {PackOutcomeKind.RETURNED, PackOutcomeKind.HANDED_OVER}
    rider_id = next((o.rider_id for o in outcomes if o.outcome in served and o.rider_id), None)
    latest = uow.repo.latest_offline_at(station_id)
    uow.repo.record_offline_event(station_id, request_id, event_type, at, rider_id, uow.now)
    about = f"{station_id} request {request_id} ({event_type})"
    if replay.clock_ahead:
        text = f"{about}: the station's time was ahead of the server's; metered at its arrival"
        uow.repo.alert("offline_clock", text, uow.now, station_id=station_id)
    if latest is not None and at < latest:
        text = f"{about}: happened at {_when(at)}, before {_when(latest)} replayed earlier"
        uow.repo.alert("offline_out_of_order", text, uow.now, station_id=station_id)
    key = _key(token, batteries, event_type)
    if key is not None and _first_of_swap(uow, station_id, request_id, event_type):
        listed = uow.repo.listed_status(station_id, key.type.value, key.value)
        if listed == ListStatus.BLOCKED:
            uow.repo.alert(
                "offline_blocked_key",
                f"{about}: served offline although the station's local list marks "
                f"{key.type.value} {key.value} Blocked",
                uow.now,
                station_id=station_id,
                pack_serial=key.value if key.type is TokenType.BATTERY_SERIAL else None,
                rider_id=rider_id,
            )
    if event_type == EventType.BATTERY_OUT and rider_id is not None:
        _check_limit(uow, station_id, about, rider_id)


def _key(token: IdToken | None, batteries: Sequence[BatteryReading], event_type: str) -> IdToken | None:
    """What the station served the swap against: the token, else the pack a return names."""
    if token is not None and token.type is not TokenType.NO_AUTHORIZATION:
        return token
    if event_type == EventType.BATTERY_IN and batteries:
        return IdToken(TokenType.BATTERY_SERIAL, batteries[0].serial)
    return None


def _first_of_swap(uow: UnitOfWork, station_id: str, request_id: str, event_type: str) -> bool:
    """A swap's BatteryIn and BatteryOut carry the same key: flag it once, at the first."""
    if event_type == EventType.BATTERY_IN:
        return True
    return uow.repo.station_event(station_id, request_id, EventType.BATTERY_IN) is None


def _check_limit(uow: UnitOfWork, station_id: str, about: str, rider_id: str) -> None:
    rider = uow.repo.rider(rider_id)
    plan = None if rider is None else uow.repo.plan(rider.plan_id)
    if plan is None:
        return
    served = uow.repo.offline_handovers(station_id, rider_id)
    if beyond_offline_limit(plan, served):
        uow.repo.alert(
            "offline_limit_exceeded",
            f"{about}: {rider_id}'s offline swap {served} here, beyond the plan's "
            f"{plan.offline_swaps_max}",
            uow.now,
            station_id=station_id,
            rider_id=rider_id,
        )

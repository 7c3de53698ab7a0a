"""The in-memory unit of work: the swap path's ports (swapd.services.ports) on plain dicts.

``MemoryStore`` is a ``Transactions``: each ``write`` runs its work on the store's state and
keeps the result only if the work returns; an exception puts back the state as it was before
(a deep copy), so that "commit entirely or write nothing" holds here as it does in SQL. ``Retry``
runs the work again, as ``Database.write`` does.

The ledger applies swapd.ledger.model's rules (the same validation, deltas, limits, pending
checks and answer to a repeated key as ``store.ledger_book.Book``). ``tests/unit/services``
runs the same swaps on this and on SQLite and compares what each recorded.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from swapd.domain.errors import Retry
from swapd.domain.event_reads import ReturnAtStation, RiderAtStation
from swapd.domain.lifecycle import (
    Offer,
    OfferState,
    Possession,
    PossessionClosed,
    PossessionOpened,
    Swap,
    SwapState,
)
from swapd.domain.pack_choice import ChoiceRecord
from swapd.domain.packs import Pack, PackMoved, PackStatus
from swapd.domain.plans import Plan
from swapd.domain.riders import IdToken, Rider, TokenOwner
from swapd.domain.right_sizing import ConsentState
from swapd.domain.stations import Slot, SlotState, Station
from swapd.ledger.model import (
    ACCOUNT_FLAGS,
    OPERATOR,
    Account,
    AccountCode,
    AccountFlags,
    LedgerError,
    Transfer,
    TransferFlags,
    TransferRequest,
    answer_repeat,
    check_pending,
    deltas_for,
    validate_request,
)

T = TypeVar("T")
MAX_ATTEMPTS = 8


@dataclass
class _SwapRow:
    swap: Swap
    updated_at: datetime


@dataclass
class MemoryState:
    """Everything the store holds; deep-copied before each write to undo a failed one."""

    stations: dict[str, Station] = field(default_factory=dict)
    slots: dict[tuple[str, int], str | None] = field(default_factory=dict)
    out_of_service: set[tuple[str, int]] = field(default_factory=set)
    packs: dict[str, Pack] = field(default_factory=dict)
    plans: dict[str, Plan] = field(default_factory=dict)
    riders: dict[str, Rider] = field(default_factory=dict)
    tokens: dict[tuple[str, str], TokenOwner] = field(default_factory=dict)
    consumed_units: dict[str, int] = field(default_factory=dict)  # subscriptions, by rider
    swaps: dict[int, _SwapRow] = field(default_factory=dict)
    offers: dict[tuple[int, str], Offer] = field(default_factory=dict)
    choices: dict[int, ChoiceRecord] = field(default_factory=dict)  # by swap
    possessions: dict[int, Possession] = field(default_factory=dict)
    events: dict[tuple[str, str, str], str] = field(default_factory=dict)  # the result as JSON
    alerts: list[tuple[str, str, str | None, str | None, str | None]] = field(default_factory=list)
    accounts: dict[int, Account] = field(default_factory=dict)
    account_ids: dict[tuple[str, AccountCode, str], int] = field(default_factory=dict)
    transfers: dict[int, Transfer] = field(default_factory=dict)
    transfer_ids: dict[str, int] = field(default_factory=dict)  # by key
    resolutions: dict[int, int] = field(default_factory=dict)  # pending id -> resolving flags
    placed_at: dict[str, datetime] = field(default_factory=dict)  # by serial
    listed: dict[tuple[str, str, str], str] = field(default_factory=dict)  # station, type, token
    offline_events: dict[tuple[str, str, str], tuple[datetime, str | None]] = field(default_factory=dict)
    next_id: dict[str, int] = field(default_factory=dict)

    def new_id(self, table: str) -> int:
        self.next_id[table] = self.next_id.get(table, 0) + 1
        return self.next_id[table]


class MemoryRecords:
    """``SwapRecords`` on a ``MemoryState``. Nothing is shared, so nothing needs a row lock."""

    locks_rows = False

    def __init__(self, state: MemoryState) -> None:
        self._s = state

    # -- stations, slots, packs ---------------------------------------------------------------

    def station(self, station_id: str, *, lock: bool = False) -> Station | None:
        return self._s.stations.get(station_id)

    def slot(self, station_id: str, slot_no: int) -> Slot | None:
        if (station_id, slot_no) not in self._s.slots:
            return None
        serial = self._s.slots[(station_id, slot_no)]
        state = SlotState.AVAILABLE if serial is None else SlotState.OCCUPIED
        return Slot(station_id, slot_no, state, serial)

    def pack(self, serial: str, *, lock: bool = False) -> Pack | None:
        return self._s.packs.get(serial)

    def packs(self, serials: Sequence[str], *, lock: bool = False) -> dict[str, Pack]:
        return {s: self._s.packs[s] for s in sorted(set(serials)) if s in self._s.packs}

    def slots_out_of_service(self, station_id: str) -> frozenset[int]:
        return frozenset(n for s, n in self._s.out_of_service if s == station_id)

    def packs_at(self, station_id: str) -> list[Pack]:
        at = [
            replace(p, placed_at=self._s.placed_at.get(p.serial))
            for p in self._s.packs.values()
            if p.station_id == station_id
        ]
        return sorted(at, key=lambda p: p.slot_no or 0)

    def packs_of_rider(self, rider_id: str) -> list[Pack]:
        return sorted(
            (p for p in self._s.packs.values() if p.rider_id == rider_id), key=lambda p: p.serial
        )

    def reserve_pack(self, serial: str, swap_id: int, now: datetime) -> None:
        pack = self._s.packs.get(serial)
        if pack is None or pack.status is not PackStatus.IN_SLOT or pack.reserved_swap_id is not None:
            raise Retry()
        self._s.packs[serial] = replace(pack, reserved_swap_id=swap_id)

    def unreserve_pack(self, serial: str, swap_id: int, now: datetime) -> None:
        pack = self._s.packs.get(serial)
        if pack is not None and pack.reserved_swap_id == swap_id:
            self._s.packs[serial] = replace(pack, reserved_swap_id=None)

    def move_pack(self, moved: PackMoved, now: datetime) -> None:
        pack = self._s.packs[moved.serial]
        if moved.left is not None and moved.left != (moved.station_id, moved.slot_no):
            self._s.slots[moved.left] = None
        if moved.station_id is not None and moved.slot_no is not None:
            place = (moved.station_id, moved.slot_no)
            if self._s.slots.get(place) not in (None, moved.serial):
                raise Retry(f"slot {moved.slot_no} of station {moved.station_id} was taken meanwhile")
            self._s.slots[place] = moved.serial
        self._s.packs[moved.serial] = replace(
            pack,
            status=moved.status,
            station_id=moved.station_id,
            slot_no=moved.slot_no,
            rider_id=moved.rider_id,
            reserved_swap_id=None,
            soc_bp=pack.soc_bp if moved.soc_bp is None else moved.soc_bp,
            soh_bp=pack.soh_bp if moved.soh_bp is None else moved.soh_bp,
            cycle_count=pack.cycle_count if moved.cycle_count is None else moved.cycle_count,
        )
        self._s.placed_at[moved.serial] = now

    def pack_placed_at(self, serial: str) -> datetime | None:
        return self._s.placed_at.get(serial)

    # -- plans, riders, tokens ----------------------------------------------------------------

    def plan(self, plan_id: str) -> Plan | None:
        return self._s.plans.get(plan_id)

    def rider(self, rider_id: str, *, lock: bool = False) -> Rider | None:
        return self._s.riders.get(rider_id)

    def lock_riders(self, rider_ids: Sequence[str]) -> dict[str, Rider]:
        return {r: self._s.riders[r] for r in sorted(set(rider_ids)) if r in self._s.riders}

    def rider_at_station(self, rider_id: str, station_id: str, key_serial: str | None) -> RiderAtStation:
        return RiderAtStation(
            rider=self.lock_riders([rider_id]).get(rider_id),
            offered=self.offered_to_rider(rider_id),
            key_pack=None if key_serial is None else self.pack(key_serial, lock=True),
            held=self.packs_of_rider(rider_id),
            stock=self.packs_at(station_id),
            out_of_service=self.slots_out_of_service(station_id),
        )

    def return_at_station(
        self,
        station_id: str,
        request_id: str,
        serials: Sequence[str],
        *,
        holders: Sequence[str],
        slot_nos: Sequence[int],
        offer_rider: str | None,
    ) -> ReturnAtStation:
        self.lock_riders(holders)
        possessions = {s: self.open_possession(s) for s in sorted(set(serials))}
        return ReturnAtStation(
            packs=self.packs(serials, lock=True),
            slots={n: self.slot(station_id, n) for n in slot_nos},
            possessions={s: p for s, p in possessions.items() if p is not None},
            by_request=self.swap_by_request(station_id, request_id),
            offer=None if offer_rider is None else self.open_offer(station_id, offer_rider),
        )

    def token_owner(self, token_type: str, value: str) -> TokenOwner | None:
        return self._s.tokens.get((token_type, value))

    def add_consumed(self, rider_id: str, units: int) -> None:
        if rider_id in self._s.consumed_units:
            self._s.consumed_units[rider_id] += units

    # -- swaps and offers ---------------------------------------------------------------------

    def swap(self, swap_id: int) -> Swap | None:
        row = self._s.swaps.get(swap_id)
        return None if row is None else row.swap

    def swap_by_request(self, station_id: str, request_id: str) -> Swap | None:
        return next(
            (
                row.swap
                for row in self._s.swaps.values()
                if row.swap.station_id == station_id and row.swap.request_id == request_id
            ),
            None,
        )

    def open_offer(self, station_id: str, rider_id: str) -> Swap | None:
        return next((s for s in self.offered_to_rider(rider_id) if s.station_id == station_id), None)

    def offered_to_rider(self, rider_id: str) -> list[Swap]:
        offered = [
            row.swap
            for row in self._s.swaps.values()
            if row.swap.rider_id == rider_id and row.swap.state is SwapState.OFFERED
        ]
        return sorted(offered, key=lambda s: -s.id)

    def stale_offers(self, updated_before: datetime, limit: int) -> list[int]:
        stale = [
            swap_id
            for swap_id, row in sorted(self._s.swaps.items())
            if row.swap.state is SwapState.OFFERED and row.updated_at < updated_before
        ]
        return stale[:limit]

    def insert_choice(self, record: ChoiceRecord) -> None:
        assert record.swap_id not in self._s.choices, "swap_choices: primary key swap_id"
        self._s.choices[record.swap_id] = record

    def choice(self, swap_id: int) -> ChoiceRecord | None:
        return self._s.choices.get(swap_id)

    def confirm_choice(self, swap_id: int, now: datetime) -> None:
        if swap_id in self._s.choices:
            self._s.choices[swap_id] = replace(
                self._s.choices[swap_id], consent=ConsentState.CONFIRMED.value, confirmed_at=now
            )

    def insert_swap(
        self,
        station_id: str,
        token: IdToken,
        state: SwapState,
        now: datetime,
        *,
        rider_id: str | None,
        request_id: str | None = None,
        reason: str | None = None,
    ) -> int:
        if request_id is not None and self.swap_by_request(station_id, request_id) is not None:
            raise AssertionError(f"swaps: unique (station_id, request_id) violated by {request_id}")
        swap_id = self._s.new_id("swaps")
        swap = Swap(swap_id, station_id, rider_id, state, request_id, reason, token)
        self._s.swaps[swap_id] = _SwapRow(swap, now)
        return swap_id

    def set_swap_state(self, swap_id: int, state: SwapState, now: datetime) -> None:
        row = self._s.swaps[swap_id]
        self._s.swaps[swap_id] = _SwapRow(replace(row.swap, state=state), now)

    def set_swap_request(self, swap_id: int, request_id: str, now: datetime) -> None:
        row = self._s.swaps[swap_id]
        self._s.swaps[swap_id] = _SwapRow(replace(row.swap, request_id=request_id), now)

    def offers(self, swap_id: int) -> list[Offer]:
        offers = [o for (s, _), o in self._s.offers.items() if s == swap_id]
        return sorted(offers, key=lambda o: o.slot_no)

    def insert_offer(self, offer: Offer) -> None:
        key = (offer.swap_id, offer.pack_serial)
        assert key not in self._s.offers, "swap_offers: primary key (swap_id, pack_serial)"
        self._s.offers[key] = offer

    def set_offer_state(self, swap_id: int, serial: str, state: OfferState) -> None:
        key = (swap_id, serial)
        if key in self._s.offers:
            self._s.offers[key] = replace(self._s.offers[key], state=state)

    # -- possessions --------------------------------------------------------------------------

    def open_possession(self, serial: str) -> Possession | None:
        return next(
            (p for p in self._s.possessions.values() if p.pack_serial == serial and p.at_in is None),
            None,
        )

    def insert_possession(self, opened: PossessionOpened) -> None:
        assert self.open_possession(opened.pack_serial) is None, "one open possession a pack"
        possession_id = self._s.new_id("possessions")
        self._s.possessions[possession_id] = Possession(
            possession_id,
            opened.rider_id,
            opened.pack_serial,
            opened.plan_id,
            opened.at_out,
            opened.soc_out_bp,
            opened.soh_out_bp,
            opened.hold_units,
            opened.hold_transfer_id,
            None,
            opened.swap_out_id,
            opened.station_out,
            opened.slot_out,
        )

    def close_possession(self, closed: PossessionClosed) -> None:
        possession = self._s.possessions[closed.possession_id]
        self._s.possessions[closed.possession_id] = replace(possession, at_in=closed.at_in)

    # -- station events and alerts ------------------------------------------------------------

    def station_event(
        self, station_id: str, request_id: str, event_type: str
    ) -> Mapping[str, Any] | None:
        recorded = self._s.events.get((station_id, request_id, event_type))
        return None if recorded is None else dict(json.loads(recorded))

    def station_and_request(
        self, station_id: str, request_id: str
    ) -> tuple[Station | None, Swap | None]:
        return self.station(station_id), self.swap_by_request(station_id, request_id)

    def station_and_event(
        self, station_id: str, request_id: str, event_type: str
    ) -> tuple[Station | None, Mapping[str, Any] | None]:
        return self.station(station_id), self.station_event(station_id, request_id, event_type)

    def insert_station_event(
        self, station_id: str, request_id: str, event_type: str, now: datetime, result: Mapping[str, Any]
    ) -> None:
        key = (station_id, request_id, event_type)
        assert key not in self._s.events, "station_events: one record an event"
        self._s.events[key] = json.dumps(result)  # stored as the JSON column stores it

    def listed_status(self, station_id: str, token_type: str, id_token: str) -> str | None:
        return self._s.listed.get((station_id, token_type, id_token))

    def record_offline_event(
        self,
        station_id: str,
        request_id: str,
        event_type: str,
        occurred_at: datetime,
        rider_id: str | None,
        now: datetime,
    ) -> None:
        key = (station_id, request_id, event_type)
        assert key not in self._s.offline_events, "offline_events: one record an event"
        self._s.offline_events[key] = (occurred_at, rider_id)

    def offline_handovers(self, station_id: str, rider_id: str) -> int:
        # No connections here: every replayed hand-over counts, as the SQL store counts them
        # for a station that is not connected.
        return sum(
            1
            for (station, _request, event_type), (_at, rider) in self._s.offline_events.items()
            if station == station_id and rider == rider_id and event_type == "BatteryOut"
        )

    def holder_at(self, serial: str, at: datetime) -> str | None:
        held = [
            p
            for p in self._s.possessions.values()
            if p.pack_serial == serial and p.at_out <= at and (p.at_in is None or p.at_in >= at)
        ]
        return max(held, key=lambda p: (p.at_out, p.id)).rider_id if held else None

    def latest_offline_at(self, station_id: str) -> datetime | None:
        times = [at for (s, _r, _e), (at, _rider) in self._s.offline_events.items() if s == station_id]
        return max(times, default=None)

    def alert(
        self,
        kind: str,
        detail: str,
        now: datetime,
        *,
        station_id: str | None = None,
        pack_serial: str | None = None,
        rider_id: str | None = None,
    ) -> None:
        self._s.alerts.append((kind, detail[:500], station_id, pack_serial, rider_id))


class MemoryBook:
    """``LedgerBook`` on a ``MemoryState``: accounts created on first use, one transfer a key."""

    def __init__(self, state: MemoryState) -> None:
        self._s = state

    def account(self, ledger: str, code: AccountCode, owner: str = OPERATOR) -> Account:
        name = (ledger, code, owner)
        account_id = self._s.account_ids.get(name)
        if account_id is None:
            account_id = self._s.new_id("accounts")
            flags = ACCOUNT_FLAGS.get(code, AccountFlags.NONE)
            self._s.accounts[account_id] = Account(account_id, ledger, code, owner, flags)
            self._s.account_ids[name] = account_id
        return self._s.accounts[account_id]

    def load(self, names: Sequence[tuple[str, AccountCode, str]]) -> None:
        """Nothing to read ahead in memory; the SQL book reads up to six accounts at once."""

    def transfer(self, request: TransferRequest) -> Transfer:
        existing_id = self._s.transfer_ids.get(request.key)
        if existing_id is not None:
            return answer_repeat(self._s.transfers[existing_id], request)
        debit = self._account(request.debit_account_id)
        credit = self._account(request.credit_account_id)
        validate_request(request, debit, credit)
        pending = None
        if request.pending_id is not None:
            candidate = self._s.transfers.get(request.pending_id)
            resolution = self._s.resolutions.get(request.pending_id)
            pending = check_pending(request.pending_id, candidate, resolution)
        debit_delta, credit_delta = deltas_for(request, pending)
        debited, credited = debit.with_delta(debit_delta), credit.with_delta(credit_delta)
        debited.check_limits()
        credited.check_limits()
        transfer_id = self._s.new_id("transfers")
        transfer = Transfer(
            transfer_id,
            request.key,
            request.ledger,
            request.debit_account_id,
            request.credit_account_id,
            request.amount,
            request.code,
            request.flags,
            request.pending_id,
            request.rider_id,
            request.actor,
            request.memo,
        )
        self._s.transfers[transfer_id] = transfer
        self._s.transfer_ids[request.key] = transfer_id
        if request.pending_id is not None:
            self._s.resolutions[request.pending_id] = int(
                request.flags & (TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING)
            )
        self._s.accounts[debit.id] = debited
        self._s.accounts[credit.id] = credited
        return transfer

    def _account(self, account_id: int) -> Account:
        account = self._s.accounts.get(account_id)
        if account is None:
            raise LedgerError("account_not_found", f"no account {account_id}")
        return account

    def find(self, key: str) -> Transfer | None:
        transfer_id = self._s.transfer_ids.get(key)
        return None if transfer_id is None else self._s.transfers[transfer_id]

    def transfer_by_id(self, transfer_id: int) -> Transfer | None:
        return self._s.transfers.get(transfer_id)

    def is_resolved(self, pending_id: int) -> bool:
        return pending_id in self._s.resolutions


@dataclass(frozen=True)
class MemoryUnitOfWork:
    repo: MemoryRecords
    book: MemoryBook
    now: datetime


class MemoryStore:
    """``Transactions`` in memory: ``write`` and ``read`` run a unit of work on the state, at the
    clock's current instant; a failed one leaves the state as it found it."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.state = MemoryState()
        self._clock = clock
        self.attempts = 0  # units of work started, retries included

    def write(self, work: Callable[[Any], T]) -> T:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            before = copy.deepcopy(self.state)
            self.attempts += 1
            uow = MemoryUnitOfWork(MemoryRecords(self.state), MemoryBook(self.state), self._clock())
            try:
                return work(uow)
            except Retry:
                self.state = before
                if attempt == MAX_ATTEMPTS:
                    raise
            except BaseException:
                self.state = before
                raise
        raise AssertionError("unreachable")

    def read(self, work: Callable[[Any], T]) -> T:
        return self.write(work)

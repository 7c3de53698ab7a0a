"""The ports of the swap path: what a use case sees of storage, as interfaces.

A use case runs as one unit of work: ``Transactions.write(work)`` calls ``work(uow)`` inside one
transaction that commits entirely or writes nothing, retrying it from the start when it lost a
race (``swapd.domain.errors.Retry``). Inside, ``uow.repo`` loads and saves the swap path's
entities, ``uow.book`` is the ledger, and ``uow.now`` is the transaction's one instant.

Two implementations: the SQL one (``swapd.store.database.Database``, whose ``Tx`` holds a
``Repository`` and a ``Book`` on one connection), and an in-memory fake for tests
(``tests/fakes.py``). Both are checked against each other by ``tests/unit/services``, which runs
the same swaps on each. Nothing here imports SQLAlchemy or the store: a use case written against
these ports runs on either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

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
from swapd.domain.packs import Pack, PackMoved
from swapd.domain.plans import Plan
from swapd.domain.riders import IdToken, Rider, TokenOwner
from swapd.domain.stations import Slot, Station
from swapd.ledger.model import OPERATOR, Account, AccountCode, Transfer, TransferRequest

T = TypeVar("T")


class SwapRecords(Protocol):
    """The swap path's reads and writes, inside the caller's unit of work.

    ``lock=True`` takes a row lock where the store has row locks (``locks_rows``); services lock
    in one order: riders, then packs, then accounts. Entities come back as the domain's frozen
    values; writes take the domain's events (``PackMoved``, ``PossessionOpened``, ...)."""

    @property
    def locks_rows(self) -> bool: ...

    # stations, slots, packs
    def station(self, station_id: str, *, lock: bool = False) -> Station | None: ...
    def slot(self, station_id: str, slot_no: int) -> Slot | None: ...
    def pack(self, serial: str, *, lock: bool = False) -> Pack | None: ...
    def packs(self, serials: Sequence[str], *, lock: bool = False) -> dict[str, Pack]: ...
    def packs_at(self, station_id: str) -> list[Pack]: ...
    def slots_out_of_service(self, station_id: str) -> frozenset[int]: ...
    def packs_of_rider(self, rider_id: str) -> list[Pack]: ...
    def reserve_pack(self, serial: str, swap_id: int, now: datetime) -> None:
        """Reserve a charged pack for a swap offer; Retry if another swap took it first (raised
        here or, on PostgreSQL, at the transaction's next round trip)."""

    def unreserve_pack(self, serial: str, swap_id: int, now: datetime) -> None: ...
    def move_pack(self, moved: PackMoved, now: datetime) -> None: ...
    def pack_placed_at(self, serial: str) -> datetime | None: ...

    # plans, riders, tokens
    def plan(self, plan_id: str) -> Plan | None: ...
    def rider(self, rider_id: str, *, lock: bool = False) -> Rider | None: ...
    def lock_riders(self, rider_ids: Sequence[str]) -> dict[str, Rider]: ...
    def rider_at_station(self, rider_id: str, station_id: str, key_serial: str | None) -> RiderAtStation:
        """The rider locked, then the key pack (``key_serial``) locked, and the other reads of
        ``RiderAtStation``, in that order: one round trip where the store can send several
        statements at once (PostgreSQL)."""

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
        """The riders ``holders`` locked (in id order), then the packs ``serials`` locked (in
        serial order) and read again, then the slots ``slot_nos`` of the station, the packs'
        open possessions, the swap ``request_id`` names there and ``offer_rider``'s open offer
        there: in one round trip where the store can (one pack and at most one holder)."""

    def token_owner(self, token_type: str, value: str) -> TokenOwner | None: ...
    def add_consumed(self, rider_id: str, units: int) -> None: ...

    # swaps and offers
    def swap(self, swap_id: int) -> Swap | None: ...
    def swap_by_request(self, station_id: str, request_id: str) -> Swap | None: ...
    def station_and_request(
        self, station_id: str, request_id: str
    ) -> tuple[Station | None, Swap | None]: ...
    def open_offer(self, station_id: str, rider_id: str) -> Swap | None: ...
    def offered_to_rider(self, rider_id: str) -> list[Swap]: ...
    def stale_offers(self, updated_before: datetime, limit: int) -> list[int]: ...
    def insert_choice(self, record: ChoiceRecord) -> None: ...
    def choice(self, swap_id: int) -> ChoiceRecord | None: ...
    def confirm_choice(self, swap_id: int, now: datetime) -> None: ...
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
    ) -> int: ...
    def set_swap_state(self, swap_id: int, state: SwapState, now: datetime) -> None: ...
    def set_swap_request(self, swap_id: int, request_id: str, now: datetime) -> None: ...
    def offers(self, swap_id: int) -> list[Offer]: ...
    def insert_offer(self, offer: Offer) -> None: ...
    def set_offer_state(self, swap_id: int, serial: str, state: OfferState) -> None: ...

    # possessions
    def open_possession(self, serial: str) -> Possession | None: ...
    def insert_possession(self, opened: PossessionOpened) -> None: ...
    def close_possession(self, closed: PossessionClosed) -> None: ...

    # station events and alerts
    def station_event(
        self, station_id: str, request_id: str, event_type: str
    ) -> Mapping[str, Any] | None: ...
    def station_and_event(
        self, station_id: str, request_id: str, event_type: str
    ) -> tuple[Station | None, Mapping[str, Any] | None]: ...
    def insert_station_event(
        self,
        station_id: str,
        request_id: str,
        event_type: str,
        now: datetime,
        result: Mapping[str, Any],
    ) -> None: ...
    # swaps served offline, replayed (services/swaps/offline.py)
    def listed_status(self, station_id: str, token_type: str, id_token: str) -> str | None: ...
    def record_offline_event(
        self,
        station_id: str,
        request_id: str,
        event_type: str,
        occurred_at: datetime,
        rider_id: str | None,
        now: datetime,
    ) -> None: ...
    def offline_handovers(self, station_id: str, rider_id: str) -> int: ...
    def latest_offline_at(self, station_id: str) -> datetime | None: ...
    def holder_at(self, serial: str, at: datetime) -> str | None: ...
    def alert(
        self,
        kind: str,
        detail: str,
        now: datetime,
        *,
        station_id: str | None = None,
        pack_serial: str | None = None,
        rider_id: str | None = None,
    ) -> None: ...


class LedgerBook(Protocol):
    """The ledger inside a unit of work: accounts created on first use, transfers applied once per
    key under ``swapd.ledger.model``'s rules (a repeat returns the first transfer)."""

    def account(self, ledger: str, code: AccountCode, owner: str = OPERATOR) -> Account: ...
    def load(self, names: Sequence[tuple[str, AccountCode, str]]) -> None: ...
    def transfer(self, request: TransferRequest) -> Transfer: ...
    def find(self, key: str) -> Transfer | None: ...
    def transfer_by_id(self, transfer_id: int) -> Transfer | None: ...
    def is_resolved(self, pending_id: int) -> bool: ...


class UnitOfWork(Protocol):
    """One transaction as a use case sees it."""

    @property
    def repo(self) -> SwapRecords: ...
    @property
    def book(self) -> LedgerBook: ...
    @property
    def now(self) -> datetime: ...


class Transactions(Protocol):
    """Where units of work run: each call one transaction, committed entirely or not at all."""

    def write(self, work: Callable[[UnitOfWork], T]) -> T: ...
    def read(self, work: Callable[[UnitOfWork], T]) -> T: ...

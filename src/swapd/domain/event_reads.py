"""What a swap event reads together before it decides, as the swap path's port returns it
(``services.ports.SwapRecords``): one round trip where the store can send several statements at
once (PostgreSQL), each entity as the domain's frozen value."""

from __future__ import annotations

from dataclasses import dataclass

from swapd.domain.lifecycle import Possession, Swap
from swapd.domain.packs import Pack
from swapd.domain.riders import Rider
from swapd.domain.stations import Slot


@dataclass(frozen=True)
class RiderAtStation:
    """What an Authorize decides on, once the rider is known (``rider_at_station``)."""

    rider: Rider | None  # locked
    offered: list[Swap]  # every swap still offered to the rider, newest first
    key_pack: Pack | None  # the pack presented as the key, locked after the rider (None: none)
    held: list[Pack]  # the packs the rider holds
    stock: list[Pack]  # the packs at the station
    out_of_service: frozenset[int]  # the station's slots out of use


@dataclass(frozen=True)
class ReturnAtStation:
    """What a BatteryIn decides on, once its packs' holders are known (``return_at_station``)."""

    packs: dict[str, Pack]  # the reported packs the server knows, locked after their holders
    slots: dict[int, Slot | None]  # the slots asked for, by number
    possessions: dict[str, Possession]  # the packs' open possessions, by serial (those found)
    by_request: Swap | None  # the swap the event's requestId names at the station already
    offer: Swap | None  # the newest swap offered at the station to the rider asked for

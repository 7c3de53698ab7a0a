"""The commands a station's connection gives the use cases, and the bus that runs each one.

A command is a frozen dataclass that names what the station reported or asks (a pack returned,
a heartbeat, a slot's state); ``handle(db, command)`` finds the handler registered for the
command's class in ``HANDLERS`` and runs it as one use case. The gateway sends every command
through ``Database.call(handle, db, command)``: in the server process, or on SQLite under
``swapd serve`` in the writer process, where the command crosses as itself, in the writer's
closed wire format (``swapd.store.wire``). ``handle`` is the one entry of the writer's calls
table (``swapd.gateway.writer_calls``): a new command needs a dataclass and a handler here, and
nothing else anywhere.

The type parameter of ``Command`` is what its handler returns, so ``handle`` is typed per command.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Generic, TypeVar, cast

from swapd.domain.packs import Pack
from swapd.domain.riders import IdToken
from swapd.domain.stations import SlotState
from swapd.services import catalog, station_management, stations, swaps
from swapd.services.swaps import AuthorizeResult, BatteryReading, EventResult
from swapd.store.database import Database

R = TypeVar("R")


class Command(Generic[R]):
    """A request to the use cases; ``R`` is what handling it returns."""

    __slots__ = ()


# -- the station's connection ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordNotification(Command[None]):
    """A station's report on a command of ours: FirmwareStatusNotification,
    LogStatusNotification or a NotifyReport part, in the wire's casing."""

    station_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RecordConnected(Command[datetime]):
    station_id: str
    connection_id: str


@dataclass(frozen=True, slots=True)
class RecordDisconnected(Command[bool]):
    station_id: str
    connection_id: str


@dataclass(frozen=True, slots=True)
class RecordBoot(Command[datetime]):
    station_id: str
    vendor: str
    model: str
    firmware: str | None


@dataclass(frozen=True, slots=True)
class Seen(Command[datetime]):
    station_id: str


@dataclass(frozen=True, slots=True)
class SetSlotState(Command[None]):
    station_id: str
    slot_no: int
    state: SlotState


@dataclass(frozen=True, slots=True)
class ReportSoc(Command[Pack]):
    station_id: str
    slot_no: int
    soc: object  # a percentage as the station sent it; checked by the use case
    measured_at: datetime | None


# -- swaps ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Authorize(Command[AuthorizeResult]):
    station_id: str
    token: IdToken


@dataclass(frozen=True, slots=True)
class BatteryIn(Command[EventResult]):
    station_id: str
    request_id: str
    batteries: tuple[BatteryReading, ...]
    token: IdToken | None
    offline_at: datetime | None = None  # replayed from the station's offline queue: when it was


@dataclass(frozen=True, slots=True)
class BatteryOut(Command[EventResult]):
    station_id: str
    request_id: str
    batteries: tuple[BatteryReading, ...]
    token: IdToken | None
    offline_at: datetime | None = None  # replayed from the station's offline queue: when it was


@dataclass(frozen=True, slots=True)
class BatteryOutTimeout(Command[EventResult]):
    station_id: str
    request_id: str
    batteries: tuple[BatteryReading, ...]
    token: IdToken | None


# -- handlers -------------------------------------------------------------------------------------


def _record_notification(db: Database, c: RecordNotification) -> None:
    station_management.record_notification(db, c.station_id, c.action, c.payload)


def _record_connected(db: Database, c: RecordConnected) -> datetime:
    return stations.record_connected(db, c.station_id, c.connection_id)


def _record_disconnected(db: Database, c: RecordDisconnected) -> bool:
    return stations.record_disconnected(db, c.station_id, c.connection_id)


def _record_boot(db: Database, c: RecordBoot) -> datetime:
    return stations.record_boot(db, c.station_id, vendor=c.vendor, model=c.model, firmware=c.firmware)


def _seen(db: Database, c: Seen) -> datetime:
    return stations.seen(db, c.station_id)


def _set_slot_state(db: Database, c: SetSlotState) -> None:
    stations.set_slot_state(db, c.station_id, c.slot_no, c.state)


def _report_soc(db: Database, c: ReportSoc) -> Pack:
    return catalog.report_soc(db, c.station_id, c.slot_no, c.soc, measured_at=c.measured_at)


def _authorize(db: Database, c: Authorize) -> AuthorizeResult:
    return swaps.authorize(db, c.station_id, c.token)


def _battery_in(db: Database, c: BatteryIn) -> EventResult:
    return swaps.battery_in(
        db, c.station_id, c.request_id, c.batteries, token=c.token, offline_at=c.offline_at
    )


def _battery_out(db: Database, c: BatteryOut) -> EventResult:
    return swaps.battery_out(
        db, c.station_id, c.request_id, c.batteries, token=c.token, offline_at=c.offline_at
    )


def _battery_out_timeout(db: Database, c: BatteryOutTimeout) -> EventResult:
    return swaps.battery_out_timeout(db, c.station_id, c.request_id, c.batteries, token=c.token)


HANDLERS: Mapping[type[Command[Any]], Callable[[Database, Any], object]] = MappingProxyType(
    {
        RecordConnected: _record_connected,
        RecordDisconnected: _record_disconnected,
        RecordBoot: _record_boot,
        Seen: _seen,
        SetSlotState: _set_slot_state,
        ReportSoc: _report_soc,
        Authorize: _authorize,
        BatteryIn: _battery_in,
        BatteryOut: _battery_out,
        BatteryOutTimeout: _battery_out_timeout,
        RecordNotification: _record_notification,
    }
)


def handle(db: Database, command: Command[R]) -> R:
    """Run the command's handler: one use case, one transaction (or none, for a refusal)."""
    handler = HANDLERS.get(type(command))
    if handler is None:
        raise TypeError(f"no handler for {type(command).__name__}: not a command of the bus")
    return cast(R, handler(db, command))

"""The station event record that makes each event apply once per (station, requestId,
eventType): a repeat is answered from the first one's recorded result."""

from __future__ import annotations

from swapd.domain.stations import Station
from swapd.services.ports import UnitOfWork
from swapd.services.swaps.lookups import found_station
from swapd.services.swaps.records import EventResult


def station_and_repeat(
    uow: UnitOfWork, station_id: str, request_id: str, event_type: str
) -> tuple[Station, EventResult | None]:
    """The known station (else NotFound) and, if this event was applied already, its result:
    both are what a station event reads first, read together."""
    station, recorded = uow.repo.station_and_event(station_id, request_id, event_type)
    repeated = None if recorded is None else EventResult.from_json(dict(recorded))
    return found_station(station, station_id), repeated


def record(uow: UnitOfWork, station_id: str, request_id: str, result: EventResult) -> EventResult:
    uow.repo.insert_station_event(station_id, request_id, result.event_type, uow.now, result.to_json())
    return result

"""The station event record that makes each event apply once per (station, requestId,
eventType): a repeat is answered from the first one's recorded result."""

from __future__ import annotations

from swapd.services.ports import UnitOfWork
from swapd.services.swaps.records import EventResult


def already(uow: UnitOfWork, station_id: str, request_id: str, event_type: str) -> EventResult | None:
    recorded = uow.repo.station_event(station_id, request_id, event_type)
    return None if recorded is None else EventResult.from_json(dict(recorded))


def record(uow: UnitOfWork, station_id: str, request_id: str, result: EventResult) -> EventResult:
    uow.repo.insert_station_event(station_id, request_id, result.event_type, uow.now, result.to_json())
    return result

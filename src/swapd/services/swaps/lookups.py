"""Reads shared by the swap events: the station, who a token names, whether it is an operator's,
and a rider's plan."""

from __future__ import annotations

from swapd.domain.errors import NotFound
from swapd.domain.lifecycle import Swap
from swapd.domain.plans import Plan
from swapd.domain.riders import CARD_TOKEN_TYPES, IdToken, Rider, TokenType
from swapd.domain.stations import Station
from swapd.services.ports import UnitOfWork


def known_station(uow: UnitOfWork, station_id: str) -> Station:
    return found_station(uow.repo.station(station_id), station_id)


def found_station(station: Station | None, station_id: str) -> Station:
    """The station read, or NotFound if there is none of that id."""
    if station is None:
        raise NotFound(f"unknown station {station_id}")
    return station


def known_station_and_request(
    uow: UnitOfWork, station_id: str, request_id: str | None
) -> tuple[Station, Swap | None]:
    """The known station (else NotFound) and the swap ``request_id`` names there already, read
    together (a request without an id names none)."""
    if request_id is None:
        return known_station(uow, station_id), None
    station, swap = uow.repo.station_and_request(station_id, request_id)
    return found_station(station, station_id), swap


def is_operator(uow: UnitOfWork, token: IdToken | None) -> bool:
    if token is None:
        return False
    if token.type is TokenType.OPERATOR:
        return True
    if token.type not in CARD_TOKEN_TYPES:
        return False  # only cards are in the token table (catalog.add_token)
    owner = uow.repo.token_owner(token.type.value, token.value)
    return owner is not None and bool(owner.operator)


def rider_plan(uow: UnitOfWork, rider_id: str) -> Plan:
    rider = uow.repo.rider(rider_id)
    assert rider is not None
    return plan_of(uow, rider)


def plan_of(uow: UnitOfWork, rider: Rider) -> Plan:
    plan = uow.repo.plan(rider.plan_id)
    assert plan is not None
    return plan


def token_rider(uow: UnitOfWork, token: IdToken | None) -> str | None:
    """The rider a token names, if any (a battery serial names the pack's holder)."""
    if token is None or token.type is TokenType.NO_AUTHORIZATION:
        return None
    if token.type is TokenType.APP:
        return token.value if uow.repo.rider(token.value) is not None else None
    if token.type is TokenType.BATTERY_SERIAL:
        pack = uow.repo.pack(token.value)
        return pack.rider_id if pack else None
    owner = uow.repo.token_owner(token.type.value, token.value)
    return None if owner is None or owner.rider_id is None else str(owner.rider_id)

"""Stations for staff: create (the OCPP password is shown once), list, edit, disable and enable,
reset the password, the live view of the slots, and sending a station its local list."""

from __future__ import annotations

from datetime import datetime

import anyio.from_thread
from fastapi import APIRouter, Request, status
from pydantic import BaseModel, ConfigDict, Field

from swapd.api.deps import Db, Operator, ReadDb, Staff
from swapd.api.errors import responses
from swapd.api.operator_common import PREFIX, Bp, Reason, bp_to_percent
from swapd.domain.stations import MAX_SLOTS, SlotState
from swapd.readmodels import stations
from swapd.services import back_office, local_lists
from swapd.services import stations as station_presence
from swapd.services.back_office import MAX_LAT_MICRODEG, MAX_LON_MICRODEG

router = APIRouter(prefix=f"{PREFIX}/stations", tags=["operator: stations"])

LatMicrodeg = Field(None, ge=-MAX_LAT_MICRODEG, le=MAX_LAT_MICRODEG, description="WGS84 x 10^6")
LonMicrodeg = Field(None, ge=-MAX_LON_MICRODEG, le=MAX_LON_MICRODEG, description="WGS84 x 10^6")


class StationOut(BaseModel):
    id: str
    name: str | None
    lat_microdeg: int | None
    lon_microdeg: int | None
    slot_count: int
    enabled: bool
    charged_soc_bp: int
    min_soh_bp: int
    packs: int
    charged_packs: int
    reserved_packs: int
    unavailable_slots: int
    password_set: bool
    connected: bool  # to a server process, now (as the database records it)
    vendor: str | None
    model: str | None
    firmware: str | None
    booted_at: datetime | None
    last_seen_at: datetime | None

    @classmethod
    def of(cls, info: stations.StationInfo, connected: bool) -> StationOut:
        return cls.model_validate(stations.station_line_view(info) | {"connected": connected})


class NewStation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=40, examples=["ST1"])
    slot_count: int = Field(ge=2, le=MAX_SLOTS)
    charged_soc_bp: Bp = Field(9_000, description="A pack at or above this SoC may be handed out")
    min_soh_bp: Bp = Field(7_000, description="Below this SoH a pack is not handed out")
    name: str | None = Field(None, min_length=1, max_length=100)
    lat_microdeg: int | None = LatMicrodeg
    lon_microdeg: int | None = LonMicrodeg


class StationCreated(BaseModel):
    """The OCPP Basic-auth password is shown here once; only its hash is stored."""

    station: StationOut
    ocpp_password: str


class StationChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500)
    name: str | None = Field(None, min_length=1, max_length=100)
    lat_microdeg: int | None = LatMicrodeg
    lon_microdeg: int | None = LonMicrodeg
    charged_soc_bp: Bp | None = None
    min_soh_bp: Bp | None = None


class NewPassword(BaseModel):
    station_id: str
    ocpp_password: str


class SlotOut(BaseModel):
    slot_no: int
    state: SlotState
    pack_serial: str | None
    soc_bp: int | None
    soh_bp: int | None
    charged: bool  # may be handed out now: charged, healthy and not reserved
    reserved_swap_id: int | None


class SlotsOut(BaseModel):
    station_id: str
    enabled: bool
    connected: bool
    last_seen_at: datetime | None
    slots: list[SlotOut]


def _connected(db: Db, station_id: str) -> bool:
    """Whether a server process holds the station's socket: recorded in the database, so that
    every process of ``swapd serve --workers N`` answers the same."""
    return station_presence.presence(db, station_id).connected


def _out(db: Db, station_id: str) -> StationOut:
    return StationOut.of(stations.station(db, station_id), _connected(db, station_id))


# The replica (ReadDb): the fleet's overview list; one station after a change is get_station (primary).
@router.get("", responses=responses(401, 403), summary="Every station with its counts")
def list_stations(_caller: Staff, db: ReadDb) -> list[StationOut]:
    connected = {
        station_id
        for station_id, recorded in station_presence.connections(db).items()
        if recorded.connection_id is not None
    }
    return [StationOut.of(s, s.line.station.id in connected) for s in stations.stations(db)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=responses(401, 403, 409, 422),
    summary="Add a station and its slots; its OCPP password is in the answer, once",
)
def create_station(body: NewStation, caller: Operator, db: Db) -> StationCreated:
    password = back_office.create_station(
        db,
        caller.actor,
        body.id,
        body.slot_count,
        charged_soc=bp_to_percent(body.charged_soc_bp),
        min_soh=bp_to_percent(body.min_soh_bp),
        name=body.name,
        lat_microdeg=body.lat_microdeg,
        lon_microdeg=body.lon_microdeg,
    )
    return StationCreated(station=_out(db, body.id), ocpp_password=password)


@router.get("/{station_id}", responses=responses(401, 403, 404), summary="One station")
def get_station(station_id: str, _caller: Staff, db: Db) -> StationOut:
    return _out(db, station_id)


@router.patch(
    "/{station_id}",
    responses=responses(401, 403, 404, 422),
    summary="Change a station's name, coordinates or thresholds (audited)",
)
def edit_station(station_id: str, body: StationChange, caller: Operator, db: Db) -> StationOut:
    edit = back_office.StationEdit(
        name=body.name,
        lat_microdeg=body.lat_microdeg,
        lon_microdeg=body.lon_microdeg,
        charged_soc=None if body.charged_soc_bp is None else bp_to_percent(body.charged_soc_bp),
        min_soh=None if body.min_soh_bp is None else bp_to_percent(body.min_soh_bp),
    )
    back_office.edit_station(db, caller.actor, station_id, edit, body.reason)
    return _out(db, station_id)


@router.post(
    "/{station_id}/disable",
    responses=responses(401, 403, 404, 422),
    summary="Take a station out of service: its connections and swaps are refused (audited)",
)
def disable_station(
    station_id: str, body: Reason, caller: Operator, db: Db, request: Request
) -> StationOut:
    back_office.set_station_enabled(db, caller.actor, station_id, False, body.reason)
    gateway = getattr(request.app.state, "gateway", None)
    if gateway is not None:
        # Routes run in worker threads; the socket belongs to the event loop.
        anyio.from_thread.run(gateway.disconnect, station_id, "station disabled")
    # Its socket is closing, here or in the process that holds it (swapd.gateway.presence); the
    # database records that a moment later.
    return StationOut.of(stations.station(db, station_id), False)


@router.post(
    "/{station_id}/enable",
    responses=responses(401, 403, 404, 422),
    summary="Put a station back in service (audited)",
)
def enable_station(station_id: str, body: Reason, caller: Operator, db: Db) -> StationOut:
    back_office.set_station_enabled(db, caller.actor, station_id, True, body.reason)
    return _out(db, station_id)


@router.post(
    "/{station_id}/password",
    responses=responses(401, 403, 404, 422),
    summary="Give the station a new OCPP password, shown once (audited)",
)
def reset_password(station_id: str, body: Reason, caller: Operator, db: Db) -> NewPassword:
    password = back_office.reset_station_password(db, caller.actor, station_id, body.reason)
    return NewPassword(station_id=station_id, ocpp_password=password)


# The replica (ReadDb): a picture of the slots for people; the station's swaps decide on the primary.
@router.get(
    "/{station_id}/slots",
    responses=responses(401, 403, 404),
    summary="Live slots: state, pack, SoC, SoH, charged, reserved; connected now",
)
def station_slots(station_id: str, _caller: Staff, db: ReadDb) -> SlotsOut:
    view = stations.slot_view(db, station_id)
    return SlotsOut(
        station_id=station_id,
        enabled=view.station.enabled,
        connected=_connected(db, station_id),
        last_seen_at=view.last_seen_at,
        slots=[
            SlotOut(
                slot_no=s.slot_no,
                state=s.state,
                pack_serial=s.pack_serial,
                soc_bp=s.soc_bp,
                soh_bp=s.soh_bp,
                charged=s.charged,
                reserved_swap_id=s.reserved_swap_id,
            )
            for s in view.slots
        ],
    )


class LocalListPush(BaseModel):
    model_config = ConfigDict(extra="forbid")
    full: bool = Field(False, description="Send the whole list, not only what changed")


class LocalListOut(BaseModel):
    """What the station's local authorization list is after the push (docs/OFFLINE.md)."""

    station_id: str
    update_type: str | None = Field(description="Full or Differential; null: it was current")
    version: int = Field(description="The station's list version now")
    messages: int = Field(description="SendLocalList messages the station accepted")
    sent_entries: int
    entries: int = Field(description="Entries the station's list holds")


@router.post(
    "/{station_id}/local-list",
    responses=responses(401, 403, 404, 409, 422),
    summary="Send the station its local authorization list (differences, or all with full)",
)
def push_local_list(station_id: str, body: LocalListPush, caller: Operator, db: Db) -> LocalListOut:
    """The list a station serves swaps from while it cannot reach swapd: every rider's cards and
    every pack, Accepted for the rider holding it, with the plan's offline limit. 409 when the
    station is not connected, refused the list or did not answer, or another update of its list
    is under way."""
    result = local_lists.push(db, station_id, full=body.full, requested_by=caller.actor)
    return LocalListOut.model_validate(result, from_attributes=True)

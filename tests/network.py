"""Build a swap network for a test through the services, one call per kind of row.

Each function writes what its name says and nothing else, in the order it is called, so a test
that calls them in the order of an older inline setup writes the same rows with the same ids:

    network(db)                                   # pack model G2, plan E1, stations ST1 and ST2
    pack(db, "B-1", station_id="ST1", slot_no=1)  # a charged, healthy pack in slot 1
    rider(db, "R1", top_up_minor=10_000)          # rider R1 on the energy plan with 10,000 KRW

`network(..., with_passwords=True)`, `stations(..., with_passwords=True)` and `password` return
the stations' OCPP passwords, which are shown once.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from swapd.domain.plans import Plan
from swapd.domain.riders import TokenType
from swapd.services import catalog, payments
from swapd.services import stations as station_service
from swapd.store import schema as t
from swapd.store.database import Database
from tests.plans import ENERGY

MODEL = "G2"
MODEL_NOMINAL_WH = 1_700
SLOT_COUNT = 8
STATION_IDS = ("ST1", "ST2")


def pack_model(db: Database, code: str = MODEL, *, nominal_wh: int = MODEL_NOMINAL_WH) -> str:
    """A pack model (G2, 1,700 Wh unless given); returns its code."""
    catalog.add_pack_model(db, code, nominal_wh)
    return code


def plans(db: Database, *plans: Plan) -> None:
    """The plans, E1's energy plan unless any are given."""
    for plan in plans or (ENERGY,):
        catalog.add_plan(db, plan)


def station(db: Database, station_id: str, *, slot_count: int = SLOT_COUNT) -> str:
    """A station with its slots (8 unless given) and no OCPP password; returns its id."""
    catalog.add_station(db, station_id, slot_count)
    return station_id


def password(db: Database, station_id: str) -> str:
    """A new OCPP password for the station; returns it (it is shown once)."""
    return station_service.set_password(db, station_id)


def stations(
    db: Database,
    station_ids: Iterable[str] = STATION_IDS,
    *,
    slot_count: int = SLOT_COUNT,
    with_passwords: bool = False,
) -> dict[str, str]:
    """Stations (ST1 and ST2 unless given) with slot_count slots each, each given its OCPP password
    right after it is added when asked for; the passwords by station id, else an empty dict."""
    passwords = {}
    for station_id in station_ids:
        station(db, station_id, slot_count=slot_count)
        if with_passwords:
            passwords[station_id] = password(db, station_id)
    return passwords


def network(
    db: Database,
    *plan_list: Plan,
    station_ids: Iterable[str] = STATION_IDS,
    slot_count: int = SLOT_COUNT,
    with_passwords: bool = False,
) -> dict[str, str]:
    """Pack model G2, the plans (E1's energy plan unless given), then the stations (ST1 and ST2
    with 8 slots unless given); the stations' passwords when asked for, else an empty dict."""
    pack_model(db)
    plans(db, *plan_list)
    return stations(db, station_ids, slot_count=slot_count, with_passwords=with_passwords)


def locate(db: Database, station_id: str, *, name: str, lat_microdeg: int, lon_microdeg: int) -> None:
    """Give a station a name and a place (the services add stations without them)."""
    db.write(
        lambda tx: tx.repo.execute(
            sa.update(t.stations)
            .where(t.stations.c.id == station_id)
            .values(name=name, lat_microdeg=lat_microdeg, lon_microdeg=lon_microdeg)
        )
    )


def pack(
    db: Database,
    serial: str,
    *,
    model: str = MODEL,
    soc_pct: float = 100,
    soh_pct: float = 100,
    station_id: str | None = None,
    slot_no: int | None = None,
) -> str:
    """A pack in a slot of a station, or in the depot without station_id and slot_no; returns its
    serial. Charged and healthy (100 % SoC and SoH) unless given."""
    catalog.register_pack(
        db, serial, model, soc=soc_pct, soh=soh_pct, station_id=station_id, slot_no=slot_no
    )
    return serial


def packs_in_slots(
    db: Database,
    station_id: str,
    slot_numbers: Iterable[int],
    *,
    serial_format: str = "{station_id}-P{slot_no}",
    model: str = MODEL,
    soc_pct: float = 100,
    soh_pct: float = 100,
) -> list[str]:
    """One pack in each of the slots, named by serial_format; returns the serials."""
    return [
        pack(
            db,
            serial_format.format(station_id=station_id, slot_no=slot_no),
            model=model,
            soc_pct=soc_pct,
            soh_pct=soh_pct,
            station_id=station_id,
            slot_no=slot_no,
        )
        for slot_no in slot_numbers
    ]


def rider(
    db: Database,
    rider_id: str,
    *,
    plan_id: str = ENERGY.id,
    vehicle_packs: int = 1,
    top_up_minor: int | None = None,
    payment_ref: str = "pay-1",
) -> str:
    """A rider on the plan (E1's energy plan unless given), topped up with top_up_minor under
    payment_ref when given; returns the rider's id."""
    catalog.add_rider(db, rider_id, plan_id, vehicle_packs=vehicle_packs)
    if top_up_minor is not None:
        payments.top_up(db, rider_id, top_up_minor, payment_ref)
    return rider_id


def card(db: Database, rider_id: str, uid: str) -> str:
    """An RFID card registered to the rider; returns its uid."""
    catalog.add_token(db, TokenType.RFID, uid, rider_id=rider_id)
    return uid

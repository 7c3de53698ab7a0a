"""What a rider may see of their own account: balance, swaps, packs, cards; and stations nearby.

Every query here is scoped by the rider id the caller was authenticated as, in the WHERE clause of
each statement, so that no id a rider sends can reach another rider's rows. The charge of a
returned pack is read back from the ledger (the transfers the return wrote), not recomputed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from swapd.domain.decision import is_charged
from swapd.domain.errors import Conflict, InvalidInput, NotFound
from swapd.domain.plans import Plan
from swapd.domain.riders import TokenType
from swapd.domain.stations import SlotState, Station
from swapd.ledger.model import TransferCode
from swapd.services import catalog, queries, views
from swapd.store import schema as t
from swapd.store.database import Database, Tx

MAX_PAGE = 100
EARTH_RADIUS_M = 6_371_008  # IUGG mean radius
MICRODEG = 1_000_000
METRES_PER_DEG_LAT = 111_195  # 2 * pi * EARTH_RADIUS_M / 360, rounded
RFID_UID_PATTERN = r"^[0-9A-Fa-f]{8}([0-9A-Fa-f]{6}([0-9A-Fa-f]{6})?)?$"  # 4, 7 or 10 bytes


def quantity_name(unit: str) -> str:
    """The unit as API field names spell it: energy_wh, time_s, deliveries."""
    return {"Wh": "energy_wh", "s": "time_s", "count": "deliveries"}[unit]


# -- plans ----------------------------------------------------------------------------------------


def plans(db: Database) -> list[Plan]:
    """The plans riders can choose from: the listed ones."""
    return db.read(lambda tx: tx.repo.plans(listed_only=True))


# -- balance --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Balance:
    balance: queries.RiderBalance
    held_value_minor: int
    subscription: views.SubscriptionLine | None


def balance(db: Database, rider_id: str) -> Balance:
    found = queries.rider_balance(db, rider_id)
    return Balance(
        found,
        views.held_value_minor(found.prepaid_minor, found.posted_units, found.held_units),
        views.subscription(db, rider_id),
    )


# -- swaps ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PackCharge:
    """What one returned pack cost: units from the allowance, units beyond it, and money."""

    unit: str
    currency: str
    usage_units: int  # metered (R4)
    charged_units: int  # taken from the allowance
    beyond_units: int  # used beyond the allowance (overage or overdrawn)
    revenue_minor: int  # prepaid money earned by the charged units
    overage_minor: int  # billed for units beyond the allowance (subscriptions with overage)

    @property
    def amount_minor(self) -> int:
        return self.revenue_minor + self.overage_minor


@dataclass(frozen=True, slots=True)
class ReturnedPack:
    serial: str
    model_code: str
    slot_no: int
    taken_at: datetime
    returned_at: datetime
    station_taken_id: str
    soc_out_bp: int
    soc_in_bp: int
    soh_in_bp: int
    anomaly: str | None
    charge: PackCharge


@dataclass(frozen=True, slots=True)
class TakenPack:
    serial: str
    model_code: str
    slot_no: int
    taken_at: datetime
    soc_out_bp: int
    soh_out_bp: int
    hold_units: int
    unit: str
    returned: bool


@dataclass(frozen=True, slots=True)
class SwapLine:
    id: int
    station_id: str
    station_name: str | None
    at: datetime
    state: str
    reason: str | None
    returned: tuple[ReturnedPack, ...]
    taken: tuple[TakenPack, ...]


def _charge(tx: Tx, rider_id: str, plan: Plan, key_prefix: str, usage_units: int) -> PackCharge:
    x = t.transfers.c
    rows = tx.repo.execute(
        sa.select(x.ledger, x.code, x.amount).where(
            x.rider_id == rider_id, x.key.startswith(key_prefix, autoescape=True)
        )
    ).all()
    charged = beyond = revenue = overage = 0
    for row in rows:
        code = TransferCode(row.code)
        if row.ledger == plan.currency:
            if code is TransferCode.REVENUE:
                revenue += row.amount
            elif code is TransferCode.OVERAGE:
                overage += row.amount
        elif code is TransferCode.USAGE:
            charged += row.amount
        elif code in (TransferCode.OVERAGE, TransferCode.OVERDRAWN):
            beyond += row.amount
    return PackCharge(plan.unit.value, plan.currency, usage_units, charged, beyond, revenue, overage)


def _possessions(
    tx: Tx, rider_id: str, column: sa.Column[Any], swap_ids: Sequence[int]
) -> Sequence[sa.Row[Any]]:
    """The rider's possessions that went out (``swap_out_id``) or came back in (``swap_in_id``)
    in these swaps; another rider's pack in the same station event is never among them."""
    p = t.possessions.c
    return tx.repo.execute(
        sa.select(t.possessions, t.packs.c.model_code)
        .join(t.packs, t.packs.c.serial == p.pack_serial)
        .where(p.rider_id == rider_id, column.in_(list(swap_ids)))
        .order_by(p.id)
    ).all()


def swaps(db: Database, rider_id: str, *, limit: int, before: int | None = None) -> list[SwapLine]:
    """The rider's swaps, newest first; ``before`` is the id of the last swap of the previous page."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1..{MAX_PAGE}, got {limit}")

    def work(tx: Tx) -> list[SwapLine]:
        s = t.swaps.c
        query = (
            sa.select(t.swaps, t.stations.c.name)
            .join(t.stations, t.stations.c.id == s.station_id)
            .where(s.rider_id == rider_id)
            .order_by(s.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(s.id < before)
        swap_rows = tx.repo.execute(query).all()
        ids = [int(r.id) for r in swap_rows]
        plan_cache: dict[str, Plan] = {}

        def plan_of(plan_id: str) -> Plan:
            if plan_id not in plan_cache:
                found = tx.repo.plan(plan_id)
                assert found is not None
                plan_cache[plan_id] = found
            return plan_cache[plan_id]

        p = t.possessions.c
        returned: dict[int, list[ReturnedPack]] = {i: [] for i in ids}
        requests = {int(r.id): (r.station_id, r.request_id) for r in swap_rows}
        for row in _possessions(tx, rider_id, p.swap_in_id, ids):
            station_id, request_id = requests[int(row.swap_in_id)]
            plan = plan_of(row.plan_id)
            # The return's transfers carry keys "{station}:{requestId}:{serial}:BatteryIn:...".
            prefix = f"{station_id}:{request_id}:{row.pack_serial}:BatteryIn:"
            returned[int(row.swap_in_id)].append(
                ReturnedPack(
                    serial=row.pack_serial,
                    model_code=row.model_code,
                    slot_no=row.slot_in,
                    taken_at=row.at_out,
                    returned_at=row.at_in,
                    station_taken_id=row.station_out,
                    soc_out_bp=row.soc_out_bp,
                    soc_in_bp=row.soc_in_bp,
                    soh_in_bp=row.soh_in_bp,
                    anomaly=row.anomaly,
                    charge=_charge(tx, rider_id, plan, prefix, int(row.usage_units or 0)),
                )
            )
        taken: dict[int, list[TakenPack]] = {i: [] for i in ids}
        for row in _possessions(tx, rider_id, p.swap_out_id, ids):
            taken[int(row.swap_out_id)].append(
                TakenPack(
                    serial=row.pack_serial,
                    model_code=row.model_code,
                    slot_no=row.slot_out,
                    taken_at=row.at_out,
                    soc_out_bp=row.soc_out_bp,
                    soh_out_bp=row.soh_out_bp,
                    hold_units=row.hold_units,
                    unit=plan_of(row.plan_id).unit.value,
                    returned=row.at_in is not None,
                )
            )
        return [
            SwapLine(
                id=int(r.id),
                station_id=r.station_id,
                station_name=r.name,
                at=r.created_at,
                state=r.state,
                reason=r.reason,
                returned=tuple(returned[int(r.id)]),
                taken=tuple(taken[int(r.id)]),
            )
            for r in swap_rows
        ]

    return db.read(work)


# -- packs held -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeldPack:
    serial: str
    model_code: str
    nominal_wh: int
    since: datetime
    station_id: str
    station_name: str | None
    slot_no: int
    soc_out_bp: int
    soh_out_bp: int
    hold_units: int
    unit: str


def packs_held(db: Database, rider_id: str) -> list[HeldPack]:
    def work(tx: Tx) -> list[HeldPack]:
        p = t.possessions.c
        rows = tx.repo.execute(
            sa.select(
                t.possessions,
                t.packs.c.model_code,
                t.pack_models.c.nominal_wh,
                t.stations.c.name,
                t.plans.c.unit,
            )
            .join(t.packs, t.packs.c.serial == p.pack_serial)
            .join(t.pack_models, t.pack_models.c.code == t.packs.c.model_code)
            .join(t.stations, t.stations.c.id == p.station_out)
            .join(t.plans, t.plans.c.id == p.plan_id)
            .where(p.rider_id == rider_id, p.at_in.is_(None))
            .order_by(p.at_out, p.id)
        ).all()
        return [
            HeldPack(
                serial=r.pack_serial,
                model_code=r.model_code,
                nominal_wh=r.nominal_wh,
                since=r.at_out,
                station_id=r.station_out,
                station_name=r.name,
                slot_no=r.slot_out,
                soc_out_bp=r.soc_out_bp,
                soh_out_bp=r.soh_out_bp,
                hold_units=r.hold_units,
                unit=r.unit,
            )
            for r in rows
        ]

    return db.read(work)


# -- RFID cards -----------------------------------------------------------------------------------


def cards(db: Database, rider_id: str) -> list[str]:
    def work(tx: Tx) -> list[str]:
        c = t.id_tokens.c
        return list(
            tx.repo.execute(
                sa.select(c.value)
                .where(c.rider_id == rider_id, c.type == TokenType.RFID.value)
                .order_by(c.value)
            ).scalars()
        )

    return db.read(work)


def normalise_uid(uid: str) -> str:
    """Card UIDs as stations report ISO14443 idTokens: hex, upper case."""
    return uid.upper()


def add_card(db: Database, rider_id: str, uid: str) -> bool:
    """Register a card for the rider; False if it was theirs already (a repeat changes nothing).
    A card that is anyone else's (another rider's, or a staff card) is a conflict."""
    uid = normalise_uid(uid)

    def owner(tx: Tx) -> sa.Row[Any] | None:
        return tx.repo.token_owner(TokenType.RFID.value, uid)

    found = db.read(owner)
    if found is not None:
        if found.rider_id == rider_id:
            return False
        raise Conflict("this card is registered to another account")
    try:
        catalog.add_token(db, TokenType.RFID, uid, rider_id=rider_id)
    except Conflict:
        # Registered between our read and the insert: by this rider (a concurrent repeat) or not.
        again = db.read(owner)
        if again is not None and again.rider_id == rider_id:
            return False
        raise Conflict("this card is registered to another account") from None
    return True


def remove_card(db: Database, rider_id: str, uid: str) -> None:
    uid = normalise_uid(uid)

    def work(tx: Tx) -> None:
        c = t.id_tokens.c
        removed = tx.repo.execute(
            sa.delete(t.id_tokens).where(
                c.type == TokenType.RFID.value, c.value == uid, c.rider_id == rider_id
            )
        )
        if removed.rowcount != 1:
            # The same answer whether the card is unknown or someone else's: ids reveal nothing.
            raise NotFound(f"no card {uid} on your account")

    db.write(work)


# -- stations -------------------------------------------------------------------------------------


def distance_m(lat1_microdeg: int, lon1_microdeg: int, lat2_microdeg: int, lon2_microdeg: int) -> int:
    """Great-circle distance (haversine on a sphere of the mean Earth radius), rounded to metres."""
    lat1, lon1, lat2, lon2 = (
        math.radians(v / MICRODEG) for v in (lat1_microdeg, lon1_microdeg, lat2_microdeg, lon2_microdeg)
    )
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return round(2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h))))


@dataclass(frozen=True, slots=True)
class NearbyStation:
    id: str
    name: str | None
    lat_microdeg: int
    lon_microdeg: int
    distance_m: int
    charged_packs: int
    empty_slots: int


def nearby(
    db: Database, lat_microdeg: int, lon_microdeg: int, radius_m: int, *, limit: int
) -> list[NearbyStation]:
    """Enabled stations within ``radius_m``, nearest first (ties by id)."""
    # A latitude band cut in SQL keeps the scan small; longitude is left to the exact distance
    # (its degrees shrink towards the poles and wrap at the antimeridian).
    band_microdeg = radius_m * MICRODEG // METRES_PER_DEG_LAT + 1

    def work(tx: Tx) -> list[NearbyStation]:
        s = t.stations.c
        rows = tx.repo.execute(
            sa.select(
                s.id,
                s.name,
                s.lat_microdeg,
                s.lon_microdeg,
                s.slot_count,
                s.charged_soc_bp,
                s.min_soh_bp,
            )
            .where(
                s.enabled.is_(True),
                s.lat_microdeg.is_not(None),
                s.lon_microdeg.is_not(None),
                s.lat_microdeg.between(lat_microdeg - band_microdeg, lat_microdeg + band_microdeg),
            )
            .order_by(s.id)
        ).all()
        near = sorted(
            (
                (distance_m(lat_microdeg, lon_microdeg, r.lat_microdeg, r.lon_microdeg), r.id, r)
                for r in rows
            ),
            key=lambda item: (item[0], item[1]),
        )
        found: list[NearbyStation] = []
        for distance, station_id, row in near:
            if distance > radius_m or len(found) >= limit:
                break
            station = Station(station_id, row.slot_count, True, row.charged_soc_bp, row.min_soh_bp)
            packs = tx.repo.packs_at(station_id)
            empty = tx.repo.execute(
                sa.select(sa.func.count())
                .select_from(t.slots)
                .where(
                    t.slots.c.station_id == station_id,
                    t.slots.c.state == SlotState.AVAILABLE.value,
                )
            ).scalar_one()
            found.append(
                NearbyStation(
                    id=station_id,
                    name=row.name,
                    lat_microdeg=row.lat_microdeg,
                    lon_microdeg=row.lon_microdeg,
                    distance_m=distance,
                    charged_packs=sum(1 for p in packs if is_charged(p, station)),
                    empty_slots=int(empty),
                )
            )
        return found

    return db.read(work)

"""The network a run plays on, set up through the services: pack model, plans, stations with
passwords and stocked slots, riders with cards and sandbox top-ups, and each rider's first pack.

Every id starts with a run prefix (``SIM-xxxxxx``), so runs share a database without colliding
and a run's rows can be found again (``cleanup``). Its plans are unlisted: riders never see them.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from swapd.domain.plans import Plan, PlanKind
from swapd.domain.quantities import Unit
from swapd.domain.riders import IdToken, TokenType
from swapd.services import catalog, payments, stations, swaps
from swapd.services.swaps import BatteryReading
from swapd.sim.cleanup import SIM_PREFIX
from swapd.sim.config import SimConfig
from swapd.store import schema as t
from swapd.store.database import Database, Tx

NOMINAL_WH = 1_700
CHARGED_SOC_PCT = 90  # the stations' threshold for handing a pack out
ENERGY_PRICE = (300, 1_000)  # 300 KRW buys 1,000 Wh
DELIVERY_PRICE = (12_500, 10)  # 12,500 KRW buy 10 deliveries
ENERGY_TOP_UPS_MINOR = (30_000, 50_000, 100_000)
DELIVERY_TOP_UPS_MINOR = (25_000, 50_000)
# Enough for the first pack (and its hold) but not for the next one while the first is held.
SHORT_TOP_UP_MINOR = {PlanKind.PREPAID_ENERGY: 600, PlanKind.PREPAID_DELIVERIES: 1_250}
REFILL_MINOR = {PlanKind.PREPAID_ENERGY: 10_000, PlanKind.PREPAID_DELIVERIES: 12_500}
MAX_PREFIX_TRIES = 20


@dataclass(frozen=True, slots=True)
class PackSpec:
    serial: str
    soc_pct: float
    soh_pct: float


@dataclass(frozen=True, slots=True)
class RiderSpec:
    id: str
    plan_kind: PlanKind
    vehicle_packs: int
    card: str | None
    short_of_credit: bool
    packs: tuple[PackSpec, ...]  # handed out at setup (SoC as handed over)
    start_soc_pct: float  # what the packs show when the run starts (ridden since)

    @property
    def refill_minor(self) -> int:
        return REFILL_MINOR[self.plan_kind]


@dataclass(frozen=True, slots=True)
class StationSpec:
    id: str
    password: str
    slots: tuple[PackSpec | None, ...]  # index 0 is slot 1
    meter_values: bool  # reports SoC with MeterValues instead of TransactionEvent


@dataclass(frozen=True, slots=True)
class Network:
    prefix: str
    stations: tuple[StationSpec, ...]
    riders: tuple[RiderSpec, ...]
    handouts: int  # swaps the setup itself completed (not counted by the run)
    baseline_swap_id: int  # swaps of the run have larger ids


def new_prefix(db: Database) -> str:
    for _ in range(MAX_PREFIX_TRIES):
        prefix = f"{SIM_PREFIX}{secrets.token_hex(3).upper()}"
        if stations.access(db, f"{prefix}-S1") is None and not _plan_exists(db, f"{prefix}-energy"):
            return prefix
    raise RuntimeError("could not find an unused sim prefix")


def _plan_exists(db: Database, plan_id: str) -> bool:
    return db.read(lambda tx: tx.repo.plan(plan_id)) is not None


def _pick(rng: random.Random, population: int, share: float) -> set[int]:
    count = min(population, round(population * share))
    return set(rng.sample(range(population), count))


def build(db: Database, config: SimConfig, rng: random.Random, prefix: str | None = None) -> Network:
    prefix = prefix or new_prefix(db)
    model = f"{prefix}-G2"
    catalog.add_pack_model(db, model, NOMINAL_WH)
    plans = {
        PlanKind.PREPAID_ENERGY: catalog.add_plan(
            db,
            Plan(
                f"{prefix}-energy",
                PlanKind.PREPAID_ENERGY,
                Unit.ENERGY_WH,
                "KRW",
                *ENERGY_PRICE,
                listed=False,
            ),
        ),
        PlanKind.PREPAID_DELIVERIES: catalog.add_plan(
            db,
            Plan(
                f"{prefix}-deliveries",
                PlanKind.PREPAID_DELIVERIES,
                Unit.DELIVERIES,
                "KRW",
                *DELIVERY_PRICE,
                listed=False,
            ),
        ),
    }
    station_ids = [f"{prefix}-S{n}" for n in range(1, config.stations + 1)]
    passwords = {}
    for station_id in station_ids:
        catalog.add_station(db, station_id, config.slots, charged_soc=CHARGED_SOC_PCT)
        passwords[station_id] = stations.set_password(db, station_id)

    serials = (f"{prefix}-P{n:05d}" for n in range(1, 10**6))
    shares = config.shares
    two_packs = _pick(rng, config.riders, shares.two_packs)
    cards = _pick(rng, config.riders, shares.cards)
    short = _pick(rng, config.riders, shares.short_of_credit)
    deliveries = _pick(rng, config.riders, shares.deliveries_plan)
    riders = []
    handouts = 0
    for index in range(config.riders):
        rider_id = f"{prefix}-R{index + 1}"
        kind = PlanKind.PREPAID_DELIVERIES if index in deliveries else PlanKind.PREPAID_ENERGY
        vehicle_packs = 2 if index in two_packs else 1
        catalog.add_rider(db, rider_id, plans[kind].id, vehicle_packs=vehicle_packs)
        card = None
        if index in cards:
            card = f"{prefix}-C{index + 1}"
            catalog.add_token(db, TokenType.RFID, card, rider_id=rider_id)
        if index in short:
            amount = SHORT_TOP_UP_MINOR[kind] * vehicle_packs
        else:
            amounts = ENERGY_TOP_UPS_MINOR if kind is PlanKind.PREPAID_ENERGY else DELIVERY_TOP_UPS_MINOR
            amount = rng.choice(amounts)
        payments.top_up(db, rider_id, amount, f"{rider_id}-topup-0", actor="swapd-sim")
        station_id = station_ids[index % len(station_ids)]
        packs = tuple(
            PackSpec(next(serials), 100.0, round(rng.uniform(85, 100), 1)) for _ in range(vehicle_packs)
        )
        _hand_out(db, station_id, rider_id, model, packs, f"{prefix}-setup-{index + 1}")
        handouts += 1
        # Riders short of credit start low, so even a short run shows their refusal.
        start_soc = rng.uniform(15, 45) if index in short else rng.uniform(15, 100)
        riders.append(
            RiderSpec(rider_id, kind, vehicle_packs, card, index in short, packs, round(start_soc, 1))
        )

    station_specs = []
    for n, station_id in enumerate(station_ids):
        empty = set(rng.sample(range(config.slots), config.empty_slots))
        slots: list[PackSpec | None] = []
        for slot_index in range(config.slots):
            if slot_index in empty:
                slots.append(None)
                continue
            soc = rng.uniform(91, 100) if rng.random() < 0.75 else rng.uniform(25, 85)
            pack = PackSpec(next(serials), round(soc, 1), round(rng.uniform(85, 100), 1))
            catalog.register_pack(
                db,
                pack.serial,
                model,
                soc=pack.soc_pct,
                soh=pack.soh_pct,
                station_id=station_id,
                slot_no=slot_index + 1,
            )
            slots.append(pack)
        station_specs.append(
            StationSpec(station_id, passwords[station_id], tuple(slots), meter_values=n % 3 == 2)
        )
    baseline = db.read(lambda tx: tx.repo.execute(sa.select(sa.func.max(t.swaps.c.id))).scalar())
    return Network(prefix, tuple(station_specs), tuple(riders), handouts, int(baseline or 0))


def _hand_out(
    db: Database,
    station_id: str,
    rider_id: str,
    model: str,
    packs: tuple[PackSpec, ...],
    request_id: str,
) -> None:
    """The rider's first packs: put into slots 1.., offered through the app path and taken."""
    for slot_no, pack in enumerate(packs, start=1):
        catalog.register_pack(
            db,
            pack.serial,
            model,
            soc=pack.soc_pct,
            soh=pack.soh_pct,
            station_id=station_id,
            slot_no=slot_no,
        )
    token = IdToken(TokenType.APP, rider_id)
    decision = swaps.authorize(db, station_id, token, request_id=request_id)
    if not decision.accepted or len(decision.offered) != len(packs):
        raise RuntimeError(f"setup: first packs for {rider_id} refused: {decision.text}")
    readings = [
        BatteryReading.parse(slot_no, pack.serial, pack.soc_pct, pack.soh_pct)
        for slot_no, pack in enumerate(packs, start=1)
    ]
    result = swaps.battery_out(db, station_id, request_id, readings, token=token)
    if any(p.outcome != "handed_over" for p in result.packs):
        raise RuntimeError(f"setup: first packs for {rider_id} not handed over: {result.packs}")


def server_completed(db: Database, network: Network) -> int:
    """Completed swaps the server recorded at this run's stations after the setup."""
    ids = [s.id for s in network.stations]

    def work(tx: Tx) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(t.swaps)
            .where(
                t.swaps.c.station_id.in_(ids),
                t.swaps.c.state == swaps.SwapState.COMPLETED,
                t.swaps.c.id > network.baseline_swap_id,
            )
        )
        return int(tx.repo.execute(query).scalar_one())

    return db.read(work)

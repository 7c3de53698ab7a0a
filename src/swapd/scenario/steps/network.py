"""Steps that build the network: pack models, plans, stations, packs, riders and their cards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from swapd.domain.packs import PackModel
from swapd.domain.plans import DEFAULT_TIME_HOLD_S, Plan, PlanKind
from swapd.domain.quantities import CURRENCY_EXPONENTS, Unit, format_money
from swapd.domain.riders import IdToken, Rider, RiderStatus, TokenType
from swapd.domain.right_sizing import Consent
from swapd.domain.stations import validate_slot_count
from swapd.scenario.fields import Fields, suggestion
from swapd.scenario.steps.base import Action, Context, Done, percent, quantity
from swapd.services import catalog, pack_policy


@dataclass(frozen=True, slots=True)
class AddPackModel(Action):
    kind: ClassVar[str] = "pack_model"
    result_keys: ClassVar[frozenset[str]] = frozenset({"code", "nominal_wh"})
    model: PackModel

    @classmethod
    def parse(cls, f: Fields, number: int) -> Action:
        code = f.code("code", "pack model")
        nominal_wh = f.integer("nominal_wh", minimum=1)
        return cls(f.checked("nominal_wh", lambda: PackModel(code, nominal_wh)))

    def describe(self) -> str:
        return f"pack model {self.model.code}, nominal {self.model.nominal_wh:,} Wh"

    def run(self, ctx: Context) -> Done:
        model = catalog.add_pack_model(ctx.db, self.model.code, self.model.nominal_wh)
        return Done({"code": model.code, "nominal_wh": model.nominal_wh}, "added")


_PREPAID_UNITS = {
    PlanKind.PREPAID_ENERGY: Unit.ENERGY_WH,
    PlanKind.PREPAID_TIME: Unit.TIME_S,
    PlanKind.PREPAID_DELIVERIES: Unit.DELIVERIES,
}


@dataclass(frozen=True, slots=True)
class AddPlan(Action):
    kind: ClassVar[str] = "plan"
    result_keys: ClassVar[frozenset[str]] = frozenset({"id", "kind", "unit", "currency"})
    plan: Plan

    @classmethod
    def parse(cls, f: Fields, number: int) -> Action:
        plan_id = f.code("id", "plan")
        kind = f.choice("kind", {k.value: k for k in PlanKind})
        units = {u.value: u for u in Unit}
        subscription = kind is PlanKind.SUBSCRIPTION
        if subscription:
            unit = f.choice("unit", units)
        else:
            unit = _PREPAID_UNITS[kind]
            if f.has("unit") and f.choice("unit", units) is not unit:
                raise f.error("unit", f"a {kind} plan counts in {unit}")
        # Fields that mean nothing for this kind are refused rather than silently ignored.
        only_subscription = ("fee_minor", "included_units", "carry_over", "prorate_first_cycle")
        for name in only_subscription if not subscription else ():
            if f.has(name):
                raise f.error(name, "applies to subscription plans only")
        for name in ("granularity_s", "time_hold_s"):
            if f.has(name) and unit is not Unit.TIME_S:
                raise f.error(name, "applies to plans that count time (s) only")
        currency = f.text("currency")
        if currency not in CURRENCY_EXPONENTS:
            raise f.error(
                "currency", f"unknown currency {currency!r}{suggestion(currency, CURRENCY_EXPONENTS)}"
            )
        # A subscription's price is its overage price: none unless given.
        price_minor = f.integer(
            "price_minor", minimum=0 if subscription else 1, default=0 if subscription else None
        )
        price_units = f.integer("price_units", minimum=1, default=1 if subscription else None)
        granularity_s = f.integer("granularity_s", minimum=1, default=60)
        time_hold_s = f.integer("time_hold_s", minimum=1, default=DEFAULT_TIME_HOLD_S)
        fee_minor = f.integer("fee_minor", minimum=1) if subscription else 0
        included = f.integer("included_units", minimum=1) if subscription else 0
        carry_over = f.boolean("carry_over", True)
        prorate = f.boolean("prorate_first_cycle", True)
        plan = f.checked(
            "price_minor" if not subscription else "fee_minor",
            lambda: Plan(
                plan_id,
                kind,
                unit,
                currency,
                price_minor,
                price_units,
                granularity_s=granularity_s,
                time_hold_s=time_hold_s,
                fee_minor=fee_minor,
                included_units=included,
                carry_over=carry_over,
                prorate_first_cycle=prorate,
            ),
        )
        return cls(plan)

    def describe(self) -> str:
        p = self.plan
        unit = p.unit.value
        if p.is_subscription:
            overage = (
                f"overage {format_money(p.price_minor, p.currency)} per {quantity(p.price_units, unit)}"
                if p.allows_overage
                else "no overage"
            )
            return (
                f"plan {p.id} (subscription): {format_money(p.fee_minor, p.currency)} a month "
                f"for {quantity(p.included_units, unit)}, {overage}"
            )
        text = (
            f"plan {p.id} ({p.kind}): {format_money(p.price_minor, p.currency)} "
            f"buys {quantity(p.price_units, unit)}"
        )
        if p.unit is Unit.TIME_S:
            text += f", granularity {p.granularity_s:,} s, hold {p.time_hold_s:,} s per pack"
        return text

    def run(self, ctx: Context) -> Done:
        plan = catalog.add_plan(ctx.db, self.plan)
        result = {"id": plan.id, "kind": plan.kind.value, "unit": plan.unit.value}
        return Done(result | {"currency": plan.currency}, "added")


@dataclass(frozen=True, slots=True)
class AddStation(Action):
    kind: ClassVar[str] = "station"
    result_keys: ClassVar[frozenset[str]] = frozenset({"id", "slots", "charged_soc_bp", "min_soh_bp"})
    station_id: str
    slots: int
    charged_soc_bp: int | None
    min_soh_bp: int | None

    @classmethod
    def parse(cls, f: Fields, number: int) -> Action:
        station_id = f.code("id", "station")
        slots = f.integer("slots")
        f.checked("slots", lambda: validate_slot_count(slots))
        charged = f.percent_bp("charged_soc") if f.has("charged_soc") else None
        min_soh = f.percent_bp("min_soh") if f.has("min_soh") else None
        return cls(station_id, slots, charged, min_soh)

    def describe(self) -> str:
        text = f"station {self.station_id} with {self.slots} slots"
        if self.charged_soc_bp is not None:
            text += f", charged at SoC >= {percent(self.charged_soc_bp)} %"
        if self.min_soh_bp is not None:
            text += f", packs need SoH >= {percent(self.min_soh_bp)} %"
        return text

    def run(self, ctx: Context) -> Done:
        options: dict[str, object] = {}
        if self.charged_soc_bp is not None:
            options["charged_soc"] = percent(self.charged_soc_bp)
        if self.min_soh_bp is not None:
            options["min_soh"] = percent(self.min_soh_bp)
        station = catalog.add_station(ctx.db, self.station_id, self.slots, **options)
        result = {
            "id": station.id,
            "slots": station.slot_count,
            "charged_soc_bp": station.charged_soc_bp,
            "min_soh_bp": station.min_soh_bp,
        }
        return Done(result, "added")


@dataclass(frozen=True, slots=True)
class RegisterPack(Action):
    kind: ClassVar[str] = "pack"
    result_keys: ClassVar[frozenset[str]] = frozenset(
        {"serial", "model", "status", "station", "slot", "soc_bp", "soh_bp"}
    )
    serial: str
    model: str
    soc_bp: int
    soh_bp: int
    cycle_count: int
    station_id: str | None
    slot_no: int | None

    @classmethod
    def parse(cls, f: Fields, number: int) -> Action:
        serial = f.serial("serial")
        model = f.code("model", "pack model")
        soc_bp = f.percent_bp("soc")
        soh_bp = f.percent_bp("soh", default=10_000)
        cycle_count = f.integer("cycle_count", minimum=0, default=0)
        station_id = f.code("station", "station") if f.has("station") else None
        slot_no = f.optional_integer("slot", minimum=1)
        if (station_id is None) != (slot_no is None):
            missing = "slot" if slot_no is None else "station"
            raise f.error(missing, "give both station and slot, or neither (the depot)")
        return cls(serial, model, soc_bp, soh_bp, cycle_count, station_id, slot_no)

    def describe(self) -> str:
        place = (
            "into the depot"
            if self.station_id is None
            else f"into slot {self.slot_no} of {self.station_id}"
        )
        return (
            f"pack {self.serial} ({self.model}, SoC {percent(self.soc_bp)} %, "
            f"SoH {percent(self.soh_bp)} %) {place}"
        )

    def run(self, ctx: Context) -> Done:
        pack = catalog.register_pack(
            ctx.db,
            self.serial,
            self.model,
            soh=percent(self.soh_bp),
            soc=percent(self.soc_bp),
            cycle_count=self.cycle_count,
            station_id=self.station_id,
            slot_no=self.slot_no,
        )
        result = {
            "serial": pack.serial,
            "model": pack.model_code,
            "status": pack.status.value,
            "station": pack.station_id,
            "slot": pack.slot_no,
            "soc_bp": pack.soc_bp,
            "soh_bp": pack.soh_bp,
        }
        return Done(result, f"registered, {pack.place()}")


@dataclass(frozen=True, slots=True)
class AddRider(Action):
    kind: ClassVar[str] = "rider"
    result_keys: ClassVar[frozenset[str]] = frozenset(
        {"id", "plan", "vehicle_packs", "right_size_consent"}
    )
    rider: Rider

    @classmethod
    def parse(cls, f: Fields, number: int) -> Action:
        rider_id = f.code("id", "rider")
        plan_id = f.code("plan", "plan")
        vehicle_packs = f.integer("vehicle_packs", default=1)
        consent = f.choice("right_size", {c.value: c for c in Consent}) if f.has("right_size") else None
        rider = f.checked(
            "vehicle_packs",
            lambda: Rider(rider_id, plan_id, RiderStatus.ACTIVE, vehicle_packs, consent or Consent.ASK),
        )
        return cls(rider)

    def describe(self) -> str:
        r = self.rider
        packs = "" if r.vehicle_packs == 1 else f", vehicle takes {r.vehicle_packs} packs"
        consent = "" if r.right_size_consent is Consent.ASK else f", right-size {r.right_size_consent}"
        return f"rider {r.id} on plan {r.plan_id}{packs}{consent}"

    def run(self, ctx: Context) -> Done:
        rider = catalog.add_rider(
            ctx.db, self.rider.id, self.rider.plan_id, vehicle_packs=self.rider.vehicle_packs
        )
        consent = pack_policy.set_rider_consent(ctx.db, rider.id, self.rider.right_size_consent)
        ctx.riders.append(rider.id)
        result = {
            "id": rider.id,
            "plan": rider.plan_id,
            "vehicle_packs": rider.vehicle_packs,
            "right_size_consent": consent.value,
        }
        return Done(result, "added")


@dataclass(frozen=True, slots=True)
class SetPackPolicy(Action):
    """A station's right-size floor and pack-choice weights (``swapd station pack-policy``)."""

    kind: ClassVar[str] = "pack_policy"
    result_keys: ClassVar[frozenset[str]] = frozenset({"station_id", "right_size_floor_bp", "policy"})
    station_id: str
    edit: pack_policy.PackSettingsEdit

    @classmethod
    def parse(cls, f: Fields, number: int) -> Action:
        station_id = f.code("station", "station")
        floor = f.percent_bp("right_size_floor") if f.has("right_size_floor") else None
        preset = f.choice("preset", {k: k for k in pack_policy.PRESETS}) if f.has("preset") else None
        edit = pack_policy.PackSettingsEdit(
            set_floor=f.has("right_size_floor"), floor_bp=floor, preset=preset
        )
        return cls(station_id, edit)

    def describe(self) -> str:
        floor = self.edit.floor_bp
        parts = [] if floor is None else [f"right-size down to {percent(floor)} %"]
        if self.edit.preset is not None:
            parts.append(f"{self.edit.preset} pack choice")
        return f"station {self.station_id}: " + (", ".join(parts) or "no change")

    def run(self, ctx: Context) -> Done:
        settings = pack_policy.edit_station_settings(
            ctx.db, "scenario", self.station_id, self.edit, "scenario step"
        )
        return Done(settings.to_json(), "set")


_CARD_TYPES = {"rfid": TokenType.RFID, "rfid_15693": TokenType.RFID_15693}


@dataclass(frozen=True, slots=True)
class AddToken(Action):
    """An RFID card for a rider (``rider = "R1"``) or a staff card (``operator = true``)."""

    kind: ClassVar[str] = "token"
    result_keys: ClassVar[frozenset[str]] = frozenset({"type", "value", "rider", "operator"})
    token: IdToken
    rider_id: str | None

    @classmethod
    def parse(cls, f: Fields, number: int) -> Action:
        given = [name for name in _CARD_TYPES if f.has(name)]
        if len(given) != 1:
            raise f.error("rfid", "give the card as exactly one of rfid or rfid_15693")
        token = IdToken(_CARD_TYPES[given[0]], f.text(given[0]))
        if len(token.value) > 255:
            raise f.error(given[0], "must be at most 255 characters")
        operator = f.boolean("operator", False)
        rider_id = f.code("rider", "rider") if f.has("rider") else None
        if operator == (rider_id is not None):
            raise f.error("rider", "a card belongs to a rider or is an operator card (operator = true)")
        return cls(token, rider_id)

    def describe(self) -> str:
        owner = "operator staff card" if self.rider_id is None else f"card of rider {self.rider_id}"
        return f"{self.token.type.value} token {self.token.value}: {owner}"

    def run(self, ctx: Context) -> Done:
        catalog.add_token(
            ctx.db,
            self.token.type,
            self.token.value,
            rider_id=self.rider_id,
            operator=self.rider_id is None,
        )
        result = {
            "type": self.token.type.value,
            "value": self.token.value,
            "rider": self.rider_id,
            "operator": self.rider_id is None,
        }
        return Done(result, "registered")

"""The steps a scenario can take, each parsed from its TOML table and run through the services.

A step is validated completely when the file is loaded (ids, amounts, percentages, readings), so a
malformed file fails before anything is written. What only the database can decide (an unknown
rider, an occupied slot) is the services' to refuse when the step runs.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from swapd.domain.decision import RefusalReason
from swapd.domain.packs import PackModel
from swapd.domain.plans import DEFAULT_TIME_HOLD_S, Plan, PlanKind
from swapd.domain.quantities import CURRENCY_EXPONENTS, Unit, bp_to_percent, format_money
from swapd.domain.riders import IdToken, Rider, RiderStatus, TokenType
from swapd.domain.stations import validate_slot_count
from swapd.scenario.fields import Fields, suggestion
from swapd.services import catalog, payments, swaps
from swapd.services.queries import rider_balance
from swapd.services.swaps import AuthorizeResult, BatteryReading, EventResult, PackOutcome
from swapd.store.database import Database, ManualClock

MAX_PACKS_PER_EVENT = swaps.MAX_PACKS_PER_SWAP


@dataclass
class Context:
    """What the steps of one run share."""

    db: Database
    clock: ManualClock
    riders: list[str] = field(default_factory=list)  # in the order the scenario added them
    _units: dict[str, tuple[str, str]] = field(default_factory=dict)

    def units_of(self, rider_id: str) -> tuple[str, str]:
        """The (unit, currency) a rider's plan counts in, for readable summaries."""
        if rider_id not in self._units:
            balance = rider_balance(self.db, rider_id)
            self._units[rider_id] = (balance.unit, balance.currency)
        return self._units[rider_id]


@dataclass(frozen=True, slots=True)
class Done:
    """A step's result: ``result`` is what ``expect`` steps compare, ``summary`` is for people."""

    result: dict[str, Any]
    summary: str


def quantity(amount: int, unit: str) -> str:
    if unit == Unit.DELIVERIES.value:
        return f"{amount:,} deliver{'y' if amount == 1 else 'ies'}"
    return f"{amount:,} {unit}"


def percent(value_bp: int) -> str:
    """Basis points as the percentage a BMS reports (98.0, 95.25): exact, no float."""
    return bp_to_percent(value_bp)


class Action(abc.ABC):
    """One step that does something. ``result_keys`` are what ``expect.result`` may check."""

    kind: ClassVar[str]
    result_keys: ClassVar[frozenset[str]] = frozenset()
    moves_clock: ClassVar[bool] = False

    @classmethod
    @abc.abstractmethod
    def parse(cls, f: Fields, number: int) -> Action: ...

    @abc.abstractmethod
    def describe(self) -> str: ...

    @abc.abstractmethod
    def run(self, ctx: Context) -> Done: ...


# -- the network ---------------------------------------------------------------------------------


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
    result_keys: ClassVar[frozenset[str]] = frozenset({"id", "plan", "vehicle_packs"})
    rider: Rider

    @classmethod
    def parse(cls, f: Fields, number: int) -> Action:
        rider_id = f.code("id", "rider")
        plan_id = f.code("plan", "plan")
        vehicle_packs = f.integer("vehicle_packs", default=1)
        rider = f.checked(
            "vehicle_packs", lambda: Rider(rider_id, plan_id, RiderStatus.ACTIVE, vehicle_packs)
        )
        return cls(rider)

    def describe(self) -> str:
        r = self.rider
        packs = "" if r.vehicle_packs == 1 else f", vehicle takes {r.vehicle_packs} packs"
        return f"rider {r.id} on plan {r.plan_id}{packs}"

    def run(self, ctx: Context) -> Done:
        rider = catalog.add_rider(
            ctx.db, self.rider.id, self.rider.plan_id, vehicle_packs=self.rider.vehicle_packs
        )
        ctx.riders.append(rider.id)
        result = {"id": rider.id, "plan": rider.plan_id, "vehicle_packs": rider.vehicle_packs}
        return Done(result, "added")


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


# -- money ---------------------------------------------------------------------------------------

_PAYMENT_KEYS = frozenset({"units", "unit", "amount_minor", "currency", "repeated"})


def _payment_done(top: payments.TopUp, what: str) -> Done:
    result = {
        "units": top.units,
        "unit": top.unit,
        "amount_minor": top.amount_minor,
        "currency": top.currency,
        "repeated": top.repeated,
    }
    if top.repeated:
        return Done(result, f"{what} seen before: nothing applied again")
    paid = format_money(top.amount_minor, top.currency)
    return Done(result, f"{paid} paid, +{quantity(top.units, top.unit)}")


@dataclass(frozen=True, slots=True)
class TopUp(Action):
    kind: ClassVar[str] = "top_up"
    result_keys: ClassVar[frozenset[str]] = _PAYMENT_KEYS
    rider_id: str
    amount_minor: int
    ref: str

    @classmethod
    def parse(cls, f: Fields, number: int) -> Action:
        rider_id = f.code("rider", "rider")
        amount = f.integer("amount_minor", minimum=1)
        if amount > payments.MAX_AMOUNT_MINOR:
            raise f.error("amount_minor", f"is above the limit of {payments.MAX_AMOUNT_MINOR:,}")
        return cls(rider_id, amount, f.text("ref", f"payment-{number}"))

    def describe(self) -> str:
        return f"{self.rider_id} pays {self.amount_minor:,} (ref {self.ref})"

    def run(self, ctx: Context) -> Done:
        top = payments.top_up(ctx.db, self.rider_id, self.amount_minor, self.ref)
        return _payment_done(top, f"payment {self.ref}")


@dataclass(frozen=True, slots=True)
class Subscribe(Action):
    kind: ClassVar[str] = "subscribe"
    result_keys: ClassVar[frozenset[str]] = _PAYMENT_KEYS
    rider_id: str
    ref: str

    @classmethod
    def parse(cls, f: Fields, number: int) -> Action:
        return cls(f.code("rider", "rider"), f.text("ref", f"subscription-{number}"))

    def describe(self) -> str:
        return f"{self.rider_id} subscribes (ref {self.ref})"

    def run(self, ctx: Context) -> Done:
        top = payments.subscribe(ctx.db, self.rider_id, self.ref)
        return _payment_done(top, f"subscription payment {self.ref}")


@dataclass(frozen=True, slots=True)
class CloseCycle(Action):
    kind: ClassVar[str] = "close_cycle"
    result_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "closed_cycle_no",
            "expired_units",
            "carried_units",
            "next_cycle_end",
            "fee_minor",
            "included_units",
        }
    )
    rider_id: str
    ref: str

    @classmethod
    def parse(cls, f: Fields, number: int) -> Action:
        return cls(f.code("rider", "rider"), f.text("ref", f"cycle-{number}"))

    def describe(self) -> str:
        return f"close the subscription cycle of {self.rider_id} (ref {self.ref})"

    def run(self, ctx: Context) -> Done:
        closed = payments.close_cycle(ctx.db, self.rider_id, self.ref)
        unit, currency = ctx.units_of(self.rider_id)
        result = {
            "closed_cycle_no": closed.closed_cycle_no,
            "expired_units": closed.expired_units,
            "carried_units": closed.carried_units,
            "next_cycle_end": closed.next_cycle_end.isoformat(),
            "fee_minor": closed.fee_minor,
            "included_units": closed.included_units,
        }
        summary = (
            f"cycle {closed.closed_cycle_no} closed: {quantity(closed.expired_units, unit)} expired, "
            f"{quantity(closed.carried_units, unit)} carried; next cycle "
            f"{format_money(closed.fee_minor, currency)} for {quantity(closed.included_units, unit)}"
        )
        return Done(result, summary)


@dataclass(frozen=True, slots=True)
class Refund(Action):
    kind: ClassVar[str] = "refund"
    result_keys: ClassVar[frozenset[str]] = frozenset({"amount_minor", "units", "repeated"})
    rider_id: str
    amount_minor: int
    reason: str
    key: str
    actor: str

    @classmethod
    def parse(cls, f: Fields, number: int) -> Action:
        rider_id = f.code("rider", "rider")
        amount = f.integer("amount_minor", minimum=1)
        if amount > payments.MAX_AMOUNT_MINOR:
            raise f.error("amount_minor", f"is above the limit of {payments.MAX_AMOUNT_MINOR:,}")
        reason = f.text("reason", "scenario refund")
        return cls(
            rider_id, amount, reason, f.text("key", f"refund-{number}"), f.text("actor", "scenario")
        )

    def describe(self) -> str:
        return f"refund {self.amount_minor:,} to {self.rider_id}: {self.reason}"

    def run(self, ctx: Context) -> Done:
        done = payments.refund(
            ctx.db,
            self.rider_id,
            self.amount_minor,
            reason=self.reason,
            actor=self.actor,
            key=self.key,
        )
        unit, currency = ctx.units_of(self.rider_id)
        result = {"amount_minor": done.amount_minor, "units": done.units, "repeated": done.repeated}
        if done.repeated:
            return Done(result, f"refund {self.key} seen before: nothing applied again")
        money = format_money(done.amount_minor, currency)
        return Done(result, f"{money} refunded, -{quantity(done.units, unit)}")


@dataclass(frozen=True, slots=True)
class Adjust(Action):
    kind: ClassVar[str] = "adjust"
    result_keys: ClassVar[frozenset[str]] = frozenset({"units", "unit", "repeated"})
    rider_id: str
    units: int
    reason: str
    key: str
    actor: str

    @classmethod
    def parse(cls, f: Fields, number: int) -> Action:
        rider_id = f.code("rider", "rider")
        units = f.integer("units")
        if units == 0:
            raise f.error("units", "must be a non-zero integer (negative takes allowance away)")
        if abs(units) > payments.MAX_AMOUNT_MINOR:
            raise f.error("units", f"is above the limit of {payments.MAX_AMOUNT_MINOR:,}")
        reason = f.text("reason", "scenario adjustment")
        return cls(
            rider_id, units, reason, f.text("key", f"adjust-{number}"), f.text("actor", "scenario")
        )

    def describe(self) -> str:
        return f"adjust {self.rider_id} by {self.units:+,} units: {self.reason}"

    def run(self, ctx: Context) -> Done:
        done = payments.adjust(
            ctx.db, self.rider_id, self.units, reason=self.reason, actor=self.actor, key=self.key
        )
        result = {"units": done.units, "unit": done.unit, "repeated": done.repeated}
        if done.repeated:
            return Done(result, f"adjustment {self.key} seen before: nothing applied again")
        sign = "+" if done.units > 0 else "-"
        return Done(result, f"{sign}{quantity(abs(done.units), done.unit)}")


# -- the clock -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class At(Action):
    kind: ClassVar[str] = "at"
    result_keys: ClassVar[frozenset[str]] = frozenset({"now"})
    moves_clock: ClassVar[bool] = True
    when: datetime

    @classmethod
    def parse(cls, f: Fields, number: int) -> Action:
        return cls(f.instant("time"))

    def describe(self) -> str:
        return f"clock to {self.when.isoformat()}"

    def run(self, ctx: Context) -> Done:
        ctx.clock.set(self.when)
        return Done({"now": self.when.isoformat()}, f"now {self.when.isoformat()}")


_SPANS = {"days": 86_400, "hours": 3_600, "minutes": 60, "seconds": 1}


@dataclass(frozen=True, slots=True)
class Advance(Action):
    kind: ClassVar[str] = "advance"
    result_keys: ClassVar[frozenset[str]] = frozenset({"now"})
    moves_clock: ClassVar[bool] = True
    seconds: int

    @classmethod
    def parse(cls, f: Fields, number: int) -> Action:
        total = sum(f.integer(name, minimum=0, default=0) * s for name, s in _SPANS.items())
        if total == 0:
            raise f.error("seconds", "advance by at least one of days, hours, minutes, seconds > 0")
        return cls(total)

    def describe(self) -> str:
        return f"clock forward {timedelta(seconds=self.seconds)} ({self.seconds:,} s)"

    def run(self, ctx: Context) -> Done:
        now = ctx.clock.now() + timedelta(seconds=self.seconds)
        ctx.clock.set(now)
        return Done({"now": now.isoformat()}, f"now {now.isoformat()}")


# -- swaps ---------------------------------------------------------------------------------------


def _token_text(token: IdToken | None) -> str:
    if token is None:
        return "no token"
    return f"{token.type.value} {token.value}"


@dataclass(frozen=True, slots=True)
class Authorize(Action):
    kind: ClassVar[str] = "authorize"
    result_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "accepted",
            "reason",
            "text",
            "rider",
            "swap_id",
            "operator",
            "offered",
            "offered_slots",
            "hold_units",
            "unit",
            "available_units",
            "required_units",
        }
    )
    station_id: str
    token: IdToken
    request_id: str | None
    wanted: int | None

    @classmethod
    def parse(cls, f: Fields, number: int) -> Action:
        station_id = f.code("station", "station")
        token = f.token("token")
        request_id = f.request_id("request_id") if f.has("request_id") else None
        wanted = f.optional_integer("wanted", minimum=1)
        if wanted is not None and wanted > MAX_PACKS_PER_EVENT:
            raise f.error("wanted", f"must be 1..{MAX_PACKS_PER_EVENT}, got {wanted}")
        return cls(station_id, token, request_id, wanted)

    def describe(self) -> str:
        request = "" if self.request_id is None else f" (request {self.request_id})"
        wanted = "" if self.wanted is None else f", wants {self.wanted}"
        return f"authorize at {self.station_id} by {_token_text(self.token)}{request}{wanted}"

    def run(self, ctx: Context) -> Done:
        answer = swaps.authorize(
            ctx.db, self.station_id, self.token, request_id=self.request_id, wanted=self.wanted
        )
        return Done(_authorize_result(answer), _authorize_summary(answer))


def _authorize_result(answer: AuthorizeResult) -> dict[str, Any]:
    return {
        "accepted": answer.accepted,
        "reason": answer.reason,
        "text": answer.text,
        "rider": answer.rider_id,
        "swap_id": answer.swap_id,
        "operator": answer.operator,
        "offered": [
            {"slot": o.slot_no, "serial": o.serial, "soc_bp": o.soc_bp, "hold_units": o.hold_units}
            for o in answer.offered
        ],
        "offered_slots": answer.offered_slots,
        "hold_units": sum(o.hold_units for o in answer.offered),
        "unit": answer.unit,
        "available_units": answer.available_units,
        "required_units": answer.required_units,
    }


def _authorize_summary(answer: AuthorizeResult) -> str:
    unit = answer.unit or ""
    who = f" for {answer.rider_id}" if answer.rider_id else ""
    if answer.operator:
        return "accepted: operator card"
    if not answer.accepted:
        reason = RefusalReason(answer.reason) if answer.reason else None
        text = f"refused{who}: {reason} ({answer.text})"
        if reason is RefusalReason.NO_CREDIT:
            text += (
                f"; needs {quantity(answer.required_units, unit)}, "
                f"has {quantity(answer.available_units, unit)}"
            )
        return text
    offers = ", ".join(
        f"slot {o.slot_no} {o.serial} (hold {quantity(o.hold_units, unit)})" for o in answer.offered
    )
    return f"accepted{who}: {offers}; available {quantity(answer.available_units, unit)}"


def _parse_batteries(f: Fields, *, required: bool) -> tuple[BatteryReading, ...]:
    """Either ``batteries = [{ slot, serial, soc, soh }, ...]`` or, for one pack, those four
    fields on the step itself."""
    flat = ("slot", "serial", "soc", "soh")
    if f.has("batteries"):
        for name in flat:
            if f.has(name):
                raise f.error(name, "give the packs in batteries, or one pack on the step, not both")
        readings = tuple(table.battery() for table in f.tables("batteries"))
    elif any(f.has(name) for name in flat) or required:
        one = Fields({name: f.raw(name) for name in flat if f.has(name)}, f.where)
        if not any(f.has(name) for name in flat):
            raise f.error(
                "batteries", "required: the packs the station reports (slot, serial, soc, soh)"
            )
        readings = (one.battery(),)
    else:
        return ()
    if len(readings) > MAX_PACKS_PER_EVENT:
        raise f.error("batteries", f"an event carries at most {MAX_PACKS_PER_EVENT} packs")
    return readings


def _pack_result(p: PackOutcome) -> dict[str, Any]:
    return {
        "serial": p.serial,
        "slot": p.slot_no,
        "outcome": p.outcome,
        "rider": p.rider_id,
        "usage_units": p.usage_units,
        "charged_units": p.charged_units,
        "beyond_units": p.beyond_units,
        "revenue_minor": p.revenue_minor,
        "overage_minor": p.overage_minor,
        "hold_units": p.hold_units,
        "anomaly": p.anomaly,
    }


PACK_RESULT_KEYS = frozenset(
    {
        "serial",
        "slot",
        "outcome",
        "rider",
        "usage_units",
        "charged_units",
        "beyond_units",
        "revenue_minor",
        "overage_minor",
        "hold_units",
        "anomaly",
    }
)
OFFER_RESULT_KEYS = frozenset({"slot", "serial", "soc_bp", "hold_units"})


@dataclass(frozen=True, slots=True)
class BatteryEvent(Action):
    """A BatterySwap event from a station: BatteryIn, BatteryOut or BatteryOutTimeout."""

    result_keys: ClassVar[frozenset[str]] = frozenset(
        {
            "repeated",
            "swap_id",
            "packs",
            "outcomes",
            "rider",
            "usage_units",
            "charged_units",
            "beyond_units",
            "revenue_minor",
            "overage_minor",
            "hold_units",
        }
    )
    batteries_required: ClassVar[bool] = True
    label: ClassVar[str]

    station_id: str
    request_id: str
    batteries: tuple[BatteryReading, ...]
    token: IdToken | None

    @classmethod
    def parse(cls, f: Fields, number: int) -> Action:
        station_id = f.code("station", "station")
        request_id = f.request_id("request_id")
        token = f.token("token") if f.has("token") else None
        batteries = _parse_batteries(f, required=cls.batteries_required)
        return cls(station_id, request_id, batteries, token)

    def describe(self) -> str:
        packs = ", ".join(
            f"{b.serial} slot {b.slot_no} (SoC {percent(b.soc_bp)} %, SoH {percent(b.soh_bp)} %)"
            for b in self.batteries
        )
        token = "" if self.token is None else f" by {_token_text(self.token)}"
        head = f"{self.label} at {self.station_id} (request {self.request_id}){token}"
        return f"{head}: {packs}" if packs else head

    @abc.abstractmethod
    def send(self, db: Database) -> EventResult: ...

    def run(self, ctx: Context) -> Done:
        event = self.send(ctx.db)
        packs = event.packs
        riders = [p.rider_id for p in packs if p.rider_id]
        result = {
            "repeated": event.repeated,
            "swap_id": event.swap_id,
            "packs": [_pack_result(p) for p in packs],
            "outcomes": [p.outcome for p in packs],
            "rider": riders[0] if riders else None,
            "usage_units": sum(p.usage_units for p in packs),
            "charged_units": sum(p.charged_units for p in packs),
            "beyond_units": sum(p.beyond_units for p in packs),
            "revenue_minor": sum(p.revenue_minor for p in packs),
            "overage_minor": sum(p.overage_minor for p in packs),
            "hold_units": sum(p.hold_units for p in packs),
        }
        lines = [_pack_summary(ctx, p) for p in packs] or ["nothing to do"]
        if event.repeated:
            lines.insert(0, "repeat of an earlier message: first answer returned, nothing applied")
        return Done(result, "; ".join(lines))


def _pack_summary(ctx: Context, p: PackOutcome) -> str:
    head = f"{p.serial} slot {p.slot_no}"
    if p.rider_id is None:
        return f"{head}: {p.outcome.replace('_', ' ')}"
    unit, currency = ctx.units_of(p.rider_id)
    if p.outcome == "returned":
        text = (
            f"{head}: returned by {p.rider_id}, usage {quantity(p.usage_units, unit)}, "
            f"revenue {format_money(p.revenue_minor, currency)}"
        )
        if p.beyond_units:
            text += f", beyond the allowance {quantity(p.beyond_units, unit)}"
        if p.overage_minor:
            text += f", overage {format_money(p.overage_minor, currency)}"
        if p.anomaly:
            text += f" (anomaly: {p.anomaly})"
        return text
    if p.outcome == "handed_over":
        return f"{head}: handed over to {p.rider_id}, hold {quantity(p.hold_units, unit)}"
    if p.outcome == "released":
        return f"{head}: offer to {p.rider_id} released, hold {quantity(p.hold_units, unit)} freed"
    return f"{head}: {p.outcome.replace('_', ' ')} ({p.rider_id})"


class BatteryIn(BatteryEvent):
    kind: ClassVar[str] = "battery_in"
    label: ClassVar[str] = "BatteryIn"

    def send(self, db: Database) -> EventResult:
        return swaps.battery_in(db, self.station_id, self.request_id, self.batteries, token=self.token)


class BatteryOut(BatteryEvent):
    kind: ClassVar[str] = "battery_out"
    label: ClassVar[str] = "BatteryOut"

    def send(self, db: Database) -> EventResult:
        return swaps.battery_out(db, self.station_id, self.request_id, self.batteries, token=self.token)


class Timeout(BatteryEvent):
    """The offered packs were not taken (BatteryOutTimeout): their holds are released."""

    kind: ClassVar[str] = "timeout"
    label: ClassVar[str] = "BatteryOutTimeout"
    batteries_required: ClassVar[bool] = False

    def send(self, db: Database) -> EventResult:
        return swaps.battery_out_timeout(
            db, self.station_id, self.request_id, self.batteries, token=self.token
        )


ACTIONS: dict[str, type[Action]] = {
    cls.kind: cls
    for cls in (
        AddPackModel,
        AddPlan,
        AddStation,
        RegisterPack,
        AddRider,
        AddToken,
        TopUp,
        Subscribe,
        CloseCycle,
        Refund,
        Adjust,
        At,
        Advance,
        Authorize,
        BatteryIn,
        BatteryOut,
        Timeout,
    )
}

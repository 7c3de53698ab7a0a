"""Steps a station takes in a swap: Authorize, then BatteryIn, BatteryOut or BatteryOutTimeout."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

from swapd.domain.decision import RefusalReason
from swapd.domain.quantities import format_money
from swapd.domain.riders import IdToken
from swapd.scenario.fields import Fields
from swapd.scenario.steps.base import (
    MAX_PACKS_PER_EVENT,
    Action,
    Context,
    Done,
    percent,
    quantity,
)
from swapd.services import swaps
from swapd.services.swaps import AuthorizeResult, BatteryReading, EventResult, PackOutcome
from swapd.store.database import Database


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
            "asks",
            "right_sized",
        }
    )
    station_id: str
    token: IdToken
    request_id: str | None
    wanted: int | None
    accept_right_sized: bool = False  # the app's yes to a right-sized offer

    @classmethod
    def parse(cls, f: Fields, number: int) -> Action:
        station_id = f.code("station", "station")
        token = f.token("token")
        request_id = f.request_id("request_id") if f.has("request_id") else None
        wanted = f.optional_integer("wanted", minimum=1)
        if wanted is not None and wanted > MAX_PACKS_PER_EVENT:
            raise f.error("wanted", f"must be 1..{MAX_PACKS_PER_EVENT}, got {wanted}")
        accept = f.boolean("accept_right_sized", False)
        return cls(station_id, token, request_id, wanted, accept)

    def describe(self) -> str:
        request = "" if self.request_id is None else f" (request {self.request_id})"
        wanted = "" if self.wanted is None else f", wants {self.wanted}"
        accept = ", accepting a right-sized pack" if self.accept_right_sized else ""
        token = _token_text(self.token)
        return f"authorize at {self.station_id} by {token}{request}{wanted}{accept}"

    def run(self, ctx: Context) -> Done:
        answer = swaps.authorize(
            ctx.db,
            self.station_id,
            self.token,
            request_id=self.request_id,
            wanted=self.wanted,
            consented=self.accept_right_sized,
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
        "asks": answer.asks,
        "right_sized": answer.right_sized,
    }


def _authorize_summary(answer: AuthorizeResult) -> str:
    unit = answer.unit or ""
    who = f" for {answer.rider_id}" if answer.rider_id else ""
    if answer.operator:
        return "accepted: operator card"
    if answer.asks:
        return f"asked{who}: {answer.text}"
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
    sized = " right-sized" if answer.right_sized else ""
    return f"accepted{who}:{sized} {offers}; available {quantity(answer.available_units, unit)}"


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

"""Steps that move money and allowance: top-ups, subscriptions, cycle closes, refunds, adjustments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from swapd.domain.quantities import format_money
from swapd.scenario.fields import Fields
from swapd.scenario.steps.base import Action, Context, Done, quantity
from swapd.services import payments

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

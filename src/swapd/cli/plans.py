"""``swapd plan``: how payments become allowance."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from swapd.cli.common import DatabaseOption, JsonOption, cell, out, print_json, say, units, with_db
from swapd.domain.errors import InvalidInput
from swapd.domain.plans import (
    DEFAULT_OFFLINE_SWAPS,
    DEFAULT_TIME_HOLD_S,
    MAX_OFFLINE_SWAPS,
    Plan,
    PlanKind,
)
from swapd.domain.quantities import Unit, format_money

plan_app = typer.Typer(help="Plans: how payments become allowance.", no_args_is_help=True)


# -- plans --------------------------------------------------------------------------------------

_PREPAID_UNIT = {
    PlanKind.PREPAID_ENERGY: Unit.ENERGY_WH,
    PlanKind.PREPAID_TIME: Unit.TIME_S,
    PlanKind.PREPAID_DELIVERIES: Unit.DELIVERIES,
}


def plan_json(plan: Plan, riders: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "plan": plan.id,
        "kind": plan.kind.value,
        "unit": plan.unit.value,
        "currency": plan.currency,
        "price_minor": plan.price_minor,
        "price": format_money(plan.price_minor, plan.currency),
        "price_units": plan.price_units,
        "granularity_s": plan.granularity_s,
        "time_hold_s": plan.time_hold_s,
        "fee_minor": plan.fee_minor,
        "fee": format_money(plan.fee_minor, plan.currency),
        "included_units": plan.included_units,
        "carry_over": plan.carry_over,
        "prorate_first_cycle": plan.prorate_first_cycle,
        "listed": plan.listed,
        "offline_swaps_max": plan.offline_swaps_max,
    }
    if riders is not None:
        data["riders"] = riders
    return data


def plan_terms(plan: Plan) -> str:
    price = f"{format_money(plan.price_minor, plan.currency)} per {units(plan.price_units, plan.unit)}"
    if not plan.is_subscription:
        return price
    overage = f"overage {price}" if plan.price_minor else "no overage"
    return (
        f"{format_money(plan.fee_minor, plan.currency)} a month for "
        f"{units(plan.included_units, plan.unit)}, {overage}"
    )


@plan_app.command("add")
def plan_add(
    plan_id: Annotated[str, typer.Argument(metavar="ID", help="Plan id.")],
    kind: Annotated[
        str,
        typer.Option("--kind", help="prepaid_energy, prepaid_time, prepaid_deliveries or subscription."),
    ],
    currency: Annotated[str, typer.Option("--currency", help="ISO 4217 code, e.g. KRW.")],
    price_minor: Annotated[
        int,
        typer.Option("--price-minor", help="Minor units buying --price-units (subscription: overage)."),
    ],
    price_units: Annotated[
        int, typer.Option("--price-units", help="Units (Wh, s or deliveries) that price buys.")
    ],
    unit: Annotated[
        str | None, typer.Option("--unit", help="Subscription unit: Wh, s or count.")
    ] = None,
    granularity_s: Annotated[int, typer.Option("--granularity-s", help="Time plans: step.")] = 60,
    time_hold_s: Annotated[
        int, typer.Option("--time-hold-s", help="Time plans: seconds held per pack out.")
    ] = DEFAULT_TIME_HOLD_S,
    fee_minor: Annotated[int, typer.Option("--fee-minor", help="Subscription: monthly fee.")] = 0,
    included_units: Annotated[
        int, typer.Option("--included-units", help="Subscription: units included per month.")
    ] = 0,
    carry_over: Annotated[
        bool, typer.Option("--carry-over/--no-carry-over", help="Subscription: carry unused units.")
    ] = True,
    prorate: Annotated[
        bool, typer.Option("--prorate/--no-prorate", help="Subscription: pro-rate the first cycle.")
    ] = True,
    listed: Annotated[
        bool,
        typer.Option(
            "--listed/--unlisted",
            help="Listed plans are offered to riders signing up (GET /api/v1/plans); an unlisted "
            "one is given by staff only. Set once, at creation.",
        ),
    ] = True,
    offline_swaps: Annotated[
        int,
        typer.Option(
            "--offline-swaps",
            help="Swaps a station may serve a rider from its local list while offline "
            f"(0-{MAX_OFFLINE_SWAPS}); what the allowance lacks then is owed.",
        ),
    ] = DEFAULT_OFFLINE_SWAPS,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a plan."""
    from swapd.services import catalog

    def build() -> Plan:
        try:
            plan_kind = PlanKind(kind)
        except ValueError:
            choices = ", ".join(k.value for k in PlanKind)
            raise InvalidInput(f"unknown plan kind {kind!r}; choose one of {choices}") from None
        if plan_kind is PlanKind.SUBSCRIPTION:
            if unit is None:
                raise InvalidInput("a subscription plan needs --unit Wh, s or count")
            try:
                plan_unit = Unit(unit)
            except ValueError:
                raise InvalidInput(f"unknown unit {unit!r}; choose Wh, s or count") from None
        else:
            plan_unit = _PREPAID_UNIT[plan_kind]
            if unit is not None and unit != plan_unit.value:
                raise InvalidInput(f"a {plan_kind} plan counts in {plan_unit}, not {unit}")
        return Plan(
            id=plan_id,
            kind=plan_kind,
            unit=plan_unit,
            currency=currency,
            price_minor=price_minor,
            price_units=price_units,
            granularity_s=granularity_s,
            time_hold_s=time_hold_s,
            fee_minor=fee_minor,
            included_units=included_units,
            carry_over=carry_over,
            prorate_first_cycle=prorate,
            listed=listed,
            offline_swaps_max=offline_swaps,
        )

    plan = with_db(database, lambda db: catalog.add_plan(db, build()))
    if as_json:
        print_json(plan_json(plan))
    else:
        unlisted = "" if plan.listed else ", unlisted"
        say(f"plan {plan.id} added ({plan.kind}{unlisted}): {plan_terms(plan)}")


@plan_app.command("list")
def plan_list(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """List the plans."""
    from swapd.readmodels import plans

    lines = with_db(database, plans.plans)
    if as_json:
        print_json([plan_json(line.plan, line.riders) for line in lines])
        return
    table = Table("plan", "kind", "terms", "riders", "listed")
    for line in lines:
        plan = line.plan
        table.add_row(
            cell(plan.id),
            plan.kind.value,
            cell(plan_terms(plan)),
            str(line.riders),
            "yes" if plan.listed else "no",
        )
    out.print(table)

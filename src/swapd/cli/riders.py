"""``swapd rider`` and ``swapd card``: riders' accounts, status and balances, and RFID cards."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from swapd.cli.common import (
    DatabaseOption,
    JsonOption,
    cell,
    out,
    print_json,
    say,
    units,
    when,
    with_db,
)
from swapd.cli.plans import plan_terms
from swapd.domain.errors import InvalidInput
from swapd.domain.plans import Plan
from swapd.domain.quantities import Unit, format_money
from swapd.domain.riders import RiderStatus, TokenType

if TYPE_CHECKING:
    from swapd.readmodels import money, riders
    from swapd.store.database import Database

rider_app = typer.Typer(help="Riders: accounts, status, balances.", no_args_is_help=True)
card_app = typer.Typer(help="RFID cards of riders and staff.", no_args_is_help=True)


# -- riders -------------------------------------------------------------------------------------

RiderArgument = Annotated[str, typer.Argument(metavar="RIDER", help="Rider id.")]


def _rider_result(rider_id: str, plan_id: str, status: str, vehicle_packs: int) -> dict[str, Any]:
    return {"rider": rider_id, "plan": plan_id, "status": status, "vehicle_packs": vehicle_packs}


@rider_app.command("add")
def rider_add(
    rider_id: RiderArgument,
    plan: Annotated[str, typer.Option("--plan", help="Plan id.")],
    vehicle_packs: Annotated[
        int, typer.Option("--vehicle-packs", help="Packs the vehicle takes (the most held).")
    ] = 1,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a rider on a plan."""
    from swapd.services import catalog

    rider = with_db(
        database, lambda db: catalog.add_rider(db, rider_id, plan, vehicle_packs=vehicle_packs)
    )
    if as_json:
        print_json(_rider_result(rider.id, rider.plan_id, rider.status.value, rider.vehicle_packs))
    else:
        say(f"rider {rider.id} added on plan {rider.plan_id} ({rider.vehicle_packs} pack vehicle)")


def _set_status(rider_id: str, status: RiderStatus, database: str | None, as_json: bool) -> None:
    from swapd.services import catalog

    rider = with_db(database, lambda db: catalog.set_rider_status(db, rider_id, status))
    if as_json:
        print_json(_rider_result(rider.id, rider.plan_id, rider.status.value, rider.vehicle_packs))
    else:
        say(f"rider {rider.id} is {rider.status.value}")


@rider_app.command("block")
def rider_block(
    rider_id: RiderArgument, database: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Block a rider: every swap is refused until unblocked."""
    _set_status(rider_id, RiderStatus.BLOCKED, database, as_json)


@rider_app.command("unblock")
def rider_unblock(
    rider_id: RiderArgument, database: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Unblock a rider."""
    _set_status(rider_id, RiderStatus.ACTIVE, database, as_json)


def rider_line_json(line: riders.RiderLine) -> dict[str, Any]:
    """The rider line the API gives (``riders.rider_line_view``), then the rider's allowance."""
    from swapd.readmodels import riders

    return riders.rider_line_view(line.rider) | {
        "unit": line.unit,
        "available_units": line.available_units,
        "held_units": line.held_units,
        "posted_units": line.posted_units,
        "packs_held": line.packs_held,
    }


@rider_app.command("list")
def rider_list(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """List riders with their allowance."""
    from swapd.readmodels import riders

    lines = with_db(database, riders.rider_lines)
    if as_json:
        print_json([rider_line_json(r) for r in lines])
        return
    table = Table("rider", "plan", "status", "available", "held", "packs")
    for r in lines:
        table.add_row(
            cell(r.rider.id),
            cell(r.rider.plan_id),
            r.rider.status,
            units(r.available_units, r.unit),
            units(r.held_units, r.unit),
            f"{r.packs_held}/{r.rider.vehicle_packs}",
        )
    out.print(table)


def balance_json(view: money.BalanceView) -> dict[str, Any]:
    """The balance view the API gives (``money.balance_fields``), then its money for people."""
    from swapd.readmodels import money

    b, currency = view.balance, view.balance.currency
    return money.balance_fields(view) | {
        "available_value": format_money(b.available_value_minor, currency),
        "held_value": format_money(view.held_value_minor, currency),
        "prepaid": format_money(b.prepaid_minor, currency),
        "receivable": format_money(b.receivable_minor, currency),
    }


def say_balance(view: money.BalanceView) -> None:
    b, data = view.balance, balance_json(view)
    say(f"  available  {units(b.available_units, b.unit)}  (worth {data['available_value']})")
    say(f"  held       {units(b.held_units, b.unit)}  (worth {data['held_value']}) by packs out")
    say(f"  prepaid    {data['prepaid']}")
    if b.overdrawn_units or b.receivable_minor:
        say(f"  overdrawn  {units(b.overdrawn_units, b.unit)}; owed {data['receivable']}")


@rider_app.command("show")
def rider_show(
    rider_id: RiderArgument,
    swaps: Annotated[int, typer.Option("--swaps", help="How many recent swaps.")] = 10,
    transfers: Annotated[int, typer.Option("--transfers", help="How many recent transfers.")] = 10,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """A rider's plan, status, allowance (and its money value), packs held, swaps and transfers."""
    from swapd.readmodels import money, plans
    from swapd.readmodels.swaps import SwapRow, recent_swaps, swap_view

    def action(
        db: Database,
    ) -> tuple[money.BalanceView, Plan, list[SwapRow], list[money.TransferLine]]:
        if swaps < 0 or transfers < 0:
            raise InvalidInput("--swaps and --transfers must not be negative")
        view = money.balance_view(db, rider_id)
        return (
            view,
            plans.plan(db, view.balance.plan_id),
            recent_swaps(db, rider_id, limit=swaps),
            money.recent_transfers(db, rider_id, limit=transfers),
        )

    view, plan, swap_rows, transfer_rows = with_db(database, action)
    balance, sub = view.balance, view.subscription
    transfers_json = [
        {
            "id": x.id,
            "at": when(x.created_at),
            "code": x.code.value,
            "kind": x.kind,
            "ledger": x.ledger,
            "amount": x.amount,
            "debit": x.debit,
            "credit": x.credit,
            "actor": x.actor,
            "memo": x.memo,
            "key": x.key,
        }
        for x in transfer_rows
    ]
    if as_json:
        print_json(
            balance_json(view)
            | {
                "kind": plan.kind.value,
                "terms": plan_terms(plan),
                "swaps": [swap_view(s) for s in swap_rows],
                "transfers": transfers_json,
            }
        )
        return
    say(f"rider {balance.rider_id}: {balance.status}, plan {plan.id} ({plan_terms(plan)})")
    say_balance(view)
    say(f"  packs      {', '.join(balance.packs_held) or 'none'}")
    if sub is not None:
        say(f"  cycle      {sub.cycle_no}, until {when(sub.cycle_end)}")
    if swap_rows:
        table = Table("swap", "at", "station", "state", "reason", title="recent swaps")
        for s in swap_rows:
            at = cell(when(s.created_at))
            table.add_row(str(s.id), at, cell(s.station_id), s.state, cell(s.reason))
        out.print(table)
    if transfer_rows:
        table = Table("id", "at", "code", "amount", "from", "to", "memo", title="recent transfers")
        for x in transfer_rows:
            table.add_row(
                str(x.id),
                cell(when(x.created_at)),
                f"{x.code.value} ({x.kind})",
                cell(_amount(x.amount, x.ledger)),
                cell(x.debit),
                cell(x.credit),
                cell(x.memo),
            )
        out.print(table)


def _amount(amount: int, ledger: str) -> str:
    if ledger in {u.value for u in Unit}:
        return units(amount, ledger)
    return format_money(amount, ledger)


# -- cards --------------------------------------------------------------------------------------

CARD_TYPES = (TokenType.RFID, TokenType.RFID_15693)


@card_app.command("add")
def card_add(
    token: Annotated[str, typer.Argument(help="The card's id as the station reads it.")],
    rider: Annotated[str | None, typer.Option("--rider", help="The rider the card belongs to.")] = None,
    operator: Annotated[
        bool, typer.Option("--operator", help="A staff card: restocks and withdraws, no billing.")
    ] = False,
    token_type: Annotated[
        str, typer.Option("--type", help="ISO14443 or ISO15693.")
    ] = TokenType.RFID.value,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register an RFID card for a rider (--rider) or as a staff card (--operator)."""
    from swapd.services import catalog

    def action(db: Database) -> TokenType:
        kind = next((t for t in CARD_TYPES if t.value == token_type), None)
        if kind is None:
            raise InvalidInput(f"unknown card type {token_type!r}; choose ISO14443 or ISO15693")
        if (rider is None) == (not operator):
            raise InvalidInput("give either --rider RIDER or --operator")
        catalog.add_token(db, kind, token, rider_id=rider, operator=operator)
        return kind

    kind = with_db(database, action)
    if as_json:
        print_json({"token": token, "type": kind.value, "rider": rider, "operator": operator})
    else:
        owner = "a staff card" if operator else f"rider {rider}'s card"
        say(f"card {kind.value} {token} registered as {owner}")

"""``swapd topup``, ``subscribe``, ``refund``, ``adjust`` and ``settle``: money and allowance by
hand.

Registered on the top-level app (see swapd.cli), each with ``NUMBERS`` so that a negative amount
reaches the domain checks instead of being taken for an unknown option."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated

import typer

from swapd.cli.common import DatabaseOption, JsonOption, print_json, say, unit_name, units, with_db
from swapd.cli.riders import RiderArgument, balance_json, say_balance
from swapd.domain.quantities import format_money

if TYPE_CHECKING:
    from swapd.services import payments
    from swapd.store.database import Database

# Negative numbers must reach the domain checks (and adjustments may be negative), not be taken
# for unknown options by the argument parser.
NUMBERS = {"ignore_unknown_options": True}


def staff_reference() -> str:
    """A payment taken by staff outside any payment provider (cash at the counter, a bank
    transfer seen by hand): named as such, never as a provider's payment."""
    return f"staff-{uuid.uuid4().hex}"


RefOption = Annotated[
    str | None,
    typer.Option("--ref", help="Payment reference (default: a new staff-... reference)."),
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept on the transfers).")]
ActorOption = Annotated[str, typer.Option("--actor", help="Who decided it.")]
KeyOption = Annotated[str, typer.Option("--key", help="Idempotency key: a repeat changes nothing.")]


def topup(
    rider_id: RiderArgument,
    amount_minor: Annotated[int, typer.Argument(metavar="AMOUNT_MINOR", help="Minor units paid.")],
    ref: RefOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Staff top-up: money taken outside swapd (cash, bank transfer) becomes allowance on the
    rider's plan; no payment provider is involved."""
    from swapd.readmodels import money
    from swapd.services import payments

    reference = ref or staff_reference()

    def action(db: Database) -> tuple[payments.TopUp, money.BalanceView]:
        result = payments.top_up(db, rider_id, amount_minor, reference, actor="cli")
        return result, money.balance_view(db, rider_id)

    result, view = with_db(database, action)
    if as_json:
        print_json(
            {
                "rider": rider_id,
                "payment_ref": reference,
                "amount_minor": result.amount_minor,
                "amount": format_money(result.amount_minor, result.currency),
                "units": result.units,
                "unit": result.unit,
                "repeated": result.repeated,
                "balance": balance_json(view),
            }
        )
        return
    again = " (this reference was applied before: nothing changed)" if result.repeated else ""
    say(
        f"top-up {reference}: {format_money(result.amount_minor, result.currency)} credited "
        f"{units(result.units, result.unit)} to rider {rider_id}{again}"
    )
    say_balance(view)


def subscribe(
    rider_id: RiderArgument,
    ref: RefOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start the rider's subscription: the (pro-rated) first cycle's fee buys its allowance."""
    from swapd.readmodels import money
    from swapd.services import payments

    reference = ref or staff_reference()

    def action(db: Database) -> tuple[payments.TopUp, money.BalanceView]:
        result = payments.subscribe(db, rider_id, reference, actor="cli")
        return result, money.balance_view(db, rider_id)

    result, view = with_db(database, action)
    if as_json:
        print_json(
            {
                "rider": rider_id,
                "payment_ref": reference,
                "fee_minor": result.amount_minor,
                "fee": format_money(result.amount_minor, result.currency),
                "units": result.units,
                "unit": result.unit,
                "repeated": result.repeated,
                "balance": balance_json(view),
            }
        )
        return
    say(
        f"rider {rider_id} subscribed: {format_money(result.amount_minor, result.currency)} "
        f"for {units(result.units, result.unit)} this cycle"
    )
    say_balance(view)


def refund(
    rider_id: RiderArgument,
    amount_minor: Annotated[int, typer.Argument(metavar="AMOUNT", help="Minor units to pay back.")],
    reason: ReasonOption,
    actor: ActorOption,
    key: KeyOption,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pay prepaid money back; the allowance it bought leaves with it."""
    from swapd.readmodels import money
    from swapd.services import payments

    def action(db: Database) -> tuple[payments.Refund, money.BalanceView]:
        result = payments.refund(db, rider_id, amount_minor, reason=reason, actor=actor, key=key)
        return result, money.balance_view(db, rider_id)

    result, view = with_db(database, action)
    if as_json:
        print_json(
            {
                "rider": rider_id,
                "key": key,
                "amount_minor": result.amount_minor,
                "amount": format_money(result.amount_minor, view.balance.currency),
                "units": result.units,
                "unit": view.balance.unit,
                "repeated": result.repeated,
                "balance": balance_json(view),
            }
        )
        return
    say(
        f"refunded {format_money(result.amount_minor, view.balance.currency)} to rider {rider_id}; "
        f"{units(result.units, view.balance.unit)} of allowance left with it"
        + (" (repeat: nothing changed)" if result.repeated else "")
    )
    say_balance(view)


def adjust(
    rider_id: RiderArgument,
    units_delta: Annotated[
        int, typer.Argument(metavar="UNITS", help="Units to add (negative: to take away).")
    ],
    reason: ReasonOption,
    actor: ActorOption,
    key: KeyOption,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Correct a rider's allowance by hand, with who and why."""
    from swapd.readmodels import money
    from swapd.services import payments

    def action(db: Database) -> tuple[payments.Adjustment, money.BalanceView]:
        result = payments.adjust(db, rider_id, units_delta, reason=reason, actor=actor, key=key)
        return result, money.balance_view(db, rider_id)

    result, view = with_db(database, action)
    if as_json:
        print_json(
            {
                "rider": rider_id,
                "key": key,
                "units": result.units,
                "unit": result.unit,
                "repeated": result.repeated,
                "balance": balance_json(view),
            }
        )
        return
    say(
        f"adjusted rider {rider_id} by {result.units:+,} {unit_name(result.unit, result.units)}"
        + (" (repeat: nothing changed)" if result.repeated else "")
    )
    say_balance(view)


def settle(
    rider_id: RiderArgument,
    amount_minor: Annotated[int, typer.Argument(metavar="AMOUNT_MINOR", help="Minor units received.")],
    ref: Annotated[
        str,
        typer.Option(
            "--ref",
            help="The payment's reference: the same reference and amount again change nothing.",
        ),
    ],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Record money a rider paid against what they owe (subscription overage); never more than
    is owed."""
    from swapd.readmodels import money
    from swapd.services import payments

    def action(db: Database) -> tuple[payments.ReceivablePayment, money.BalanceView]:
        result = payments.pay_receivable(db, rider_id, amount_minor, ref, actor="cli")
        return result, money.balance_view(db, rider_id)

    result, view = with_db(database, action)
    if as_json:
        print_json(
            {
                "rider": rider_id,
                "payment_ref": result.payment_ref,
                "amount_minor": result.amount_minor,
                "amount": format_money(result.amount_minor, result.currency),
                "owed_minor": result.owed_minor,
                "owed": format_money(result.owed_minor, result.currency),
                "repeated": result.repeated,
                "balance": balance_json(view),
            }
        )
        return
    again = " (this reference was applied before: nothing changed)" if result.repeated else ""
    say(
        f"payment {result.payment_ref}: {format_money(result.amount_minor, result.currency)} "
        f"received from rider {rider_id}; still owed "
        f"{format_money(result.owed_minor, result.currency)}{again}"
    )
    say_balance(view)

"""``swapd statements``: a rider's monthly statement, and every rider's month exported as CSV.

Months are calendar months in UTC, written YYYY-MM. Errors are one line on stderr with exit
code 2, never a traceback; a bad month is refused before any database is opened.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from swapd.cli.common import (
    DatabaseOption,
    JsonOption,
    cell,
    clear_errors,
    err,
    out,
    print_json,
    say,
    units,
    with_db,
)
from swapd.domain.quantities import format_money

if TYPE_CHECKING:
    from swapd.services.statements import ExportSummary, Month, Statement
    from swapd.store.database import Database

statements_app = typer.Typer(
    help="Monthly statements: one rider's, or every rider's as CSV.", no_args_is_help=True
)

MonthOption = Annotated[str, typer.Option("--month", help="Calendar month in UTC, YYYY-MM.")]


def _month(text: str) -> Month:
    from swapd.services.statements import Month

    with clear_errors():
        return Month.parse(text)
    raise AssertionError("unreachable")


@statements_app.command("show")
def show(
    rider_id: Annotated[str, typer.Argument(help="The rider's id.")],
    month: MonthOption,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """A rider's month: opening balance, payments, usage and charges, refunds, closing balance."""
    from swapd.services import statements

    parsed = _month(month)
    found = with_db(database, lambda db: statements.statement(db, rider_id, parsed))
    if as_json:
        print_json(asdict(found))
        return
    _render(found)


def _render(s: Statement) -> None:
    def money(amount_minor: int) -> str:
        return format_money(amount_minor, s.currency)

    def amount(value: int) -> str:
        return units(value, s.unit)

    say(f"statement {s.month} of rider {s.rider_id}: plan {s.plan_id} ({s.plan_kind}, {s.unit})")
    table = Table("", "allowance", "money", title=cell(f"{s.rider_id} {s.month}"))
    table.add_row(
        "opening balance",
        amount(s.opening_allowance_units),
        f"{money(s.opening_prepaid_minor)} prepaid, worth {money(s.opening_value_minor)}",
    )
    table.add_row(f"top-ups ({s.topups_count})", f"+{amount(s.topup_units)}", f"+{money(s.topup_minor)}")
    if s.subscription_payments_count or s.subscription_units:
        table.add_row(
            f"subscription fees ({s.subscription_payments_count})",
            f"+{amount(s.subscription_units)}",
            f"+{money(s.subscription_fee_minor)}",
        )
    table.add_row(
        f"usage ({s.packs_returned_count} returns)",
        f"-{amount(s.charged_units)}",
        f"-{money(s.usage_revenue_minor)} earned",
    )
    if s.overage_units or s.overage_minor:
        table.add_row("overage (billed)", amount(s.overage_units), f"{money(s.overage_minor)} owed")
    if s.overdrawn_units or s.settled_units:
        table.add_row(
            "overdrawn / settled",
            f"{amount(s.overdrawn_units)} / -{amount(s.settled_units)}",
            "",
        )
    if s.refunds_count or s.refund_units:
        table.add_row(
            f"refunds ({s.refunds_count})", f"-{amount(s.refund_units)}", f"-{money(s.refund_minor)}"
        )
    if s.adjustment_units or s.adjustment_minor:
        table.add_row(
            "adjustments", f"{s.adjustment_units:+,} {s.unit}", f"-{money(s.adjustment_minor)}"
        )
    if s.expired_units or s.expired_minor:
        table.add_row("expired", f"-{amount(s.expired_units)}", f"-{money(s.expired_minor)}")
    table.add_row(
        "closing balance",
        amount(s.closing_allowance_units),
        f"{money(s.closing_prepaid_minor)} prepaid, worth {money(s.closing_value_minor)}",
    )
    out.print(table)
    say(
        f"  {s.packs_returned_count:,} packs returned, {amount(s.used_units)} metered, "
        f"charged {money(s.usage_charge_minor)}; {s.packs_taken_count:,} packs taken"
    )
    if s.closing_receivable_minor or s.opening_receivable_minor:
        say(
            f"  owed {money(s.opening_receivable_minor)} -> {money(s.closing_receivable_minor)} "
            f"(paid {money(s.receivable_paid_minor)})"
        )
    if s.closing_overdrawn_units or s.opening_overdrawn_units:
        say(f"  overdrawn {amount(s.opening_overdrawn_units)} -> {amount(s.closing_overdrawn_units)}")


@statements_app.command("export")
def export(
    month: MonthOption,
    out_path: Annotated[Path, typer.Option("--out", help="CSV file to write (replaced whole).")],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every rider's statement for the month as CSV, one row per rider (streamed, any size)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from swapd.services import statements

    parsed = _month(month)

    def action(db: Database) -> ExportSummary:
        if not err.is_terminal:
            return statements.export_csv(db, parsed, out_path)
        total = statements.riders_in(db, parsed)
        with Progress(
            TextColumn(f"statements {parsed}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task("export", total=total)
            return statements.export_csv(
                db, parsed, out_path, progress=lambda rows: progress.update(task, completed=rows)
            )

    summary = with_db(database, action)
    if as_json:
        print_json(
            {
                "month": summary.month,
                "file": str(summary.path),
                "riders": summary.riders,
                "totals": summary.totals,
            }
        )
        return
    say(f"wrote {summary.riders:,} statements for {summary.month} to {summary.path}")

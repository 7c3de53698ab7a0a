"""``swapd statements``: a rider's monthly statement, and every rider's month exported as CSV
or as one PDF per rider.

Both read the read replica when one is given (``--read-database``): a statement is a report of a
month's transfers, and the replica's snapshot, seconds behind the primary, is the same report
taken a few seconds earlier. The export is the long read that should not load the primary.

Months are calendar months in UTC, written YYYY-MM. Errors are one line on stderr with exit
code 2, never a traceback; a bad month is refused before any database is opened.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from swapd.cli.common import (
    DatabaseOption,
    JsonOption,
    ReadDatabaseOption,
    cell,
    clear_errors,
    err,
    fail,
    out,
    print_json,
    say,
    units,
    with_read_db,
)
from swapd.domain.quantities import format_money

if TYPE_CHECKING:
    from swapd.services.statements import ExportSummary, Month, Statement
    from swapd.store.database import Database

statements_app = typer.Typer(
    help="Monthly statements: one rider's, or every rider's as CSV or PDF.", no_args_is_help=True
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
    read_database: ReadDatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """A rider's month: opening balance, payments, usage and charges, refunds, closing balance."""
    from swapd.services import statements

    parsed = _month(month)
    found = with_read_db(database, read_database, lambda db: statements.statement(db, rider_id, parsed))
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
    out_path: Annotated[
        Path,
        typer.Option(
            "--out",
            help="CSV: the file to write (replaced whole), or a directory for statements-MONTH.csv;"
            " PDF: the directory for one RIDER-MONTH.pdf per rider.",
        ),
    ],
    file_format: Annotated[
        str, typer.Option("--format", help="csv (one row per rider) or pdf (one file per rider).")
    ] = "csv",
    language: Annotated[str, typer.Option(help="PDF: en or ko.")] = "en",
    database: DatabaseOption = None,
    read_database: ReadDatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every rider's statement for the month: as CSV, one row per rider, or as one PDF per rider
    (streamed from one snapshot, any size; a progress bar on a terminal)."""
    from swapd.i18n import LANGUAGES
    from swapd.services import statements

    parsed = _month(month)
    if file_format not in ("csv", "pdf"):
        fail(f"--format must be csv or pdf, got {file_format!r}")
    if language not in LANGUAGES:
        fail(f"--language must be one of {', '.join(LANGUAGES)}, got {language!r}")
    if file_format == "pdf":
        if out_path.exists() and not out_path.is_dir():
            fail(f"--out {out_path} is a file; PDF statements go into a directory")
        _export_pdfs(parsed, out_path, language, database, read_database, as_json)
        return
    if out_path.is_dir():
        out_path = out_path / f"statements-{parsed}.csv"

    def action(db: Database) -> ExportSummary:
        with _progress_bar(db, parsed) as progress:
            return statements.export_csv(db, parsed, out_path, progress=progress)

    summary = with_read_db(database, read_database, action)
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


def _export_pdfs(
    month: Month,
    directory: Path,
    language: str,
    database: str | None,
    read_database: str | None,
    as_json: bool,
) -> None:
    from swapd.documents.statement import export_pdfs

    def action(db: Database) -> int:
        with _progress_bar(db, month) as progress:
            return export_pdfs(db, month, directory, language, progress=progress)

    written = with_read_db(database, read_database, action)
    if as_json:
        print_json({"month": str(month), "directory": str(directory), "riders": written})
        return
    say(f"wrote {written:,} PDF statements for {month} into {directory}")


@contextlib.contextmanager
def _progress_bar(db: Database, month: Month) -> Iterator[Callable[[int], None] | None]:
    """A Rich progress bar on stderr when it is a terminal (what ``progress`` is called with is
    the number of statements written so far), else nothing."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from swapd.services import statements

    if not err.is_terminal:
        yield None
        return
    total = statements.riders_in(db, month)
    with Progress(
        TextColumn(f"statements {month}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("export", total=total)
        yield lambda rows: bar.update(task, completed=rows)

"""Operations: ``swapd alerts``, ``swapd swap request``, ``swapd ledger check`` and
``swapd scenario run``."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from swapd.cli.common import (
    DatabaseOption,
    JsonOption,
    cell,
    err,
    out,
    print_json,
    refuse_missing_database,
    run,
    say,
    when,
    with_db,
)
from swapd.domain.errors import InvalidInput

if TYPE_CHECKING:
    from swapd.services import app_swaps
    from swapd.store.database import Database

swap_app = typer.Typer(help="Swaps started by the operator (S02).", no_args_is_help=True)
ledger_app = typer.Typer(help="The ledger: reconciliation.", no_args_is_help=True)
scenario_app = typer.Typer(help="Scripted sequences run through the services.", no_args_is_help=True)


def alerts(
    limit: Annotated[int, typer.Option("--limit", help="How many, newest first.")] = 50,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Alerts: foreign packs, packs held by someone else, metering anomalies..."""
    from swapd.readmodels import alerts

    def action(db: Database) -> list[dict[str, object]]:
        if limit < 1:
            raise InvalidInput(f"--limit must be 1 or more, got {limit}")
        return alerts.recent_alerts(db, limit=limit)

    rows = with_db(database, action)
    items = [
        {
            "id": r["id"],
            "at": when(r["created_at"]) if isinstance(r["created_at"], datetime) else r["created_at"],
            "kind": r["kind"],
            "station": r["station_id"],
            "pack": r["pack_serial"],
            "rider": r["rider_id"],
            "detail": r["detail"],
        }
        for r in rows
    ]
    if as_json:
        print_json(items)
        return
    if not items:
        say("no alerts")
        return
    columns = ("id", "at", "kind", "station", "pack", "rider", "detail")
    table = Table(*columns)
    for item in items:
        table.add_row(*(cell(item[k]) for k in columns))
    out.print(table)


@swap_app.command("request")
def swap_request(
    station: Annotated[str, typer.Option("--station", help="The station the rider stands at.")],
    rider: Annotated[str, typer.Option("--rider", help="The rider.")],
    timeout_s: Annotated[
        float, typer.Option("--timeout-s", help="Seconds to wait for the station's answer.")
    ] = 30,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a swap for a rider (S02). Needs `swapd serve` on the same database, with the station
    connected to it. Exit 1 when the swap is refused."""
    from swapd.services import app_swaps

    def action(db: Database) -> app_swaps.AppSwap:
        if not 0 < timeout_s <= 600:
            raise InvalidInput(f"--timeout-s must be more than 0 and at most 600, got {timeout_s}")
        return app_swaps.request_swap(db, station, rider, timeout_s=timeout_s)

    result = with_db(database, action)
    if as_json:
        print_json(
            {
                "accepted": result.accepted,
                "reason": result.reason,
                "text": result.text,
                "station": station,
                "rider": rider,
                "request_id": result.request_id,
                "swap_id": result.swap_id,
                "slots": list(result.offered_slots),
            }
        )
    elif result.accepted:
        slots = ", ".join(str(s) for s in result.offered_slots)
        say(f"accepted: station {station} releases slot {slots} to {rider} (swap {result.swap_id})")
    else:
        say(f"refused: {result.reason}: {result.text}")
        if result.request_id is not None:
            err.print(
                f"hint: is `swapd serve` running on this database, with station {station} connected?",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    if not result.accepted:
        raise typer.Exit(1)


@ledger_app.command("check")
def ledger_check(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Recompute every balance from the transfers; exit 1 on any mismatch."""
    from swapd.store.engine import make_engine
    from swapd.store.ledger_check import check_ledger

    refuse_missing_database(database)

    def action() -> Any:
        engine = make_engine(database)
        try:
            with engine.connect() as connection:
                return check_ledger(connection)
        finally:
            engine.dispose()

    report = run(action)
    if as_json:
        print_json(
            {
                "ok": report.ok,
                "accounts": report.accounts,
                "transfers": report.transfers,
                "ledgers": {name: asdict(totals) for name, totals in report.ledgers.items()},
                "problems": report.problems,
            }
        )
    else:
        table = Table("ledger", "debits posted", "credits posted", "pending", "sums to zero")
        for name, totals in report.ledgers.items():
            table.add_row(
                name,
                f"{totals.debits_posted:,}",
                f"{totals.credits_posted:,}",
                f"{totals.debits_pending:,}",
                "yes" if totals.balanced else "[red]NO[/]",
            )
        out.print(table)
        out.print(f"{report.accounts:,} accounts and {report.transfers:,} transfers checked")
        for problem in report.problems:
            err.print(f"[red]mismatch:[/] {escape(problem)}", highlight=False, soft_wrap=True)
        if report.ok:
            out.print("[green]ledger is consistent[/]")
    if not report.ok:
        raise typer.Exit(1)


@scenario_app.command("run")
def scenario_run(
    file: Annotated[Path, typer.Argument(help="A scenario file (TOML).")],
    database: DatabaseOption = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Run in a new temporary SQLite database instead.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Run a scripted sequence through the services and print balances and transfers."""
    from swapd import scenario
    from swapd.store.database import Database

    def action() -> Any:
        loaded = scenario.load(file)
        with tempfile.TemporaryDirectory(prefix="swapd-scenario-") as scratch:
            url = f"sqlite:///{Path(scratch) / 'scenario.db'}" if fresh else database
            db = Database.open(url, scenario.clock_for(loaded))
            try:
                return scenario.run(db, loaded)
            finally:
                db.dispose()

    outcome = run(action)
    if as_json:
        print_json(outcome.to_json())
    else:
        scenario.render(out, outcome)
    if not outcome.ok:
        raise typer.Exit(1)

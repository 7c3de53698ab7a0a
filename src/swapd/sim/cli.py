"""``swapd sim``: options, the live view while it runs, and the summary at the end.

Heavy imports (the server, OCPP, WebSockets) wait until the command runs, so that every other
``swapd`` command starts as fast as before.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from swapd.sim.config import SimConfig
    from swapd.sim.runner import Summary
    from swapd.sim.stats import Snapshot

out = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    # soft_wrap: one line however long (an absolute path); escape: a path may hold [brackets].
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def sim_time(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86_400)
    clock = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}"
    return f"{days}d {clock}" if days else clock


def render_progress(snapshot: Snapshot, title: str) -> Table:
    from rich.progress_bar import ProgressBar

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("swapd sim", title)
    grid.add_row(
        "simulated",
        f"{sim_time(snapshot.sim_s)} of {sim_time(snapshot.end_s)}  ({snapshot.real_s:,.0f} s real)",
    )
    grid.add_row("", ProgressBar(total=max(snapshot.end_s, 1.0), completed=snapshot.sim_s, width=48))
    grid.add_row("swaps", f"{snapshot.swaps:,} completed, {snapshot.walked_away:,} walked away")
    reasons = ", ".join(f"{k} {v:,}" for k, v in list(snapshot.refusals_by_reason.items())[:4])
    grid.add_row("refusals", f"{snapshot.refusals:,}" + (f"  ({reasons})" if reasons else ""))
    grid.add_row("messages", f"{snapshot.messages:,} sent, {snapshot.messages_per_s:,.0f}/s")
    grid.add_row("decisions", f"p50 {snapshot.decision_p50_ms:.1f} ms (recent)")
    if snapshot.errors:
        grid.add_row("errors", f"[red]{snapshot.errors:,}[/]")
    return grid


def _counts(title: str, counts: dict[str, int], total_label: str | None = None) -> Table:
    table = Table(title, "count", title_justify="left")
    for key, value in counts.items():
        table.add_row(key, f"{value:,}")
    if total_label is not None:
        table.add_row(f"[bold]{total_label}[/]", f"[bold]{sum(counts.values()):,}[/]")
    return table


def render_summary(console: Console, summary: Summary) -> None:
    data = summary.to_json()
    stats, config = summary.stats, summary.config
    console.print(
        f"[bold]swapd sim {summary.prefix}[/]: {config.stations} stations x {config.slots} slots, "
        f"{config.riders} riders, {config.hours:g} h simulated in {summary.run_s:,.1f} s "
        f"(setup {summary.setup_s:,.1f} s) on {summary.database}, server {summary.server}",
        highlight=False,
    )
    console.print(_counts("completed swaps by flow", dict(stats.swaps.most_common()), "completed"))
    console.print(
        f"walked away {stats.walked_away:,}   resent after reconnect {stats.resends:,}   "
        f"sandbox top-ups {stats.top_ups:,}   first packs at setup {summary.handouts:,}",
        highlight=False,
    )
    if stats.refusals:
        console.print(_counts("refusals by reason", dict(stats.refusals.most_common()), "refused"))
    if stats.skipped:
        console.print(_counts("attempts given up", dict(stats.skipped)))
    latency = data["decision_latency_ms"]
    console.print(
        f"messages sent {stats.messages:,} ({summary.messages_per_s:,.1f}/s)   "
        f"reconnects {stats.reconnects:,}   "
        f"decision latency p50 {latency['p50']} ms  p99 {latency['p99']} ms  "
        f"max {latency['max']} ms  ({latency['count']:,} Authorize)",
        highlight=False,
    )
    if stats.call_errors:
        console.print(_counts("CALLERRORs from the server", dict(stats.call_errors)))
    if stats.errors:
        console.print(_counts("errors", dict(stats.errors)))
    check = data["consistency"]
    table = Table("consistency check", "result", title_justify="left")

    def verdict(good: bool) -> str:
        return "[green]ok[/]" if good else "[bold red]FAIL[/]"

    table.add_row(
        f"completed swaps: sim {check['sim_completed']:,} / server {check['server_completed']:,}",
        verdict(check["counts_agree"]),
    )
    table.add_row(f"ledger check ({check['ledger_transfers']:,} transfers)", verdict(check["ledger_ok"]))
    table.add_row("every pack where the sim put it", verdict(check["pack_places_agree"]))
    table.add_row(
        f"resent BatterySwaps changed nothing ({stats.resends:,})",
        verdict(check["resends_that_changed_something"] == 0),
    )
    console.print(table)
    for line in check["ledger_problems"] + check["pack_place_mismatches"]:
        console.print(f"  [red]{line}[/]", highlight=False)
    for note in stats.notes[:10]:
        console.print(f"  [yellow]note:[/] {note}", highlight=False)
    if summary.cleanup is not None:
        done = summary.cleanup
        console.print(escape(done.line()), style=None if done.ok else "bold red", highlight=False)
        if not done.ledger_ok:
            console.print("[bold red]ledger check after the removal: FAIL[/]")
            for line in done.ledger_problems[:10]:
                console.print(f"  [red]{escape(line)}[/]", highlight=False)
    console.print("[bold green]consistent[/]" if summary.ok else "[bold red]INCONSISTENT[/]")


def sim_command(
    stations: Annotated[int, typer.Option(help="Stations to simulate.")] = 20,
    slots: Annotated[int, typer.Option(help="Slots per station.")] = 12,
    riders: Annotated[int, typer.Option(help="Riders to simulate.")] = 200,
    hours: Annotated[float, typer.Option(help="Simulated hours.")] = 24.0,
    speed: Annotated[float, typer.Option(help="Simulated seconds per real second.")] = 600.0,
    server: Annotated[
        str | None,
        typer.Option(help="ws://HOST:PORT of a running `swapd serve` on the same --database."),
    ] = None,
    embedded: Annotated[
        bool,
        typer.Option("--embedded", help="Run the server in this process (default without --server)."),
    ] = False,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            envvar="SWAPD_DATABASE_URL",
            help=(
                "SQLAlchemy URL or SQLite file path (default: a temporary SQLite file when "
                "embedded, else ./swapd.db)."
            ),
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulation's random choices.")] = 1,
    allow_real_data: Annotated[
        bool,
        typer.Option(
            "--allow-real-data",
            help="With --server: run even though the database holds riders of its own.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Simulate stations and riders against a real server over real WebSockets.

    Everything a run creates has ids starting with SIM-<run>-, and its plans are unlisted (never
    in the public plan list, never open to sign-up).

    With --server the database is a live one: the run refuses it (exit 2) when it holds riders
    that are not the simulator's, unless given --allow-real-data. At the end, also when
    interrupted or failed, the run removes every row it created: stations with their slots and
    passwords, riders with their cards, plans, packs, pack model, swaps, and its riders' ledger
    accounts with every transfer touching them; the operator accounts give back exactly what
    those transfers added, so `swapd ledger check` stays clean and the operator's books are as
    if the run never happened. One audit log entry (sim.remove) records it. Should the removal
    be impossible, the run is retired instead (stations disabled, riders blocked) and the
    summary says so. Embedded runs keep what they made (their database is a scratch one unless
    --database is given).

    Exits 1 when the server's count of completed swaps differs from the simulator's, the ledger
    check fails, a pack is not where the simulator put it, a resent message changed anything, or
    a live-server run could not be removed.
    """
    from swapd.logs import configure_logging
    from swapd.sim.config import SimConfig

    if server is not None and embedded:
        fail("give --server or --embedded, not both")
    config = SimConfig(
        stations=stations,
        slots=slots,
        riders=riders,
        hours=hours,
        speed=speed,
        server=server,
        database=database,
        seed=seed,
        allow_real_data=allow_real_data,
    )
    try:
        config.check()
    except ValueError as error:
        fail(str(error))
    # The server's own logs would drown the live view: only warnings, on stderr.
    configure_logging(json_logs=not sys.stderr.isatty(), level="WARNING")
    title = f"{stations} stations x {slots} slots, {riders} riders, speed {speed:g}x"
    summary = _run_or_fail(config, title, as_json=as_json)
    if as_json:
        sys.stdout.write(json.dumps(summary.to_json(), indent=2, default=_default) + "\n")
    else:
        render_summary(out, summary)
    if not summary.ok:
        raise typer.Exit(1)


def _run_or_fail(config: SimConfig, title: str, *, as_json: bool) -> Summary:
    """Run the simulation; every way it can end early becomes a one-line error and an exit code."""
    import sqlalchemy as sa

    from swapd.domain.errors import DomainError
    from swapd.sim.cleanup import RealData
    from swapd.sim.runner import run
    from swapd.sim.station import StationError

    try:
        return run(config) if as_json else _run_live(config, title)
    except RealData as error:
        fail(str(error))
    except KeyboardInterrupt as error:
        _say_notes(error)
        fail("interrupted", 130)
    except DomainError as error:
        _say_notes(error)
        fail(error.message)
    except StationError as error:
        _say_notes(error)
        fail(f"stations cannot reach the server: {error}")
    except sa.exc.OperationalError as error:
        _say_notes(error)
        fail(f"database unavailable: {str(error.orig).strip().splitlines()[0]}")
    except sa.exc.ArgumentError as error:
        fail(f"bad database URL: {error}")
    except (OSError, RuntimeError) as error:
        _say_notes(error)
        fail(str(error))


def _run_live(config: SimConfig, title: str) -> Summary:
    """The run with its progress redrawn in place on stdout and its phases named on stderr."""
    from rich.live import Live

    from swapd.sim.runner import run

    def phase(text: str) -> None:
        err.print(f"[dim]{text}...[/]", highlight=False)

    with Live(console=out, refresh_per_second=4, transient=True) as live:

        def progress(snapshot: Snapshot) -> None:
            live.update(render_progress(snapshot, title))

        return run(config, on_progress=progress, on_phase=phase)


def _say_notes(error: BaseException) -> None:
    """What a live-server run did about its rows before the error ended it (on stdout)."""
    for note in getattr(error, "__notes__", ()):
        out.print(note, highlight=False, soft_wrap=True)


def _default(value: Any) -> Any:
    return str(value)

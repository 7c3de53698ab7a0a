"""``swapd demo``: seed a believable network, serve it, keep swaps flowing, summarise on Ctrl-C."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from swapd.cli.common import fail, out

if TYPE_CHECKING:
    from swapd.sim.demo import Ready
    from swapd.sim.stats import Snapshot, Stats

DEFAULT_DATABASE = Path("swapd-demo.db")


def demo(
    port: Annotated[int, typer.Option(help="HTTP port of the console and the API.")] = 8000,
    database: Annotated[
        Path, typer.Option(help="SQLite file of the demo; replaced at each start.")
    ] = DEFAULT_DATABASE,
    speed: Annotated[float, typer.Option(help="Simulated seconds per real second.")] = 60.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulation's random choices.")] = 1,
) -> None:
    """Run swapd on a demo network: 20 stations in Seoul, 200 riders swapping, until Ctrl-C.

    Prints the console's address and two staff logins (an admin and an operator, new passwords
    each start). The demo's data is a fresh SQLite file (--database), never your swapd.db."""
    from rich.live import Live

    from swapd.cli.server import listening_socket
    from swapd.logs import configure_logging
    from swapd.sim.demo import run_demo

    if not 1 <= port <= 65_535:
        fail(f"--port must be 1..65535, got {port}")
    if not 1 <= speed <= 3_600:
        fail(f"--speed must be 1..3600, got {speed:g}")
    try:
        listening_socket("127.0.0.1", port).close()  # taken: say so before seeding anything
    except OSError as error:
        fail(f"port {port} is not free ({error.strerror}); choose another with --port")
    # The server's own log lines would bury the demo's view: warnings and errors only.
    configure_logging(json_logs=not sys.stderr.isatty(), level="WARNING")
    out.print(f"seeding a demo network into {database} ...", highlight=False)
    with Live(console=out, refresh_per_second=2, transient=True) as live:

        def ready(r: Ready) -> None:
            live.console.print(_ready_text(r), highlight=False)

        def progress(snapshot: Snapshot) -> None:
            live.update(_progress(snapshot))

        stats = run_demo(
            database, port=port, speed=speed, seed=seed, on_ready=ready, on_progress=progress
        )
    out.print(_summary(stats), highlight=False)


def _ready_text(r: Ready) -> str:
    lines = [
        f"[bold]swapd demo[/] is running: {r.stations} stations, {r.riders} riders, {r.packs} packs",
        f"  console   [link={r.console_url}]{r.console_url}[/link]",
    ]
    lines += [f"  {role:<9} {email}  password [bold]{password}[/]" for role, email, password in r.logins]
    lines.append(f"  API docs  {r.console_url}docs")
    lines.append("Ctrl-C stops it; the data stays in " + str(r.database))
    return "\n".join(lines)


def _progress(snapshot: Snapshot) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    hours = snapshot.sim_s / 3600
    grid.add_row("simulated", f"{hours:,.1f} h ({snapshot.real_s:,.0f} s real)")
    grid.add_row("swaps", f"{snapshot.swaps:,} completed, {snapshot.refusals:,} refused")
    grid.add_row("decisions", f"p50 {snapshot.decision_p50_ms:.1f} ms")
    return grid


def _summary(stats: Stats) -> str:
    completed = sum(stats.swaps.values())
    refused = sum(stats.refusals.values())
    no_pack = sum(n for reason, n in stats.refusals.items() if "NoBattery" in reason)
    attempts = completed + refused
    share = 100 * no_pack / attempts if attempts else 0.0
    return (
        f"demo stopped: {completed:,} swaps completed, {refused:,} refused "
        f"({no_pack:,} for want of a charged pack, {share:.1f} % of attempts)"
    )

"""``uv run python -m faults <scenario> [--rounds N]``: the long fault drills, with progress.

Scenarios: ``kill9`` (SIGKILL the server under load; ``--database sqlite|postgresql|URL``),
``pg-restart`` (crash a private PostgreSQL under load) and ``storm`` (hundreds of stations
reconnecting at once). Prints the results and writes them as JSON with ``--out``; exits 1
unless nothing acknowledged was lost or doubled and the ledger check is clean.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from faults import drills

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
out = Console()
SHARED_PG = os.environ.get("SWAPD_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

Rounds = Annotated[int, typer.Option("--rounds", min=1, max=10_000, help="faults to inject")]
Seed = Annotated[int, typer.Option("--seed")]
Out = Annotated[Path | None, typer.Option("--out", help="write the result as JSON here")]


@contextmanager
def _database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="swapd-faults-") as scratch:
            yield f"sqlite:///{Path(scratch) / 'faults.db'}"
    elif kind == "postgresql":
        # A database of its own on the shared server; the server itself is never stopped.
        with drills.shared_postgres_database(SHARED_PG) as url:
            yield url
    else:
        yield kind


def _run(
    title: str,
    rounds: int,
    drill: Callable[[drills.OnRound], Coroutine[Any, Any, drills.DrillResult]],
    out_file: Path | None,
) -> None:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
        console=out,
    ) as progress:
        task = progress.add_task(title, total=rounds, last="setting up")

        def on_round(round_no: int, detail: dict[str, Any]) -> None:
            shown = ", ".join(f"{k}={v}" for k, v in detail.items() if k != "round")
            progress.update(task, completed=round_no, last=shown)

        result = asyncio.run(drill(on_round))
    _report(result)
    if out_file is not None:
        out_file.write_text(json.dumps(result.to_json(), indent=2) + "\n")
        out.print(f"written to {out_file}")
    if not result.ok:
        raise typer.Exit(1)


def _report(result: drills.DrillResult) -> None:
    data = result.to_json()
    verdict = data.pop("verdict")
    table = Table("measure", "value", title=f"{result.scenario} on {result.database}")
    for key in ("rounds", "stations", "seconds"):
        table.add_row(key, str(data[key]))
    for key, value in verdict.items():
        if key != "examples":
            table.add_row(key, str(value))
    for key, value in {**data["station_counters"], **data}.items():
        if key in (
            "scenario",
            "database",
            "ok",
            "rounds",
            "stations",
            "seconds",
            "station_counters",
            "rounds_detail",
        ):
            continue
        if key not in ("notes", "failures", "load_errors") or value:
            table.add_row(key, json.dumps(value) if isinstance(value, dict | list) else str(value))
    out.print(table)
    for example in verdict["examples"]:
        out.print(f"[red]{example}")
    out.print("[green]OK[/]" if result.ok else "[red]FAILED[/]")


@app.command()
def kill9(
    rounds: Rounds = 25,
    database: Annotated[str, typer.Option(help="sqlite, postgresql or a URL")] = "sqlite",
    stations: Annotated[int, typer.Option(min=1, max=500)] = 4,
    seed: Seed = 1,
    out_file: Out = None,
    target: Annotated[
        str, typer.Option(help="server, or writer: the server's writer process (SQLite)")
    ] = "server",
) -> None:
    """SIGKILL ``swapd serve`` at random moments under load, restart it, verify."""
    if target not in ("server", "writer"):
        raise typer.BadParameter("server or writer", param_hint="--target")
    with _database(database) as url:
        _run(
            f"kill -9 of the {target} ({database})",
            rounds,
            lambda on_round: drills.kill9(
                url, rounds=rounds, stations=stations, seed=seed, on_round=on_round, target=target
            ),
            out_file,
        )


@app.command("pg-restart")
def pg_restart(
    rounds: Rounds = 10,
    down_s: Annotated[float, typer.Option(min=0.0, max=600.0)] = 3.0,
    stations: Annotated[int, typer.Option(min=1, max=500)] = 4,
    seed: Seed = 1,
    out_file: Out = None,
) -> None:
    """Crash a private PostgreSQL (pg_ctl -m immediate) under load, start it again, verify."""
    _run(
        "PostgreSQL crash",
        rounds,
        lambda on_round: drills.pg_restart(
            rounds=rounds, stations=stations, down_s=down_s, seed=seed, on_round=on_round
        ),
        out_file,
    )


@app.command()
def storm(
    rounds: Rounds = 3,
    stations: Annotated[int, typer.Option(min=1, max=500)] = 500,
    database: Annotated[str, typer.Option(help="sqlite, postgresql or a URL")] = "sqlite",
    seed: Seed = 1,
    out_file: Out = None,
) -> None:
    """Hundreds of stations drop their links at once, reconnect at once and resend."""
    with _database(database) as url:
        _run(
            f"reconnect storm ({stations} stations)",
            rounds,
            lambda on_round: drills.storm(
                url, stations=stations, rounds=rounds, seed=seed, on_round=on_round
            ),
            out_file,
        )


if __name__ == "__main__":
    app()

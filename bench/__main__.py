"""Run the benchmarks and write BENCHMARKS.md.

    uv run python -m bench run [--quick] [--only swaps,raw_limit] [--output BENCHMARKS.md]
        [--pgledger-sql PATH]

Each benchmark runs as its own subprocess (``python -m bench.<name> [--quick]``); the last line
it prints is its JSON result. A module listed here that does not exist yet is skipped with a note.
With ``--only``, the other benchmarks' sections of an existing output file are kept
(``bench.report.merge``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench import report
from bench._common import console, load_average, machine_facts

# In run order: raw_limit needs swapd's rates from swaps to compute its ratio.
MODULES = (
    "swaps",
    "raw_limit",
    "swap_cost",
    "idle_connections",
    "ledger_transfers",
    "rider_history",
    "statements",
    "startup",
)
MODULE_TIMEOUT_S = 30 * 60
DATABASES = ("sqlite", "postgresql")


def run_module(name: str, quick: bool, extra: list[str]) -> dict[str, Any]:
    """Run one benchmark as a subprocess; its result, or a result saying why there is none."""
    command = [sys.executable, "-m", f"bench.{name}", *(["--quick"] if quick else []), *extra]
    shown = shlex.join(["uv", "run", "python", "-m", f"bench.{name}", *command[3:]])
    if importlib.util.find_spec(f"bench.{name}") is None:
        return {"name": name, "skipped": "module not written yet", "command": shown}
    started = time.monotonic()
    with tempfile.TemporaryFile() as stderr:
        try:
            done = subprocess.run(
                command, stdout=subprocess.PIPE, stderr=stderr, timeout=MODULE_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            return {"name": name, "skipped": f"timed out after {MODULE_TIMEOUT_S} s", "command": shown}
        stderr.seek(0)
        tail = stderr.read().decode(errors="replace").strip().splitlines()[-15:]
    elapsed = time.monotonic() - started
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        reason = f"exit code {done.returncode}, no JSON result; stderr: " + " | ".join(tail)
        return {"name": name, "skipped": reason, "command": shown, "elapsed_s": elapsed}
    result.update(command=shown, elapsed_s=elapsed, exit_code=done.returncode)
    return result


def module_arguments(name: str, rates: dict[str, float], pgledger_sql: str | None) -> list[str]:
    """What one benchmark is told beyond --quick: raw_limit swapd's rates (from swaps in this
    run or from the file), ledger_transfers where pgledger's SQL is."""
    extra: list[str] = []
    if name == "raw_limit":
        for kind, rate in rates.items():
            extra += [f"--swapd-{kind}", str(rate)]
    if name == "ledger_transfers" and pgledger_sql:
        extra += ["--pgledger-sql", pgledger_sql]
    return extra


def _known_rates(output: Path) -> dict[str, float]:
    """swapd's max swaps/s from the swaps section of an existing file, for raw_limit run alone."""
    if not output.exists():
        return {}
    text = output.read_text()
    rates = {kind: report.metric(text, "swaps", f"max_swaps_per_s_{kind}") for kind in DATABASES}
    return {kind: rate for kind, rate in rates.items() if rate}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description="swapd benchmarks")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the benchmarks and write BENCHMARKS.md")
    run.add_argument("--quick", action="store_true", help="small smoke sizes (under 2 minutes)")
    run.add_argument(
        "--only",
        help="comma-separated benchmark names (default: all); the other sections of --output are kept",
    )
    run.add_argument("--output", default="BENCHMARKS.md", type=Path)
    run.add_argument(
        "--pgledger-sql",
        metavar="PATH",
        help="a local checkout of pgledger: bench.ledger_transfers measures it beside swapd",
    )
    args = parser.parse_args(argv)
    only = [n for n in MODULES if n in args.only.split(",")] if args.only else []
    if args.only and not only:
        parser.error(f"--only names none of the benchmarks: {', '.join(MODULES)}")
    names = only or list(MODULES)
    started, load = datetime.now(UTC), load_average()
    results: list[dict[str, Any]] = []
    rates = _known_rates(args.output) if args.only else {}
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        overall = progress.add_task(f"{len(names)} benchmarks", total=len(names))
        for name in names:
            task = progress.add_task(f"bench.{name}", total=None)
            extra = module_arguments(name, rates, args.pgledger_sql)
            result = run_module(name, args.quick, extra)
            if name == "swaps":
                for kind in DATABASES:
                    rate = result.get("metrics", {}).get(f"max_swaps_per_s_{kind}")
                    if rate:
                        rates[kind] = float(rate)
            results.append(result)
            status = result.get("skipped") or f"done in {result.get('elapsed_s', 0):.0f} s"
            progress.update(task, total=1, completed=1, description=f"bench.{name}: {status}")
            progress.advance(overall)
    facts = report.Run(started=started, load=load, facts=machine_facts(), quick=args.quick, only=only)
    text = report.render(results, facts)
    if only and args.output.exists():
        text = report.merge(args.output.read_text(), text, rerun=only, order=MODULES)
    args.output.write_text(text)
    summary = Table("benchmark", "target", "value", "met", title=f"written to {args.output}")
    for result in results:
        for key, target in result.get("targets", {}).items():
            value = result.get("metrics", {}).get(key)
            met = report.evaluate(target, value)
            summary.add_row(result["name"], f"{key} {target}", str(value), met)
        if "skipped" in result:
            summary.add_row(result["name"], "-", "-", f"skipped: {result['skipped'][:60]}")
    console.print(summary)


if __name__ == "__main__":
    main()

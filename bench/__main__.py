"""Run every benchmark and write BENCHMARKS.md.

    uv run python -m bench run [--quick] [--only swaps,raw_limit] [--output BENCHMARKS.md]

Each benchmark runs as its own subprocess (``python -m bench.<name> [--quick]``); the last line
it prints is its JSON result. A module listed here that does not exist yet is skipped with a note.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import operator
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench._common import console, load_average, machine_facts

# In run order: raw_limit needs swapd's rates from swaps to compute its ratio.
MODULES = ("swaps", "raw_limit", "idle_connections", "ledger_transfers", "statements")
MODULE_TIMEOUT_S = 30 * 60
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}

# What profiling found and what was changed; kept here so a re-run regenerates it.
WHAT_WAS_FIXED = """\
Measured with `uv run python -m bench.swaps --quick` (24 stations, 6 s per phase) before and after
each change; profiles from py-spy (`SWAPD_BENCH_PROFILE=DIR uv run python -m bench.swaps --quick`
samples the server during the closed loop, all threads, into DIR/swaps-<db>.txt).

| change | SQLite max swaps/s | SQLite decision p99 at half load | PostgreSQL max swaps/s |
| --- | ---: | ---: | ---: |
{rows}

{text}
"""
FIX_ROWS = [
    "| before (baseline, commit 3c4835e) | 59-65 | 12-29 ms | 37 |",
]
FIX_TEXT = """\
Profile of the baseline (SQLite, closed loop): 80 % of the server's samples are inside
`Database.write`; a third of them waiting in `BEGIN IMMEDIATE` (SQLite's busy handler sleeps
1-100 ms between retries when the worker threads of one process contend for the write lock), 13 %
in COMMIT (fsync), the rest SQLAlchemy building, caching and executing 77 statements per swap
(54 SELECTs, 23 writes). The gateway itself (both schema validations, routing, JSON) is ~4 %.
"""


def _evaluate(target: Any, value: Any) -> str:
    """'yes'/'no' for a target "<op> <number>" against a metric value, '?' if unreadable."""
    if isinstance(target, dict) and "op" in target and "value" in target:
        target = f"{target['op']} {target['value']}"
    if not isinstance(target, str) or value is None:
        return "?"
    op, _, number = target.strip().partition(" ")
    compare = _OPERATORS.get(op)
    try:
        return "yes" if compare is not None and compare(float(value), float(number)) else "no"
    except (TypeError, ValueError):
        return "?"


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


def _table(result: dict[str, Any]) -> list[str]:
    metrics, targets = result.get("metrics", {}), result.get("targets", {})
    lines = ["| metric | value | target | met |", "| --- | ---: | --- | --- |"]
    for key, value in metrics.items():
        target = targets.get(key)
        met = _evaluate(target, value) if target is not None else ""
        lines.append(f"| {key} | {value} | {target if target is not None else ''} | {met} |")
    for key, target in targets.items():
        if key not in metrics:
            lines.append(f"| {key} | (not measured) | {target} | no |")
    return lines


def render(results: list[dict[str, Any]], quick: bool, started: datetime, load: dict[str, float]) -> str:
    facts = machine_facts()
    out = [
        "# Benchmarks",
        "",
        f"Generated by `uv run python -m bench run{' --quick' if quick else ''}` on "
        f"{started:%Y-%m-%d %H:%M} UTC{' (quick smoke sizes: not the real numbers)' if quick else ''}.",
        "The machine is shared: the load average is recorded before the run and in each benchmark's "
        "metrics (loadavg_*), so a noisy number can be told from a slow one.",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in facts.items()),
        f"| load average before the run (1/5/15 min) | {load['loadavg_1m']} / {load['loadavg_5m']} / "
        f"{load['loadavg_15m']} |",
        "",
        "## Targets",
        "",
        "| benchmark | target | met |",
        "| --- | --- | --- |",
    ]
    for result in results:
        for key, target in result.get("targets", {}).items():
            met = _evaluate(target, result.get("metrics", {}).get(key))
            out.append(f"| {result['name']} | {key} {target} | {met} |")
    for result in results:
        out += ["", f"## {result['name']}", "", f"`{result['command']}`"]
        if "skipped" in result:
            out += ["", f"Skipped: {result['skipped']}."]
            continue
        out += ["", f"Took {result['elapsed_s']:.0f} s (exit code {result['exit_code']}).", ""]
        out += _table(result)
        if result.get("notes"):
            out += ["", str(result["notes"])]
    rows = "\n".join(FIX_ROWS)
    out += ["", "## What was fixed", "", WHAT_WAS_FIXED.format(rows=rows, text=FIX_TEXT).rstrip()]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description="swapd benchmarks")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run every benchmark and write BENCHMARKS.md")
    run.add_argument("--quick", action="store_true", help="small smoke sizes (under 2 minutes)")
    run.add_argument("--only", help="comma-separated benchmark names (default: all)")
    run.add_argument("--output", default="BENCHMARKS.md", type=Path)
    args = parser.parse_args(argv)
    names = [n for n in MODULES if not args.only or n in args.only.split(",")]
    started, load = datetime.now(UTC), load_average()
    results: list[dict[str, Any]] = []
    rates: dict[str, float] = {}
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        overall = progress.add_task(f"{len(names)} benchmarks", total=len(names))
        for name in names:
            task = progress.add_task(f"bench.{name}", total=None)
            extra: list[str] = []
            if name == "raw_limit":
                for kind, rate in rates.items():
                    extra += [f"--swapd-{kind}", str(rate)]
            result = run_module(name, args.quick, extra)
            if name == "swaps":
                for kind in ("sqlite", "postgresql"):
                    rate = result.get("metrics", {}).get(f"max_swaps_per_s_{kind}")
                    if rate:
                        rates[kind] = float(rate)
            results.append(result)
            status = result.get("skipped") or f"done in {result.get('elapsed_s', 0):.0f} s"
            progress.update(task, total=1, completed=1, description=f"bench.{name}: {status}")
            progress.advance(overall)
    args.output.write_text(render(results, args.quick, started, load))
    summary = Table("benchmark", "target", "value", "met", title=f"written to {args.output}")
    for result in results:
        for key, target in result.get("targets", {}).items():
            value = result.get("metrics", {}).get(key)
            summary.add_row(result["name"], f"{key} {target}", str(value), _evaluate(target, value))
        if "skipped" in result:
            summary.add_row(result["name"], "-", "-", f"skipped: {result['skipped'][:60]}")
    console.print(summary)


if __name__ == "__main__":
    main()

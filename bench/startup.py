"""How long ``swapd`` takes to start: the median wall time of whole runs of ``swapd --version`` and
of the read-only commands an operator types most (``rider list``, ``station list``, ``plan list``,
``ledger check``) on a migrated SQLite database with a small network in it, and of
``python -c "import swapd.cli"``.

The same commands run from a baseline source too (default: 64df4ac, before the command line was
made light at import time and the migration check cheap), taken out of git with ``git archive``
and run with this environment's Python and packages through PYTHONPATH, each source on a database
made by its own ``swapd``. The two sources alternate run by run, so that both see the same load
on a shared machine.

``--smoke`` (for the tests) proves that every command runs and is measured, not how fast: one
run, no bytecode cache of its own (Python's usual ``__pycache__`` as the caller has it, so no
module of swapd and its packages is compiled again first).

Run: ``uv run python -m bench.startup [--quick | --smoke] [--runs N] [--baseline COMMIT]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from bench._common import SWAPD_BIN, console, emit, load_average

NAME = "startup"
BASELINE = "64df4ac"
REPO = Path(__file__).resolve().parents[1]
RUNS = 15
QUICK_RUNS = 3
COMMAND_TIMEOUT_S = 120.0
TARGET_S = "< 0.6"  # "well under a second" on an idle 2-core machine: at most 0.6 s

COMMANDS: dict[str, tuple[str, ...]] = {
    "version": ("--version",),
    "rider_list": ("rider", "list", "--database", "{db}"),
    "station_list": ("station", "list", "--database", "{db}"),
    "plan_list": ("plan", "list", "--database", "{db}"),
    "ledger_check": ("ledger", "check", "--database", "{db}"),
}
# A small network, made with commands every source knows.
SETUP: tuple[tuple[str, ...], ...] = (
    ("db", "upgrade"),
    ("pack-model", "add", "G2", "--nominal-wh", "1700"),
    ("station", "add", "ST1", "--slots", "8"),
    ("station", "add", "ST2", "--slots", "8"),
    (
        *("plan", "add", "energy", "--kind", "prepaid_energy", "--currency", "KRW"),
        *("--price-minor", "300", "--price-units", "1000"),
    ),
    ("rider", "add", "R1", "--plan", "energy"),
    ("rider", "add", "R2", "--plan", "energy"),
    ("topup", "R1", "10000", "--ref", "bench-1"),
)
# The set-up and the warm-up (which writes the bytecode caches) are not measured: one process
# runs every command of both through ``swapd.cli.main``, which every source has, instead of a
# process (and a second of imports) each.
IN_ONE_PROCESS = """
import json, sys
from swapd.cli import main
for args in json.loads(sys.argv[1]):
    sys.argv = ["swapd", *args]
    try:
        main()
    except SystemExit as done:
        if done.code not in (0, None):
            raise SystemExit(f"swapd {' '.join(args)} exited with {done.code}") from None
"""


def environment(source: Path | None, pycache: Path | None) -> dict[str, str]:
    """No SWAPD_* setting of the caller; a baseline source first on the path; compiled bytecode
    cached under ``pycache`` (per source), as an installed swapd has it, even where the caller
    sets PYTHONDONTWRITEBYTECODE: compiling every module on every start would measure the
    compiler, not the start. Without ``pycache`` (a smoke run), Python's own caching as the
    caller has it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWAPD_")}
    env.pop("PYTHONPATH", None)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    return env


def extract(commit: str, into: Path) -> Path:
    """The ``src`` directory of ``commit``, written under ``into``; git's own files untouched."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "src"],
        capture_output=True,
        check=True,
        timeout=COMMAND_TIMEOUT_S,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


@dataclass(frozen=True)
class Source:
    path: Path | None  # None: the source this environment has installed
    database: Path
    pycache: Path | None


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float  # user + system of the process: what an idle machine's wall time comes near


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], env: dict[str, str]) -> tuple[Timing, subprocess.CompletedProcess[bytes]]:
    cpu, started = _children_cpu_s(), time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False)
    return Timing(time.perf_counter() - started, _children_cpu_s() - cpu), done


def _filled(args: tuple[str, ...], source: Source) -> list[str]:
    return [arg.replace("{db}", str(source.database)) for arg in args]


def checked(command: list[str], source: Source) -> tuple[Timing, subprocess.CompletedProcess[bytes]]:
    """``timed`` in the source's environment; a command that fails stops the benchmark."""
    timing, done = timed(command, environment(source.path, source.pycache))
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.decode(errors='replace')}")
    return timing, done


def swapd(args: tuple[str, ...], source: Source) -> Timing:
    """One whole run of ``swapd ARGS``."""
    timing, _ = checked([str(SWAPD_BIN), *_filled(args, source)], source)
    return timing


def prepare(source: Source) -> None:
    """The small network, then one (unmeasured) run of every measured command."""
    steps = [[*step, "--database", "{db}"] for step in SETUP] + [list(c) for c in COMMANDS.values()]
    steps = [[arg.replace("{db}", str(source.database)) for arg in step] for step in steps]
    command = [sys.executable, "-c", IN_ONE_PROCESS, json.dumps(steps)]
    _, done = timed(command, environment(source.path, source.pycache))
    if done.returncode != 0:
        raise RuntimeError(f"set-up failed: {done.stderr.decode(errors='replace')[-3000:]}")


def import_time(source: Source) -> Timing:
    command = [sys.executable, "-c", "import swapd.cli"]
    timing, done = timed(command, environment(source.path, source.pycache))
    done.check_returncode()
    return timing


# ``python -X importtime`` of ``swapd station list``: each module's own import time, summed by
# where the module comes from. importtime's bookkeeping makes the total larger than the same
# imports take without it; the shares are what it is for.
IMPORT_GROUPS: dict[str, tuple[str, ...]] = {
    "sqlalchemy": ("sqlalchemy", "greenlet", "asyncio", "sqlite3", "_sqlite3", "concurrent"),
    "cli_libraries": ("typer", "click", "rich", "pygments", "markdown_it", "mdurl", "shellingham"),
    "swapd": ("swapd",),
}
_IMPORTTIME_LINE = re.compile(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)")


def import_breakdown_ms(stderr: str) -> dict[str, float]:
    """Self import time in ms by IMPORT_GROUPS (the rest as ``other``) and in ``total``."""
    found = {group: 0.0 for group in (*IMPORT_GROUPS, "other", "total")}
    by_top = {top: group for group, tops in IMPORT_GROUPS.items() for top in tops}
    for match in _IMPORTTIME_LINE.finditer(stderr):
        self_ms = int(match.group(1)) / 1000
        found[by_top.get(match.group(2).split(".")[0], "other")] += self_ms
        found["total"] += self_ms
    return found


def station_list_imports(source: Source) -> dict[str, float]:
    command = [sys.executable, "-X", "importtime", "-m", "swapd.cli"]
    _, done = checked([*command, *_filled(COMMANDS["station_list"], source)], source)
    return import_breakdown_ms(done.stderr.decode(errors="replace"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_RUNS} runs of each")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="one run, on the caller's bytecode caches: that each command runs, not how fast",
    )
    parser.add_argument("--runs", type=int, help=f"runs of each command (default {RUNS})")
    parser.add_argument("--baseline", default=BASELINE, help="commit to compare with ('' for none)")
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.smoke else QUICK_RUNS if args.quick else RUNS)
    before_load = load_average()
    with tempfile.TemporaryDirectory(prefix="swapd-bench-startup-") as scratch:
        root = Path(scratch)
        paths: dict[str, Path | None] = {"": None}
        if args.baseline:
            paths["baseline_"] = extract(args.baseline, root / "baseline")
        sources = {
            prefix: Source(
                path,
                root / f"{prefix or 'current'}.db",
                None if args.smoke else root / f"{prefix}pycache",
            )
            for prefix, path in paths.items()
        }
        for source in sources.values():
            prepare(source)
        samples: dict[str, list[Timing]] = {}
        imports: list[dict[str, float]] = []
        for run in range(runs):
            console.print(f"run {run + 1}/{runs}")
            for prefix, source in sources.items():  # alternated: both see the same load
                samples.setdefault(f"{prefix}import", []).append(import_time(source))
                for name, command in COMMANDS.items():
                    samples.setdefault(f"{prefix}{name}", []).append(swapd(command, source))
            imports.append(station_list_imports(sources[""]))
    metrics: dict[str, object] = {}
    for key, timings in samples.items():
        metrics[f"{key}_s"] = round(statistics.median(t.wall_s for t in timings), 3)
        metrics[f"{key}_cpu_s"] = round(statistics.median(t.cpu_s for t in timings), 3)
    for group in imports[0]:
        median_ms = statistics.median(found[group] for found in imports)
        metrics[f"station_list_imports_{group}_ms"] = round(median_ms, 1)
    metrics |= {f"{key}_before": value for key, value in before_load.items()}
    metrics |= load_average()
    targets = {f"{name}_s": TARGET_S for name in COMMANDS}
    notes = (
        ("Smoke run (on the caller's bytecode caches): not the real numbers. " if args.smoke else "")
        + f"Median wall time of {runs} whole runs of each command (a new process each: Python's "
        "start, the imports, opening the database, the query, the output), on a migrated SQLite "
        "file with 2 stations, 1 plan and 2 riders, after a warm-up run that writes the bytecode "
        'caches; import_s is `python -c "import swapd.cli"`; *_cpu_s is the median user + system '
        "CPU time of the same runs, which an idle machine's wall time comes near. "
        + (
            f"baseline_* is the same with the source of {args.baseline} (every command imported "
            "the whole server, and every command that opened a database ran alembic), run "
            "alternately with the current source. "
            if args.baseline
            else ""
        )
        + "station_list_imports_*_ms: `python -X importtime -m swapd.cli station list`, each "
        "module's own import time summed by where it comes from (sqlalchemy with asyncio and "
        "sqlite3; cli_libraries: typer, click, rich and theirs; swapd; other: the standard library "
        "and the rest), median of the runs, current source only; importtime's bookkeeping makes "
        "the total larger than the same imports take without it. "
        "The machine is shared: loadavg_*_before and loadavg_* are the load before and after."
    )
    emit(NAME, metrics, targets, notes)


if __name__ == "__main__":
    main()

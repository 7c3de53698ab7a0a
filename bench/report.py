"""BENCHMARKS.md: render the results of a run, and merge a partial run into the file.

The file is documentation: how to run the benchmarks, what each one measures, the targets and
the latest numbers. It holds no history; that is docs/perf-log.md, written by hand.

Layout, in order: a preamble (title, when the full run was made), ``## How to run``,
``## Machine``, ``## Targets`` (one row per benchmark and target), one ``## <name>`` section per
benchmark, ``## See also``. ``bench run --only`` re-runs some benchmarks: ``merge`` replaces
their sections and their rows of the targets table and keeps everything else of the file, so
the other benchmarks' numbers stay those of the run that made them.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

HOW_TO_RUN = "How to run"
MACHINE = "Machine"
TARGETS = "Targets"
SEE_ALSO = "See also"
STATIC_HEADINGS = (HOW_TO_RUN, MACHINE, TARGETS, SEE_ALSO)
TARGETS_HEADER = ("| benchmark | target | met |", "| --- | --- | --- |")

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}

HOW_TO_RUN_TEXT = """\
```sh
uv run python -m bench run                         # all of them, about 30 minutes; rewrites this file
uv run python -m bench run --only swaps,raw_limit  # these only: their sections and rows are replaced
uv run python -m bench run --quick                 # smoke sizes, under 2 minutes: not the real numbers
uv run python -m bench.swaps --seconds 15          # one benchmark alone; --help lists its options
```

Each benchmark is a module `bench/<name>.py` that runs as its own process and prints its result
as one JSON line (metrics, targets, notes); `bench run` collects them into this file. The
PostgreSQL phases use the server of `SWAPD_BENCH_PG_URL` (default
`postgresql://postgres@127.0.0.1:5432/test`), in databases they create and drop.
`raw_limit` compares swapd with the bare database driver and needs swapd's rates: in a run
with `swaps` it takes them from it, alone it takes them from the swaps section of this file.
`SWAPD_BENCH_PROFILE=DIR` makes `bench.swaps` sample the server with py-spy into DIR.
`bench run --pgledger-sql DIR` (a local checkout of https://github.com/pgr0ss/pgledger, not
shipped here) has `ledger_transfers` measure pgledger beside swapd on the same server.
`uv run python -m bench.swaps --databases postgresql_2_servers` runs two server processes
(`swapd serve --workers 2`) on one database, then the fault drills' verifier.
`uv run python -m bench.rightsizing --days 30` (about 15 minutes) compares a simulated month
with right-sizing and the fleet policy off and on: [docs/rightsizing.md](docs/rightsizing.md).
`uv run python -m bench.swap_cost` (in the run) measures one swap at a time in process: CPU of
swapd and of PostgreSQL's backends, statements a swap. The work itself, steadier than the closed
loop's rate on a shared machine: the number to compare two versions with.
`uv run python -m bench.history --swaps 10000000` (about 35 minutes, 25 GB) fills PostgreSQL with
a history made by `generate_series` and compares the decision and a statement with an empty
database: [docs/PARTITIONING.md](docs/PARTITIONING.md).

A target is met or not in the run that produced the section; the machine is shared, so each
benchmark records the load average (`loadavg_*`) next to its numbers."""

SEE_ALSO_TEXT = """\
What was measured and changed to reach these numbers, and why: [docs/perf-log.md](docs/perf-log.md).
How swapd is built (the layers, the path of one swap): [docs/ARCHITECTURE.md](docs/ARCHITECTURE.md)."""


def evaluate(target: Any, value: Any) -> str:
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


@dataclass(frozen=True)
class Run:
    """How the results being rendered were produced."""

    started: datetime
    load: dict[str, float]
    facts: dict[str, str]
    quick: bool = False
    only: Sequence[str] = ()

    def command(self) -> str:
        flags = (" --quick" if self.quick else "") + (
            f" --only {','.join(self.only)}" if self.only else ""
        )
        return f"uv run python -m bench run{flags}"


def _metrics_table(result: dict[str, Any]) -> list[str]:
    metrics, targets = result.get("metrics", {}), result.get("targets", {})
    lines = ["| metric | value | target | met |", "| --- | ---: | --- | --- |"]
    for key, value in metrics.items():
        target = targets.get(key)
        met = evaluate(target, value) if target is not None else ""
        lines.append(f"| {key} | {value} | {target if target is not None else ''} | {met} |")
    for key, target in targets.items():
        if key not in metrics:
            lines.append(f"| {key} | (not measured) | {target} | no |")
    return lines


def target_rows(result: dict[str, Any]) -> list[str]:
    rows = []
    for key, target in result.get("targets", {}).items():
        met = evaluate(target, result.get("metrics", {}).get(key))
        rows.append(f"| {result['name']} | {key} {target} | {met} |")
    return rows


def section(result: dict[str, Any], run: Run) -> str:
    """One benchmark's section: its command, how the run went, its metrics and its notes."""
    out = [f"## {result['name']}", "", f"`{result['command']}`", ""]
    if "skipped" in result:
        return "\n".join([*out, f"Skipped: {result['skipped']}."])
    took = f"Took {result['elapsed_s']:.0f} s (exit code {result['exit_code']})."
    if run.only:
        quick = "; quick smoke sizes, not the real numbers" if run.quick else ""
        took += (
            f" Run on its own (`{run.command()}`, {run.started:%Y-%m-%d %H:%M} UTC{quick}), "
            "not in the full run above."
        )
    out += [took, "", *_metrics_table(result)]
    if result.get("notes"):
        out += ["", str(result["notes"])]
    return "\n".join(out)


def render(results: list[dict[str, Any]], run: Run) -> str:
    """The whole file for one run's results."""
    quick = " (quick smoke sizes: not the real numbers)" if run.quick else ""
    preamble = "\n".join(
        [
            "# Benchmarks",
            "",
            f"Generated by `{run.command()}` on {run.started:%Y-%m-%d %H:%M} UTC{quick}.",
            "The machine is shared: the load average is recorded before the run and in each "
            "benchmark's metrics (loadavg_*), so a noisy number can be told from a slow one.",
        ]
    )
    machine = [
        f"## {MACHINE}",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in run.facts.items()),
        f"| load average before the run (1/5/15 min) | {run.load['loadavg_1m']} / "
        f"{run.load['loadavg_5m']} / {run.load['loadavg_15m']} |",
    ]
    rows = [row for result in results for row in target_rows(result)]
    blocks = [
        preamble,
        f"## {HOW_TO_RUN}\n\n{HOW_TO_RUN_TEXT}",
        "\n".join(machine),
        "\n".join([f"## {TARGETS}", "", *TARGETS_HEADER, *rows]),
        *(section(result, run) for result in results),
        f"## {SEE_ALSO}\n\n{SEE_ALSO_TEXT}",
    ]
    return "\n\n".join(blocks) + "\n"


@dataclass
class Document:
    """A rendered file cut at its ``## `` headings."""

    preamble: str = ""
    blocks: dict[str, str] = field(default_factory=dict)  # heading -> the block, heading line included

    def benchmarks(self) -> list[str]:
        return [name for name in self.blocks if name not in STATIC_HEADINGS]

    def target_rows(self) -> dict[str, list[str]]:
        """The targets table's rows by benchmark name, in the file's order."""
        rows: dict[str, list[str]] = {}
        for line in self.blocks.get(TARGETS, "").splitlines():
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if line.startswith("|") and line not in TARGETS_HEADER and len(cells) == 3:
                rows.setdefault(cells[0], []).append(line)
        return rows


def parse(text: str) -> Document:
    doc = Document()
    heading: str | None = None
    lines: list[str] = []
    in_code = False

    def close() -> None:
        block = "\n".join(lines).strip("\n")
        if heading is None:
            doc.preamble = block
        else:
            doc.blocks[heading] = block

    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if line.startswith("## ") and not in_code:
            close()
            heading, lines = line[3:].strip(), []
        lines.append(line)
    close()
    return doc


def merge(existing: str, fresh: str, rerun: Collection[str], order: Sequence[str] = ()) -> str:
    """``existing`` with the sections and target rows of the benchmarks in ``rerun`` taken from
    ``fresh``. The preamble and the machine table stay those of the full run that made the rest
    of the file; the static text (how to run, see also) comes from ``fresh``, the code's own.
    Benchmarks are listed in ``order``, then any others in the order the files hold them."""
    old, new = parse(existing), parse(fresh)
    names = list(dict.fromkeys([*order, *old.benchmarks(), *new.benchmarks()]))

    def source(name: str) -> Document:
        return new if name in rerun else old

    names = [name for name in names if name in source(name).blocks]
    old_rows, new_rows = old.target_rows(), new.target_rows()
    rows = [row for name in names for row in (new_rows if name in rerun else old_rows).get(name, [])]
    blocks = [
        old.preamble or new.preamble,
        new.blocks[HOW_TO_RUN],
        old.blocks.get(MACHINE) or new.blocks[MACHINE],
        "\n".join([f"## {TARGETS}", "", *TARGETS_HEADER, *rows]),
        *(source(name).blocks[name] for name in names),
        new.blocks[SEE_ALSO],
    ]
    return "\n\n".join(blocks) + "\n"


def metric(text: str, benchmark: str, key: str) -> float | None:
    """A metric's value as the file shows it in ``benchmark``'s section, if it is a number."""
    for line in parse(text).blocks.get(benchmark, "").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] == key:
            try:
                return float(cells[1])
            except ValueError:
                return None
    return None

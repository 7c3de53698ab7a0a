"""``bench.startup`` keeps the benchmark contract (the last stdout line is one JSON object with
name, numeric metrics, targets and notes) and measures every command, in its ``--smoke`` run: one
run of each, on the caller's bytecode caches rather than new ones compiled first. The comparison
with a baseline commit (a second checkout, its own environment) is left to the benchmark run
itself: it doubles the cost of this test and proves nothing more about the measurement."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("import", "version", "rider_list", "station_list", "plan_list", "ledger_check")


def test_one_run_of_each_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.startup", "--smoke", "--baseline", ""],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(data) == {"name", "metrics", "targets", "notes"}
    assert data["name"] == "startup"
    metrics = data["metrics"]
    for command in COMMANDS:
        assert metrics[f"{command}_s"] > 0, command
    assert not any(name.startswith("baseline_") for name in metrics), metrics
    assert set(data["targets"]) == {f"{c}_s" for c in COMMANDS if c != "import"}
    # Where station list's import time goes, by group, adding up to the total.
    groups = ("sqlalchemy", "cli_libraries", "swapd", "other")
    parts = [metrics[f"station_list_imports_{group}_ms"] for group in groups]
    assert all(part > 0 for part in parts), parts
    assert abs(sum(parts) - metrics["station_list_imports_total_ms"]) < 1.0


def test_the_import_breakdown_sums_self_times_by_group() -> None:
    from bench.startup import import_breakdown_ms

    stderr = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:      1500 |       1500 |   sqlalchemy.sql\n"
        "import time:       500 |       2000 | sqlalchemy\n"
        "import time:       250 |        250 |     rich.console\n"
        "import time:      1000 |       1000 | swapd.cli\n"
        "import time:       125 |        125 | json\n"
    )
    assert import_breakdown_ms(stderr) == {
        "sqlalchemy": 2.0,
        "cli_libraries": 0.25,
        "swapd": 1.0,
        "other": 0.125,
        "total": 3.375,
    }

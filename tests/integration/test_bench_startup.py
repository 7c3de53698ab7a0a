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

"""The ``--quick`` runs of the statement and ledger benchmarks keep working and keep their contract:
the last stdout line is one JSON object with name, numeric metrics, targets and notes.

The numbers themselves depend on the machine; what must hold is that each run measured something
on each database and that its own consistency checks (export totals, ledger check) passed, which
they signal by exiting 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 240


def _run(module: str, *databases: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--databases", ",".join(databases), *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    last = result.stdout.strip().splitlines()[-1]
    data = json.loads(last)
    assert set(data) == {"name", "metrics", "targets", "notes"}
    assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in data["metrics"].values())
    assert "loadavg_1m" in data["metrics"]
    return data


KINDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("kind", KINDS)
def test_statements_quick(kind: str, request: pytest.FixtureRequest) -> None:
    if kind == "postgresql":
        request.getfixturevalue("pg_url")  # skips (or fails in CI) like every PostgreSQL test
    data = _run("bench.statements", kind)
    prefix = "pg" if kind == "postgresql" else "sqlite"
    metrics = data["metrics"]
    assert data["name"] == "statements"
    assert metrics[f"{prefix}_riders"] == 2_000
    assert metrics[f"{prefix}_swaps"] == sum(15 + i % 31 for i in range(1, 2_001))
    assert metrics[f"{prefix}_export_s"] > 0 and metrics[f"{prefix}_csv_bytes"] > 0


@pytest.mark.parametrize("kind", KINDS)
def test_ledger_transfers_quick(kind: str, request: pytest.FixtureRequest) -> None:
    if kind == "postgresql":
        request.getfixturevalue("pg_url")
    # Half a second a phase (the quick run takes 2 s): enough for every phase to measure.
    data = _run("bench.ledger_transfers", kind, extra=("--seconds", "0.5"))
    prefix = "pg" if kind == "postgresql" else "sqlite"
    metrics = data["metrics"]
    assert data["name"] == "ledger_transfers"
    for phase in ("single", "two_phase", "concurrent_2w", "concurrent_4w", "concurrent_8w"):
        assert metrics[f"{prefix}_{phase}_transfers_per_s"] > 0
        assert 0 < metrics[f"{prefix}_{phase}_p50_ms"] <= metrics[f"{prefix}_{phase}_p99_ms"]


@pytest.mark.parametrize("kind", KINDS)
def test_rider_history_quick(kind: str, request: pytest.FixtureRequest) -> None:
    if kind == "postgresql":
        request.getfixturevalue("pg_url")
    data = _run("bench.rider_history", kind)
    metrics = data["metrics"]
    assert data["name"] == "rider_history"
    for history in (0, 2_000):
        p50 = metrics[f"decision_p50_ms_{kind}_history_{history}"]
        assert 0 < p50 <= metrics[f"decision_p99_ms_{kind}_history_{history}"]
    growth = metrics[f"decision_p50_growth_{kind}"]
    longest, none = (metrics[f"decision_p50_ms_{kind}_history_{h}"] for h in (2_000, 0))
    assert abs(growth - longest / none) < 0.01
    assert data["targets"] == {f"decision_p50_growth_{kind}": "<= 1.5"}

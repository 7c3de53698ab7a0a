"""The statement, ledger and rider-history benchmarks keep working and keep their contract: the
last stdout line is one JSON object with name, numeric metrics, targets and notes.

They run with ``--smoke``: the code of the quick and full runs at the smallest size that still
goes through every step (fewer riders, shorter phases, fewer decisions). The numbers themselves
depend on the machine; what must hold is that each run measured every phase on each database and
that its own consistency checks (export totals, ledger check) passed, which they signal by
exiting 0.

The statement and rider-history benchmarks run in this process, through the ``main`` that
``python -m`` calls: a new interpreter importing swapd again would cost half a second a run. The
ledger benchmark runs as its own process: it forks writer processes, which a test process (with
pytest-xdist's threads) must not.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bench import history as history_bench
from bench import rider_history, statements, swap_cost

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 240


def _run(module: str, kind: str, *extra: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", module, "--smoke", "--databases", kind, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return _result(result.stdout)


def _run_here(
    main: Callable[[list[str] | None], None], kind: str, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    """A failed check raises (SystemExit or an error) out of ``main``, and so fails the test."""
    main(["--smoke", "--databases", kind])
    return _result(capsys.readouterr().out)


def _result(stdout: str) -> dict[str, Any]:
    last = stdout.strip().splitlines()[-1]
    data = json.loads(last)
    assert set(data) == {"name", "metrics", "targets", "notes"}
    assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in data["metrics"].values())
    assert "loadavg_1m" in data["metrics"]
    return data


KINDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("kind", KINDS)
def test_statements_smoke(
    kind: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    if kind == "postgresql":
        request.getfixturevalue("pg_url")  # skips (or fails in CI) like every PostgreSQL test
    data = _run_here(statements.main, kind, capsys)
    prefix = "pg" if kind == "postgresql" else "sqlite"
    metrics = data["metrics"]
    assert data["name"] == "statements"
    assert metrics[f"{prefix}_riders"] == 100
    assert metrics[f"{prefix}_swaps"] == sum(15 + i % 31 for i in range(1, 101))
    # export_s is rounded to 0.1 s, which a smoke export can take less than: its rate is not.
    assert metrics[f"{prefix}_export_rows_per_s"] > 0 and metrics[f"{prefix}_csv_bytes"] > 0
    assert 0 < metrics[f"{prefix}_statement_p50_ms"] <= metrics[f"{prefix}_statement_max_ms"]


@pytest.mark.parametrize("kind", KINDS)
def test_ledger_transfers_smoke(kind: str, request: pytest.FixtureRequest) -> None:
    if kind == "postgresql":
        request.getfixturevalue("pg_url")
    data = _run("bench.ledger_transfers", kind)
    prefix = "pg" if kind == "postgresql" else "sqlite"
    metrics = data["metrics"]
    assert data["name"] == "ledger_transfers"
    for phase in ("single", "two_phase", "concurrent_2w", "concurrent_4w", "concurrent_8w"):
        assert metrics[f"{prefix}_{phase}_transfers_per_s"] > 0
        assert 0 < metrics[f"{prefix}_{phase}_p50_ms"] <= metrics[f"{prefix}_{phase}_p99_ms"]


# A stand-in for a pgledger checkout (pgledger itself is not shipped here): the two functions the
# comparison calls, with pgledger's signatures, loaded in pgledger's order (the ULID scripts first).
_STAND_IN = {
    "vendor/scoville-pgsql-ulid/ulid-to-uuid.sql": "CREATE TABLE stand_in_order (step INT);",
    "vendor/scoville-pgsql-ulid/uuid-to-ulid.sql": "INSERT INTO stand_in_order VALUES (1);",
    "pgledger.sql": """
        INSERT INTO stand_in_order VALUES (2);
        CREATE TABLE pgledger_accounts (id TEXT PRIMARY KEY, balance NUMERIC NOT NULL DEFAULT 0);
        CREATE TABLE pgledger_transfers (id BIGSERIAL PRIMARY KEY, f TEXT, t TEXT, amount NUMERIC);
        CREATE FUNCTION pgledger_create_account(name TEXT, currency TEXT)
        RETURNS SETOF pgledger_accounts AS $$
            INSERT INTO pgledger_accounts (id) VALUES (name || '_' || currency) RETURNING *;
        $$ LANGUAGE sql;
        CREATE FUNCTION pgledger_create_transfer(f TEXT, t TEXT, amount NUMERIC)
        RETURNS SETOF pgledger_transfers AS $$
            UPDATE pgledger_accounts SET balance = balance - amount WHERE id = f;
            UPDATE pgledger_accounts SET balance = balance + amount WHERE id = t;
            INSERT INTO pgledger_transfers (f, t, amount) VALUES (f, t, amount) RETURNING *;
        $$ LANGUAGE sql;
    """,
}


def test_ledger_transfers_measures_pgledger_beside_swapd(pg_url: str, tmp_path: Path) -> None:
    for name, text in _STAND_IN.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    metrics = _run("bench.ledger_transfers", "postgresql", "--pgledger-sql", str(tmp_path))["metrics"]
    for phase in ("single", "concurrent_4w"):
        assert metrics[f"pgledger_{phase}_transfers_per_s"] > 0
        ratio = metrics[f"pg_{phase}_transfers_per_s"] / metrics[f"pgledger_{phase}_transfers_per_s"]
        assert metrics[f"pg_{phase}_vs_pgledger"] == pytest.approx(ratio, abs=0.01)


def test_ledger_transfers_says_what_is_missing_of_pgledger(pg_url: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.ledger_transfers", "--smoke", "--databases", "postgresql",
         "--pgledger-sql", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )  # fmt: skip
    assert (
        result.returncode != 0 and "not found" in result.stderr and "uuid-to-ulid.sql" in result.stderr
    )


@pytest.mark.parametrize("kind", KINDS)
def test_rider_history_smoke(
    kind: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    if kind == "postgresql":
        request.getfixturevalue("pg_url")
    data = _run_here(rider_history.main, kind, capsys)
    metrics = data["metrics"]
    assert data["name"] == "rider_history"
    for history in (0, 2_000):
        p50 = metrics[f"decision_p50_ms_{kind}_history_{history}"]
        assert 0 < p50 <= metrics[f"decision_p99_ms_{kind}_history_{history}"]
    growth = metrics[f"decision_p50_growth_{kind}"]
    longest, none = (metrics[f"decision_p50_ms_{kind}_history_{h}"] for h in (2_000, 0))
    assert abs(growth - longest / none) < 0.01
    assert data["targets"] == {f"decision_p50_growth_{kind}": "<= 1.5"}


def test_history_smoke(pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    history_bench.main(["--smoke"])
    output = capsys.readouterr().out
    metrics = _result(output)["metrics"]
    assert metrics["history_swaps"] == history_bench.SMOKE_SWAPS and metrics["bytes_per_swap"] > 0
    for key in ("authorize_p50_ms", "swap_p50_ms", "statement_p50_ms"):
        assert metrics[f"empty_{key}"] > 0 and metrics[f"filled_{key}"] > 0
        assert metrics[f"ratio_{key}"] > 0
    assert metrics["filled_export_rows"] > metrics["empty_export_rows"]


@pytest.mark.parametrize("kind", KINDS)
def test_swap_cost_smoke(
    kind: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    if kind == "postgresql":
        request.getfixturevalue("pg_url")
    data = _run_here(swap_cost.main, kind, capsys)
    metrics = data["metrics"]
    assert data["name"] == "swap_cost"
    # Every swap went through (a refusal raises), and cost something of the process.
    assert metrics[f"cpu_ms_per_swap_{kind}"] > 0
    assert metrics[f"wall_ms_per_swap_{kind}"] >= metrics[f"cpu_ms_per_swap_{kind}"] / 2
    if kind == "sqlite":
        # The trace callback saw each call's transaction: BEGIN, SAVEPOINT, RELEASE, COMMIT
        # for three calls, and the swap's reads and writes.
        assert metrics["statements_per_swap_sqlite"] >= 12 + 20
    else:
        assert metrics["db_cpu_ms_per_swap_postgresql"] > 0

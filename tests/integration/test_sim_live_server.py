"""``swapd sim --server`` on a live server's database: it refuses real riders unless told
otherwise, and leaves the database as it found it (no station, rider, plan or pack of its own, the
public plan list unchanged, the operator's balances as before, ``ledger check`` clean)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import typer

from swapd.services import catalog, payments
from swapd.sim.cli import sim_command
from swapd.sim.config import SimConfig
from swapd.sim.embedded import embedded_server, free_port
from swapd.sim.runner import run
from swapd.sim.stats import Snapshot
from swapd.store import schema as t
from swapd.store.database import Database
from swapd.store.engine import make_engine
from swapd.store.ledger_check import check_ledger
from tests.cli_runner import CliRunner, Result
from tests.plans import ENERGY
from tests.security.conftest import (
    ServeFactory,
    serve,  # noqa: F401 (the fixture: one way to start swapd serve)
)

SMALL_RUN = ("--stations", "2", "--slots", "4", "--riders", "6", "--hours", "1", "--speed", "3000")

app = typer.Typer()
app.command("sim")(sim_command)
app.command("unused")(lambda: None)  # two commands: `sim` stays a subcommand, as in swapd


def _sim(*args: str) -> Result:
    return CliRunner().invoke(app, ["sim", *SMALL_RUN, *args])


@pytest.fixture
def operator_db(db_url: str) -> str:
    """A live operator's database: a listed plan, a real rider with money in, a real station."""
    db = Database.open(db_url)
    try:
        catalog.add_plan(db, ENERGY)
        catalog.add_rider(db, "R1", ENERGY.id)
        payments.top_up(db, "R1", 3_000, "real-payment-1", actor="test")
        catalog.add_station(db, "ST1", 4)
    finally:
        db.dispose()
    return db_url


def _state(url: str) -> dict[str, Any]:
    """What the run must leave as it was: every row of the tables it writes, the audit log aside."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = {
                table.name: sorted(map(tuple, connection.execute(sa.select(table))), key=repr)
                for table in t.metadata.sorted_tables
                # local_list_changes: marks that tell servers a list may be stale, not rows
                # a run leaves.
                if table.name not in ("accounts", "audit_log", "rate_limits", "local_list_changes")
            }
            # Accounts the run opened for the operator on a ledger of its own stay, all at zero.
            accounts = connection.execute(sa.select(t.accounts)).all()
            rows["accounts"] = sorted(
                tuple(a)
                for a in accounts
                if a.owner != ""
                or any(
                    getattr(a, c)
                    for c in ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
                )
            )
            rows["ledger check"] = check_ledger(connection).problems
    finally:
        engine.dispose()
    return rows


def _count(url: str, table: sa.Table, column: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            query = sa.select(sa.func.count()).where(table.c[column].startswith("SIM-"))
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


def test_a_run_against_a_database_with_a_real_rider_is_refused_in_one_line(
    operator_db: str,
) -> None:
    before = _state(operator_db)
    # No server needed: the refusal comes before anything is set up or connected.
    result = _sim("--server", f"ws://127.0.0.1:{free_port()}", "--database", operator_db)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1, result.stderr
    assert "1 real rider " in result.stderr and "--allow-real-data" in result.stderr
    assert "Traceback" not in result.output
    assert _state(operator_db) == before


def test_a_run_allowed_on_real_data_removes_what_it_made_and_keeps_the_books(
    operator_db: str,
    serve: ServeFactory,  # noqa: F811 (the fixture imported above)
) -> None:
    running = serve(operator_db)
    server, http = f"ws://127.0.0.1:{running.port}", running.http_url
    public_plans = httpx.get(f"{http}/api/v1/plans").json()
    assert [p["id"] for p in public_plans] == [ENERGY.id]
    before = _state(operator_db)

    result = _sim("--server", server, "--database", operator_db, "--allow-real-data", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["ok"] is True and summary["swaps"]["completed"] > 0, summary
    cleanup = summary["cleanup"]
    assert cleanup["removed"]["stations"] == 2 and cleanup["removed"]["riders"] == 6, cleanup
    assert cleanup["removed"]["plans"] == 2 and cleanup["removed"]["transfers"] > 0, cleanup
    assert cleanup["retired"] is None and cleanup["ledger_ok_after"] is True

    assert httpx.get(f"{http}/api/v1/plans").json() == public_plans
    for table, column in (
        (t.stations, "id"),
        (t.riders, "id"),
        (t.plans, "id"),
        (t.packs, "serial"),
        (t.pack_models, "code"),
        (t.accounts, "owner"),
    ):
        assert _count(operator_db, table, column) == 0, table.name
    # Every other row as it was: the real rider's money, the operator's balances, no transfer
    # left of the run, and a ledger check with nothing to say.
    assert _state(operator_db) == before
    assert _count(operator_db, t.audit_log, "target") == 1  # the sim.remove entry


def test_a_run_that_fails_midway_still_removes_what_it_made(db_url: str) -> None:
    # Nothing listens on the port: the network is set up, then the stations cannot connect.
    before = _state(db_url)
    result = _sim("--server", f"ws://127.0.0.1:{free_port()}", "--database", db_url)
    assert result.exit_code == 2, result.output
    assert "stations cannot reach the server" in result.stderr
    assert "removed run SIM-" in result.stdout and "2 stations, 6 riders" in result.stdout
    assert _state(db_url) == before
    assert _count(db_url, t.stations, "id") == 0


def test_an_interrupted_run_still_removes_what_it_made(db_url: str) -> None:
    """Ctrl-C in the middle of the simulated day: the stations let go, then the rows go."""
    before = _state(db_url)
    frames = 0

    def interrupt_soon(_snapshot: Snapshot) -> None:
        nonlocal frames
        frames += 1
        if frames == 3:  # some 0.5 s into a run of 144 s
            raise KeyboardInterrupt

    server_db = Database(make_engine(db_url))  # the server's own engine, as another process has
    try:
        with embedded_server(server_db) as server:
            config = SimConfig(
                stations=2, slots=4, riders=6, hours=24, speed=600, server=server, database=db_url
            )
            with pytest.raises(KeyboardInterrupt) as interrupted:
                run(config, on_progress=interrupt_soon)
    finally:
        server_db.dispose()
    notes = getattr(interrupted.value, "__notes__", [])
    assert len(notes) == 1 and notes[0].startswith("removed run SIM-"), notes
    assert "2 stations, 6 riders" in notes[0]
    assert _state(db_url) == before

"""A real ``swapd serve`` process under load: killed with SIGKILL again and again (SQLite and
PostgreSQL), its private PostgreSQL crashed and restarted, and a storm of 200 stations
reconnecting at once. Every swap a station got an answer for must be in the database exactly
once and charged exactly once, ``swapd ledger check`` must be clean, and the packs must be where
the stations say they are. The long versions: ``uv run python -m faults`` (RELIABILITY.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from faults.load import Load
from faults.pg import postgres_bin
from faults.verify import verify

from faults import drills
from swapd.store import schema as t
from swapd.store.engine import make_engine
from tests import soak

pytestmark = pytest.mark.soak

# Each server kill costs a restart of 2-4 s, mostly swapd's imports: the small size kills the
# server twice on SQLite (the second start is over a database recovered once already) and once
# on PostgreSQL. 20+ rounds: python -m faults.
KILL_ROUNDS = {"sqlite": soak.size(2, 6), "postgresql": soak.size(1, 4)}
WRITER_KILL_ROUNDS = soak.size(2, 4)
PG_CRASH_ROUNDS = soak.size(1, 2)
# Long enough for the stations' calls to meet the dead database (InternalError, asserted below).
PG_DOWN_S = 1.5 if soak.FULL else 0.5
# Forty stations still all lose their link, reconnect and resend at one moment; each connect
# costs a password check (scrypt), which is most of the storm's time.
STORM_STATIONS = soak.size(40, 200)


def test_sigkill_under_load_loses_nothing_and_charges_nothing_twice(db_url: str) -> None:
    rounds = KILL_ROUNDS[sa.make_url(db_url).get_backend_name()]
    result = asyncio.run(drills.kill9(db_url, rounds=rounds, stations=4, seed=5))
    verdict = result.verdict
    assert verdict.lost == [] and verdict.doubled == [], verdict.to_json()
    assert verdict.ledger_ok and verdict.ledger_problems == []
    assert verdict.duplicate_transfer_keys == 0 and verdict.place_mismatches == []
    assert result.extra["kills"] == rounds
    assert result.extra["load_errors"] == {}
    # The kills hit swaps under way: stations had to resend after the restart.
    assert result.counters["calls_resent"] >= rounds
    assert verdict.server_completed == verdict.swaps_acknowledged > rounds
    assert result.ok


def test_sigkill_of_the_writer_process_loses_nothing_and_charges_nothing_twice(tmp_path: Path) -> None:
    """SQLite: the server runs its stations' calls in a writer process. Killed under load, the
    calls it held fail (InternalError; the stations resend), the server starts another, and
    nothing is lost or doubled."""
    url = f"sqlite:///{tmp_path / 'writer.db'}"
    rounds = WRITER_KILL_ROUNDS
    result = asyncio.run(drills.kill9(url, rounds=rounds, stations=4, seed=7, target="writer"))
    verdict = result.verdict
    assert verdict.lost == [] and verdict.doubled == [], verdict.to_json()
    assert verdict.ledger_ok and verdict.ledger_problems == []
    assert verdict.duplicate_transfer_keys == 0 and verdict.place_mismatches == []
    assert result.extra["kills"] == rounds and result.extra["target"] == "writer"
    # The kills cut calls the writer held: stations got InternalError and sent them again.
    assert result.counters["internal_error_answers"] >= 1
    assert result.extra["load_errors"] == {}
    assert verdict.server_completed == verdict.swaps_acknowledged > rounds
    assert result.ok


def test_the_verifier_sees_a_lost_and_a_doubled_event(tmp_path: Path) -> None:
    """The check above must be able to fail: remove one acknowledged event from the database
    and add a second charge for another, and the verdict names both. What the verifier reads
    is the same with or without a kill: the load runs against an in-process server, clean
    first, then tampered with."""
    url = f"sqlite:///{tmp_path / 'k.db'}"
    load_holder: list[Load] = []
    # Six acknowledged events from two stations include at least two BatteryIns.
    assert asyncio.run(drills.steady(url, acks=6, stations=2, seed=2, keep=load_holder)).ok
    load = load_holder[0]
    ins = [a for a in load.acks if a.event == "BatteryIn"]
    lost, doubled = ins[0], ins[1]
    engine = make_engine(url)
    with engine.begin() as connection:
        e, p = t.station_events.c, t.possessions.c
        connection.execute(
            sa.delete(t.station_events).where(
                e.station_id == lost.station_id,
                e.request_id == str(lost.request_id),
                e.event_type == "BatteryIn",
            )
        )
        row = connection.execute(
            sa.select(t.possessions).where(p.pack_serial == doubled.serials[0], p.at_in.is_not(None))
        ).first()
        assert row is not None
        copy = {k: v for k, v in row._mapping.items() if k != "id"}
        connection.execute(sa.insert(t.possessions).values(**copy))
    engine.dispose()
    verdict = verify(url, load)
    assert not verdict.ok
    assert any(f"{lost.station_id} request {lost.request_id} BatteryIn" in x for x in verdict.lost)
    assert any(doubled.serials[0] in x for x in verdict.doubled)


@pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL server binaries are not installed")
def test_postgresql_crash_under_load_reconnects_and_loses_nothing() -> None:
    result = asyncio.run(drills.pg_restart(rounds=PG_CRASH_ROUNDS, stations=4, down_s=PG_DOWN_S, seed=3))
    verdict = result.verdict
    assert verdict.lost == [] and verdict.doubled == [], verdict.to_json()
    assert verdict.ledger_ok and verdict.place_mismatches == []
    assert result.extra["pg_crashes"] == PG_CRASH_ROUNDS and result.extra["failures"] == []
    # The database was really away: stations were told InternalError and resent.
    assert result.counters["internal_error_answers"] > 0
    assert all(d["first_ack_after_pg_up_s"] < 30 for d in result.rounds_detail)
    assert result.ok


def test_a_reconnect_storm_of_every_station_at_once_loses_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'storm.db'}"
    result = asyncio.run(drills.storm(url, stations=STORM_STATIONS, rounds=1, seed=4))
    assert result.extra["failures"] == [] and result.extra["load_errors"] == {}
    detail = result.rounds_detail[0]
    assert detail["sessions_after"] == STORM_STATIONS
    assert detail["accounts_changed_by_resends"] == 0
    verdict = result.verdict
    assert verdict.lost == [] and verdict.doubled == [], verdict.to_json()
    assert verdict.swaps_acknowledged == verdict.server_completed == 2 * STORM_STATIONS
    assert result.ok

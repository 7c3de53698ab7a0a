"""Turns at writing a SQLite file across processes (swapd.store.turns): a process that writes
back to back must let a writer of another process in at its next turn, not starve it, and no
two processes may hold the turn at once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from swapd.store.database import Database, Tx
from swapd.store.engine import make_engine, upgrade
from swapd.store.turns import Turns, for_url

# A process that takes the turn again and again, each time for 50 ms, logging "[" when its turn
# begins and "]" when it ends.
GREEDY = """
import sys, time
from swapd.store.turns import Turns
turns, log = Turns(sys.argv[1]), open(sys.argv[2], "a", buffering=1)
deadline = time.monotonic() + float(sys.argv[3])
while time.monotonic() < deadline:
    with turns.turn():
        log.write("[\\n")
        time.sleep(0.05)
        log.write("]\\n")
"""


def _greedy(database: Path, log: Path, seconds: float) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", GREEDY, str(database), str(log), str(seconds)])
    deadline = time.monotonic() + 30
    while not (log.exists() and "]" in log.read_text()):
        assert time.monotonic() < deadline, "the greedy process did not start"
        time.sleep(0.05)
    return process


def _check(entries: list[str], ours: str, expected: int) -> None:
    assert entries.count(ours) == expected
    inside = False
    for entry in entries:
        if entry == "[":
            inside = True
        elif entry == "]":
            inside = False
        else:
            assert not inside, f"{entries}: ours in the middle of the other process's turn"


def test_a_waiting_process_gets_the_next_turn_and_never_shares_it(tmp_path: Path) -> None:
    log = tmp_path / "turns.log"
    greedy = _greedy(tmp_path / "t.db", log, seconds=20)
    turns = Turns(str(tmp_path / "t.db"))
    waited = []
    try:
        for _ in range(5):
            before = log.read_text().count("[")
            with turns.turn():
                # The greedy process finished the turn it held, and at most began the one it
                # had queued for before this process asked.
                waited.append(log.read_text().count("[") - before)
                with log.open("a") as out:
                    out.write("P\n")
            time.sleep(0.02)
    finally:
        greedy.terminate()
        greedy.wait()
        turns.close()
    _check(log.read_text().split(), "P", 5)
    assert max(waited) <= 2, waited


def test_database_writes_take_turns_with_a_busy_writer_process(tmp_path: Path) -> None:
    database = tmp_path / "t.db"
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    db = Database(engine)
    log = tmp_path / "turns.log"

    def write(tx: Tx) -> None:
        tx.repo.execute(sa.text("CREATE TABLE IF NOT EXISTS side (n INTEGER)"))
        with log.open("a") as out:
            out.write("D\n")

    greedy = _greedy(database, log, seconds=20)
    try:
        started = time.monotonic()
        for _ in range(5):
            db.write(write)
        took = time.monotonic() - started
    finally:
        greedy.terminate()
        greedy.wait()
        db.dispose()
    _check(log.read_text().split(), "D", 5)
    assert took < 5.0  # each write waited about one 50 ms turn, not a busy timeout


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///file:shared?mode=memory&cache=shared&uri=true",
        "sqlite:///file::memory:?uri=true",
    ],
)
def test_no_turns_for_an_in_memory_database(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert for_url(sa.make_url(url)) is None
    db = Database(make_engine(url))
    try:
        db.write(lambda tx: tx.repo.execute(sa.text("SELECT 1")))
    finally:
        db.dispose()
    assert list(tmp_path.iterdir()) == []  # no "file:shared-turns" or the like left behind


def test_turns_sit_beside_the_file_a_uri_names(tmp_path: Path) -> None:
    turns = for_url(sa.make_url(f"sqlite:///file:{tmp_path}/data.db?uri=true"))
    assert turns is not None
    assert turns.path == f"{tmp_path}/data.db-turns"

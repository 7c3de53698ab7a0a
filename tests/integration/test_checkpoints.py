"""The writer process's WAL checkpoints (swapd.store.checkpoints): a thread copies what commits
appended to the WAL into the database file when nudged, and goes on after a checkpoint fails."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from swapd.store.checkpoints import CHECKPOINT_NICE, Checkpointer


def _wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def wal_file(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    """A WAL database whose writing connection never checkpoints by itself."""
    path = tmp_path / "wal.db"
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
    yield path, connection
    connection.close()


def _write(connection: sqlite3.Connection, rows: int) -> None:
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany("INSERT INTO t (payload) VALUES (?)", [(b"x" * 1000,) for _ in range(rows)])
    connection.execute("COMMIT")


def test_a_nudge_copies_the_committed_wal_into_the_database_file(
    wal_file: tuple[Path, sqlite3.Connection],
) -> None:
    path, connection = wal_file
    _write(connection, 500)
    # Everything is in the WAL: the database file itself has not grown.
    assert path.stat().st_size < 100_000
    checkpointer = Checkpointer(str(path), interval_s=0.01)
    checkpointer.start()
    try:
        checkpointer.nudge()
        assert _wait_for(lambda: path.stat().st_size >= 500_000)
        assert checkpointer.checkpoints >= 1 and checkpointer.failures == 0
    finally:
        checkpointer.stop()
    # Only a nudge starts one: more commits stay in the WAL until the next.
    before = path.stat().st_size
    _write(connection, 300)
    time.sleep(0.2)
    assert path.stat().st_size == before


def test_a_failed_checkpoint_is_counted_and_the_next_nudge_still_checkpoints(
    wal_file: tuple[Path, sqlite3.Connection],
) -> None:
    path, connection = wal_file
    checkpointer = Checkpointer(str(path), interval_s=0.01)
    checkpointer.start()
    try:
        # Another connection holding the file exclusively: the checkpoint cannot even read it.
        connection.execute("PRAGMA locking_mode=EXCLUSIVE")
        _write(connection, 200)
        checkpointer.nudge()
        assert _wait_for(lambda: checkpointer.failures >= 1)
        # Released (back to NORMAL, and a read lets the exclusive lock go): the thread goes on.
        connection.execute("PRAGMA locking_mode=NORMAL")
        connection.execute("SELECT count(*) FROM t").fetchone()
        _write(connection, 300)
        checkpointer.nudge()
        assert _wait_for(lambda: path.stat().st_size >= 500_000)
        assert checkpointer.checkpoints >= 1
    finally:
        checkpointer.stop()


def test_stop_ends_the_thread_and_a_second_stop_is_harmless(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).execute("PRAGMA journal_mode=WAL").fetchone()
    checkpointer = Checkpointer(str(path))
    checkpointer.start()
    thread = checkpointer._thread
    assert thread is not None and thread.is_alive()
    checkpointer.stop()
    assert not thread.is_alive()
    checkpointer.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values")
def test_the_thread_checkpoints_at_a_lower_cpu_priority_than_the_writer(
    wal_file: tuple[Path, sqlite3.Connection],
) -> None:
    path, _ = wal_file
    seen: list[int] = []
    checkpointer = Checkpointer(str(path))
    original = checkpointer._checkpoint

    def checkpoint(connection: sqlite3.Connection) -> None:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        original(connection)

    checkpointer._checkpoint = checkpoint  # type: ignore[method-assign]
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    checkpointer.start()
    try:
        checkpointer.nudge()
        assert _wait_for(lambda: bool(seen))
    finally:
        checkpointer.stop()
    assert seen[0] == min(mine + CHECKPOINT_NICE, 19)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine  # this thread's unchanged

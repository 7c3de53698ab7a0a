"""The writer process commits without fsync (synchronous=NORMAL) and answers a group only once
the WAL holding its commit is on disk (swapd.store.wal_sync), running the next group meanwhile;
an fsync that fails ends the answers."""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from swapd.store import wal_sync, wire
from swapd.store.database import Database
from swapd.store.engine import make_engine, upgrade
from swapd.store.wal_sync import DurableReplies, wal_syncer
from swapd.store.writer import FrameReader, frame
from swapd.store.writer_process import serve
from tests import writer_test_calls

CALLS_MODULE = writer_test_calls.__name__
GETPID = frame(wire.dumps([("getpid", (), {}, {})]))
NO_ANSWER_WITHIN_S = 0.3


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    engine = make_engine(f"sqlite:///{tmp_path / 'sync.db'}", wal_synced_by_caller=True)
    upgrade(engine)
    db = Database(engine)
    yield db
    db.dispose()


class _Writer:
    """``serve`` in a thread, answering through DurableReplies with the given sync."""

    def __init__(self, db: Database, sync: object) -> None:
        self.gateway, theirs = socket.socketpair()
        self.commits = 0
        self.replies = DurableReplies(theirs, sync)  # type: ignore[arg-type]
        self.replies.start()
        self._theirs = theirs
        self.thread = threading.Thread(
            target=serve, args=(theirs, db, writer_test_calls.CALLS, self._committed, self.replies.send)
        )
        self.thread.start()
        self.reader = FrameReader(self.gateway)
        assert self.reader.next() == b""  # ready

    def _committed(self) -> None:
        self.commits += 1

    def close(self) -> bool:
        self.gateway.close()
        self.thread.join(timeout=10)
        answered = self.replies.close()
        self._theirs.close()
        return answered


def test_an_answer_waits_for_the_wals_fsync_while_the_writer_runs_the_next_group(
    database: Database,
) -> None:
    released = threading.Event()
    syncs: list[int] = []

    def sync() -> None:
        released.wait(10)
        syncs.append(writer.commits)

    writer = _Writer(database, sync)
    try:
        writer.gateway.sendall(GETPID)
        writer.gateway.settimeout(NO_ANSWER_WITHIN_S)
        with pytest.raises(TimeoutError):
            writer.gateway.recv(1)  # committed, but the WAL is not on disk yet: no answer
        writer.gateway.sendall(GETPID)
        deadline = time.monotonic() + 10
        while writer.commits < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert writer.commits == 2  # the second group ran while the first waited for its fsync
        released.set()
        writer.gateway.settimeout(10)
        first, second = writer.reader.next(), writer.reader.next()
        assert first is not None and second is not None
        assert wire.loads(first) == wire.loads(second) == [(True, os.getpid())]
        # The second group's answer waited for an fsync that began after its commit.
        assert syncs[-1] == 2
    finally:
        released.set()
        assert writer.close()


def test_a_failed_fsync_answers_nothing_more_and_ends_the_writer(database: Database) -> None:
    def sync() -> None:
        raise OSError(5, "Input/output error")

    writer = _Writer(database, sync)
    writer.gateway.sendall(GETPID)
    writer.gateway.settimeout(10)
    assert writer.reader.next() is None  # the socket ends without an answer
    writer.thread.join(timeout=10)
    assert not writer.thread.is_alive()  # the writer's loop ended with it
    assert writer.close() is False


def test_answers_of_a_group_that_ran_nothing_need_no_fsync(database: Database) -> None:
    syncs: list[None] = []
    writer = _Writer(database, lambda: syncs.append(None))
    try:
        writer.gateway.sendall(frame(pickle.dumps(os.system)))
        assert isinstance(wire.loads(writer.reader.next() or b""), str)  # refused, with why
        assert syncs == []
    finally:
        assert writer.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")
def test_the_syncer_fsyncs_the_wal_file(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    monkeypatch.setattr(
        wal_sync, "_fdatasync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}"))
    )
    wal_syncer(str(tmp_path / "sync.db"))()
    assert synced == [str(tmp_path / "sync.db-wal")]


def test_only_the_writers_connection_leaves_the_fsync_to_its_caller(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'modes.db'}"
    upgrade(make_engine(url))
    for synced_by_caller, expected in ((False, 2), (True, 1)):  # 2: FULL, 1: NORMAL
        engine = make_engine(url, wal_synced_by_caller=synced_by_caller)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar_one() == expected
        engine.dispose()
    with sqlite3.connect(tmp_path / "modes.db") as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_the_writer_process_commits_with_normal_and_answers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'writer.db'}"
    engine = make_engine(url)
    upgrade(engine)
    db = Database(engine)
    db.start_writer_process(json_logs=True, calls_module=CALLS_MODULE)
    try:
        assert asyncio.run(db.call(writer_test_calls.synchronous, db)) == 1
    finally:
        db.dispose()

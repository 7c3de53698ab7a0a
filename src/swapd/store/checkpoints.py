"""WAL checkpoints of the writer process, mostly off its thread.

A checkpoint copies the pages that commits appended to the WAL back into the database file, and
fsyncs both. SQLite runs one inside the COMMIT that takes the WAL past ``wal_autocheckpoint``
pages, on the committing thread: the writer's. With its default 1,000 pages that was a checkpoint
every one or two call groups in the closed loop of ``bench.swaps`` (a group of ~54 calls appends
~700 pages), 2 to 8 ms each, a fifth of the writer's time, while the other core was partly idle.

So the writer process gives the copying to a thread with a connection of its own, nudged after
each commit and paced (``CHECKPOINT_INTERVAL_S``) so that a page rewritten by many groups is
copied once. sqlite3 lets go of the GIL while a statement runs: the copying overlaps the next
group's calls. The writer's own connection checkpoints only past ``WRITER_AUTOCHECKPOINT_PAGES``.
That checkpoint is still needed: the WAL starts again from its beginning only at the first write
after a checkpoint that copied every frame, which the thread's checkpoints, racing the writer's
next COMMIT, rarely achieve. It finds most frames copied already, so it is short.

The thread runs at a lower CPU priority (``CHECKPOINT_NICE``): on a machine where the cores are
busy, the writer, the event loop and the WAL's fsync come first, and the copying takes what is
left. Should it fall behind, the writer's own checkpoint bounds the WAL as before.

A PASSIVE checkpoint never waits for the writer or a reader: when it cannot copy a frame yet, it
copies the ones it can and the next nudge goes on from there. Durability does not depend on it:
every commit is in the WAL, fsynced, before its calls are answered (swapd.store.wal_sync).
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading

import structlog

log = structlog.get_logger(__name__)

# The writer's own checkpoint (see above): the WAL holds at most about this many pages of
# SQLITE_PAGE_SIZE between two restarts, 32 MiB with 1 KiB pages. Checkpoints that large must run
# on the thread, not in the writer, whose commit they would stall by up to 20 ms (measurements:
# docs/perf-log.md, round 8).
WRITER_AUTOCHECKPOINT_PAGES = 32_000
CHECKPOINT_INTERVAL_S = 0.1  # at most one checkpoint of the thread per interval
# Added to the thread's nice value (Linux: per thread; raising it needs no privilege). At +10 it
# weighs about a tenth of a thread at the default when they contend for a core.
CHECKPOINT_NICE = 10
_STOP_TIMEOUT_S = 10.0
# A checkpoint that cannot get at the file (another process holds it exclusively) gives up after
# this and waits for the next nudge, rather than holding up stop().
_BUSY_TIMEOUT_S = 1.0


class Checkpointer:
    """A thread that checkpoints the WAL of the SQLite file at ``path`` when nudged."""

    def __init__(self, path: str, *, interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        self._path = path
        self._interval_s = interval_s
        self._nudged = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.checkpoints = 0  # completed PRAGMA wal_checkpoint calls (for tests and logs)
        self.failures = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="swapd-wal-checkpoints", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        """Something was committed: checkpoint when the interval allows."""
        self._nudged.set()

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        self._nudged.set()
        thread.join(timeout=_STOP_TIMEOUT_S)
        self._thread = None

    def _run(self) -> None:
        _lower_priority(CHECKPOINT_NICE)
        try:
            connection = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_S
            )
        except sqlite3.Error as error:
            log.error("wal_checkpointer_not_started", error=str(error))
            return
        try:
            while not self._stopping.is_set():
                self._nudged.wait()
                if self._stopping.is_set():
                    break
                self._nudged.clear()
                self._checkpoint(connection)
                # Pace: frames that arrive meanwhile wait for the next checkpoint, so that a page
                # written by many groups (an operator account, an index's inner pages) is copied
                # once, not once a group.
                self._stopping.wait(self._interval_s)
        finally:
            connection.close()

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            # The copy is fsynced before the WAL may be reused: as durable as the writer's own.
            # (Set each time: even a PRAGMA can find the file locked, and this one costs nothing.)
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.checkpoints += 1
        except sqlite3.Error as error:
            # Nothing is lost: the frames stay in the WAL, for the next checkpoint or the writer's.
            self.failures += 1
            log.warning("wal_checkpoint_failed", error=str(error))


def _lower_priority(increment: int) -> None:
    """Raise the calling thread's nice value by ``increment``. On Linux a thread's nice value is
    its own (setpriority with the thread's id); elsewhere it would be the whole process's, so
    nothing is changed there."""
    if not sys.platform.startswith("linux"):
        return
    thread_id = threading.get_native_id()
    try:
        os.setpriority(
            os.PRIO_PROCESS, thread_id, os.getpriority(os.PRIO_PROCESS, thread_id) + increment
        )
    except OSError as error:
        log.warning("wal_checkpointer_priority_unchanged", error=str(error))

"""The writer process's answers, sent once the WAL holding their commits is on disk.

With synchronous=FULL SQLite fsyncs the WAL inside each COMMIT, on the writer's thread: the
writer sat in fsync once a group, and every call queued behind that group waited with it. On a
disk shared with other work a flush can take tens of milliseconds (bench.swaps at 250 swaps/s:
COMMIT p99 9-18 ms, up to 105 ms), and a writer that waits makes the next groups larger and
slower. So the writer's connection commits with synchronous=NORMAL (the WAL frames written, not
yet fsynced) and hands each group's answers to a thread of this module, which fsyncs the WAL file
and only then sends them, while the writer runs the next group. One fsync covers every group
committed before it: groups that commit during an fsync share the next one.

Durability: no call is answered before the WAL frames of its commit are on disk, as with FULL,
so a power cut takes back only commits that nobody was told about (SQLite replays the WAL up to
the first frame that is not whole: a lost commit goes with every later one). Unlike FULL, other
connections (the API, reports, the CLI) may read a commit up to one fsync before it is on disk,
and a power cut in that window takes back what they read. The database stays consistent
(synchronous=NORMAL in WAL mode), and a crash of the process alone loses nothing committed.

A failed fsync leaves it unknown what reached the disk (and Linux may have marked the pages
clean): the writer answers nothing more and ends, and the gateway fails the calls it held as
when the writer dies (WriterUnavailable: may or may not have committed).
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import threading
from collections.abc import Callable

from swapd.logger import get_logger

log = get_logger(__name__)

# What a group's answers are handed to: its answer frames, and whether the group committed.
Reply = Callable[[bytes, bool], None]
_fdatasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


def wal_syncer(database_path: str) -> Callable[[], None]:
    """A function that fsyncs the WAL file of the SQLite file at ``database_path``. It opens the
    file each time: an fsync through any descriptor of a file writes all of its dirty pages,
    and a descriptor kept open could outlive the file (the last connection closing deletes it)."""
    wal_path = f"{database_path}-wal"

    def sync() -> None:
        fd = os.open(wal_path, os.O_RDONLY)
        try:
            _fdatasync(fd)
        finally:
            os.close(fd)

    return sync


class DurableReplies:
    """Sends answer frames on ``sock`` in the order given, those of committed groups after
    ``sync`` (the WAL's fsync) has returned; from a thread of its own."""

    def __init__(self, sock: socket.socket, sync: Callable[[], None]) -> None:
        self._sock = sock
        self._sync = sync
        # Bounded by the gateway: it has at most WriterClient.IN_FLIGHT frames unanswered.
        self._queue: queue.SimpleQueue[tuple[bytes, bool] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="swapd-wal-sync", daemon=True)
        self.failed = False  # an fsync or a send failed: nothing more was answered
        self.syncs = 0

    def start(self) -> None:
        self._thread.start()

    def send(self, answers: bytes, committed: bool) -> None:
        """Queue a group's answer frames (a Reply)."""
        self._queue.put((answers, committed))

    def close(self) -> bool:
        """Send what is queued, then stop the thread. False when an fsync or a send failed."""
        self._queue.put(None)
        self._thread.join()
        return not self.failed

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[tuple[bytes, bool]] = []
            item = self._queue.get()
            while item is not None:
                batch.append(item)
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            stopping = item is None
            if batch and not self.failed:
                self._answer(batch)

    def _answer(self, batch: list[tuple[bytes, bool]]) -> None:
        try:
            if any(committed for _, committed in batch):
                self._sync()
                self.syncs += 1
        except OSError as error:
            log.critical("wal_fsync_failed", error=repr(error))
            self._give_up()
            return
        try:
            self._sock.sendall(b"".join(answers for answers, _ in batch))
        except OSError:
            self._give_up()  # the gateway is gone; what committed stays committed

    def _give_up(self) -> None:
        """Answer nothing more, and end the writer's loop: its next read of the socket ends."""
        self.failed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

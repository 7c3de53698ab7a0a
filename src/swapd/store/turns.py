"""Turns at writing one SQLite file, across processes.

SQLite lets one connection write at a time and makes the others wait in its busy handler, which
polls with sleeps of 1 to 100 ms. A process that writes back to back (the writer process under
load, see swapd.store.writer) frees the file for microseconds between transactions, so a writer
in another process (the HTTP API in the server process, a CLI command) could poll for the whole
busy timeout and fail. Here writers queue instead, with two POSIX record locks on a side file
(``<database>-turns``): a writer first takes the *queue* lock, then the *write* lock, then lets
the queue lock go. Whoever waits for the write lock holds the queue lock meanwhile, so the
process that just wrote queues behind it for its next transaction: turns alternate.

Record locks belong to a process, not to a thread: threads of one process are kept apart by
``Database``'s own commit lock, which is held around every use of these turns.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import sqlalchemy as sa

from swapd.store.engine import sqlite_file_path

try:
    import fcntl
except ImportError:  # Windows: no record locks; SQLite's busy handler alone decides
    fcntl = None  # type: ignore[assignment]

_QUEUE = 0  # byte offsets of the two locks in the side file
_WRITE = 1


class Turns:
    def __init__(self, database_path: str) -> None:
        self.path = f"{database_path}-turns"
        self._fd: int | None = None  # opened at the first write: readers leave no file behind

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the write turn for the block (blocking until it comes)."""
        if fcntl is None:
            yield
            return
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, _QUEUE)
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, _WRITE)
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, _QUEUE)
        try:
            yield
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, _WRITE)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def for_url(url: sa.URL) -> Turns | None:
    """Turns for a SQLite database file; None for an in-memory database (one process only)."""
    path = sqlite_file_path(url)
    return None if path is None else Turns(path)

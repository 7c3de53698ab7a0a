"""``swapd serve --workers N``: N server processes on one port and one PostgreSQL database.

Each worker is a whole server (gateway, API, console, its background loops) in a process of its
own, started fresh (multiprocessing's spawn: nothing of the parent's threads or connections is
inherited). Each listens on a socket of its own bound to the same address with SO_REUSEPORT:
the kernel spreads new connections over the workers by their addresses, so stations are spread
evenly, and a socket that closes with its worker takes no one else's connections with it.

What the workers share goes through the database (see docs/DEPLOY-workers.md): a station's
session, boot state, queued commands and local list; NOTIFY wakes the worker that holds a
station's socket (swapd.gateway.listen, swapd.gateway.presence). The metrics are kept in
prometheus_client's multiprocess mode, in a directory of this run, so that /metrics on any
worker counts all of them (swapd.gateway.metrics).

This process only supervises: it forwards SIGTERM and SIGINT (Ctrl-C) to the workers, waits for
their graceful shutdown (``STOP_TIMEOUT_S``, then SIGKILL), and starts a worker again when one
dies unexpectedly, giving up (all stop, exit 1) after ``MAX_RESTARTS`` within
``RESTART_WINDOW_S``. A worker whose supervisor was killed outright stops itself.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

import structlog

from swapd.gateway.metrics import MULTIPROCESS_DIR_ENV

MAX_WORKERS = 64
STOP_TIMEOUT_S = 30.0
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
RESTART_DELAY_S = 1.0
ORPHAN_CHECK_S = 1.0

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class WorkerSettings:
    """What each worker needs to serve (picklable: it is sent to the spawned process)."""

    database: str | None
    host: str
    port: int
    certfile: str | None
    keyfile: str | None
    client_ca: str | None
    ca_dir: Path | None
    json_logs: bool
    read_database: str | None = None  # the replica (swapd.store.replica); None: the primary
    listen_database: str | None = None  # where to LISTEN; None: the rule of replica.listen_url


def shared_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) with SO_REUSEPORT, for one worker to listen on. ``port``
    must be a real one (not 0): every worker's socket binds the same."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _stop_quietly(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def _stop_when_orphaned(supervisor_pid: int) -> None:
    """A supervisor killed outright (SIGKILL) cannot stop its workers: each stops itself, as
    on SIGTERM, once its parent is no longer the supervisor, so none keeps the port."""
    while os.getppid() == supervisor_pid:
        time.sleep(ORPHAN_CHECK_S)
    os.kill(os.getpid(), signal.SIGTERM)


def worker_main(index: int, sock: socket.socket, settings: WorkerSettings) -> None:
    """One worker: open the database (migrated already by the parent) and serve on ``sock``."""
    # Until uvicorn takes over the signals, and when it raises them again after its graceful
    # shutdown: end without a traceback.
    signal.signal(signal.SIGTERM, _stop_quietly)
    signal.signal(signal.SIGINT, _stop_quietly)
    threading.Thread(
        target=_stop_when_orphaned, args=(os.getppid(),), name="swapd-orphan-check", daemon=True
    ).start()
    from swapd.gateway.server import serve
    from swapd.logs import configure_logging
    from swapd.store.database import Database
    from swapd.store.replica import listen_url, read_database

    configure_logging(json_logs=settings.json_logs)
    structlog.contextvars.bind_contextvars(worker=index)
    db = Database.open(settings.database)
    serve(
        db,
        host=settings.host,
        port=settings.port,
        certfile=settings.certfile,
        keyfile=settings.keyfile,
        client_ca=settings.client_ca,
        ca_dir=settings.ca_dir,
        writer_process=False,  # PostgreSQL: the calls run in this process's call threads
        json_logs=settings.json_logs,
        sock=sock,
        read_db=read_database(db, settings.read_database),
        listen_url=listen_url(db, settings.listen_database),
    )


class Supervisor:
    def __init__(
        self,
        settings: WorkerSettings,
        count: int,
        *,
        on_bound: Callable[[], None] | None = None,
        target: Callable[[int, socket.socket, WorkerSettings], None] = worker_main,
    ) -> None:
        """``on_bound``: called once every worker's socket is bound (the caller may then let go
        of a socket that kept the port meanwhile). ``target``: what each worker process runs
        (an importable function: the process is spawned)."""
        assert 1 <= count <= MAX_WORKERS
        self.settings = settings
        self.count = count
        self._on_bound = on_bound
        self._target = target
        self._context = multiprocessing.get_context("spawn")
        self.workers: dict[int, BaseProcess] = {}
        self.stopping = False
        self._signals = 0
        self._restarts: deque[float] = deque(maxlen=MAX_RESTARTS)  # when, the latest
        self.restarts = 0
        self.metrics_dir = ""

    def _start(self, index: int) -> None:
        sock = shared_socket(self.settings.host, self.settings.port)
        try:
            process = self._context.Process(
                target=self._target,
                args=(index, sock, self.settings),
                name=f"swapd-worker-{index}",
            )
            process.start()
        finally:
            # The worker has its own copy now: one that dies closes its socket, and the kernel
            # stops sending it connections.
            sock.close()
        self.workers[index] = process
        log.info("worker_started", worker=index, pid=process.pid)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        self.stopping = True
        for process in self.workers.values():
            if process.pid is None or not process.is_alive():
                continue
            # Once: the graceful shutdown; again: do not wait for it.
            os.kill(process.pid, signal.SIGTERM if self._signals == 1 else signal.SIGKILL)
        log.info("workers_stopping", signal=signal.Signals(signum).name)

    def run(self) -> int:
        """Serve until a signal stops the workers; the exit code (0, or 1 after a crash loop)."""
        self.metrics_dir = tempfile.mkdtemp(prefix="swapd-metrics-")
        os.environ[MULTIPROCESS_DIR_ENV] = self.metrics_dir  # inherited by every worker spawned
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(self.count):
                self._start(index)
            if self._on_bound is not None:
                self._on_bound()
            return self._watch()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.environ.pop(MULTIPROCESS_DIR_ENV, None)
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

    def _watch(self) -> int:
        while not self.stopping:
            sentinels = [p.sentinel for p in self.workers.values()]
            wait(sentinels, timeout=0.5)
            for index, process in list(self.workers.items()):
                if process.is_alive() or self.stopping:
                    continue
                self._forget(process)
                log.error("worker_died", worker=index, pid=process.pid, exit_code=process.exitcode)
                now = time.monotonic()
                if len(self._restarts) == MAX_RESTARTS and now - self._restarts[0] < RESTART_WINDOW_S:
                    log.error("workers_crash_loop", restarts=MAX_RESTARTS, within_s=RESTART_WINDOW_S)
                    self.stopping = True
                    return 1
                self._restarts.append(now)
                self.restarts += 1
                time.sleep(RESTART_DELAY_S)
                if not self.stopping:
                    self._start(index)
        return 0

    def _stop_all(self) -> None:
        for process in self.workers.values():
            if process.pid is not None and process.is_alive() and self._signals == 0:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for index, process in self.workers.items():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker_killed", worker=index, pid=process.pid)
                process.kill()
                process.join(5)
            self._forget(process)
        log.info("workers_stopped", workers=len(self.workers))

    def _forget(self, process: BaseProcess) -> None:
        """A worker that ended: its live gauges no longer count (multiprocess mode)."""
        if process.pid is None or not self.metrics_dir:
            return
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(process.pid, self.metrics_dir)  # type: ignore[no-untyped-call]

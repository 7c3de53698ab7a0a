"""A real ``swapd serve`` process on a free port: started with its JSON log in a file, waited for
until it answers /healthz with all its server processes started, and stopped by its own process
id. The benchmarks (``bench._common.swapd_server``) and the tests that run real servers
(tests/deploy, tests/integration/test_serve_workers.py) all launch it through here."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SWAPD_MODULE = (sys.executable, "-m", "swapd.cli")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
LOG_TAIL = 3000  # characters of the log an error shows
# /healthz of a server on this machine, never through a proxy of the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServeProcess:
    """A ``swapd serve --json-logs`` process, its port and its log."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict[str, Any]]:
        """The log's JSON lines (anything else a process printed is left out)."""
        return [json.loads(line) for line in self.log_text().splitlines() if line.startswith("{")]

    def started_workers(self) -> int:
        """How many server processes logged the end of their start (uvicorn's lifespan; each
        listens right after it)."""
        with contextlib.suppress(OSError):
            return self.log_text().count('"Application startup complete."')
        return 0


def launch(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    program: Sequence[str] = SWAPD_MODULE,
) -> ServeProcess:
    """``PROGRAM serve --json-logs --port PORT ARGS`` on a free port, with exactly ``env`` and
    its output to ``log_path``; returns at once (see ``wait_until_serving``)."""
    port = free_port()
    command = [*program, "serve", "--json-logs", "--port", str(port), *args]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(env))
    return ServeProcess(process, port, log_path)


def wait_until_serving(
    server: ServeProcess, *, workers: int = 1, timeout_s: float = START_TIMEOUT_S
) -> None:
    """Until /healthz answers 200 and ``workers`` server processes have started (``--workers``:
    until each has, the kernel sends every connection to those that have). RuntimeError with
    the log's end if the process exits first or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"swapd serve exited ({server.process.returncode}): {server.log_text()[-LOG_TAIL:]}"
            )
        try:
            with _DIRECT.open(f"{server.http}/healthz", timeout=2) as response:
                if response.status == 200 and server.started_workers() >= workers:
                    time.sleep(0.5 if workers > 1 else 0)  # from the last lifespan to listening
                    return
        except OSError:  # not listening yet, or not healthy yet (an HTTPError)
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"swapd serve did not answer /healthz in {timeout_s:.0f} s: "
                f"{server.log_text()[-LOG_TAIL:]}"
            )
        time.sleep(0.1)


def stop(server: ServeProcess, *, timeout_s: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM (a graceful stop), then SIGKILL after ``timeout_s``; the exit code. A process
    that has already ended is left as it is."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode


@contextlib.contextmanager
def serving(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    log_path: Path,
    workers: int = 1,
    program: Sequence[str] = SWAPD_MODULE,
    start_timeout_s: float = START_TIMEOUT_S,
    stop_timeout_s: float = STOP_TIMEOUT_S,
) -> Iterator[ServeProcess]:
    """``swapd serve ARGS`` (see ``launch``) from when it serves until the block ends."""
    server = launch(args, env=env, log_path=log_path, program=program)
    try:
        wait_until_serving(server, workers=workers, timeout_s=start_timeout_s)
        yield server
    finally:
        stop(server, timeout_s=stop_timeout_s)

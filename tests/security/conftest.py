"""Attacks end to end: each test starts a real ``swapd serve`` process and talks to it only as an
outsider can, over HTTP and WebSocket on loopback.

``serve`` starts a server on a database the test prepared in-process beforehand (through the
services, as the CLI would), waits until ``/healthz`` answers and stops it at the end of the test.
Loopback is all of 127.0.0.0/8 on Linux, so a test can play several client addresses by binding
its sockets to 127.0.0.2, 127.0.0.3, ... (``local_address``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from bench._serve import free_port

from swapd.store.engine import make_engine, upgrade

START_TIMEOUT_S = 120.0  # a loaded 2-core CI machine has taken over 60 s to start a server
STOP_TIMEOUT_S = 15.0


@dataclass
class Server:
    """A running ``swapd serve``: where it listens, its database and what it logged."""

    port: int
    database_url: str
    log_path: Path
    process: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, station_id: str) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp/{station_id}"

    def log(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")

    def client(self, *, local_address: str | None = None, timeout_s: float = 30.0) -> httpx.Client:
        transport = httpx.HTTPTransport(local_address=local_address) if local_address else None
        return httpx.Client(base_url=self.http_url, timeout=timeout_s, transport=transport)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)


def migrated_sqlite_url(directory: Path, name: str = "swapd.db") -> str:
    url = f"sqlite:///{directory / name}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


ServeFactory = Callable[..., Server]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeFactory]:
    """``serve(database_url, env={...}, args=[...])`` starts a server; all stop after the test.

    The environment is the test process's, less every ``SWAPD_*`` and ``STRIPE_*`` variable (a
    server with the defaults an operator gets), plus ``env``.
    """
    started: list[Server] = []

    def start(
        database_url: str, *, env: dict[str, str] | None = None, args: list[str] | None = None
    ) -> Server:
        port = free_port()
        log_path = tmp_path / f"serve-{port}.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("SWAPD_", "STRIPE_"))}
        environment.update(env or {})
        command = [
            sys.executable,
            "-m",
            "swapd.cli",
            "serve",
            "--database",
            database_url,
            "--port",
            str(port),
            "--json-logs",
            *(args or []),
        ]
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, env=environment
            )
        server = Server(port, database_url, log_path, process, env or {})
        started.append(server)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"swapd serve exited with {process.returncode}:\n{server.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.http_url}/healthz", timeout=2.0).status_code == 200:
                    return server
            time.sleep(0.1)
        server.stop()
        pytest.fail(f"swapd serve did not answer /healthz in {START_TIMEOUT_S} s:\n{server.log()}")

    yield start
    for server in started:
        server.stop()

"""``swapd serve`` takes its port before anything else: a port in use stops it with one line on
stderr and exit 2, before it opens the database or starts the writer process. The socket it
bound for that check is the one the server listens on.

Each test runs the real ``swapd serve`` in a subprocess.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REFUSAL_TIMEOUT_S = 60.0  # the refusal itself is immediate; starting Python on a loaded machine is not
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SWAPD_", "STRIPE_"))}


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "swapd.cli", "serve", "--json-logs", *args]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that another server is listening on."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_a_port_in_use_stops_serve_before_the_database_is_opened(tmp_path: Path, busy_port: int) -> None:
    started = time.monotonic()
    result = subprocess.run(
        serve_command("--database", "./x.db", "--port", str(busy_port)),
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=REFUSAL_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"error: port {busy_port} on 127.0.0.1 is in use; is another swapd serve running? "
        "choose another with --port"
    ]
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no database, no -wal, no -turns file
    assert time.monotonic() - started < REFUSAL_TIMEOUT_S


def test_an_address_not_on_this_machine_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        serve_command("--database", "./x.db", "--host", "192.0.2.1", "--port", "8000"),
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=REFUSAL_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot listen on port 8000 on 192.0.2.1: ")
    assert list(tmp_path.iterdir()) == []


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_listens_on_the_socket_it_checked_and_takes_a_database_path(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            serve_command("--database", "./x.db", "--port", str(port)),
            cwd=tmp_path,
            env=environment(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, log_path.read_text(errors="replace")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2.0).status_code == 200:
                    break
            assert time.monotonic() < deadline, log_path.read_text(errors="replace")
            time.sleep(0.1)
        assert (tmp_path / "x.db").is_file()
        assert f'"ocpp_url": "ws://127.0.0.1:{port}/ocpp/{{station_id}}"' in log_path.read_text()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)
    # uvicorn ends a server stopped by SIGINT as the signal would (130), after a clean shutdown.
    assert process.returncode in (0, 130, -signal.SIGINT), log_path.read_text(errors="replace")
    assert "Application shutdown complete." in log_path.read_text()

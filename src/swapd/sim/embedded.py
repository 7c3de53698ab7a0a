"""A swapd server inside this process (the simulator's, a test's): uvicorn in a background thread
on a free port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from swapd.gateway.server import uvicorn_config
from swapd.store.database import Database

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def embedded_server(
    db: Database,
    *,
    certfile: str | None = None,
    keyfile: str | None = None,
    client_ca: str | None = None,
    ca_dir: Path | None = None,
    port: int | None = None,
) -> Iterator[str]:
    """Serve the swapd app on 127.0.0.1 (on ``port``, else a free one); yields its ws:// (wss://
    with a certificate) base URL and stops it on exit. ``client_ca`` and ``ca_dir``: security
    profile 3, as ``uvicorn_config`` takes them."""
    port = port or free_port()
    config = uvicorn_config(
        db, port=port, certfile=certfile, keyfile=keyfile, client_ca=client_ca, ca_dir=ca_dir
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="swapd-sim-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the embedded server did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"{'wss' if certfile else 'ws'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=STOP_TIMEOUT_S)

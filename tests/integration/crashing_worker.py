"""A worker for swapd.gateway.workers.Supervisor's tests that dies as soon as it starts (its own
module, small: the supervisor spawns a fresh interpreter that imports it)."""

from __future__ import annotations

import os
import socket

from swapd.gateway.workers import WorkerSettings

EXIT_CODE = 3


def crash(_index: int, sock: socket.socket, _settings: WorkerSettings) -> None:
    sock.close()
    os._exit(EXIT_CODE)

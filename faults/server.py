"""``swapd serve`` as a separate process that the drills can kill with SIGKILL and start again
on the same port."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench._common import process_tree

START_TIMEOUT_S = 60.0


def swapd_executable() -> str:
    return shutil.which("swapd") or str(Path(sys.executable).parent / "swapd")


class ServerProcess:
    def __init__(self, database_url: str, port: int) -> None:
        self.database_url = database_url
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        # stderr to a file, not a pipe: a pipe nobody reads would block a chatty server.
        handle, name = tempfile.mkstemp(prefix="swapd-serve-", suffix=".log")
        self._log = os.fdopen(handle, "wb")
        self._log_path = Path(name)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start and wait until /healthz answers 200; the seconds it took."""
        assert self.process is None or self.process.poll() is not None, "already running"
        started = time.monotonic()
        env = {**os.environ, "SWAPD_DATABASE_URL": self.database_url}
        self.process = subprocess.Popen(
            [swapd_executable(), "serve", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        self.starts += 1
        deadline = started + START_TIMEOUT_S
        # One client for every poll: httpx.get builds an SSL context each call (~35 ms of CPU),
        # which at 20 polls a second took CPU from the server's own start on a two-core machine.
        with httpx.Client(timeout=1) as client:
            while True:
                try:
                    if client.get(f"{self.http_url}/healthz").status_code == 200:
                        return time.monotonic() - started
                except httpx.TransportError:
                    pass
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"swapd serve did not start: {self.log_tail()}")
                time.sleep(0.05)

    def kill9(self) -> None:
        """SIGKILL: no shutdown handler runs, no transaction gets to finish."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.kills += 1

    def kill9_writer(self) -> int:
        """SIGKILL the server's writer process (SQLite; see swapd.store.writer), not the server:
        the server must fail the calls the writer held and start another. Its pid."""
        assert self.process is not None
        children = process_tree(self.process.pid)[1:]
        if not children:
            raise RuntimeError("the server has no writer process (is the database SQLite?)")
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        self.kills += 1
        return children[0]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log_tail(self, chars: int = 3000) -> str:
        self._log.flush()
        return self._log_path.read_text(errors="replace")[-chars:]

    def close(self) -> None:
        self.stop()
        self._log.close()
        self._log_path.unlink(missing_ok=True)

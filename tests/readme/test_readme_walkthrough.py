"""The README, followed as written by a newcomer: from a fresh clone in an empty directory, its
install line, then every command of its marked blocks from another empty directory.

The commands come from README.md itself (see ``walkthrough.py`` for the marks and for the few
values a reader copies from one answer into a later command), so a README change that breaks a
command breaks this test. The clone is of the committed tree: it is what a newcomer gets.

``uv tool install .`` installs into the test's directory (``UV_TOOL_DIR``, ``UV_TOOL_BIN_DIR``),
whose bin directory is first on PATH: nothing outside the test's directory changes. ``swapd
serve`` runs in the background until the next ``swapd serve`` or the end; while it runs, the test
plays each station added so far with a minimal OCPP 2.1 station that accepts every
``RequestBatterySwap``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import httpx
import pytest

from tests.gateway.conftest import Connected, LiveServer, booted
from tests.readme.walkthrough import (
    Remembered,
    WalkthroughError,
    commands,
    is_serve,
    marked_blocks,
    refusal,
)
from tests.security.conftest import START_TIMEOUT_S, STOP_TIMEOUT_S, free_port

REPO = Path(__file__).resolve().parents[2]
INSTALL_BLOCK = "install"
BLOCKS = ("install", "network", "api", "top-up")  # every one must be in the README, in this order
COMMAND_TIMEOUT_S = 180.0  # `uv tool install .` on a cold cache downloads every dependency
T = TypeVar("T")


class PlayedStation:
    """A station connected and booted, answering on an event loop of its own thread."""

    def __init__(self, port: int, station_id: str, password: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        server = LiveServer(f"ws://127.0.0.1:{port}")
        self.connected: Connected = self._run(booted(server, station_id, password))

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(30)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._run(self.connected.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Walkthrough:
    def __init__(self, root: Path) -> None:
        self.clone = root / "clone"
        self.work = root / "work"  # "from any directory": neither the clone nor the test's
        self.work.mkdir()
        tools = root / "uv-tools"
        self.bin = tools / "bin"
        venv_bin = str(Path(sys.prefix) / "bin")
        path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SWAPD_", "STRIPE_")) and k not in ("VIRTUAL_ENV", "PYTHONPATH")
        }
        self.env.update(
            UV_TOOL_DIR=str(tools / "venvs"),
            UV_TOOL_BIN_DIR=str(self.bin),
            PATH=os.pathsep.join([str(self.bin), *path]),
        )
        self.remembered = Remembered(port=free_port())
        self.server: subprocess.Popen[bytes] | None = None
        self.server_log = root / "serve.log"
        self.stations: list[PlayedStation] = []
        self.ran: list[tuple[str, float]] = []

    def run(self, command: str, cwd: Path) -> None:
        filled = self.remembered.fill_in(command)
        if is_serve(filled):
            self.start_server(filled)
            return
        started = time.monotonic()
        try:
            done = subprocess.run(
                ["bash", "-c", filled],
                cwd=cwd,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as timeout:
            self.fail(filled, f"did not finish in {COMMAND_TIMEOUT_S} s", str(timeout.stderr or ""))
        self.ran.append((command, time.monotonic() - started))
        if done.returncode != 0:
            self.fail(filled, f"exit code {done.returncode}", done.stderr, done.stdout)
        if command.startswith("curl") and (refused := refusal(done.stdout)) is not None:
            self.fail(filled, f"HTTP refusal {refused}", done.stderr, done.stdout)
        self.remembered.learn(command, done.stdout)

    def start_server(self, command: str) -> None:
        self.stop_server()
        with self.server_log.open("ab") as log:
            self.server = subprocess.Popen(
                ["bash", "-c", command],
                cwd=self.work,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as a whole
            )
        health = f"http://127.0.0.1:{self.remembered.port}/healthz"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                self.fail(command, f"exited with {self.server.returncode}", self.log())
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(health, timeout=2.0).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            self.fail(command, f"no answer at {health} in {START_TIMEOUT_S} s", self.log())
        for station_id, password in self.remembered.station_passwords.items():
            self.stations.append(PlayedStation(self.remembered.port, station_id, password))

    def stop_server(self) -> None:
        for station in self.stations:
            station.close()
        self.stations.clear()
        if self.server is None or self.server.poll() is not None:
            return
        os.killpg(self.server.pid, signal.SIGINT)
        try:
            self.server.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait(STOP_TIMEOUT_S)

    def log(self) -> str:
        return self.server_log.read_text(errors="replace") if self.server_log.exists() else ""

    def fail(self, command: str, what: str, stderr: str, stdout: str = "") -> NoReturn:
        server = self.log()[-3000:]
        pytest.fail(
            f"README command failed: {command}\n{what}\n--- stderr\n{stderr}\n--- stdout\n"
            f"{stdout[-3000:]}" + (f"\n--- swapd serve log (tail)\n{server}" if server else ""),
            pytrace=False,
        )


@pytest.fixture
def walkthrough(tmp_path: Path) -> Iterator[Walkthrough]:
    for tool in ("git", "uv", "curl"):
        if shutil.which(tool) is None:
            pytest.fail(f"the README walkthrough needs {tool} on PATH")
    if not (REPO / ".git").exists():
        pytest.fail(f"{REPO} is not a git clone: the walkthrough starts from `git clone`")
    walk = Walkthrough(tmp_path)
    try:
        yield walk
    finally:
        walk.stop_server()


def test_the_readme_install_line_and_commands_work_as_written_from_a_fresh_clone(
    walkthrough: Walkthrough,
) -> None:
    clone = walkthrough.clone
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    blocks = marked_blocks((clone / "README.md").read_text())
    missing = [name for name in BLOCKS if name not in blocks]
    assert not missing, f"README.md has no block marked <!-- walkthrough: NAME --> for {missing}"
    assert list(blocks) == list(BLOCKS), f"README's walkthrough blocks are {list(blocks)}"

    started = time.monotonic()
    for command in blocks[INSTALL_BLOCK]:
        walkthrough.run(command, clone)
    installed = shutil.which("swapd", path=walkthrough.env["PATH"])
    assert installed is not None and Path(installed).parent == walkthrough.bin, installed
    for name in BLOCKS[1:]:
        for command in blocks[name]:
            walkthrough.run(command, walkthrough.work)

    slowest = sorted(walkthrough.ran, key=lambda ran: -ran[1])[:3]
    print(f"walkthrough: {time.monotonic() - started:.0f} s; slowest {slowest}")


README_SAMPLE = """
<!-- walkthrough: first (a note) -->
```sh
swapd serve   # keep it running
curl -s localhost:8000/x -H 'a: #1' \\
     -d '{"password": "..."}'    # -> {"token": "sws_..."}
```
<!-- walkthrough: second -->
```sh
SWAPD_PAYMENT_PROVIDER=sandbox swapd serve
curl -s localhost:8000/y -H "Authorization: Bearer sws_..."
```
"""


def test_marked_blocks_are_read_with_comments_removed_and_continued_lines_joined() -> None:
    assert marked_blocks(README_SAMPLE) == {
        "first": [
            "swapd serve",
            """curl -s localhost:8000/x -H 'a: #1' -d '{"password": "..."}'""",
        ],
        "second": [
            "SWAPD_PAYMENT_PROVIDER=sandbox swapd serve",
            'curl -s localhost:8000/y -H "Authorization: Bearer sws_..."',
        ],
    }
    assert marked_blocks("```sh\nswapd serve\n```\n") == {}  # unmarked blocks are not run


def test_placeholders_are_filled_from_earlier_answers_and_the_port_is_the_test_s() -> None:
    remembered = Remembered(port=43210)
    assert remembered.fill_in("SWAPD_X=1 swapd serve") == "SWAPD_X=1 swapd serve --port 43210"
    with pytest.raises(WalkthroughError, match="no a `swapd user add`"):
        remembered.fill_in('curl -d \'{"password": "..."}\'')
    remembered.learn("swapd user add a@example.com", "added admin\npassword (shown once): pw-1\n")
    remembered.learn("curl -s localhost:8000/login", '{"token": "sws_abc", "kind": "session"}')
    remembered.learn("curl -s localhost:8000/top-ups", '{"id": "pay_123", "status": "pending"}')
    filled = remembered.fill_in(
        'curl localhost:8000/p/pay_.../pay -H "Bearer sws_..." -d \'{"password": "..."}\''
    )
    assert filled == (
        'curl localhost:43210/p/pay_123/pay -H "Bearer sws_abc" -d \'{"password": "pw-1"}\''
    )
    assert commands("a \\\n  b\n\n# only a comment\n") == ["a b"]
    assert is_serve("A=1 B=2 swapd serve --port 1") and not is_serve("swapd server")
    assert refusal('{"code": "unauthorized", "detail": "no"}') is not None
    assert refusal('{"token": "sws_abc"}') is None

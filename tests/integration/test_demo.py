"""``swapd demo`` as a newcomer runs it: a process that seeds a demo network, serves the console
with two staff logins it prints, keeps swaps flowing, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from swapd.store import schema as t
from swapd.store.engine import make_engine
from tests.integration.cli_process import SWAPD
from tests.security.conftest import free_port

READY_TIMEOUT_S = 120.0
SWAPS_TIMEOUT_S = 60.0


def _read_until_ready(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    seen = []
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("Ctrl-C stops it"):
            return "".join(seen)
    process.kill()
    raise AssertionError("the demo did not say it was running:\n" + "".join(seen))


def test_the_demo_serves_a_believable_network_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port, database = free_port(), tmp_path / "demo.db"
    env = {**os.environ, "COLUMNS": "200"}
    process = subprocess.Popen(
        [str(SWAPD), "demo", "--port", str(port), "--database", str(database),
         "--speed", "600"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    try:
        banner = _read_until_ready(process)
        assert "20 stations, 200 riders" in banner
        admin = re.search(r"admin\s+(\S+)\s+password (\S+)", banner)
        assert admin is not None, banner
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            form = {"email": admin.group(1), "password": admin.group(2)}
            assert client.post("/login", data=form).status_code == 303  # signed in: to the overview
            stations = client.get("/stations").text
            assert "Gangnam Station Exit 10" in stations and "Mapo Bridge North" in stations
        engine = make_engine(f"sqlite:///{database}")
        completed = 0
        deadline = time.monotonic() + SWAPS_TIMEOUT_S
        while completed == 0 and time.monotonic() < deadline:
            time.sleep(1)
            with engine.connect() as connection:
                query = sa.select(sa.func.count()).where(t.swaps.c.state == "completed")
                completed = connection.execute(query.select_from(t.swaps)).scalar_one()
        engine.dispose()
        assert completed > 0, "no swap completed while the demo ran"
        # One Ctrl-C under `uv run` arrives twice (the terminal's and uv's forwarded copy): before
        # the demo ignored the copy, the second cut its shutdown short and the summary was lost.
        process.send_signal(signal.SIGINT)
        time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
        assert process.returncode == 0, rest
        assert re.search(r"demo stopped: [\d,]+ swaps completed", rest), rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

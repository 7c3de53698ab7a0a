"""What the swapd benchmarks share: the result line, databases made and dropped for one run,
a real ``swapd serve`` process (launched through bench._serve), and facts about the machine."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from bench._serve import serving

# Benchmarks talk to people on stderr; stdout's last line is the machine-readable result.
console = Console(stderr=True)

PG_ADMIN_URL = os.environ.get("SWAPD_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SERVER_START_TIMEOUT_S = 60.0
SWAPD_BIN = Path(sys.executable).with_name("swapd")


def emit(name: str, metrics: dict[str, Any], targets: dict[str, str], notes: str) -> None:
    """The result contract: one JSON object on the last stdout line. A target is "<op> <number>"
    on the metric of the same key (e.g. {"swaps_per_s_sqlite": ">= 500"})."""
    print(json.dumps({"name": name, "metrics": metrics, "targets": targets, "notes": notes}))
    sys.stdout.flush()


def load_average() -> dict[str, float]:
    one, five, fifteen = os.getloadavg()
    return {"loadavg_1m": round(one, 2), "loadavg_5m": round(five, 2), "loadavg_15m": round(fifteen, 2)}


def raise_fd_limit() -> int:
    """The soft limit on open files up to the hard one (each WebSocket is one descriptor)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1_048_576
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list (0.0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


# -- databases -------------------------------------------------------------------------------


def pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except Exception:
        return False


@contextlib.contextmanager
def fresh_database(kind: str, tag: str) -> Iterator[str]:
    """A new empty database for one benchmark run, removed afterwards: a SQLite file in a
    temporary directory, or a PostgreSQL database ``swapd_bench_<tag>`` on the test server."""
    if kind == "sqlite":
        directory = tempfile.mkdtemp(prefix=f"swapd-bench-{tag}-")
        try:
            yield f"sqlite:///{directory}/swapd.db"
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    import psycopg

    name = f"swapd_bench_{tag}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def postgres_version() -> str:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else "unknown"
    except Exception as error:
        return f"unreachable ({type(error).__name__})"


# -- the server ------------------------------------------------------------------------------


@dataclass
class Server:
    url: str  # ws://127.0.0.1:PORT
    http: str  # http://127.0.0.1:PORT
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_bytes(self) -> int:
        """Resident memory of the server and its writer process (SQLite), together."""
        return sum(rss_bytes(pid) for pid in process_tree(self.pid))

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"{self.http}/metrics", timeout=10) as response:
            return str(response.read().decode())


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc): ``swapd serve`` on SQLite runs its service
    calls in a child process (swapd.store.writer), whose CPU and memory count as the server's."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, []))
    return tree


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (Linux)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0  # exited meanwhile
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def swapd_server(
    database_url: str, serve_args: Sequence[str] = (), *, workers: int = 1
) -> Iterator[Server]:
    """``swapd serve`` as its own OS process (uvicorn), on a free port, until the block ends.
    Its logs go to a file: at hundreds of messages a second a terminal would be the bottleneck.
    ``workers``: the server processes ``serve_args`` asks for (``--workers``), all of which must
    have started before the block begins (until then the kernel gives them no connection)."""
    log_dir = Path(tempfile.mkdtemp(prefix="swapd-bench-log-"))
    env = {**os.environ, "SWAPD_DATABASE_URL": database_url}
    raise_fd_limit()  # the server inherits the raised limit on open files
    try:
        with serving(
            serve_args,
            env=env,
            log_path=log_dir / "serve.log",
            workers=workers,
            program=[str(SWAPD_BIN)],
            start_timeout_s=SERVER_START_TIMEOUT_S,
        ) as serve:
            yield Server(serve.ws, serve.http, serve.process, serve.log_path)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)


# -- the machine -----------------------------------------------------------------------------


def machine_facts() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram_gib = "unknown"
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gib = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    from swapd import __version__

    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "swapd": __version__,
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version(),
    }


BUSY_STATUSES = (429, 503)


async def connect_station(url: str, *, open_timeout: float, **options: Any) -> Any:
    """A station's WebSocket, retried as a real station retries: the server answers a burst of
    first connections beyond what its password pool takes with 503 (or 429) and Retry-After, and
    a station comes back after that many seconds. Gives up at ``open_timeout``."""
    import asyncio

    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    deadline = time.monotonic() + open_timeout
    while True:
        try:
            return await connect(url, open_timeout=max(1.0, deadline - time.monotonic()), **options)
        except InvalidStatus as refused:
            response = refused.response
            if response.status_code not in BUSY_STATUSES or time.monotonic() >= deadline:
                raise
            retry_s = float(response.headers.get("Retry-After", "1") or 1)
            await asyncio.sleep(min(retry_s, max(0.0, deadline - time.monotonic())))

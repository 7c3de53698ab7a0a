"""Real processes of the multi-machine layout, on this machine: PgBouncer in transaction mode in
front of the test PostgreSQL, and ``swapd serve`` processes. Each is started by the test and
stopped by its own process id.

PgBouncer refuses to run as root: under root (CI) it runs as the ``postgres`` user, with its
configuration in a directory of its own that that user can read.
"""

from __future__ import annotations

import configparser
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from bench._serve import ServeProcess, free_port, serving

REQUIRE_PGBOUNCER = "SWAPD_REQUIRE_PGBOUNCER"
START_TIMEOUT_S = 60.0  # a loaded 2-core machine: swapd imports and migrates in a few seconds
RUN_AS = "postgres"
SHIPPED_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "pgbouncer" / "pgbouncer.ini"


def pgbouncer_binary() -> str:
    """The pgbouncer program; skips without one, or fails under SWAPD_REQUIRE_PGBOUNCER=1
    (.ci/run installs Debian's pgbouncer and sets it)."""
    found = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if Path(p).exists()), None
    )
    if found is None:
        if os.environ.get(REQUIRE_PGBOUNCER) == "1":
            pytest.fail(f"{REQUIRE_PGBOUNCER}=1 but no pgbouncer here (apt-get install pgbouncer)")
        pytest.skip("no pgbouncer here (apt-get install pgbouncer)")
    return found


@dataclass
class Bouncer:
    port: int
    log: Path

    def url(self, direct_url: str) -> str:
        """``direct_url`` with this PgBouncer's address in place of the server's."""
        return (
            sa.make_url(direct_url)
            .set(host="127.0.0.1", port=self.port)
            .render_as_string(hide_password=False)
        )


@contextmanager
def pgbouncer(upstream_url: str, *, pool_size: int = 4) -> Iterator[Bouncer]:
    """PgBouncer with the deployment's configuration (transaction mode) on a free port, for every
    database of the server of ``upstream_url`` (trust auth, as the test server has).
    ``pool_size`` server connections per database and user: fewer than swapd's client
    connections, so that consecutive transactions of one client run on different server
    connections, and session state would show."""
    binary = pgbouncer_binary()
    upstream = sa.make_url(upstream_url)
    directory = Path(tempfile.mkdtemp(prefix="swapd-pgbouncer-"))
    port = free_port()
    (directory / "users.txt").write_text(f'"{upstream.username}" ""\n')
    (directory / "pgbouncer.ini").write_text(_config(upstream, port, directory / "users.txt", pool_size))
    user = None
    if os.geteuid() == 0:
        user = RUN_AS
        account = pwd.getpwnam(RUN_AS)
        for path in (directory, *directory.iterdir()):
            os.chown(path, account.pw_uid, account.pw_gid)
    log = directory / "pgbouncer.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [binary, str(directory / "pgbouncer.ini")],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            user=user,
        )
    try:
        _wait_for_port(port, process, log)
        yield Bouncer(port, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)


def _config(upstream: sa.URL, port: int, users: Path, pool_size: int) -> str:
    """The pgbouncer.ini that compose.yaml ships (deploy/pgbouncer/), with this machine's
    addresses, trust auth and the pool size given in place of the deployment's: the pooling
    settings tested are the ones deployed."""
    shipped = configparser.ConfigParser(interpolation=None)
    shipped.read_string(SHIPPED_CONFIG.read_text())
    settings = dict(shipped["pgbouncer"])
    settings.update(
        listen_addr="127.0.0.1",
        listen_port=str(port),
        auth_type="trust",
        auth_file=str(users),
        default_pool_size=str(pool_size),
    )
    assert settings["pool_mode"] == "transaction"
    lines = ["[databases]", f"* = host={upstream.host or '127.0.0.1'} port={upstream.port or 5432}"]
    lines.append("[pgbouncer]")
    lines.extend(f"{key} = {value}" for key, value in settings.items())
    return "\n".join(lines) + "\n"


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pgbouncer exited ({process.returncode}): {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"pgbouncer did not listen on {port}: {log.read_text()[-2000:]}")


@contextmanager
def swapd_serve(log: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[ServeProcess]:
    """``swapd serve ARGS`` on a free port, with no SWAPD_* setting of the test's own environment
    but the sandbox payment provider and ``env``; waits for /healthz."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SWAPD_", "STRIPE_"))}
    environment["SWAPD_PAYMENT_PROVIDER"] = "sandbox"
    environment.update(env or {})
    with serving(
        args, env=environment, log_path=log, start_timeout_s=START_TIMEOUT_S, stop_timeout_s=15
    ) as server:
        yield server

"""A PostgreSQL primary and its streaming replica on this machine, for trying swapd's read-replica
layout (docs/DEPLOY.md) by hand; tests/deploy/test_read_replica.py starts the same pair.

Run from the repository root as root or as the ``postgres`` user::

    uv run python -m scripts.replica_pair

It makes a new cluster with ``initdb`` in a temporary directory (trust auth on 127.0.0.1, the
replication line included), starts it on a free port, copies it with ``pg_basebackup -R -X stream``
(which writes ``standby.signal`` and ``primary_conninfo``), starts the copy as a hot standby on
another free port, prints both URLs and waits for Ctrl-C; then stops both and deletes the
directory. The cluster of the machine is not touched: its pg_hba.conf need not allow replication.
The pair costs about two seconds to start.

Then, in other shells::

    swapd serve --database PRIMARY_URL --read-database REPLICA_URL
    curl -s localhost:8000/healthz            # "replica": {"status": "ok", "lag_s": 0.0}
    swapd statements export --month 2026-12 --out /tmp --database PRIMARY_URL \\
        --read-database REPLICA_URL
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

RUN_AS = "postgres"  # initdb and postgres refuse root
START_TIMEOUT_S = 60


@dataclass(frozen=True)
class Pair:
    primary_url: str
    replica_url: str
    directory: Path


PROGRAMS = ("initdb", "pg_ctl", "createdb", "pg_basebackup")


def server_binaries() -> Path | None:
    """The directory that holds initdb, pg_ctl, createdb and pg_basebackup together: Debian's
    newest version, else the directory of ``pg_ctl`` on PATH."""
    candidates = [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version)]
    candidates.reverse()
    on_path = shutil.which("pg_ctl")
    if on_path is not None:
        candidates.append(Path(on_path).parent)
    return next((d for d in candidates if all((d / p).exists() for p in PROGRAMS)), None)


def _version(path: str) -> int:
    number = Path(path).parent.name
    return int(number) if number.isdigit() else 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def streaming_pair(database: str = "swapd") -> Iterator[Pair]:
    """A primary with the empty database ``database`` and a hot standby streaming from it; both
    stopped and deleted afterwards."""
    binaries = server_binaries()
    if binaries is None:
        raise FileNotFoundError("no PostgreSQL server programs (initdb) here")
    directory = Path(tempfile.mkdtemp(prefix="swapd-replica-"))
    user = None
    if os.geteuid() == 0:
        user = RUN_AS
        account = pwd.getpwnam(RUN_AS)
        os.chown(directory, account.pw_uid, account.pw_gid)
    primary, replica = directory / "primary", directory / "replica"
    primary_port, replica_port = free_port(), free_port()

    def run(*command: str) -> None:
        done = subprocess.run(command, user=user, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {done.stdout}{done.stderr}")

    def options(port: int) -> str:
        # The socket in our directory (not /var/run/postgresql); fsync off: a test's throwaway.
        return f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c fsync=off"

    started: list[Path] = []
    try:
        run(
            str(binaries / "initdb"),
            "-D",
            str(primary),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        run(
            str(binaries / "pg_ctl"),
            "-D",
            str(primary),
            "-o",
            options(primary_port),
            "-l",
            str(directory / "primary.log"),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "start",
        )
        started.append(primary)
        run(
            str(binaries / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(primary_port),
            "-U",
            "postgres",
            database,
        )
        run(
            str(binaries / "pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(primary_port),
            "-U",
            "postgres",
            "-D",
            str(replica),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        )
        run(
            str(binaries / "pg_ctl"),
            "-D",
            str(replica),
            "-o",
            options(replica_port),
            "-l",
            str(directory / "replica.log"),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "start",
        )
        started.append(replica)
        yield Pair(
            f"postgresql+psycopg://postgres@127.0.0.1:{primary_port}/{database}",
            f"postgresql+psycopg://postgres@127.0.0.1:{replica_port}/{database}",
            directory,
        )
    finally:
        for data in reversed(started):
            subprocess.run(
                [str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                user=user,
                capture_output=True,
                check=False,
            )
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    with streaming_pair() as pair:
        print(f"primary: {pair.primary_url}")
        print(f"replica: {pair.replica_url}")
        print(f"logs:    {pair.directory}/primary.log, replica.log")
        print("Ctrl-C stops both and deletes them.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    sys.exit(main())

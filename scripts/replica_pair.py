"""A PostgreSQL primary and its streaming replica on this machine, for trying swapd's read-replica
layout (docs/DEPLOY.md) by hand; tests/deploy/test_read_replica.py starts the same pair.

Run from the repository root, as root (the servers then run as the ``postgres`` user) or as a
user who may run PostgreSQL::

    uv run python -m scripts.replica_pair

It makes a private cluster with ``initdb`` (faults.pg: a temporary directory, trust auth on
127.0.0.1, replication allowed) on a free port, copies it with ``pg_basebackup -R -X stream``,
starts the copy as a hot standby on another free port, prints both URLs and waits for Ctrl-C;
then stops both and deletes them. The machine's own cluster is not touched. The pair takes about
two seconds to start.

Then, in other shells::

    swapd db upgrade --database PRIMARY_URL
    swapd serve --database PRIMARY_URL --read-database REPLICA_URL
    curl -s http://127.0.0.1:8000/healthz     # "replica": {"status": "ok", "lag_s": 0.0}
    swapd statements export --month 2026-12 --out /tmp --database PRIMARY_URL \\
        --read-database REPLICA_URL
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from faults.pg import PrivatePostgres, postgres_bin


@dataclass(frozen=True)
class Pair:
    primary_url: str
    replica_url: str


def can_run() -> bool:
    """Whether this machine has PostgreSQL's server programs (initdb, pg_basebackup)."""
    return postgres_bin() is not None


@contextmanager
def streaming_pair(database: str = "swapd") -> Iterator[Pair]:
    """A primary with the empty database ``database`` and a hot standby streaming from it; both
    stopped and deleted afterwards."""
    primary = PrivatePostgres()
    replica: PrivatePostgres | None = None
    try:
        primary.init()
        primary.start()
        primary.create_database(database)
        replica = PrivatePostgres()
        replica.init_standby_of(primary)
        replica.start()
        yield Pair(primary.url(database), replica.url(database))
    finally:
        if replica is not None:
            replica.close()
        primary.close()


def main() -> None:
    with streaming_pair() as pair:
        print(f"primary: {pair.primary_url}")
        print(f"replica: {pair.replica_url}")
        print("Ctrl-C stops both and deletes them.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

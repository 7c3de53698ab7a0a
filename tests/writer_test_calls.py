"""The calls table of tests/integration/test_writer_process.py: what its tests send to a writer
process (passed as ``calls_module``), beside a service call the gateway sends too."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

import sqlalchemy as sa

from swapd.services import catalog
from swapd.store.database import Database


def wal_autocheckpoint_pages(db: Database) -> int:
    return int(db.read(lambda tx: tx.repo.execute(sa.text("PRAGMA wal_autocheckpoint")).scalar_one()))


def synchronous(db: Database) -> int:
    """PRAGMA synchronous of the connection the calls run on (1: NORMAL, 2: FULL)."""
    return int(db.read(lambda tx: tx.repo.execute(sa.text("PRAGMA synchronous")).scalar_one()))


def fail_with(error: BaseException) -> None:
    raise error


CALLS: Mapping[str, Callable[..., object]] = {
    "getpid": os.getpid,
    "sleep": time.sleep,
    "int": int,
    "fail_with": fail_with,
    "add_pack_model": catalog.add_pack_model,
    "wal_autocheckpoint_pages": wal_autocheckpoint_pages,
    "synchronous": synchronous,
}

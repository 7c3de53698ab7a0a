"""Bounds on what one read returns: pages for lists, batches for exports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from swapd.store.database import Database

MAX_PAGE = 500  # operator lists
RIDER_MAX_PAGE = 100  # what a rider's app asks for in one page
EXPORT_BATCH_ROWS = 2_000  # rows fetched per round trip while streaming an export


def clamp_limit(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE))


def stream(db: Database, query: sa.Select[Any]) -> Iterator[sa.Row[Any]]:
    """Rows of one query from one snapshot, fetched in batches: memory stays bounded."""
    with db.engine.connect() as connection, connection.begin():
        result = connection.execution_options(yield_per=EXPORT_BATCH_ROWS).execute(query)
        yield from result

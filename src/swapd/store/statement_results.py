"""What a statement of the swap path gives back: its rows, fetched at once, as tuples that are
also attributes and a mapping (swapd.store.prepared, and on PostgreSQL swapd.store.prepared_pg)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa


class PreparedRow(tuple[Any, ...]):
    """A result row: a tuple whose items are also attributes (``row.id``) and a mapping
    (``row._mapping["id"]``), like ``sqlalchemy.Row`` for the uses the services make of it."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()

    @property
    def _mapping(self) -> dict[str, Any]:
        return dict(zip(self._fields, self, strict=True))


class PreparedResult:
    """The rows of one run, fetched at once (the swap path reads a handful of rows at most)."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: Sequence[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return list(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if len(self._rows) != 1:
            if not self._rows:
                raise sa.exc.NoResultFound("No row was found when one was required")
            raise sa.exc.MultipleResultsFound("Multiple rows were found when exactly one was required")
        return self._rows[0]

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

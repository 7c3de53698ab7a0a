"""The column types and checks the tables share: timestamps that are aware UTC in Python on
both databases, and the CHECK that an integer column holds an integer in a range."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timestamps are aware UTC in Python; SQLite stores them naive, PostgreSQL as timestamptz."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    # SQLite: one function each way instead of ours wrapped around SQLAlchemy's (a dict-format
    # of seven fields per value bound); a swap binds and reads some forty timestamps on the one
    # thread that writes. The text is SQLAlchemy's storage format exactly (tested against it).
    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)
        return _sqlite_text

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        return _sqlite_datetime


def _sqlite_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"a timestamp must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; use aware UTC datetimes")
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_datetime(value: str | None) -> datetime | None:
    if value is None:
        return None
    at = datetime.fromisoformat(value)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


class BoundedInteger(sa.ColumnElement[bool]):
    """A CHECK constraint's text: ``column`` holds an integer in ``low..high``.

    PostgreSQL's BIGINT holds nothing but 64-bit integers, so the range is all it needs. SQLite
    keeps what it cannot convert in an integer column as it came (a float past 64 bits, a text),
    so it also checks the stored type. One constraint, one name, each database's text."""

    inherit_cache = False  # DDL only: never part of a cached statement

    def __init__(self, column: str, low: int, high: int) -> None:
        self.column, self.low, self.high = column, low, high


@compiles(BoundedInteger)
def _bounded_integer(element: BoundedInteger, _compiler: SQLCompiler, **_kw: Any) -> str:
    return f"{element.column} BETWEEN {element.low} AND {element.high}"


@compiles(BoundedInteger, "sqlite")
def _bounded_integer_sqlite(element: BoundedInteger, _compiler: SQLCompiler, **_kw: Any) -> str:
    column = element.column
    return f"typeof({column}) = 'integer' AND {column} BETWEEN {element.low} AND {element.high}"


def bounded(column: str, low: int, high: int) -> sa.CheckConstraint:
    """The CHECK that ``column`` is an integer in ``low..high``, named ``<column>_bounded``."""
    return sa.CheckConstraint(BoundedInteger(column, low, high), name=f"{column}_bounded")

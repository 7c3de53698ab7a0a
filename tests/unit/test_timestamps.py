"""SQLite timestamps: our one-step processors write and read exactly what SQLAlchemy's own
DateTime processors, wrapped by UTCDateTime's, would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import sqlite

from swapd.store.column_types import UTCDateTime

DIALECT = sqlite.dialect()
# As SQLAlchemy and store.prepared take them: from the type adapted to the dialect.
TYPE = UTCDateTime().dialect_impl(DIALECT)
OURS_BIND = TYPE.bind_processor(DIALECT)
OURS_RESULT = TYPE.result_processor(DIALECT, None)
# What SQLAlchemy composes for a TypeDecorator when the decorator does not step in.
THEIRS_BIND = sa.types.TypeDecorator.bind_processor(TYPE, DIALECT)
THEIRS_RESULT = sa.types.TypeDecorator.result_processor(TYPE, DIALECT, None)

offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
aware = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2999, 12, 30), timezones=st.just(UTC) | offsets
)


def test_the_fast_processors_are_the_ones_in_use() -> None:
    assert OURS_BIND is not None and OURS_RESULT is not None
    assert OURS_BIND.__name__ == "_sqlite_text"
    assert OURS_RESULT.__name__ == "_sqlite_datetime"


@given(aware)
def test_bound_text_is_sqlalchemys(value: datetime) -> None:
    assert OURS_BIND is not None and THEIRS_BIND is not None
    assert OURS_BIND(value) == THEIRS_BIND(value)


@given(aware)
def test_read_back_is_sqlalchemys_and_the_same_instant_in_utc(value: datetime) -> None:
    assert OURS_BIND is not None and OURS_RESULT is not None and THEIRS_RESULT is not None
    text = OURS_BIND(value)
    read = OURS_RESULT(text)
    assert read == THEIRS_RESULT(text)
    assert read == value and read.tzinfo is UTC


def test_whole_seconds_keep_six_digits_of_microseconds() -> None:
    assert OURS_BIND is not None
    assert OURS_BIND(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02 03:04:05.000000"


def test_rows_written_before_without_microseconds_still_read() -> None:
    assert OURS_RESULT is not None
    assert OURS_RESULT("2026-01-02 03:04:05") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_none_passes_and_bad_values_are_refused() -> None:
    assert OURS_BIND is not None and OURS_RESULT is not None
    assert OURS_BIND(None) is None and OURS_RESULT(None) is None
    with pytest.raises(ValueError, match="naive datetime"):
        OURS_BIND(datetime(2026, 1, 2))
    with pytest.raises(TypeError):
        OURS_BIND("2026-01-02")

"""Which database URLs name one SQLite file (swapd.store.engine.sqlite_file_path): the writer
process, the turns at the file and the read-only commands all ask this one question."""

from __future__ import annotations

import pytest

from swapd.store.engine import sqlite_file_path


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///swapd.db", "swapd.db"),
        ("sqlite:////var/lib/swapd/swapd.db", "/var/lib/swapd/swapd.db"),
        ("sqlite:///file:/var/lib/swapd/swapd.db?uri=true", "/var/lib/swapd/swapd.db"),
        ("sqlite:///file:///var/lib/swapd/swapd.db?uri=true", "/var/lib/swapd/swapd.db"),
        ("sqlite:///file:swapd.db?mode=rwc&uri=true", "swapd.db"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("sqlite:///file:shared?mode=memory&cache=shared&uri=true", None),
        ("sqlite:///file::memory:?uri=true", None),
        ("postgresql+psycopg://postgres@127.0.0.1/test", None),
        ("postgresql://postgres@127.0.0.1/test", None),
        ("not a url", None),
    ],
)
def test_sqlite_file_path(url: str, path: str | None) -> None:
    assert sqlite_file_path(url) == path

"""Which database URLs name one SQLite file (swapd.store.engine.sqlite_file_path): the writer
process, the turns at the file and the read-only commands all ask this one question. What the
operator gives may also be a plain file path, which is a SQLite file (database_url)."""

from __future__ import annotations

import pytest

from swapd.store.engine import database_url, sqlite_file_path


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
        ("./x.db", "./x.db"),
        ("x.db", "x.db"),
        ("/srv/swapd/x.db", "/srv/swapd/x.db"),
        ("C:\\swapd\\x.db", "C:\\swapd\\x.db"),
        ("postgresql://postgres@127.0.0.1:notaport/test", None),
    ],
)
def test_sqlite_file_path(url: str, path: str | None) -> None:
    assert sqlite_file_path(url) == path


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("./x.db", "sqlite:///./x.db"),
        ("x.db", "sqlite:///x.db"),
        ("/srv/swapd/x.db", "sqlite:////srv/swapd/x.db"),
        ("sqlite:///relative.db", "sqlite:///relative.db"),
        ("sqlite:////srv/swapd/x.db", "sqlite:////srv/swapd/x.db"),
        ("postgres://swapd@db/swapd", "postgresql+psycopg://swapd@db/swapd"),
        ("postgresql://swapd@db/swapd", "postgresql+psycopg://swapd@db/swapd"),
        ("postgresql+psycopg://swapd@db/swapd", "postgresql+psycopg://swapd@db/swapd"),
    ],
)
def test_database_url_takes_a_url_or_a_file_path(given: str, url: str) -> None:
    assert database_url(given) == url


def test_a_path_in_the_environment_is_a_file_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWAPD_DATABASE_URL", "./from-env.db")
    assert database_url(None) == "sqlite:///./from-env.db"


def test_a_home_relative_path_is_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/operator")
    assert database_url("~/swapd.db") == "sqlite:////home/operator/swapd.db"


def test_the_default_is_swapd_db_in_the_working_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWAPD_DATABASE_URL", raising=False)
    assert sqlite_file_path(None) == "swapd.db"

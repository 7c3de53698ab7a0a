"""A plain file path names a SQLite database wherever a URL does: ``--database ./x.db``,
``--database /srv/swapd/x.db`` and ``SWAPD_DATABASE_URL=./x.db``, for every command. A path that
cannot hold one (a missing directory, a file that is not a database) stops the command with one
line that names it, exit 2, and leaves the file as it was.

Each test runs the real ``swapd`` command in a subprocess, in a working directory of its own.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.cli_process import succeeded, swapd


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one line on stderr of a command that had to stop, exit 2."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def made_and_read(cwd: Path, database: str) -> None:
    """Create the schema at ``database``, then read it back with two other commands."""
    assert "is up to date" in succeeded(swapd("db", "upgrade", "--database", database, cwd=cwd))
    assert "ledger is consistent" in succeeded(swapd("ledger", "check", "--database", database, cwd=cwd))
    assert json.loads(succeeded(swapd("rider", "list", "--database", database, "--json", cwd=cwd))) == []


def test_a_relative_path_is_a_database_file_in_the_working_directory(tmp_path: Path) -> None:
    made_and_read(tmp_path, "./x.db")
    assert (tmp_path / "x.db").is_file()


def test_a_bare_file_name_is_a_database_file_in_the_working_directory(tmp_path: Path) -> None:
    made_and_read(tmp_path, "x.db")
    assert (tmp_path / "x.db").is_file()


def test_an_absolute_path_is_a_database_file(tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    database = tmp_path / "srv" / "x.db"
    made_and_read(elsewhere, str(database))
    assert database.is_file()
    assert list(elsewhere.iterdir()) == []


def test_a_path_in_swapd_database_url_is_a_database_file(tmp_path: Path) -> None:
    env = {"SWAPD_DATABASE_URL": "./from-env.db"}
    succeeded(swapd("db", "upgrade", cwd=tmp_path, env=env))
    assert json.loads(succeeded(swapd("rider", "list", "--json", cwd=tmp_path, env=env))) == []
    assert (tmp_path / "from-env.db").is_file()


def test_a_relative_sqlite_url_still_names_a_file_in_the_working_directory(tmp_path: Path) -> None:
    made_and_read(tmp_path, "sqlite:///relative.db")
    assert (tmp_path / "relative.db").is_file()


@pytest.mark.parametrize(
    "command",
    [["db", "upgrade"], ["rider", "list"], ["serve", "--port", "0"], ["sim"]],
    ids=["db upgrade", "rider list", "serve", "sim"],
)
def test_a_missing_directory_is_named_in_one_line(tmp_path: Path, command: list[str]) -> None:
    line = refused(swapd(*command, "--database", "./no-such-dir/x.db", cwd=tmp_path))
    assert "directory ./no-such-dir does not exist" in line
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_command_names_the_missing_database(tmp_path: Path) -> None:
    line = refused(swapd("ledger", "check", "--database", "./no-such-dir/x.db", cwd=tmp_path))
    assert "no database at ./no-such-dir/x.db" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["db", "upgrade"], ["rider", "list"]], ids=" ".join)
def test_a_missing_directory_on_an_absolute_path_is_named(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "srv" / "swapd"
    line = refused(swapd(*command, "--database", str(missing / "x.db"), cwd=tmp_path))
    assert f"directory {missing} does not exist" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command",
    [
        ["db", "upgrade"],
        ["ledger", "check"],
        ["rider", "list"],
        ["serve", "--port", "0"],
        ["sim"],
    ],
    ids=["db upgrade", "ledger check", "rider list", "serve", "sim"],
)
def test_a_file_that_is_not_a_database_is_named_and_left_as_it_was(
    tmp_path: Path, command: list[str]
) -> None:
    text = b"notes about the swap stations\n"
    (tmp_path / "x.db").write_bytes(text)
    line = refused(swapd(*command, "--database", "./x.db", cwd=tmp_path))
    assert line.endswith("x.db is not an SQLite database")
    assert (tmp_path / "x.db").read_bytes() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.db"]  # no -wal, -shm, -journal

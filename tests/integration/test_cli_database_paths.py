"""A plain file path names a SQLite database wherever a URL does: ``--database ./x.db``,
``--database /srv/swapd/x.db`` and ``SWAPD_DATABASE_URL=./x.db``, for every command. A path that
cannot hold one (a missing directory, a file that is not a database) stops the command with one
line that names it, exit 2, and leaves the file as it was.

Each test runs the real ``swapd`` command in a subprocess, in a working directory of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

COMMAND_TIMEOUT_S = 120.0  # a loaded 2-core machine; a command here takes a few seconds


def swapd(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``swapd ARGS`` in ``cwd``, with no SWAPD_* setting from the test's own environment."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SWAPD_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "swapd.cli", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


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
    assert "is up to date" in succeeded(swapd(cwd, "db", "upgrade", "--database", database))
    assert "ledger is consistent" in succeeded(swapd(cwd, "ledger", "check", "--database", database))
    assert json.loads(succeeded(swapd(cwd, "rider", "list", "--database", database, "--json"))) == []


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
    succeeded(swapd(tmp_path, "db", "upgrade", env=env))
    assert json.loads(succeeded(swapd(tmp_path, "rider", "list", "--json", env=env))) == []
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
    line = refused(swapd(tmp_path, *command, "--database", "./no-such-dir/x.db"))
    assert "directory ./no-such-dir does not exist" in line
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_command_names_the_missing_database(tmp_path: Path) -> None:
    line = refused(swapd(tmp_path, "ledger", "check", "--database", "./no-such-dir/x.db"))
    assert "no database at ./no-such-dir/x.db" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["db", "upgrade"], ["rider", "list"]], ids=" ".join)
def test_a_missing_directory_on_an_absolute_path_is_named(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "srv" / "swapd"
    line = refused(swapd(tmp_path, *command, "--database", str(missing / "x.db")))
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
    line = refused(swapd(tmp_path, *command, "--database", "./x.db"))
    assert line.endswith("x.db is not an SQLite database")
    assert (tmp_path / "x.db").read_bytes() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.db"]  # no -wal, -shm, -journal

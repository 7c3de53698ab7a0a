"""``swapd --help`` shows the commands in four panels, and a user error with ``--json`` is one JSON
line on stderr with a stable code (exit 2), while without ``--json`` it stays one text line.

Each test runs the real ``swapd`` command in a subprocess."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.integration.cli_process import succeeded, swapd

PANELS = {
    "Network set-up": ["pack-model", "pack", "station", "plan"],
    "Riders and money": [
        "rider",
        "card",
        "topup",
        "subscribe",
        "refund",
        "adjust",
        "settle",
        "statements",
    ],
    "Operations": ["swap", "alerts", "ledger", "scenario", "sim", "archive"],
    "Server": ["demo", "serve", "db", "user", "ca", "version"],
}


def panels(help_text: str) -> dict[str, list[str]]:
    """Panel title -> the commands listed in it, in order, from rich's boxed help."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in help_text.splitlines():
        title = re.match(r"^╭─ (.+?) ─", line)
        if title:
            current = found.setdefault(title[1], [])
        elif current is not None and (command := re.match(r"^│ ([a-z][a-z-]*)\s{2,}", line)):
            current.append(command[1])
    return found


def test_help_groups_the_commands_in_four_panels() -> None:
    shown = panels(succeeded(swapd("--help")))
    assert list(shown) == ["Options", *PANELS]
    assert {title: shown[title] for title in PANELS} == PANELS


def json_error(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    error = json.loads(lines[0])
    assert isinstance(error, dict) and list(error) == ["error"], error
    assert isinstance(error["error"], dict)
    return error["error"]


def text_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0].removeprefix("error: ")


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = tmp_path / "swapd.db"
    succeeded(swapd("db", "upgrade", "--database", str(path)))
    succeeded(swapd("station", "add", "ST1", "--slots", "2", "--database", str(path)))
    return str(path)


def test_a_domain_error_with_json_carries_its_code_and_the_same_message(database: str) -> None:
    args = ("rider", "show", "NOPE", "--database", database)
    assert json_error(swapd(*args, "--json")) == {"code": "not_found", "message": "unknown rider NOPE"}
    assert text_error(swapd(*args)) == "unknown rider NOPE"
    repeated = ("station", "add", "ST1", "--slots", "2", "--database", database)
    assert json_error(swapd(*repeated, "--json")) == {
        "code": "conflict",
        "message": text_error(swapd(*repeated)),
    }


def test_errors_without_a_domain_code_have_codes_of_their_own(tmp_path: Path, database: str) -> None:
    missing = tmp_path / "none.db"
    assert json_error(swapd("ledger", "check", "--json", "--database", str(missing))) == {
        "code": "database_missing",
        "message": f"no database at {missing} (create one with `swapd db upgrade`)",
    }
    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    assert json_error(swapd("rider", "list", "--json", "--database", str(junk))) == {
        "code": "bad_database",
        "message": f"{junk} is not an SQLite database",
    }
    bad_lat = ("station", "add", "ST2", "--slots", "2", "--lat", "1.1234567", "--lon", "2")
    error = json_error(swapd(*bad_lat, "--json", "--database", database))
    assert error["code"] == "invalid_input"
    assert error["message"] == text_error(swapd(*bad_lat, "--database", database))


def test_a_rejected_pack_import_with_json_has_its_rows_on_stdout(tmp_path: Path, database: str) -> None:
    csv = tmp_path / "packs.csv"
    csv.write_text("serial,model\nP-1,NOPE\n", encoding="utf-8")
    result = swapd("pack", "import", str(csv), "--json", "--database", database)
    assert json_error(result) == {
        "code": "bad_rows",
        "message": f"1 bad rows in {csv}; nothing was imported",
    }
    assert json.loads(result.stdout)["bad_rows"] == [{"line": 2, "error": "unknown pack model NOPE"}]

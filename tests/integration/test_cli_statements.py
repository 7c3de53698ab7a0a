"""``swapd statements show`` and ``export`` through ``swapd.cli.app`` on SQLite and PostgreSQL.

The data is the scenario of test_statements.py; the service's answers are checked there, so here
the command line must carry them unchanged and refuse bad input with one line and exit code 2.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

from click.testing import Result

from swapd.cli import app
from swapd.services import statements
from swapd.services.statements import COLUMNS
from swapd.store.database import Database, ManualClock
from tests.cli_runner import CliRunner
from tests.integration.test_statements import OCTOBER, _build

runner = CliRunner()


def invoke(url: str, *args: str) -> Result:
    return runner.invoke(app, ["statements", *args, "--database", url])


def refused(url: str, *args: str) -> str:
    result = invoke(url, *args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_show_json_is_the_statement(db: Database, clock: ManualClock, db_url: str) -> None:
    _build(db, clock)
    for rider_id in ("R1", "R2", "R3"):
        result = invoke(db_url, "show", rider_id, "--month", "2026-10", "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == asdict(statements.statement(db, rider_id, OCTOBER))


def test_show_table_names_the_numbers(db: Database, clock: ManualClock, db_url: str) -> None:
    _build(db, clock)
    result = invoke(db_url, "show", "R1", "--month", "2026-10")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "statement 2026-10 of rider R1: plan energy" in text
    assert "9,150 Wh" in text and "2,745 KRW" in text  # opening
    assert "+33,333 Wh" in text and "+10,000 KRW" in text  # the October top-up
    assert "1 packs returned, 1,260 Wh metered, charged 378 KRW; 2 packs taken" in text
    r1 = statements.statement(db, "R1", OCTOBER)
    assert f"{r1.closing_allowance_units:,} Wh" in text


def test_export_writes_the_csv(db: Database, clock: ManualClock, db_url: str, tmp_path: Path) -> None:
    _build(db, clock)
    path = tmp_path / "statements.csv"
    result = invoke(db_url, "export", "--month", "2026-10", "--out", str(path), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["month"], summary["riders"], summary["file"]) == ("2026-10", 4, str(path))
    with path.open(newline="") as file:
        rows = list(csv.reader(file))
    assert tuple(rows[0]) == COLUMNS
    assert [row[1] for row in rows[1:]] == ["R1", "R2", "R3", "R4"]
    assert summary["totals"]["topup_minor"] == sum(
        int(row[COLUMNS.index("topup_minor")]) for row in rows[1:]
    )
    plain = invoke(db_url, "export", "--month", "2026-10", "--out", str(tmp_path / "again.csv"))
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.strip() == f"wrote 4 statements for 2026-10 to {tmp_path / 'again.csv'}"
    assert (tmp_path / "again.csv").read_bytes() == path.read_bytes()


def test_bad_input_is_one_line_without_traceback(
    db: Database, clock: ManualClock, db_url: str, tmp_path: Path
) -> None:
    _build(db, clock)
    assert "month must be YYYY-MM" in refused(db_url, "show", "R1", "--month", "2026-13")
    assert "month must be YYYY-MM" in refused(db_url, "export", "--month", "Oct", "--out", "x.csv")
    assert refused(db_url, "show", "R9", "--month", "2026-10") == "error: unknown rider R9"
    missing = tmp_path / "no" / "such" / "dir.csv"
    assert "No such file or directory" in refused(
        db_url, "export", "--month", "2026-10", "--out", str(missing)
    )


def test_a_bad_month_opens_no_database(tmp_path: Path) -> None:
    path = tmp_path / "never.db"
    refused(f"sqlite:///{path}", "show", "R1", "--month", "2026-1")
    assert not path.exists()

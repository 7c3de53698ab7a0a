"""``swapd serve`` refuses a bad setting before it opens the database or the port: one line on
stderr, exit 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from swapd.cli import app
from tests.cli_runner import CliRunner

runner = CliRunner()


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1.5"])
def test_a_bad_body_limit_stops_serve_with_one_line(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWAPD_MAX_BODY_BYTES", value)
    database = tmp_path / "never-made.db"
    result = runner.invoke(app, ["serve", "--database", f"sqlite:///{database}"])
    assert result.exit_code == 2, result.output
    assert "SWAPD_MAX_BODY_BYTES" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not database.exists()  # refused before the database was opened

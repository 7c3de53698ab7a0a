"""``swapd`` starts without importing the server: importing the command line loads typer, rich and
the pure domain, and a read-only command on a migrated database does not import alembic. A check
on which modules load, not on time (the machine is shared): bench/startup.py measures the time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.integration.cli_process import succeeded, swapd

HEAVY = (
    *("alembic", "sqlalchemy", "fastapi", "uvicorn", "structlog", "websockets", "ocpp", "stripe"),
    *("psycopg", "starlette", "pydantic", "httpx"),
)


# Heavy parts of packages a read-only command does need.
HEAVY_PARTS = ("sqlalchemy.dialects.postgresql", "alembic.command")


def loaded_after(code: str) -> list[str]:
    """The heavy top-level packages and parts loaded once ``code`` has run in a new interpreter."""
    probe = (
        f"import sys\n{code}\n"
        f"loaded = {{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})\n"
        f"print(sorted(loaded | (set(sys.modules) & set({HEAVY_PARTS!r}))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    found = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert isinstance(found, list)
    return [str(name) for name in found]


def test_importing_the_command_line_loads_no_heavy_module() -> None:
    assert loaded_after("import swapd.cli") == []


def test_a_read_only_command_on_a_migrated_sqlite_database_loads_only_sqlalchemy(
    tmp_path: Path,
) -> None:
    """Not alembic (the database is at head), not the PostgreSQL dialect, not structlog (nothing
    is logged), not the web server."""
    database = tmp_path / "swapd.db"
    succeeded(swapd("db", "upgrade", "--database", str(database)))
    run = (
        "from swapd.cli import app\n"
        "try:\n"
        f"    app(['rider', 'list', '--json', '--database', {str(database)!r}])\n"
        "except SystemExit as done:\n"
        "    assert done.code in (0, None), done.code\n"
    )
    assert loaded_after(run) == ["sqlalchemy"]  # the command did open the database


def test_version_prints_the_version() -> None:
    from swapd import __version__

    assert succeeded(swapd("--version")) == f"{__version__}\n"

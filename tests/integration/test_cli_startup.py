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


def loaded_after(code: str) -> list[str]:
    """The heavy top-level packages loaded once ``code`` has run in a new interpreter."""
    probe = (
        f"import sys\n{code}\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
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


def test_a_read_only_command_on_a_migrated_database_does_not_import_alembic(tmp_path: Path) -> None:
    database = tmp_path / "swapd.db"
    succeeded(swapd("db", "upgrade", "--database", str(database)))
    run = (
        "from swapd.cli import app\n"
        "try:\n"
        f"    app(['rider', 'list', '--json', '--database', {str(database)!r}])\n"
        "except SystemExit as done:\n"
        "    assert done.code in (0, None), done.code\n"
    )
    loaded = loaded_after(run)
    assert "alembic" not in loaded
    assert "sqlalchemy" in loaded  # the command did open the database


def test_version_prints_the_version() -> None:
    from swapd import __version__

    assert succeeded(swapd("--version")) == f"{__version__}\n"

"""What every ``swapd`` command shares: the options, the consoles, and the one way a user error
becomes output.

A user error is one line on stderr and exit code 2, never a traceback: ``error: <message>``, or
with ``--json`` one JSON object ``{"error": {"code": ..., "message": ...}}`` whose code is stable
(the DomainError or LedgerError code where there is one).

Light at import time on purpose (typer, rich and the pure domain only): the server, the store
and SQLAlchemy are imported inside the commands that need them, so that ``swapd --version`` and
the read-only commands start quickly.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import click
import typer
from rich.console import Console
from rich.markup import escape

from swapd.domain.errors import DomainError
from swapd.domain.quantities import Unit, bp_to_percent

if TYPE_CHECKING:
    from swapd.store.database import Database

T = TypeVar("T")

out = Console()
err = Console(stderr=True)

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        envvar="SWAPD_DATABASE_URL",
        help="SQLAlchemy URL or SQLite file path (default: ./swapd.db).",
    ),
]
ReadDatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--read-database",
        envvar="SWAPD_READ_DATABASE_URL",
        help="PostgreSQL read replica (a streaming standby) for reads that may lag: reports, "
        "statements, lists. Default: the database itself.",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON instead of tables (errors too, on stderr).")
]

# Error codes of the failures that are not a DomainError or LedgerError (those carry their own).
INVALID_INPUT = "invalid_input"
DATABASE_MISSING = "database_missing"
DATABASE_UNAVAILABLE = "database_unavailable"
DATABASE_REFUSED = "database_refused"
BAD_DATABASE = "bad_database"
OS_ERROR = "os_error"


def json_wanted() -> bool:
    """Whether the running command was given ``--json`` (its parameter is named ``as_json``)."""
    context = click.get_current_context(silent=True)
    return bool(context is not None and context.params.get("as_json"))


def fail(message: str, code: str = INVALID_INPUT, *, exit_code: int = 2) -> NoReturn:
    """One line on stderr, whatever the message holds and however narrow the terminal."""
    if json_wanted():
        sys.stderr.write(json.dumps({"error": {"code": code, "message": message}}) + "\n")
        sys.stderr.flush()
    else:
        # soft_wrap: a long message stays one line (scripts grep it; terminals wrap it themselves).
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(exit_code)


def warn(message: str) -> None:
    """An error line that does not end the command (one of several, before a ``fail``)."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _first_line(error: object) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def user_error(error: Exception) -> tuple[str, str] | None:
    """(code, one-line message) for an error the user can cause; None for a bug."""
    from swapd.ledger.model import LedgerError

    if isinstance(error, DomainError):
        return error.code, error.message
    if isinstance(error, LedgerError):
        return error.code, f"ledger refused: {error.message} ({error.code})"
    if "sqlalchemy" in sys.modules:  # else no SQLAlchemy error can have been raised
        import sqlalchemy as sa

        if isinstance(error, sa.exc.OperationalError):
            return DATABASE_UNAVAILABLE, f"database unavailable: {_first_line(error.orig)}"
        if isinstance(error, sa.exc.DBAPIError):
            return DATABASE_REFUSED, f"database refused the change: {_first_line(error.orig)}"
        if isinstance(error, sa.exc.ArgumentError):
            return BAD_DATABASE, f"bad database URL: {error}"
    if isinstance(error, OSError):
        from swapd.store.engine import DatabaseFileError

        return (BAD_DATABASE if isinstance(error, DatabaseFileError) else OS_ERROR), str(error)
    return None


@contextmanager
def clear_errors() -> Iterator[None]:
    """Turn the errors a user can cause into one line each."""
    try:
        yield
    except Exception as error:
        found = user_error(error)
        if found is None:
            raise
        fail(found[1], found[0])


def run(action: Callable[[], T]) -> T:
    with clear_errors():
        return action()
    raise AssertionError("unreachable")


def with_db(database: str | None, action: Callable[[Database], T]) -> T:
    """Open (and migrate) the database, run ``action``, close it; errors become one line."""
    with clear_errors():
        from swapd.store.database import Database

        db = Database.open(database)
        try:
            return action(db)
        finally:
            db.dispose()
    raise AssertionError("unreachable")


def with_read_db(database: str | None, read_database: str | None, action: Callable[[Database], T]) -> T:
    """``with_db`` for a report that may read a replica a little behind the primary: on the
    read replica when one is named (opened read-only, never migrated), else on the database."""
    if not read_database:
        return with_db(database, action)
    with clear_errors():
        from swapd.store.replica import open_read_database

        db = open_read_database(read_database)
        try:
            return action(db)
        finally:
            db.dispose()
    raise AssertionError("unreachable")


def refuse_missing_database(database: str | None) -> None:
    """Read-only commands must not create an empty SQLite file where none was."""
    from swapd.store.engine import missing_sqlite_file

    missing = missing_sqlite_file(database)
    if missing is not None:
        fail(f"no database at {missing} (create one with `swapd db upgrade`)", DATABASE_MISSING)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def say(text: str) -> None:
    """A line of plain output: never read as markup, never wrapped."""
    out.print(text, markup=False, highlight=False, soft_wrap=True)


def cell(value: object) -> str:
    return "" if value is None else escape(str(value))


def pct(value_bp: int) -> str:
    return bp_to_percent(value_bp)


def unit_name(unit: str, amount: int = 2) -> str:
    if unit == Unit.DELIVERIES.value:
        return "delivery" if abs(amount) == 1 else "deliveries"
    return unit


def units(amount: int, unit: str) -> str:
    return f"{amount:,} {unit_name(unit, amount)}"


def when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")

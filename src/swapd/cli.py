"""The ``swapd`` command line. Errors are one clear line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import errno
import json
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import sqlalchemy as sa
import structlog
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from swapd import __version__
from swapd.cli_operator import (
    card_app,
    money_app,
    pack_app,
    pack_model_app,
    plan_app,
    rider_app,
    station_app,
    swap_app,
)
from swapd.cli_statements import statements_app
from swapd.cli_users import user_app
from swapd.domain.errors import DomainError
from swapd.ledger.check import check_ledger
from swapd.ledger.model import LedgerError
from swapd.sim.cli import sim_command
from swapd.store.database import Database
from swapd.store.engine import display_url, make_engine, missing_sqlite_file, upgrade

app = typer.Typer(
    help="swapd: operation server for battery-swap networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The database: migrations.", no_args_is_help=True)
ledger_app = typer.Typer(help="The ledger: reconciliation.", no_args_is_help=True)
scenario_app = typer.Typer(help="Scripted sequences run through the services.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(ledger_app, name="ledger")
app.add_typer(scenario_app, name="scenario")
app.command("sim")(sim_command)
app.add_typer(pack_model_app, name="pack-model")
app.add_typer(pack_app, name="pack")
app.add_typer(station_app, name="station")
app.add_typer(plan_app, name="plan")
app.add_typer(rider_app, name="rider")
app.add_typer(card_app, name="card")
app.add_typer(swap_app, name="swap")
app.add_typer(user_app, name="user")
app.add_typer(statements_app, name="statements")
app.add_typer(money_app)  # topup, subscribe, refund, adjust, alerts

out = Console()
err = Console(stderr=True)
T = TypeVar("T")

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        envvar="SWAPD_DATABASE_URL",
        help="SQLAlchemy URL or SQLite file path (default: ./swapd.db).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def fail(message: str, code: int = 2) -> NoReturn:
    # soft_wrap: a long message stays one line (scripts grep it; terminals wrap it themselves).
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def clear_errors() -> Iterator[None]:
    """Turn the errors a user can cause into one line each."""
    try:
        yield
    except DomainError as error:
        fail(error.message)
    except LedgerError as error:
        fail(f"ledger refused: {error.message} ({error.code})")
    except sa.exc.OperationalError as error:
        fail(f"database unavailable: {str(error.orig).strip().splitlines()[0]}")
    except sa.exc.ArgumentError as error:
        fail(f"bad database URL: {error}")
    except OSError as error:
        fail(str(error))


def run(action: Callable[[], T]) -> T:
    with clear_errors():
        return action()
    raise AssertionError("unreachable")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


def _print_version(given: bool) -> None:
    if given:
        out.print(__version__)
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """swapd: operation server for battery-swap networks."""


@db_app.command("upgrade")
def db_upgrade(database: DatabaseOption = None) -> None:
    """Create or migrate the schema to the newest version."""

    def action() -> None:
        engine = make_engine(database)
        upgrade(engine)
        engine.dispose()

    run(action)
    out.print(f"database at {display_url(database)} is up to date", highlight=False, soft_wrap=True)


@ledger_app.command("check")
def ledger_check(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Recompute every balance from the transfers; exit 1 on any mismatch."""
    missing = missing_sqlite_file(database)
    if missing is not None:
        fail(f"no database at {missing} (create one with `swapd db upgrade`)")

    def action() -> Any:
        engine = make_engine(database)
        try:
            with engine.connect() as connection:
                return check_ledger(connection)
        finally:
            engine.dispose()

    report = run(action)
    if as_json:
        print_json(
            {
                "ok": report.ok,
                "accounts": report.accounts,
                "transfers": report.transfers,
                "ledgers": {name: asdict(totals) for name, totals in report.ledgers.items()},
                "problems": report.problems,
            }
        )
    else:
        table = Table("ledger", "debits posted", "credits posted", "pending", "sums to zero")
        for name, totals in report.ledgers.items():
            table.add_row(
                name,
                f"{totals.debits_posted:,}",
                f"{totals.credits_posted:,}",
                f"{totals.debits_pending:,}",
                "yes" if totals.balanced else "[red]NO[/]",
            )
        out.print(table)
        out.print(f"{report.accounts:,} accounts and {report.transfers:,} transfers checked")
        for problem in report.problems:
            err.print(f"[red]mismatch:[/] {escape(problem)}", highlight=False, soft_wrap=True)
        if report.ok:
            out.print("[green]ledger is consistent[/]")
    if not report.ok:
        raise typer.Exit(1)


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) as uvicorn binds one (SO_REUSEADDR), for uvicorn to listen
    on: bound before the database is opened or the writer process started, so a port in use
    stops ``serve`` before anything else, and kept, so no other process can take the port between
    this check and the server's start."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            fail(
                f"port {port} on {host} is in use; is another swapd serve running? "
                "choose another with --port"
            )
        fail(f"cannot listen on port {port} on {host}: {error.strerror or error}")
    return sock


@app.command()
def serve(
    database: DatabaseOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    certfile: Annotated[
        Path | None, typer.Option(help="TLS certificate (PEM): security profile 2.")
    ] = None,
    keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    json_logs: Annotated[
        bool | None,
        typer.Option("--json-logs/--console-logs", help="Log format (default: JSON unless a TTY)."),
    ] = None,
    writer_process: Annotated[
        bool,
        typer.Option(
            "--writer-process/--no-writer-process",
            help="SQLite: run the stations' service calls in a writer process of their own, "
            "so that the server can use a second core.",
        ),
    ] = True,
) -> None:
    """Serve OCPP 2.1 at ws://HOST:PORT/ocpp/{station_id}, with /healthz and /metrics."""
    from swapd.api.limits import BodyLimitConfigError, max_body_bytes_from_env
    from swapd.gateway.server import serve as serve_gateway
    from swapd.logs import configure_logging
    from swapd.payments import config as payments_config

    configure_logging(json_logs=json_logs)

    if (certfile is None) != (keyfile is None):
        fail("give both --certfile and --keyfile, or neither")
    for path in (certfile, keyfile):
        if path is not None and not path.is_file():
            fail(f"no such file: {path}")
    try:
        payment_provider = payments_config.provider_name()
        max_body_bytes_from_env()
    except (payments_config.PaymentConfigError, BodyLimitConfigError) as error:
        fail(str(error))
    sock = listening_socket(host, port)
    try:
        db = run(lambda: Database.open(database))
        port = int(sock.getsockname()[1])  # the one chosen for --port 0
        scheme = "wss" if certfile else "ws"
        structlog.get_logger("swapd").info(
            "serving",
            version=__version__,
            ocpp_url=f"{scheme}://{host}:{port}/ocpp/{{station_id}}",
            database=display_url(database),
        )
        payments_config.announce(payment_provider)
        serve_gateway(
            db,
            host=host,
            port=port,
            certfile=None if certfile is None else str(certfile),
            keyfile=None if keyfile is None else str(keyfile),
            writer_process=writer_process,
            json_logs=not sys.stderr.isatty() if json_logs is None else json_logs,
            sock=sock,
        )
    finally:
        sock.close()


@scenario_app.command("run")
def scenario_run(
    file: Annotated[Path, typer.Argument(help="A scenario file (TOML).")],
    database: DatabaseOption = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Run in a new temporary SQLite database instead.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Run a scripted sequence through the services and print balances and transfers."""
    from swapd import scenario

    def action() -> Any:
        loaded = scenario.load(file)
        with tempfile.TemporaryDirectory(prefix="swapd-scenario-") as scratch:
            url = f"sqlite:///{Path(scratch) / 'scenario.db'}" if fresh else database
            db = Database.open(url, scenario.clock_for(loaded))
            try:
                return scenario.run(db, loaded)
            finally:
                db.dispose()

    outcome = run(action)
    if as_json:
        print_json(outcome.to_json())
    else:
        scenario.render(out, outcome)
    if not outcome.ok:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

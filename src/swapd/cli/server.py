"""``swapd serve`` and ``swapd db upgrade``."""

from __future__ import annotations

import errno
import os
import secrets
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from swapd import __version__
from swapd.cli.certificates import CaDirOption, ca_directory
from swapd.cli.common import DatabaseOption, ReadDatabaseOption, fail, out, run

db_app = typer.Typer(help="The database: migrations.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(database: DatabaseOption = None) -> None:
    """Create or migrate the schema to the newest version."""
    from swapd.store.engine import display_url, make_engine, upgrade
    from swapd.store.partitions import ensure_months_now

    def action() -> None:
        engine = make_engine(database)
        upgrade(engine)
        ensure_months_now(engine)  # PostgreSQL: the coming months' partitions
        engine.dispose()

    run(action)
    out.print(f"database at {display_url(database)} is up to date", highlight=False, soft_wrap=True)


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
                "choose another with --port",
                "port_in_use",
            )
        fail(f"cannot listen on port {port} on {host}: {error.strerror or error}", "os_error")
    return sock


def serve(
    database: DatabaseOption = None,
    read_database: ReadDatabaseOption = None,
    listen_database: Annotated[
        str | None,
        typer.Option(
            "--listen-database",
            envvar="SWAPD_LISTEN_DATABASE_URL",
            help="PostgreSQL: where to LISTEN for station commands, straight to the primary when "
            "--database is a pooler in transaction mode (PgBouncer). Default: --database.",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    certfile: Annotated[
        Path | None, typer.Option(help="TLS certificate (PEM): security profile 2.")
    ] = None,
    keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    tls_client_ca: Annotated[
        Path | None,
        typer.Option(
            "--tls-client-ca",
            help="CA certificate (PEM): stations must present a certificate it signed, whose "
            "name is their station id (security profile 3; with --certfile and --keyfile).",
        ),
    ] = None,
    ca_dir: CaDirOption = None,
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
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Server processes sharing the port (PostgreSQL only; see docs/DEPLOY-workers.md).",
        ),
    ] = 1,
) -> None:
    """Serve OCPP 2.1 at ws://HOST:PORT/ocpp/{station_id}, with /healthz and /metrics."""
    import structlog

    from swapd.api.limits import BodyLimitConfigError, max_body_bytes_from_env
    from swapd.gateway.server import serve as serve_gateway
    from swapd.logs import configure_logging
    from swapd.payments import config as payments_config
    from swapd.store.database import Database
    from swapd.store.engine import database_url, display_url
    from swapd.store.replica import listen_url
    from swapd.store.replica import read_database as open_reads

    configure_logging(json_logs=json_logs)

    if workers > 1 and not database_url(database).startswith("postgresql"):
        fail(
            f"--workers {workers} needs PostgreSQL: SQLite takes one writer at a time, which one "
            "server process (and its writer process) already keeps busy; serve SQLite with one",
            "workers_need_postgresql",
        )
    if workers > 1 and not hasattr(socket, "SO_REUSEPORT"):
        fail(f"--workers {workers} needs SO_REUSEPORT, which this system lacks", "os_error")

    if (certfile is None) != (keyfile is None):
        fail("give both --certfile and --keyfile, or neither")
    if tls_client_ca is not None and certfile is None:
        fail("--tls-client-ca needs TLS: give --certfile and --keyfile too")
    for path in (certfile, keyfile, tls_client_ca):
        if path is not None and not path.is_file():
            fail(f"no such file: {path}")
    if tls_client_ca is not None:
        _check_client_ca(tls_client_ca)
    try:
        payment_provider = payments_config.provider_name()
        max_body_bytes_from_env()
    except (payments_config.PaymentConfigError, BodyLimitConfigError) as error:
        fail(str(error))
    sock = listening_socket(host, port)
    try:
        db = run(lambda: Database.open(database))
        reads = run(lambda: open_reads(db, read_database))
        port = int(sock.getsockname()[1])  # the one chosen for --port 0
        scheme = "wss" if certfile else "ws"
        structlog.get_logger("swapd").info(
            "serving",
            version=__version__,
            ocpp_url=f"{scheme}://{host}:{port}/ocpp/{{station_id}}",
            database=display_url(database),
            read_database=display_url(read_database) if read_database else None,
            client_certificates=tls_client_ca is not None,
        )
        payments_config.announce(payment_provider)
        if workers > 1:
            db.dispose()  # migrated; each worker opens its own
            code = _serve_workers(
                workers,
                database=database,
                host=host,
                port=port,
                certfile=certfile,
                keyfile=keyfile,
                tls_client_ca=tls_client_ca,
                ca_dir=ca_directory(ca_dir, database),
                json_logs=not sys.stderr.isatty() if json_logs is None else json_logs,
                held=sock,
                read_database=read_database,
                listen_database=listen_database,
            )
            raise typer.Exit(code)
        serve_gateway(
            db,
            host=host,
            port=port,
            certfile=None if certfile is None else str(certfile),
            keyfile=None if keyfile is None else str(keyfile),
            client_ca=None if tls_client_ca is None else str(tls_client_ca),
            ca_dir=ca_directory(ca_dir, database),
            writer_process=writer_process,
            json_logs=not sys.stderr.isatty() if json_logs is None else json_logs,
            sock=sock,
            read_db=reads,
            listen_url=listen_url(db, listen_database) if db.dialect == "postgresql" else None,
        )
    finally:
        sock.close()


def _serve_workers(
    workers: int,
    *,
    database: str | None,
    host: str,
    port: int,
    certfile: Path | None,
    keyfile: Path | None,
    tls_client_ca: Path | None,
    ca_dir: Path | None,
    json_logs: bool,
    held: socket.socket,
    read_database: str | None,
    listen_database: str | None,
) -> int:
    """``--workers N``: N server processes on the port ``held`` took (closed once the workers'
    sockets are bound: it was bound without SO_REUSEPORT, and kept until then so that the port
    stayed ours)."""
    import structlog

    from swapd.gateway.workers import Supervisor, WorkerSettings
    from swapd.payments import config as payments_config

    if (
        payments_config.provider_name() == "sandbox"
        and not os.environ.get(payments_config.ENV_SANDBOX_SECRET, "").strip()
    ):
        # A sandbox checkout's webhook may come back to any worker: one secret for all.
        os.environ[payments_config.ENV_SANDBOX_SECRET] = secrets.token_urlsafe(32)
        structlog.get_logger("swapd").info(
            "sandbox_webhook_secret_generated", hint=f"set {payments_config.ENV_SANDBOX_SECRET}"
        )
    settings = WorkerSettings(
        database=database,
        host=host,
        port=port,
        certfile=None if certfile is None else str(certfile),
        keyfile=None if keyfile is None else str(keyfile),
        client_ca=None if tls_client_ca is None else str(tls_client_ca),
        ca_dir=ca_dir,
        json_logs=json_logs,
        read_database=read_database,
        listen_database=listen_database,
    )
    return Supervisor(settings, workers, on_bound=held.close).run()


def _check_client_ca(path: Path) -> None:
    """A CA certificate TLS can load, checked before the server starts: a wrong file would
    otherwise refuse every station's handshake."""
    from swapd import pki

    try:
        certificate = pki.load_certificate(run(lambda: pki.read_bounded(path)))
    except pki.PkiError as error:
        fail(f"--tls-client-ca {path}: {error.message}")
    if not pki.is_authority(certificate):
        fail(f"--tls-client-ca {path}: not a CA certificate")

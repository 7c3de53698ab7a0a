"""``swapd ca`` and ``swapd station cert``, ``cert-revoke``, ``certs``: OCPP security profile 3.

The operator's CA is a directory of two files (swapd.pki): ``--ca-dir``, else ``SWAPD_CA_DIR``,
else ``swapd-ca`` next to the SQLite database (``./swapd-ca`` for PostgreSQL). Its key is the
key to every station's identity: it is written readable by its owner only, and never printed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from swapd.cli.common import (
    DatabaseOption,
    JsonOption,
    cell,
    fail,
    out,
    print_json,
    run,
    say,
    when,
    with_db,
)

if TYPE_CHECKING:
    from swapd import pki
    from swapd.services.certificates import StationCertificate

ca_app = typer.Typer(
    help="The operator's certificate authority for stations' TLS certificates (profile 3).",
    no_args_is_help=True,
)

CA_DIR_NAME = "swapd-ca"
NO_CA = "no_ca"
CA_EXISTS = "ca_exists"
FILE_EXISTS = "file_exists"

CaDirOption = Annotated[
    Path | None,
    typer.Option(
        "--ca-dir",
        envvar="SWAPD_CA_DIR",
        help="The CA's directory (default: swapd-ca next to the SQLite database, else ./swapd-ca).",
    ),
]
StationArgument = Annotated[str, typer.Argument(metavar="STATION", help="Station id.")]


def ca_directory(ca_dir: Path | None, database: str | None) -> Path:
    """``--ca-dir`` as given, else ``swapd-ca`` beside the SQLite file, else in the working
    directory: the CA goes where the operator keeps the database it belongs to."""
    if ca_dir is not None:
        return ca_dir
    from swapd.store.engine import sqlite_file_path

    path = sqlite_file_path(database)
    return (Path(path).parent if path else Path()) / CA_DIR_NAME


def load_ca(directory: Path) -> pki.Authority:
    from swapd import pki

    try:
        return run(lambda: pki.load_authority(directory))
    except pki.PkiError as error:
        hint = " (create one with `swapd ca init`)" if error.code == "NoCA" else ""
        fail(error.message + hint, NO_CA)


@ca_app.command("init")
def ca_init(
    ca_dir: CaDirOption = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace the CA there: every certificate it signed stops working."),
    ] = False,
    name: Annotated[str, typer.Option("--name", help="The CA's common name.")] = "swapd operator CA",
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create the operator's CA: an EC P-256 key (file mode 0600) and its self-signed certificate."""
    from swapd import pki

    directory = ca_directory(ca_dir, database)
    if pki.authority_exists(directory) and not force:
        fail(f"{directory} already holds a CA; --force replaces it", CA_EXISTS)
    try:
        authority = pki.create_authority(datetime.now(UTC), name=name)
    except pki.PkiError as error:
        fail(error.message)
    run(lambda: pki.save_authority(authority, directory))
    certificate = directory / pki.CA_CERT_FILE
    not_after = authority.certificate.not_valid_after_utc
    if as_json:
        print_json(
            {
                "ca_dir": str(directory),
                "certificate": str(certificate),
                "key": str(directory / pki.CA_KEY_FILE),
                "not_after": not_after.isoformat(),
            }
        )
        return
    say(f"CA {name!r} created in {directory}, valid until {when(not_after)}")
    say(f"serve with:  swapd serve --certfile ... --keyfile ... --tls-client-ca {certificate}")


@ca_app.command("server-cert")
def ca_server_cert(
    host: Annotated[
        list[str], typer.Option("--host", help="A name or address stations reach the server at.")
    ],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for server.key and server.pem.")],
    ca_dir: CaDirOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace files there.")] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """A key and certificate for `swapd serve --certfile --keyfile`, signed by the CA, for
    stations that trust the operator's CA for the server too."""
    from swapd import pki

    authority = load_ca(ca_directory(ca_dir, database))
    key_path, cert_path = _free_paths(out_dir, "server", force)
    try:
        issued = pki.issue_server(authority, host, datetime.now(UTC))
    except pki.PkiError as error:
        fail(error.message)
    _write_pair(issued, key_path, cert_path)
    if as_json:
        print_json({"key": str(key_path), "certificate": str(cert_path)})
        return
    say(f"server key {key_path} (keep it secret) and certificate {cert_path} for {', '.join(host)}")


@ca_app.command("crl")
def ca_crl(
    out_file: Annotated[Path, typer.Option("--out", help="File for the revocation list (PEM).")],
    ca_dir: CaDirOption = None,
    database: DatabaseOption = None,
) -> None:
    """Write the CA's certificate revocation list: every revoked station certificate not yet
    expired (swapd serve itself reads revocations from the database)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from swapd import pki
    from swapd.services import certificates

    authority = load_ca(ca_directory(ca_dir, database))
    revoked = with_db(database, certificates.revoked_serials)
    try:
        crl = pki.build_crl(authority, revoked, datetime.now(UTC))
    except pki.PkiError as error:
        fail(error.message)
    run(lambda: pki.write_public_file(out_file, crl.public_bytes(Encoding.PEM)))
    say(f"{len(revoked)} revoked certificates listed in {out_file}")


def station_cert(
    station_id: StationArgument,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for STATION.key and STATION.pem.")],
    days: Annotated[int, typer.Option("--days", help="Days the certificate is valid.")] = 365,
    force: Annotated[bool, typer.Option("--force", help="Replace files there.")] = False,
    ca_dir: CaDirOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Issue a station a key and certificate signed by the CA (OCPP security profile 3), to
    install on it by hand; the key is written once, readable by its owner only."""
    from swapd.services import certificates

    authority = load_ca(ca_directory(ca_dir, database))
    key_path, cert_path = _free_paths(out_dir, station_id, force)
    issued, row = with_db(
        database,
        lambda db: certificates.issue(db, authority, station_id, actor="cli", validity_days=days),
    )
    _write_pair(issued, key_path, cert_path)
    if as_json:
        print_json(
            {
                "station_id": station_id,
                "serial": row.serial,
                "not_after": row.not_after.isoformat(),
                "key": str(key_path),
                "certificate": str(cert_path),
            }
        )
        return
    say(f"certificate {row.serial} for station {station_id}, valid until {when(row.not_after)}")
    say(f"key:          {key_path} (keep it secret: install it on the station only)")
    say(f"certificate:  {cert_path}")


def station_cert_revoke(
    station_id: StationArgument,
    serial: Annotated[
        str | None, typer.Option("--serial", help="Revoke this one (hex); else all the station's.")
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")] = (
        "revoked by the operator"
    ),
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a station's certificates (all, or one by serial): a connection with one is
    refused (403) from the next time the station connects."""
    from swapd.services import certificates

    revoked = with_db(
        database,
        lambda db: certificates.revoke(db, station_id, serial=serial, reason=reason, actor="cli"),
    )
    if as_json:
        print_json({"station_id": station_id, "revoked": revoked})
    elif not revoked:
        say(f"station {station_id} has no certificate left to revoke")
    else:
        say(f"revoked {len(revoked)} certificate(s) of station {station_id}: {', '.join(revoked)}")
        say("A connection with one is refused from the station's next connection.")


def station_certs(
    station_id: StationArgument, database: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """List a station's certificates, newest first: serial, validity and revocation."""
    from swapd.services import certificates

    rows = with_db(database, lambda db: certificates.station_certificates(db, station_id))
    now = datetime.now(UTC)
    if as_json:
        print_json([_cert_json(row, now) for row in rows])
        return
    table = Table("issued", "valid until", "status", "reason")
    table.add_column("serial", overflow="fold")
    for row in rows:
        table.add_row(
            cell(when(row.issued_at)),
            cell(when(row.not_after)),
            _status(row, now),
            cell(row.reason),
            cell(row.serial),
        )
    out.print(table)


def _status(row: StationCertificate, now: datetime) -> str:
    if row.revoked_at is not None:
        return f"revoked {when(row.revoked_at)}"
    return "expired" if row.not_after <= now else "valid"


def _cert_json(row: StationCertificate, now: datetime) -> dict[str, object]:
    return {
        "serial": row.serial,
        "issued_at": row.issued_at.isoformat(),
        "not_after": row.not_after.isoformat(),
        "status": _status(row, now).split(" ")[0],
        "revoked_at": None if row.revoked_at is None else row.revoked_at.isoformat(),
        "reason": row.reason,
    }


def _free_paths(out_dir: Path, stem: str, force: bool) -> tuple[Path, Path]:
    """``stem``.key and ``stem``.pem in ``out_dir``, refused if either is there already and not
    ``force``: checked before anything is issued."""
    key_path, cert_path = out_dir / f"{stem}.key", out_dir / f"{stem}.pem"
    for path in (key_path, cert_path):
        if path.exists() and not force:
            fail(f"{path} exists; --force replaces it", FILE_EXISTS)
    return key_path, cert_path


def _write_pair(issued: pki.Issued, key_path: Path, cert_path: Path) -> None:
    from swapd import pki

    run(lambda: key_path.parent.mkdir(parents=True, exist_ok=True))
    run(lambda: pki.write_private_file(key_path, issued.key_pem))
    run(lambda: pki.write_public_file(cert_path, pki.certificate_pem(issued.certificate).encode()))


def register(station_app: typer.Typer) -> None:
    """Add the certificate commands to ``swapd station``."""
    station_app.command("cert")(station_cert)
    station_app.command("cert-revoke")(station_cert_revoke)
    station_app.command("certs")(station_certs)

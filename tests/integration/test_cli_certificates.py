"""``swapd ca init``, ``ca server-cert``, ``ca crl``, ``station cert``, ``cert-revoke``, ``certs``
and ``serve --tls-client-ca``'s checks: files where the operator expects them, keys readable by
their owner only, nothing replaced without --force, every refusal one line."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from cryptography import x509

from swapd import pki
from swapd.cli import app
from swapd.store.database import Database
from swapd.store.engine import make_engine
from tests import network as net
from tests.cli_runner import CliRunner
from tests.conftest import copy_of_migrated_sqlite

runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path, migrated_sqlite_file: Path) -> str:
    """A SQLite file with stations ST1 and ST2; the CA's default place is beside it."""
    url = copy_of_migrated_sqlite(migrated_sqlite_file, tmp_path)
    db = Database(make_engine(url))
    net.stations(db)
    db.dispose()
    return url


def invoke(database: str, *args: str) -> Result:
    return runner.invoke(app, [*args, "--database", database])


def ok(database: str, *args: str) -> Any:
    result = invoke(database, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def refused(database: str, *args: str) -> str:
    result = invoke(database, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    return line


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ca_init_puts_the_ca_beside_the_database_and_replaces_it_only_with_force(
    database: str, tmp_path: Path
) -> None:
    made = ok(database, "ca", "init")
    assert Path(made["ca_dir"]) == tmp_path / "swapd-ca"
    key, certificate = Path(made["key"]), Path(made["certificate"])
    assert mode(key) == 0o600 and mode(tmp_path / "swapd-ca") == 0o700
    first = certificate.read_bytes()
    assert "already holds a CA; --force replaces it" in refused(database, "ca", "init")
    assert certificate.read_bytes() == first
    ok(database, "ca", "init", "--force")
    assert certificate.read_bytes() != first
    assert mode(key) == 0o600
    authority = pki.load_authority(tmp_path / "swapd-ca")
    assert (
        authority.certificate.not_valid_after_utc
        == x509.load_pem_x509_certificate(certificate.read_bytes()).not_valid_after_utc
    )


def test_ca_init_takes_the_directory_given(database: str, tmp_path: Path) -> None:
    made = ok(database, "ca", "init", "--ca-dir", str(tmp_path / "elsewhere"), "--name", "Depot CA")
    authority = pki.load_authority(tmp_path / "elsewhere")
    assert Path(made["ca_dir"]) == tmp_path / "elsewhere"
    assert pki.common_name(authority.certificate.subject) == "Depot CA"
    assert not (tmp_path / "swapd-ca").exists()


def test_station_cert_writes_the_stations_key_and_certificate_and_records_it(
    database: str, tmp_path: Path
) -> None:
    ok(database, "ca", "init")
    issued = ok(database, "station", "cert", "ST1", "--out", str(tmp_path / "out"), "--days", "30")
    key, cert = tmp_path / "out" / "ST1.key", tmp_path / "out" / "ST1.pem"
    assert (Path(issued["key"]), Path(issued["certificate"])) == (key, cert)
    assert mode(key) == 0o600
    certificate = x509.load_pem_x509_certificate(cert.read_bytes())
    certificate.verify_directly_issued_by(pki.load_authority(tmp_path / "swapd-ca").certificate)
    assert pki.common_name(certificate.subject) == "ST1"
    assert issued["serial"] == f"{certificate.serial_number:x}"
    listed = ok(database, "station", "certs", "ST1")
    assert [(c["serial"], c["status"]) for c in listed] == [(issued["serial"], "valid")]

    line = refused(database, "station", "cert", "ST1", "--out", str(tmp_path / "out"))
    assert line == f"error: {key} exists; --force replaces it"
    assert len(ok(database, "station", "certs", "ST1")) == 1  # refused before issuing
    ok(database, "station", "cert", "ST1", "--out", str(tmp_path / "out"), "--force")
    assert len(ok(database, "station", "certs", "ST1")) == 2


def test_station_cert_refusals_are_one_line(database: str, tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    assert "create one with `swapd ca init`" in refused(database, "station", "cert", "ST1", "--out", out)
    ok(database, "ca", "init")
    assert refused(database, "station", "cert", "ST9", "--out", out) == "error: unknown station ST9"
    line = refused(database, "station", "cert", "ST1", "--out", out, "--days", "5000")
    assert line == f"error: a certificate is valid 1-{pki.MAX_LEAF_VALIDITY_DAYS} days"
    assert not (tmp_path / "out").exists()


def test_cert_revoke_revokes_one_by_serial_or_all_and_certs_shows_it(
    database: str, tmp_path: Path
) -> None:
    ok(database, "ca", "init")
    first = ok(database, "station", "cert", "ST1", "--out", str(tmp_path / "a"))["serial"]
    second = ok(database, "station", "cert", "ST1", "--out", str(tmp_path / "b"))["serial"]
    one = ok(database, "station", "cert-revoke", "ST1", "--serial", first.upper(), "--reason", "lost")
    assert one == {"station_id": "ST1", "revoked": [first]}
    statuses = {c["serial"]: (c["status"], c["reason"]) for c in ok(database, "station", "certs", "ST1")}
    assert statuses == {first: ("revoked", "lost"), second: ("valid", None)}
    assert ok(database, "station", "cert-revoke", "ST1")["revoked"] == [second]
    assert ok(database, "station", "cert-revoke", "ST1")["revoked"] == []
    assert "no certificate left" in invoke(database, "station", "cert-revoke", "ST1").stdout
    line = refused(database, "station", "cert-revoke", "ST2", "--serial", first)
    assert line == f"error: station ST2 has no certificate with serial {first}"

    crl_file = tmp_path / "crl.pem"
    result = invoke(database, "ca", "crl", "--out", str(crl_file))
    assert result.exit_code == 0, result.output
    crl = x509.load_pem_x509_crl(crl_file.read_bytes())
    assert {f"{entry.serial_number:x}" for entry in crl} == {first, second}


def test_ca_server_cert_makes_the_servers_pair(database: str, tmp_path: Path) -> None:
    ok(database, "ca", "init")
    made = ok(
        database,
        "ca",
        "server-cert",
        "--host",
        "127.0.0.1",
        "--host",
        "swap.example",
        "--out",
        str(tmp_path),
    )
    assert mode(Path(made["key"])) == 0o600
    certificate = x509.load_pem_x509_certificate(Path(made["certificate"]).read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["swap.example"]


def test_serve_refuses_a_client_ca_without_tls_or_that_is_not_a_ca(
    database: str, tmp_path: Path
) -> None:
    ok(database, "ca", "init")
    ca_file = str(tmp_path / "swapd-ca" / "ca.pem")
    line = refused(database, "serve", "--tls-client-ca", ca_file, "--port", "0")
    assert line == "error: --tls-client-ca needs TLS: give --certfile and --keyfile too"
    server = ok(database, "ca", "server-cert", "--host", "127.0.0.1", "--out", str(tmp_path))
    tls = ["--certfile", server["certificate"], "--keyfile", server["key"], "--port", "0"]
    line = refused(database, "serve", *tls, "--tls-client-ca", server["certificate"])
    assert line == f"error: --tls-client-ca {server['certificate']}: not a CA certificate"
    line = refused(database, "serve", *tls, "--tls-client-ca", str(tmp_path / "none.pem"))
    assert line == f"error: no such file: {tmp_path / 'none.pem'}"

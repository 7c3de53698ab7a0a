"""OCPP security profile 3 end to end: a real uvicorn server with mutual TLS (the app ``swapd
serve --certfile --keyfile --tls-client-ca`` runs), stations as TLS clients over ``websockets``.

A station with a certificate of the operator's CA for its own id connects and boots without a
password. Refused: no client certificate, another CA's certificate and an expired one (by TLS),
a certificate of another station and a revoked one (403 at the upgrade), a certificate for an
unknown station (404). A station that sends Basic auth as well is checked as under profiles 1
and 2. A CSR sent with SignCertificate is answered Accepted and the certificate arrives as
CertificateSigned, verifying against the CA; a CSR for another station id is Rejected. Last, the
operator's whole path through the command line, up to a real ``swapd serve`` process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp.routing import on
from ocpp.v21 import ChargePoint, call, call_result
from websockets.exceptions import InvalidMessage, InvalidStatus

from swapd import pki
from swapd.services import certificates, stations
from swapd.services.station_commands import CommandState
from swapd.sim.embedded import embedded_server
from swapd.store import schema as t
from swapd.store.database import Database
from swapd.store.engine import make_engine
from tests import network as net
from tests.integration.cli_process import succeeded, swapd
from tests.security.conftest import START_TIMEOUT_S, STOP_TIMEOUT_S, free_port, migrated_sqlite_url

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """The system clock, not the tests' manual one: TLS checks certificates against the real
    time, so they must be issued at it."""
    database = Database(make_engine(db_url))
    yield database
    database.dispose()


@dataclass
class Pki:
    root: Path
    ca_dir: Path
    authority: pki.Authority

    @property
    def ca_file(self) -> Path:
        return self.ca_dir / pki.CA_CERT_FILE

    def station_files(self, name: str, issued: pki.Issued) -> tuple[Path, Path]:
        key, cert = self.root / f"{name}.key", self.root / f"{name}.pem"
        pki.write_private_file(key, issued.key_pem)
        pki.write_public_file(cert, pki.certificate_pem(issued.certificate).encode())
        return key, cert


@pytest.fixture
def operator_pki(tmp_path: Path) -> Pki:
    ca_dir = tmp_path / "swapd-ca"
    authority = pki.create_authority(datetime.now(UTC))
    pki.save_authority(authority, ca_dir)
    return Pki(tmp_path, ca_dir, authority)


@pytest.fixture
def server_url(db: Database, operator_pki: Pki) -> Iterator[str]:
    net.stations(db)  # ST1 and ST2, without passwords
    server = pki.issue_server(operator_pki.authority, ["127.0.0.1"], datetime.now(UTC))
    key, cert = operator_pki.station_files("server", server)
    with embedded_server(
        db,
        certfile=str(cert),
        keyfile=str(key),
        client_ca=str(operator_pki.ca_file),
        ca_dir=operator_pki.ca_dir,
    ) as url:
        assert url.startswith("wss://")
        yield url


def issued_to(db: Database, operator_pki: Pki, station_id: str) -> tuple[Path, Path]:
    """Key and certificate files for the station, issued as `swapd station cert` issues them."""
    issued, _ = certificates.issue(db, operator_pki.authority, station_id, actor="test")
    return operator_pki.station_files(f"{station_id}-{issued.certificate.serial_number:x}", issued)


def tls(operator_pki: Pki, files: tuple[Path, Path] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(operator_pki.ca_file))
    if files is not None:
        key, cert = files
        context.load_cert_chain(str(cert), str(key))
    return context


class Station(ChargePoint):  # type: ignore[misc]
    """An OCPP 2.1 station that installs what CertificateSigned brings."""

    def __init__(self, station_id: str, ws: Any) -> None:
        super().__init__(station_id, ws)
        self.signed: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    @on("CertificateSigned")  # type: ignore[misc]
    async def on_certificate_signed(self, certificate_chain: str, **rest: Any) -> Any:
        await self.signed.put({"certificate_chain": certificate_chain, **rest})
        return call_result.CertificateSigned(status="Accepted")


async def upgrade(
    url: str, station_id: str, context: ssl.SSLContext, headers: dict[str, str] | None = None
) -> int:
    """101 when the station connected, else the HTTP status of the refused upgrade."""
    try:
        ws = await websockets.connect(
            f"{url}/ocpp/{station_id}",
            subprotocols=[websockets.Subprotocol("ocpp2.1")],
            ssl=context,
            additional_headers=headers,
            open_timeout=10,
        )
    except InvalidStatus as refused:
        return refused.response.status_code
    await ws.close()
    return 101


def first_http_bytes(url: str, context: ssl.SSLContext) -> bytes:
    """The first bytes the server answers ``GET /healthz`` with over TLS: b"" when it ended the
    connection without a word of HTTP, as it does when the TLS handshake refused the client's
    certificate (under TLS 1.3 the client learns it only on its first read)."""
    host, port = url.removeprefix("wss://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=host) as tls_socket:
                tls_socket.sendall(b"GET /healthz HTTP/1.1\r\nHost: swapd\r\n\r\n")
                return tls_socket.recv(12)
        except (ssl.SSLError, ConnectionResetError):
            return b""


@pytest.fixture
async def connected() -> AsyncIterator[list[tuple[Any, asyncio.Task[None]]]]:
    opened: list[tuple[Any, asyncio.Task[None]]] = []
    yield opened
    for ws, task in opened:
        await ws.close()
        task.cancel()


async def connect_station(
    url: str,
    station_id: str,
    context: ssl.SSLContext,
    opened: list[tuple[Any, asyncio.Task[None]]],
) -> Station:
    ws = await websockets.connect(
        f"{url}/ocpp/{station_id}", subprotocols=[websockets.Subprotocol("ocpp2.1")], ssl=context
    )
    station = Station(station_id, ws)
    opened.append((ws, asyncio.create_task(station.start())))
    boot = await station.call(
        call.BootNotification(
            charging_station={"model": "SwapCab", "vendor_name": "swapd-tests"}, reason="PowerUp"
        )
    )
    assert boot.status == "Accepted"
    return station


async def command_states(db: Database, station_id: str, *, until: str) -> list[tuple[str, str]]:
    """The station's commands (action, state), once the last is in state ``until`` (the server
    records the answer just after the station has sent it) or 5 s have passed."""
    c = t.station_commands.c
    query = sa.select(c.action, c.state).where(c.station_id == station_id).order_by(c.id)
    rows: list[tuple[str, str]] = []
    for _ in range(100):
        rows = [(row.action, row.state) for row in db.read(lambda tx: tx.repo.execute(query).all())]
        if rows and rows[-1][1] == until:
            break
        await asyncio.sleep(0.05)
    return rows


def csr_for(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


# -- who is let in ----------------------------------------------------------------------------------


async def test_a_station_with_the_operators_certificate_connects_and_boots_without_a_password(
    db: Database,
    operator_pki: Pki,
    server_url: str,
    connected: list[tuple[Any, asyncio.Task[None]]],
) -> None:
    context = tls(operator_pki, issued_to(db, operator_pki, "ST1"))
    await connect_station(server_url, "ST1", context, connected)
    assert stations.is_booted(db, "ST1")


async def test_a_station_without_a_client_certificate_is_refused_by_tls(
    db: Database, operator_pki: Pki, server_url: str
) -> None:
    anonymous = tls(operator_pki, None)
    assert await asyncio.to_thread(first_http_bytes, server_url, anonymous) == b""
    with pytest.raises(InvalidMessage):  # no HTTP answer to the upgrade either
        await upgrade(server_url, "ST1", anonymous)
    # The same request with the station's certificate is answered: the refusal was TLS's.
    st1 = tls(operator_pki, issued_to(db, operator_pki, "ST1"))
    assert await asyncio.to_thread(first_http_bytes, server_url, st1) == b"HTTP/1.1 200"


async def test_a_certificate_of_another_ca_is_refused_by_tls(
    db: Database, operator_pki: Pki, server_url: str
) -> None:
    stranger = pki.create_authority(datetime.now(UTC), name="someone else's CA")
    forged = tls(
        operator_pki,
        operator_pki.station_files("forged", pki.issue_station(stranger, "ST1", datetime.now(UTC))),
    )
    assert await asyncio.to_thread(first_http_bytes, server_url, forged) == b""
    with pytest.raises(InvalidMessage):
        await upgrade(server_url, "ST1", forged)


async def test_an_expired_certificate_is_refused_by_tls(
    db: Database, operator_pki: Pki, server_url: str
) -> None:
    last_year = datetime.now(UTC) - timedelta(days=400)
    expired = pki.issue_station(operator_pki.authority, "ST1", last_year, validity_days=30)
    context = tls(operator_pki, operator_pki.station_files("expired", expired))
    assert await asyncio.to_thread(first_http_bytes, server_url, context) == b""


async def test_a_certificate_of_another_station_is_refused_with_403(
    db: Database, operator_pki: Pki, server_url: str
) -> None:
    st2 = tls(operator_pki, issued_to(db, operator_pki, "ST2"))
    assert await upgrade(server_url, "ST1", st2) == 403
    assert await upgrade(server_url, "ST2", st2) == 101


async def test_a_revoked_certificate_is_refused_with_403_at_the_next_connection(
    db: Database, operator_pki: Pki, server_url: str
) -> None:
    first = issued_to(db, operator_pki, "ST1")
    second = issued_to(db, operator_pki, "ST1")
    assert await upgrade(server_url, "ST1", tls(operator_pki, first)) == 101
    serial = f"{x509.load_pem_x509_certificate(first[1].read_bytes()).serial_number:x}"
    certificates.revoke(db, "ST1", serial=serial, reason="stolen", actor="test")
    assert await upgrade(server_url, "ST1", tls(operator_pki, first)) == 403
    assert await upgrade(server_url, "ST1", tls(operator_pki, second)) == 101  # not revoked
    certificates.revoke(db, "ST1", serial=None, reason="decommissioned", actor="test")
    assert await upgrade(server_url, "ST1", tls(operator_pki, second)) == 403


async def test_a_certificate_for_an_unknown_or_disabled_station_is_refused(
    db: Database, operator_pki: Pki, server_url: str
) -> None:
    unknown = pki.issue_station(operator_pki.authority, "ST9", datetime.now(UTC))
    assert (
        await upgrade(server_url, "ST9", tls(operator_pki, operator_pki.station_files("st9", unknown)))
        == 404
    )
    context = tls(operator_pki, issued_to(db, operator_pki, "ST1"))
    stations.set_enabled(db, "ST1", False)
    assert await upgrade(server_url, "ST1", context) == 403


async def test_basic_auth_sent_along_with_the_certificate_is_checked_as_before(
    db: Database, operator_pki: Pki, server_url: str
) -> None:
    password = net.password(db, "ST1")
    context = tls(operator_pki, issued_to(db, operator_pki, "ST1"))
    assert await upgrade(server_url, "ST1", context, net_basic("ST1", "wrong-password-123")) == 401
    assert await upgrade(server_url, "ST1", context, net_basic("ST1", password)) == 101


def net_basic(station_id: str, password: str) -> dict[str, str]:
    from tests.gateway.conftest import basic_auth

    return basic_auth(station_id, password)


# -- SignCertificate --------------------------------------------------------------------------------


async def test_a_csr_is_accepted_and_the_certificate_arrives_as_certificate_signed(
    db: Database,
    operator_pki: Pki,
    server_url: str,
    connected: list[tuple[Any, asyncio.Task[None]]],
) -> None:
    station = await connect_station(
        server_url, "ST1", tls(operator_pki, issued_to(db, operator_pki, "ST1")), connected
    )
    key, csr = csr_for("ST1")
    answer = await station.call(
        call.SignCertificate(csr=csr, certificate_type="ChargingStationCertificate", request_id=41)
    )
    assert answer.status == "Accepted"
    signed = await asyncio.wait_for(station.signed.get(), timeout=15)
    assert signed["certificate_type"] == "ChargingStationCertificate"
    assert signed["request_id"] == 41
    chain = x509.load_pem_x509_certificates(signed["certificate_chain"].encode())
    chain[0].verify_directly_issued_by(operator_pki.authority.certificate)
    assert chain[0].public_key() == key.public_key()
    assert pki.common_name(chain[0].subject) == "ST1"
    assert await command_states(db, "ST1", until=CommandState.ANSWERED) == [
        ("CertificateSigned", CommandState.ANSWERED)
    ]

    # The station installs it and connects with it: the new certificate is its identity now.
    key_file, cert_file = operator_pki.root / "new.key", operator_pki.root / "new.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_file.write_text(signed["certificate_chain"])
    assert await upgrade(server_url, "ST1", tls(operator_pki, (key_file, cert_file))) == 101


async def test_a_csr_for_another_station_is_rejected_and_nothing_is_signed(
    db: Database,
    operator_pki: Pki,
    server_url: str,
    connected: list[tuple[Any, asyncio.Task[None]]],
) -> None:
    station = await connect_station(
        server_url, "ST1", tls(operator_pki, issued_to(db, operator_pki, "ST1")), connected
    )
    _, csr = csr_for("ST2")
    answer = await station.call(call.SignCertificate(csr=csr))
    assert answer.status == "Rejected"
    assert answer.status_info["reason_code"] == "WrongCN"
    assert "ST2" in answer.status_info["additional_info"]
    assert len(certificates.station_certificates(db, "ST1")) == 1  # the one it connected with
    commands = db.read(lambda tx: tx.repo.execute(sa.select(t.station_commands)).all())
    assert commands == []


# -- the command line's server ----------------------------------------------------------------------


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """``start(database_url, *args)`` runs ``swapd serve`` with TLS and returns its wss:// URL
    once a station's certificate gets an answer from /healthz; every server stops at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(database_url: str, ready_context: ssl.SSLContext, *args: str) -> str:
        port = free_port()
        log_path = tmp_path / f"serve-{port}.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith(("SWAPD_", "STRIPE_"))}
        command = [sys.executable, "-m", "swapd.cli", "serve", "--database", database_url]
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [*command, "--port", str(port), "--json-logs", *args],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=environment,
            )
        started.append(process)
        url = f"wss://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"swapd serve exited with {process.returncode}:\n{log_path.read_text()}")
            with contextlib.suppress(OSError):
                if first_http_bytes(url, ready_context) == b"HTTP/1.1 200":
                    return url
            time.sleep(0.1)
        pytest.fail(f"swapd serve did not answer in {START_TIMEOUT_S} s:\n{log_path.read_text()}")

    yield start
    for process in started:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)


async def test_swapd_serve_with_a_client_ca_admits_stations_by_certificate_and_signs_their_csrs(
    tmp_path: Path,
    serve_process: Callable[..., str],
    connected: list[tuple[Any, asyncio.Task[None]]],
) -> None:
    """The whole operator's path on SQLite, with its writer process: `ca init`, `ca server-cert`,
    `station cert`, then `serve --certfile --keyfile --tls-client-ca`, the CA found beside the
    database for SignCertificate."""
    database_url = migrated_sqlite_url(tmp_path)
    db = Database(make_engine(database_url))
    net.stations(db)
    db.dispose()
    for command in (
        ["ca", "init"],
        ["ca", "server-cert", "--host", "127.0.0.1", "--out", str(tmp_path / "server")],
        ["station", "cert", "ST1", "--out", str(tmp_path / "st1")],
    ):
        succeeded(swapd(*command, "--database", database_url))
    ca_file = tmp_path / "swapd-ca" / pki.CA_CERT_FILE
    st1 = ssl.create_default_context(cafile=str(ca_file))
    st1.load_cert_chain(str(tmp_path / "st1" / "ST1.pem"), str(tmp_path / "st1" / "ST1.key"))
    server = tmp_path / "server"
    url = serve_process(
        database_url,
        st1,
        *("--certfile", str(server / "server.pem"), "--keyfile", str(server / "server.key")),
        *("--tls-client-ca", str(ca_file)),
    )
    anonymous = ssl.create_default_context(cafile=str(ca_file))
    assert await asyncio.to_thread(first_http_bytes, url, anonymous) == b""

    station = await connect_station(url, "ST1", st1, connected)
    key, csr = csr_for("ST1")
    answer = await station.call(call.SignCertificate(csr=csr))
    assert answer.status == "Accepted"
    signed = await asyncio.wait_for(station.signed.get(), timeout=15)
    leaf = x509.load_pem_x509_certificates(signed["certificate_chain"].encode())[0]
    leaf.verify_directly_issued_by(pki.load_authority(tmp_path / "swapd-ca").certificate)
    assert leaf.public_key() == key.public_key()

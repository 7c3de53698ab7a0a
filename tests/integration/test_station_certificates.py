"""swapd.services.certificates on both databases: certificates issued and recorded, revoked one
or all, SignCertificate's CSRs checked, signed and queued as CertificateSigned, and the read the
upgrade makes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from swapd import pki
from swapd.domain.errors import InvalidInput, NotFound
from swapd.services import certificates
from swapd.services.station_commands import CommandState
from swapd.store import schema as t
from swapd.store.database import Database, ManualClock
from tests import network as net


@pytest.fixture
def ca_dir(tmp_path: Path, clock: ManualClock) -> Path:
    directory = tmp_path / "swapd-ca"
    pki.save_authority(pki.create_authority(clock.now()), directory)
    return directory


@pytest.fixture
def stations(db: Database) -> None:
    net.stations(db)


def csr_for(common_name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def commands(db: Database) -> list[sa.Row[tuple[str, str, dict[str, object], str]]]:
    c = t.station_commands.c
    query = sa.select(c.station_id, c.action, c.payload, c.state).order_by(c.id)
    return list(db.read(lambda tx: tx.repo.execute(query).all()))


@pytest.mark.usefixtures("stations")
def test_a_certificate_issued_by_hand_is_recorded_and_audited(db: Database, ca_dir: Path) -> None:
    authority = pki.load_authority(ca_dir)
    issued, row = certificates.issue(db, authority, "ST1", actor="cli")
    assert row.serial == pki.serial_hex(issued.certificate.serial_number)
    assert row.not_after == issued.certificate.not_valid_after_utc
    assert certificates.station_certificates(db, "ST1") == [row]
    assert certificates.station_certificates(db, "ST2") == []
    actions = db.read(lambda tx: tx.repo.execute(sa.select(t.audit_log.c.action)).scalars().all())
    assert actions == ["station.certificate"]


def test_no_certificate_is_issued_for_an_unknown_station(db: Database, ca_dir: Path) -> None:
    with pytest.raises(NotFound, match="unknown station ST9"):
        certificates.issue(db, pki.load_authority(ca_dir), "ST9", actor="cli")
    assert db.read(lambda tx: tx.repo.execute(sa.select(t.station_certificates)).all()) == []


@pytest.mark.usefixtures("stations")
def test_revoking_a_station_revokes_each_of_its_certificates_once(db: Database, ca_dir: Path) -> None:
    authority = pki.load_authority(ca_dir)
    first = certificates.issue(db, authority, "ST1", actor="cli")[1]
    second = certificates.issue(db, authority, "ST1", actor="cli")[1]
    other = certificates.issue(db, authority, "ST2", actor="cli")[1]
    revoked = certificates.revoke(db, "ST1", serial=None, reason="stolen", actor="cli")
    assert sorted(revoked) == sorted([first.serial, second.serial])
    assert certificates.is_revoked(db, first.serial) and certificates.is_revoked(db, second.serial)
    assert not certificates.is_revoked(db, other.serial)
    assert not certificates.is_revoked(db, "abc")  # never recorded
    assert certificates.revoke(db, "ST1", serial=None, reason="again", actor="cli") == []
    assert {row.reason for row in certificates.station_certificates(db, "ST1")} == {"stolen"}
    assert sorted(s for s, _ in certificates.revoked_serials(db)) == sorted(revoked)


@pytest.mark.usefixtures("stations")
def test_one_certificate_is_revoked_by_its_serial_in_any_typed_form(db: Database, ca_dir: Path) -> None:
    authority = pki.load_authority(ca_dir)
    first = certificates.issue(db, authority, "ST1", actor="cli")[1]
    second = certificates.issue(db, authority, "ST1", actor="cli")[1]
    typed = "0x" + first.serial.upper()
    assert certificates.revoke(db, "ST1", serial=typed, reason="key lost", actor="cli") == [first.serial]
    assert not certificates.is_revoked(db, second.serial)
    with pytest.raises(NotFound, match="ST2 has no certificate"):
        certificates.revoke(db, "ST2", serial=second.serial, reason="wrong station", actor="cli")
    with pytest.raises(InvalidInput, match="hexadecimal"):
        certificates.revoke(db, "ST1", serial="not-hex", reason="typo", actor="cli")
    with pytest.raises(InvalidInput, match="reason"):
        certificates.revoke(db, "ST1", serial=None, reason=" ", actor="cli")


@pytest.mark.usefixtures("stations")
def test_a_csr_of_the_station_is_signed_recorded_and_queued_as_certificate_signed(
    db: Database, ca_dir: Path
) -> None:
    outcome = certificates.sign_request(db, ca_dir, "ST1", csr_for("ST1"), request_id=7)
    assert outcome.accepted and outcome.serial is not None
    [(station_id, action, payload, state)] = commands(db)
    assert (station_id, action, state) == ("ST1", "CertificateSigned", CommandState.PENDING)
    assert payload["certificateType"] == "ChargingStationCertificate"
    assert payload["requestId"] == 7
    chain = x509.load_pem_x509_certificates(str(payload["certificateChain"]).encode())
    authority = pki.load_authority(ca_dir)
    assert [pki.common_name(c.subject) for c in chain] == ["ST1", pki.DEFAULT_CA_NAME]
    chain[0].verify_directly_issued_by(authority.certificate)
    assert pki.serial_hex(chain[0].serial_number) == outcome.serial
    assert [row.serial for row in certificates.station_certificates(db, "ST1")] == [outcome.serial]


@pytest.mark.usefixtures("stations")
def test_a_csr_for_another_station_is_rejected_and_nothing_is_written(
    db: Database, ca_dir: Path
) -> None:
    outcome = certificates.sign_request(db, ca_dir, "ST1", csr_for("ST2"))
    assert not outcome.accepted and outcome.reason_code == "WrongCN"
    assert commands(db) == [] and certificates.station_certificates(db, "ST1") == []


@pytest.mark.usefixtures("stations")
def test_signing_is_rejected_without_a_ca_or_for_a_vehicle_certificate(
    db: Database, tmp_path: Path, ca_dir: Path
) -> None:
    missing = certificates.sign_request(db, tmp_path / "none", "ST1", csr_for("ST1"))
    assert (missing.accepted, missing.reason_code) == (False, "NoCA")
    assert certificates.sign_request(db, None, "ST1", csr_for("ST1")).reason_code == "NoCA"
    v2g = certificates.sign_request(db, ca_dir, "ST1", csr_for("ST1"), certificate_type="V2GCertificate")
    assert (v2g.accepted, v2g.reason_code) == (False, "UnsupportedRequest")
    assert commands(db) == []


@pytest.mark.usefixtures("stations")
def test_a_station_gets_a_bounded_number_of_certificates_a_day(
    db: Database, ca_dir: Path, clock: ManualClock
) -> None:
    for _ in range(certificates.MAX_SIGNED_PER_DAY):
        assert certificates.sign_request(db, ca_dir, "ST1", csr_for("ST1")).accepted
    refused = certificates.sign_request(db, ca_dir, "ST1", csr_for("ST1"))
    assert (refused.accepted, refused.reason_code) == (False, "TooManyRequests")
    assert certificates.sign_request(db, ca_dir, "ST2", csr_for("ST2")).accepted
    clock.set(clock.now() + timedelta(days=1, seconds=1))
    assert certificates.sign_request(db, ca_dir, "ST1", csr_for("ST1")).accepted


@pytest.mark.usefixtures("stations")
def test_the_upgrade_reads_the_station_and_its_certificate_in_one_go(db: Database, ca_dir: Path) -> None:
    row = certificates.issue(db, pki.load_authority(ca_dir), "ST1", actor="cli")[1]
    found = certificates.access_by_certificate(db, "ST1", row.serial)
    assert found.access is not None and found.access.enabled and not found.revoked
    certificates.revoke(db, "ST1", serial=row.serial, reason="test", actor="cli")
    assert certificates.access_by_certificate(db, "ST1", row.serial).revoked
    assert not certificates.access_by_certificate(db, "ST1", "ffff").revoked
    assert certificates.access_by_certificate(db, "ST9", row.serial).access is None

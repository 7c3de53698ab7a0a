"""swapd.pki: the operator's CA, station CSRs checked and signed, keys issued by hand, the CRL and
the CA's directory."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from swapd import pki

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def authority() -> pki.Authority:
    return pki.create_authority(NOW)


def csr_pem(
    common_name: str,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
    algorithm: hashes.SHA224 | hashes.SHA256 | None = None,
) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, algorithm or hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def test_a_new_ca_is_a_self_signed_p256_ca_that_signs_no_sub_ca(authority: pki.Authority) -> None:
    certificate = authority.certificate
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    assert isinstance(authority.key.curve, ec.SECP256R1)
    assert certificate.subject == certificate.issuer
    certificate.verify_directly_issued_by(certificate)
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign


def test_the_ca_is_valid_for_its_stated_number_of_days(authority: pki.Authority) -> None:
    assert authority.certificate.not_valid_after_utc == NOW + timedelta(days=pki.CA_VALIDITY_DAYS)
    assert authority.certificate.not_valid_before_utc <= NOW


def test_a_station_csr_becomes_a_client_certificate_named_for_the_station(
    authority: pki.Authority,
) -> None:
    csr = pki.check_csr(csr_pem("ST1"), "ST1")
    certificate = pki.sign_station_csr(authority, csr, "ST1", NOW)
    certificate.verify_directly_issued_by(authority.certificate)
    assert pki.common_name(certificate.subject) == "ST1"
    assert certificate.public_key() == csr.public_key()
    usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert certificate.not_valid_after_utc == NOW + timedelta(days=pki.STATION_VALIDITY_DAYS)
    again = pki.sign_station_csr(authority, csr, "ST1", NOW)
    assert again.serial_number != certificate.serial_number  # random serials
    assert certificate.serial_number.bit_length() > 64


def test_a_station_certificate_never_outlives_its_ca() -> None:
    short_lived = pki.create_authority(NOW, validity_days=30)
    issued = pki.issue_station(short_lived, "ST1", NOW, validity_days=365)
    assert issued.certificate.not_valid_after_utc == short_lived.certificate.not_valid_after_utc
    with pytest.raises(pki.PkiError, match="expired"):
        pki.issue_station(short_lived, "ST1", NOW + timedelta(days=31))


def test_a_validity_beyond_the_bound_is_refused(authority: pki.Authority) -> None:
    with pytest.raises(pki.PkiError) as refused:
        pki.issue_station(authority, "ST1", NOW, validity_days=pki.MAX_LEAF_VALIDITY_DAYS + 1)
    assert refused.value.code == "InvalidValidity"
    with pytest.raises(pki.PkiError):
        pki.create_authority(NOW, validity_days=pki.CA_VALIDITY_DAYS + 1)


def test_a_csr_for_another_station_is_refused() -> None:
    with pytest.raises(pki.PkiError) as refused:
        pki.check_csr(csr_pem("ST2"), "ST1")
    assert refused.value.code == "WrongCN"
    assert "'ST2'" in refused.value.message and "ST1" in refused.value.message


def test_a_csr_whose_signature_does_not_verify_is_refused() -> None:
    pem = csr_pem("ST1")
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER))
    # The signature is the DER's last bytes (an ECDSA integer): change one of them.
    der[-2] ^= 0x01
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(pki.PkiError) as refused:
        pki.check_csr(tampered, "ST1")
    assert refused.value.code == "InvalidSignature"


def test_a_csr_with_a_weak_key_is_refused() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(pki.PkiError) as refused:
        pki.check_csr(csr_pem("ST1", weak), "ST1")
    assert refused.value.code == "WeakKey"
    off_list_curve = ec.generate_private_key(ec.SECP256K1())
    with pytest.raises(pki.PkiError, match="P-256"):
        pki.check_csr(csr_pem("ST1", off_list_curve), "ST1")


def test_an_rsa_2048_csr_is_accepted_and_its_certificate_may_encipher(
    authority: pki.Authority,
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = pki.check_csr(csr_pem("ST1", key), "ST1")
    certificate = pki.sign_station_csr(authority, csr, "ST1", NOW)
    assert certificate.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment


def test_a_csr_signed_with_a_hash_below_sha256_is_refused() -> None:
    with pytest.raises(pki.PkiError) as refused:
        pki.check_csr(csr_pem("ST1", algorithm=hashes.SHA224()), "ST1")
    assert refused.value.code == "WeakSignature"


def test_an_oversized_csr_is_refused_before_it_is_parsed() -> None:
    oversized = csr_pem("ST1") + " " * pki.MAX_CSR_BYTES
    with pytest.raises(pki.PkiError, match="over 16384 bytes") as refused:
        pki.check_csr(oversized, "ST1")
    assert refused.value.code == "InvalidCSR"
    with pytest.raises(pki.PkiError, match="over"):
        pki.check_csr("é" * (pki.MAX_CSR_BYTES // 2 + 1), "ST1")  # few characters, many bytes


def test_text_that_is_not_a_csr_is_refused() -> None:
    for garbage in (
        "",
        "hello",
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    ):
        with pytest.raises(pki.PkiError) as refused:
            pki.check_csr(garbage, "ST1")
        assert refused.value.code == "InvalidCSR"


def test_a_key_issued_by_hand_is_its_certificates(authority: pki.Authority) -> None:
    issued = pki.issue_station(authority, "ST-9", NOW)
    key = serialization.load_pem_private_key(issued.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key() == issued.certificate.public_key()
    info = pki.describe(issued.certificate)
    assert info.common_name == "ST-9"
    assert info.serial_hex == format(issued.certificate.serial_number, "x")


def test_a_server_certificate_names_its_hosts_for_server_auth(authority: pki.Authority) -> None:
    issued = pki.issue_server(authority, ["127.0.0.1", "swap.example"], NOW)
    names = issued.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n) for n in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["swap.example"]
    usages = issued.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_the_crl_lists_the_revoked_serials_signed_by_the_ca(authority: pki.Authority) -> None:
    first = pki.issue_station(authority, "ST1", NOW).certificate
    second = pki.issue_station(authority, "ST2", NOW).certificate
    revoked_at = NOW + timedelta(hours=1)
    crl = pki.build_crl(authority, [(pki.serial_hex(first.serial_number), revoked_at)], NOW)
    assert crl.is_signature_valid(authority.key.public_key())
    assert crl.issuer == authority.certificate.subject
    entry = crl.get_revoked_certificate_by_serial_number(first.serial_number)
    assert entry is not None and entry.revocation_date_utc == revoked_at
    assert crl.get_revoked_certificate_by_serial_number(second.serial_number) is None
    assert crl.next_update_utc == NOW + timedelta(days=pki.CRL_VALIDITY_DAYS)


def test_the_ca_directory_keeps_the_key_to_its_owner(authority: pki.Authority, tmp_path: Path) -> None:
    directory = tmp_path / "ca"
    assert not pki.authority_exists(directory)
    pki.save_authority(authority, directory)
    assert pki.authority_exists(directory)
    assert stat.S_IMODE((directory / pki.CA_KEY_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    loaded = pki.load_authority(directory)
    assert loaded.certificate == authority.certificate
    assert loaded.key.private_numbers() == authority.key.private_numbers()
    assert sorted(p.name for p in directory.iterdir()) == [pki.CA_KEY_FILE, pki.CA_CERT_FILE]


def test_a_ca_directory_with_another_key_is_refused(authority: pki.Authority, tmp_path: Path) -> None:
    pki.save_authority(authority, tmp_path)
    other = pki.create_authority(NOW)
    pki.write_private_file(
        tmp_path / pki.CA_KEY_FILE,
        other.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    with pytest.raises(pki.PkiError, match="is not the key of"):
        pki.load_authority(tmp_path)
    with pytest.raises(pki.PkiError, match=r"no CA in .*ca\.key is missing"):
        pki.load_authority(tmp_path / "empty")


def test_an_oversized_ca_file_is_refused(authority: pki.Authority, tmp_path: Path) -> None:
    pki.save_authority(authority, tmp_path)
    (tmp_path / pki.CA_CERT_FILE).write_bytes(b"x" * (pki.MAX_PEM_BYTES + 1))
    with pytest.raises(pki.PkiError, match="over"):
        pki.load_authority(tmp_path)


@pytest.mark.parametrize(
    ("typed", "serial"), [("0x1A2B", "1a2b"), ("1a:2b", "1a2b"), ("001A2B", "1a2b"), (" ff ", "ff")]
)
def test_a_serial_is_read_in_the_forms_operators_type(typed: str, serial: str) -> None:
    assert pki.parse_serial(typed) == serial


@pytest.mark.parametrize("typed", ["", "0x", "xyz", "1" * 41])
def test_a_serial_that_is_not_hexadecimal_is_refused(typed: str) -> None:
    with pytest.raises(pki.PkiError):
        pki.parse_serial(typed)

"""The operator's certificate authority for OCPP security profile 3 (TLS with client certificates).

One CA, an EC P-256 key that signs station certificates only (path length 0: no sub-CA below
it). A station proves who it is by a certificate of this CA whose subject common name is its
station id; the server checks the chain in TLS and the name and revocation at the upgrade.

Everything a station or a file may hand us is bounded before it is parsed (``MAX_CSR_BYTES``,
``MAX_PEM_BYTES``), and refusals are ``PkiError``: a stable code (an OCPP reasonCode, at most
20 characters) and one line saying why.

Pure of swapd's storage: ``cryptography`` and the standard library only. The CA's two files
live in a directory of their own (``CA_KEY_FILE`` mode 0600, ``CA_CERT_FILE``); which
certificates were issued and revoked is the database's business (swapd.services.certificates).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Replacing the CA means a new certificate for every station: ten years.
CA_VALIDITY_DAYS = 3650
# A station renews through SignCertificate well within a year; an operator may choose up to
# MAX_LEAF_VALIDITY_DAYS for a station's or the server's certificate, never past the CA's end.
STATION_VALIDITY_DAYS = 365
MAX_LEAF_VALIDITY_DAYS = 825
SERVER_VALIDITY_DAYS = 365
CRL_VALIDITY_DAYS = 7
# Certificates start this long before they are issued: a station's clock may run behind ours.
CLOCK_SKEW_S = 300
# OCPP's SignCertificate carries at most 5,500 characters; a file of ours is far smaller.
MAX_CSR_BYTES = 16 * 1024
MAX_PEM_BYTES = 64 * 1024
MAX_CRL_ENTRIES = 100_000
# RFC 5280's upper bound for a common name.
MAX_COMMON_NAME_CHARS = 64
MIN_RSA_BITS = 2048
# Verifying a larger RSA key costs more than it protects; nobody needs one for a station.
MAX_RSA_BITS = 8192
EC_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
STRONG_HASHES = frozenset({"sha256", "sha384", "sha512"})
# A serial is at most 20 octets (RFC 5280): 40 hexadecimal digits.
MAX_SERIAL_HEX_CHARS = 40

CA_KEY_FILE = "ca.key"
CA_CERT_FILE = "ca.pem"
DEFAULT_CA_NAME = "swapd operator CA"

_HEX = re.compile(r"[0-9a-f]+")


class PkiError(ValueError):
    """A CSR, certificate or CA directory refused: ``code`` is an OCPP reasonCode (<= 20
    characters), the message one line for a person."""

    def __init__(self, code: str, message: str) -> None:
        assert len(code) <= 20, code
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Authority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def certificate_pem(self) -> str:
        return certificate_pem(self.certificate)


@dataclass(frozen=True)
class Issued:
    """A key made here and its certificate: the key exists only in this object and the file it
    is written to."""

    key_pem: bytes
    certificate: x509.Certificate


@dataclass(frozen=True)
class CertificateInfo:
    common_name: str | None
    serial_hex: str
    not_after: datetime


# -- names, serials, encodings ----------------------------------------------------------------------


def serial_hex(serial: int) -> str:
    """OCPP's form of a serial number: lower-case hexadecimal, no "0x", no leading zeros."""
    return format(serial, "x")


def parse_serial(text: str) -> str:
    """A serial as an operator may type it ("0x1A2B", "1a:2b", "001A2B") in ``serial_hex`` form."""
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    if not cleaned or len(cleaned) > MAX_SERIAL_HEX_CHARS or not _HEX.fullmatch(cleaned):
        raise PkiError("InvalidSerial", f"a serial is 1-40 hexadecimal digits, got {text[:60]!r}")
    return serial_hex(int(cleaned, 16))


def certificate_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def common_name(name: x509.Name) -> str | None:
    """The one common name of ``name``; None when it has none or several."""
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(values) != 1 or not isinstance(values[0].value, str):
        return None
    return values[0].value


def describe(certificate: x509.Certificate) -> CertificateInfo:
    return CertificateInfo(
        common_name(certificate.subject),
        serial_hex(certificate.serial_number),
        certificate.not_valid_after_utc,
    )


def load_certificate(pem: str | bytes) -> x509.Certificate:
    data = _bounded_bytes(pem, MAX_PEM_BYTES, "certificate", "TooLarge")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise PkiError("InvalidCertificate", "not a PEM certificate") from None


def _bounded_bytes(text: str | bytes, limit: int, what: str, code: str) -> bytes:
    # A str of n characters is at least n bytes: a long one is refused before it is encoded.
    if len(text) > limit:
        raise PkiError(code, f"the {what} is over {limit} bytes")
    data = text.encode("utf-8") if isinstance(text, str) else text
    if len(data) > limit:
        raise PkiError(code, f"the {what} is over {limit} bytes")
    return data


def _check_common_name(name: str) -> str:
    if not name or len(name) > MAX_COMMON_NAME_CHARS or not name.isprintable():
        raise PkiError("InvalidCN", f"a common name is 1-{MAX_COMMON_NAME_CHARS} printable characters")
    return name


# -- the CA -----------------------------------------------------------------------------------------


def create_authority(
    now: datetime, *, name: str = DEFAULT_CA_NAME, validity_days: int = CA_VALIDITY_DAYS
) -> Authority:
    """A new self-signed CA: EC P-256, CA:true with path length 0, valid ``validity_days``."""
    assert now.tzinfo is not None, "times are aware (UTC)"
    if not 1 <= validity_days <= CA_VALIDITY_DAYS:
        raise PkiError("InvalidValidity", f"a CA is valid 1-{CA_VALIDITY_DAYS} days")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _check_common_name(name))])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(seconds=CLOCK_SKEW_S))
        .not_valid_after(now + timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, certificate)


# -- what a station sends: its CSR ------------------------------------------------------------------


def check_csr(csr_pem: str | bytes, station_id: str) -> x509.CertificateSigningRequest:
    """The CSR, if it may become ``station_id``'s certificate: at most ``MAX_CSR_BYTES``, PEM,
    self-signed by its key with SHA-256 or stronger, one subject common name equal to the station
    id, and a key of ``MIN_RSA_BITS`` RSA or an ``EC_CURVES`` curve. Else PkiError."""
    data = _bounded_bytes(csr_pem, MAX_CSR_BYTES, "CSR", "InvalidCSR")
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError:
        raise PkiError("InvalidCSR", "not a PEM certificate signing request") from None
    _check_public_key(csr)
    try:
        algorithm = csr.signature_hash_algorithm
    except UnsupportedAlgorithm:
        algorithm = None
    if algorithm is None or algorithm.name not in STRONG_HASHES:
        raise PkiError("WeakSignature", "the CSR must be signed with SHA-256, SHA-384 or SHA-512")
    if not csr.is_signature_valid:
        raise PkiError("InvalidSignature", "the CSR's signature does not verify with its key")
    name = common_name(csr.subject)
    if name != station_id:
        shown = "none" if name is None else repr(name[:MAX_COMMON_NAME_CHARS])
        raise PkiError("WrongCN", f"the CSR's common name is {shown}, not the station id {station_id}")
    return csr


def _check_public_key(csr: x509.CertificateSigningRequest) -> None:
    try:
        key = csr.public_key()
    except (UnsupportedAlgorithm, ValueError):
        raise PkiError("WeakKey", "the CSR's key is of a kind swapd does not sign") from None
    if isinstance(key, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            raise PkiError("WeakKey", f"an RSA key has {MIN_RSA_BITS}-{MAX_RSA_BITS} bits")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in EC_CURVES:
            raise PkiError("WeakKey", "an EC key is on P-256, P-384 or P-521")
    else:
        raise PkiError("WeakKey", "the key must be RSA or EC (P-256, P-384, P-521)")


# -- certificates this CA signs ---------------------------------------------------------------------


def sign_station_csr(
    authority: Authority,
    csr: x509.CertificateSigningRequest,
    station_id: str,
    now: datetime,
    *,
    validity_days: int = STATION_VALIDITY_DAYS,
) -> x509.Certificate:
    """The station's certificate for a CSR that passed ``check_csr``. Only the CSR's key is
    taken: the subject is the station id alone, and no extension the CSR asks for is copied."""
    key = csr.public_key()
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey), "check_csr first"
    return _station_certificate(authority, key, station_id, now, validity_days)


def issue_station(
    authority: Authority,
    station_id: str,
    now: datetime,
    *,
    validity_days: int = STATION_VALIDITY_DAYS,
) -> Issued:
    """A new EC P-256 key for the station and its certificate, for an operator to install by hand."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _station_certificate(authority, key.public_key(), station_id, now, validity_days)
    return Issued(_private_pem(key), certificate)


def _station_certificate(
    authority: Authority,
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    station_id: str,
    now: datetime,
    validity_days: int,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _check_common_name(station_id))])
    builder = _signed_by(authority, subject, key, now, validity_days).add_extension(
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
    )
    return builder.add_extension(
        _end_entity_usage(rsa_key=isinstance(key, rsa.RSAPublicKey)), critical=True
    ).sign(authority.key, hashes.SHA256())


def issue_server(
    authority: Authority,
    hostnames: Sequence[str],
    now: datetime,
    *,
    validity_days: int = SERVER_VALIDITY_DAYS,
) -> Issued:
    """A key and certificate for ``swapd serve --certfile --keyfile``, for stations that trust
    this CA for the server too: each hostname a DNS name or an IP address."""
    if not hostnames or len(hostnames) > 20:
        raise PkiError("InvalidHost", "give 1-20 host names or addresses")
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(_check_common_name(host)))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _check_common_name(hostnames[0]))])
    certificate = (
        _signed_by(authority, subject, key.public_key(), now, validity_days)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_end_entity_usage(rsa_key=False), critical=True)
        .sign(authority.key, hashes.SHA256())
    )
    return Issued(_private_pem(key), certificate)


def _signed_by(
    authority: Authority,
    subject: x509.Name,
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    now: datetime,
    validity_days: int,
) -> x509.CertificateBuilder:
    """What every certificate of this CA shares: random serial, validity never past the CA's,
    not a CA itself, key identifiers."""
    assert now.tzinfo is not None, "times are aware (UTC)"
    if not 1 <= validity_days <= MAX_LEAF_VALIDITY_DAYS:
        raise PkiError("InvalidValidity", f"a certificate is valid 1-{MAX_LEAF_VALIDITY_DAYS} days")
    not_after = min(now + timedelta(days=validity_days), authority.certificate.not_valid_after_utc)
    if not_after <= now:
        raise PkiError("CAExpired", "the CA has expired: create a new one")
    ca_key_id = x509.SubjectKeyIdentifier.from_public_key(authority.key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(authority.certificate.subject)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(seconds=CLOCK_SKEW_S))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id), critical=False
        )
    )


def _end_entity_usage(*, rsa_key: bool) -> x509.KeyUsage:
    # TLS signs with the key (ECDHE); an RSA key may also encrypt the key exchange in TLS 1.2.
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=rsa_key,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def build_crl(
    authority: Authority,
    revoked: Iterable[tuple[str, datetime]],
    now: datetime,
    *,
    validity_days: int = CRL_VALIDITY_DAYS,
) -> x509.CertificateRevocationList:
    """The CA's revocation list of ``revoked`` (serial in ``serial_hex`` form, when revoked),
    valid ``validity_days`` from ``now``."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(authority.certificate.subject)
        .last_update(now)
        .next_update(now + timedelta(days=validity_days))
    )
    for count, (serial, revoked_at) in enumerate(revoked, start=1):
        if count > MAX_CRL_ENTRIES:
            raise PkiError("TooLarge", f"a CRL lists at most {MAX_CRL_ENTRIES} certificates")
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(int(parse_serial(serial), 16))
            .revocation_date(revoked_at)
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(authority.key, hashes.SHA256())


# -- the CA's directory -----------------------------------------------------------------------------


def authority_exists(directory: Path) -> bool:
    return (directory / CA_KEY_FILE).exists() or (directory / CA_CERT_FILE).exists()


def save_authority(authority: Authority, directory: Path) -> None:
    """Write the CA's key (mode 0600) and certificate into ``directory`` (made 0700 if new),
    each replacing its file whole: a reader sees the old file or the new one."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private_file(directory / CA_KEY_FILE, _private_pem(authority.key))
    write_public_file(directory / CA_CERT_FILE, authority.certificate_pem.encode("ascii"))


def load_authority(directory: Path) -> Authority:
    """The CA in ``directory``, checked: its key is the certificate's, and the certificate a CA's."""
    key_path, cert_path = directory / CA_KEY_FILE, directory / CA_CERT_FILE
    for path in (key_path, cert_path):
        if not path.is_file():
            raise PkiError("NoCA", f"no CA in {directory}: {path.name} is missing")
    try:
        key = serialization.load_pem_private_key(read_bounded(key_path), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise PkiError("NoCA", f"{key_path} is not an unencrypted PEM private key") from None
    certificate = load_certificate(read_bounded(cert_path))
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != certificate.public_key():
        raise PkiError("NoCA", f"{key_path} is not the key of {cert_path}")
    if not is_authority(certificate):
        raise PkiError("NoCA", f"{cert_path} is not a CA certificate")
    return Authority(key, certificate)


def is_authority(certificate: x509.Certificate) -> bool:
    """Whether the certificate says it is a CA's (basic constraints CA:true)."""
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return constraints.ca


def read_bounded(path: Path, limit: int = MAX_PEM_BYTES) -> bytes:
    with path.open("rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise PkiError("TooLarge", f"{path} is over {limit} bytes")
    return data


def write_private_file(path: Path, data: bytes) -> None:
    """``data`` into ``path``, readable by its owner only (0600) from its first byte."""
    _replace(path, data, 0o600)


def write_public_file(path: Path, data: bytes) -> None:
    _replace(path, data, 0o644)


def _replace(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()  # left by a crash of an earlier run of this process id
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)  # os.open's mode passed through the umask
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise

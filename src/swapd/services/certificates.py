"""Station certificates (OCPP security profile 3): what the operator's CA signed, recorded by
serial, and revoked by the operator.

The CA itself is a directory of two files (swapd.pki); this module records each certificate it
signs for a station in ``station_certificates``, in the transaction that checks the station, so
that no certificate exists that the operator cannot list and revoke. The gateway reads the
serial of the certificate a station connects with (``access_by_certificate``) and refuses a
revoked one.

A station asks for a certificate with SignCertificate (``sign_request``): its CSR is checked,
signed, recorded, and the certificate sent back as a CertificateSigned command through the
station command queue (swapd.services.station_commands).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from cryptography import x509

from swapd import pki
from swapd.domain.errors import InvalidInput, NotFound
from swapd.logger import get_logger
from swapd.services import audit, station_commands
from swapd.services.stations import StationAccess
from swapd.store import schema as t
from swapd.store.database import Database, Tx

log = get_logger(__name__)
T = TypeVar("T")

# A station asks for a certificate when its own nears its end, or after a reset: a few a year.
# More than this in a day is a station stuck in a loop (or someone speaking for it), and each
# would be a row and a signature.
MAX_SIGNED_PER_DAY = 10
# OCPP's certificateType a station uses for its connection to us; the 15118 ones (V2G) are for
# a vehicle's charging, which swapd does not sign.
STATION_CERTIFICATE = "ChargingStationCertificate"
CERTIFICATE_SIGNED_TIMEOUT_S = 60.0
# A station that drops its connection right after asking gets its certificate when it is back.
CERTIFICATE_SIGNED_QUEUE_S = 3600.0
MAX_LISTED = 1000  # a station's certificates, newest first: a few a year
MAX_REASON_CHARS = 200


@dataclass(frozen=True, slots=True)
class StationCertificate:
    serial: str
    station_id: str
    not_after: datetime
    issued_at: datetime
    revoked_at: datetime | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class SignOutcome:
    """SignCertificate's answer: accepted with the certificate's serial and the CertificateSigned
    command, or rejected with an OCPP reasonCode and a line saying why."""

    accepted: bool
    reason_code: str | None = None
    detail: str | None = None
    serial: str | None = None
    command_id: int | None = None


@dataclass(frozen=True, slots=True)
class CertificateAccess:
    """What the upgrade needs of a station connecting with a certificate."""

    access: StationAccess | None  # None: unknown station
    revoked: bool


def _record(tx: Tx, station_id: str, certificate: x509.Certificate) -> StationCertificate:
    info = pki.describe(certificate)
    row = StationCertificate(info.serial_hex, station_id, info.not_after, tx.now, None, None)
    tx.repo.execute(
        sa.insert(t.station_certificates).values(
            serial=row.serial, station_id=station_id, not_after=row.not_after, issued_at=tx.now
        )
    )
    return row


def _require_station(tx: Tx, station_id: str) -> None:
    if tx.repo.station(station_id) is None:
        raise NotFound(f"unknown station {station_id}")


def issue(
    db: Database,
    authority: pki.Authority,
    station_id: str,
    *,
    actor: str,
    validity_days: int = pki.STATION_VALIDITY_DAYS,
) -> tuple[pki.Issued, StationCertificate]:
    """A new key and certificate for the station, recorded and audited; the key is returned
    once and kept nowhere."""

    def work(tx: Tx) -> tuple[pki.Issued, StationCertificate]:
        _require_station(tx, station_id)
        issued = _pki(
            lambda: pki.issue_station(authority, station_id, tx.now, validity_days=validity_days)
        )
        row = _record(tx, station_id, issued.certificate)
        detail = {"serial": row.serial, "not_after": row.not_after.isoformat()}
        audit.record(tx, actor, "station.certificate", station_id, "certificate issued", detail)
        return issued, row

    return db.write(work)


def sign_request(
    db: Database,
    ca_dir: Path | None,
    station_id: str,
    csr_pem: str,
    *,
    certificate_type: str | None = None,
    request_id: int | None = None,
) -> SignOutcome:
    """SignCertificate from a connected station: check the CSR, sign and record the certificate,
    and queue CertificateSigned with it. Rejected (nothing written) when the CSR fails
    ``pki.check_csr``, the type is not the station's own certificate, no CA is set up, or the
    station asked too often today."""
    if certificate_type not in (None, STATION_CERTIFICATE):
        return SignOutcome(False, "UnsupportedRequest", f"swapd signs only {STATION_CERTIFICATE}")
    try:
        csr = pki.check_csr(csr_pem, station_id)
        if ca_dir is None:
            raise pki.PkiError("NoCA", "the server has no CA to sign with")
        authority = pki.load_authority(ca_dir)
    except pki.PkiError as error:
        return SignOutcome(False, error.code, error.message)

    def work(tx: Tx) -> tuple[x509.Certificate, StationCertificate] | SignOutcome:
        _require_station(tx, station_id)
        c = t.station_certificates.c
        today = tx.repo.execute(
            sa.select(sa.func.count())
            .select_from(t.station_certificates)
            .where(c.station_id == station_id, c.issued_at > tx.now - timedelta(days=1))
        ).scalar_one()
        if today >= MAX_SIGNED_PER_DAY:
            detail = f"at most {MAX_SIGNED_PER_DAY} certificates a day for one station"
            return SignOutcome(False, "TooManyRequests", detail)
        try:
            certificate = pki.sign_station_csr(authority, csr, station_id, tx.now)
        except pki.PkiError as error:  # the CA has expired
            return SignOutcome(False, error.code, error.message)
        return certificate, _record(tx, station_id, certificate)

    signed = db.write(work)
    if isinstance(signed, SignOutcome):
        return signed
    certificate, row = signed
    # The chain a station installs: its certificate, then the CA's (OCPP: leaf first).
    chain = pki.certificate_pem(certificate) + authority.certificate_pem
    payload: dict[str, Any] = {"certificateChain": chain, "certificateType": STATION_CERTIFICATE}
    if request_id is not None:
        payload["requestId"] = request_id
    # Queued in a transaction of its own after the certificate's: a certificate recorded but
    # never sent is harmless (the station asks again), one sent but not recorded could not be
    # revoked. The gateway's dispatcher claims it in a later transaction, after SignCertificate's
    # answer has gone (OCPP-J allows either order: each side has its own call in flight).
    command_id = station_commands.enqueue(
        db,
        station_id,
        "CertificateSigned",
        payload,
        timeout_s=CERTIFICATE_SIGNED_TIMEOUT_S,
        queue_s=CERTIFICATE_SIGNED_QUEUE_S,
        requested_by="swapd",
    )
    log.info("station_certificate_signed", station=station_id, serial=row.serial)
    return SignOutcome(True, serial=row.serial, command_id=command_id)


def revoke(db: Database, station_id: str, *, serial: str | None, reason: str, actor: str) -> list[str]:
    """Revoke the station's certificate ``serial`` (any form ``pki.parse_serial`` reads), or
    every certificate of the station not revoked yet; returns the serials revoked now. A serial
    revoked before is not revoked again (its first date and reason stay)."""
    wanted = None if serial is None else _pki(lambda: pki.parse_serial(serial))
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(f"a reason is 1-{MAX_REASON_CHARS} characters")
    c = t.station_certificates.c

    def work(tx: Tx) -> list[str]:
        _require_station(tx, station_id)
        query = sa.select(c.serial, c.revoked_at).where(c.station_id == station_id)
        if wanted is not None:
            query = query.where(c.serial == wanted)
        rows = tx.repo.execute(query.order_by(c.issued_at, c.serial)).all()
        if wanted is not None and not rows:
            raise NotFound(f"station {station_id} has no certificate with serial {wanted}")
        serials = [row.serial for row in rows if row.revoked_at is None]
        if serials:
            tx.repo.execute(
                sa.update(t.station_certificates)
                .where(c.serial.in_(serials), c.revoked_at.is_(None))
                .values(revoked_at=tx.now, reason=reason)
            )
            detail = {"serials": serials}
            audit.record(tx, actor, "station.certificate_revoke", station_id, reason, detail)
        return serials

    return db.write(work)


def is_revoked(db: Database, serial: str) -> bool:
    """Whether ``serial`` (``pki.serial_hex`` form) was recorded and revoked."""
    c = t.station_certificates.c
    query = sa.select(c.revoked_at).where(c.serial == serial)
    return db.read(lambda tx: tx.repo.execute(query).scalar_one_or_none()) is not None


def station_certificates(db: Database, station_id: str) -> list[StationCertificate]:
    """The station's certificates, newest first (at most ``MAX_LISTED``)."""
    c = t.station_certificates.c

    def work(tx: Tx) -> list[StationCertificate]:
        _require_station(tx, station_id)
        rows = tx.repo.execute(
            sa.select(c.serial, c.station_id, c.not_after, c.issued_at, c.revoked_at, c.reason)
            .where(c.station_id == station_id)
            .order_by(c.issued_at.desc(), c.serial)
            .limit(MAX_LISTED)
        ).all()
        return [StationCertificate(*row) for row in rows]

    return db.read(work)


def revoked_serials(db: Database) -> list[tuple[str, datetime]]:
    """Every revoked serial not yet past its end, with when it was revoked: the CRL's entries."""
    c = t.station_certificates.c
    return db.read(
        lambda tx: [
            (row.serial, row.revoked_at)
            for row in tx.repo.execute(
                sa.select(c.serial, c.revoked_at)
                .where(c.revoked_at.is_not(None), c.not_after > tx.now)
                .order_by(c.revoked_at, c.serial)
                .limit(pki.MAX_CRL_ENTRIES)
            )
        ]
    )


def access_by_certificate(db: Database, station_id: str, serial: str) -> CertificateAccess:
    """The station's access row and whether the certificate it connects with is revoked, in one
    read (the upgrade of every station on profile 3 pays it)."""
    s, c = t.stations.c, t.station_certificates.c

    def work(tx: Tx) -> CertificateAccess:
        row = tx.repo.execute(
            sa.select(s.id, s.enabled, s.password_hash, c.revoked_at)
            .select_from(t.stations)
            .outerjoin(t.station_certificates, c.serial == serial)
            .where(s.id == station_id)
        ).first()
        if row is None:
            return CertificateAccess(None, revoked=False)
        access = StationAccess(row.id, row.enabled, row.password_hash)
        return CertificateAccess(access, revoked=row.revoked_at is not None)

    return db.read(work)


def _pki(make: Callable[[], T]) -> T:
    """``make()``, with a refusal of swapd.pki as the InvalidInput the CLI and API show."""
    try:
        return make()
    except pki.PkiError as error:
        raise InvalidInput(error.message) from None

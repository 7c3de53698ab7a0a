"""Who may open a station's WebSocket under security profile 3: TLS with a client certificate.

When ``swapd serve`` runs with ``--tls-client-ca``, TLS itself refuses a client without a
certificate of the operator's CA (uvicorn with ``ssl.CERT_REQUIRED``). What TLS cannot know is
checked here, at the upgrade, from the certificate in the scope's TLS extension
(swapd.gateway.protocol.tls_extension):

1. its subject common name is the station id in the URL (else 403): a station's certificate
   speaks for that station only;
2. its serial is not revoked in ``station_certificates`` (else 403), read with the station's row
   in one query (swapd.services.certificates.access_by_certificate): a revocation holds from the
   station's next connection, in every server process;
3. the station exists (else 404).

A refusal here is one warning line (``station_auth_failed``) and a count in
``swapd_station_auth_refusals``, but not a failure of the client's address: the peer proved
it holds a key of the operator's CA, and a revoked station retrying must not lock out the other
stations behind the same address.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog
from cryptography import x509

from swapd import pki
from swapd.gateway.auth import Refusal
from swapd.gateway.metrics import GatewayMetrics
from swapd.gateway.protocol import TLS_EXTENSION
from swapd.services import certificates
from swapd.services.stations import StationAccess
from swapd.store.database import Database

log = structlog.get_logger(__name__)


def peer_certificate(scope: Mapping[str, Any]) -> x509.Certificate | None:
    """The client's certificate from the scope's TLS extension; None when it sent none."""
    tls = scope.get("extensions", {}).get(TLS_EXTENSION) or {}
    chain = tls.get("client_cert_chain") or []
    if not chain:
        return None
    try:
        return pki.load_certificate(chain[0])
    except pki.PkiError:
        return None


async def admit(
    db: Database, metrics: GatewayMetrics, scope: Mapping[str, Any], station_id: str, client: str
) -> StationAccess | Refusal:
    """The station's access row when its certificate may speak for ``station_id``, else why not."""
    certificate = peer_certificate(scope)
    if certificate is None:
        refusal = Refusal(403, "no_client_certificate", "a client certificate is required")
        return _refused(metrics, station_id, client, refusal)
    info = pki.describe(certificate)
    if info.common_name != station_id:
        text = f"the client certificate is not station {station_id}'s"
        return _refused(metrics, station_id, client, Refusal(403, "certificate_other_station", text))
    found = await asyncio.to_thread(certificates.access_by_certificate, db, station_id, info.serial_hex)
    if found.access is None:
        refusal = Refusal(404, "unknown_station", f"unknown station {station_id}")
        return _refused(metrics, station_id, client, refusal)
    if found.revoked:
        refusal = Refusal(403, "certificate_revoked", "the client certificate is revoked")
        return _refused(metrics, station_id, client, refusal, serial=info.serial_hex)
    return found.access


def _refused(
    metrics: GatewayMetrics,
    station_id: str,
    client: str,
    refusal: Refusal,
    *,
    serial: str | None = None,
) -> Refusal:
    log.warning(
        "station_auth_failed",
        station=station_id,
        client=client,
        reason=refusal.reason,
        status=refusal.status,
        serial=serial,
    )
    metrics.auth_refusals.labels(refusal.reason).inc()
    return refusal

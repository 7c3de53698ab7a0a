"""Who may open a station's WebSocket: HTTP Basic auth on the upgrade (security profiles 1 and
2), with failed logins limited and password hashing in a bounded pool of its own.

The checks run cheapest first, so that a guesser's attempts cost as little as possible:

1. the client address's failure limit (``auth_limits``): a dictionary lookup, no database;
   no credentials at all: 401 (the Basic challenge), not counted as a failure;
2. a password verified before by this process (a SHA-256 digest in memory) skips the station
   id's limit, so a real station reconnects while its id is under attack;
3. otherwise the station id's turn (``StationGate``: one hash at a time per id, fewer once it
   is limited), still before the database;
4. the station's row: unknown id 404, credentials for another id or unreadable 401;
5. scrypt in ``HashPool``: wrong password 401, and 503 at once when the pool's queue is full.

Every refusal but the challenge, a limited address's and a full pool's counts as a failure of
the client's address, and each is logged as one warning with the station id and the client's
address (a limited address's refusals are only counted, in swapd_station_auth_refusals). The
password itself is never logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import math
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import structlog

from swapd.gateway.auth_limits import (
    ADDRESS_LIMITS,
    FailureWindow,
    StationGate,
    address_key,
)
from swapd.gateway.metrics import GatewayMetrics
from swapd.security import verify_password
from swapd.services import stations
from swapd.services.stations import StationAccess
from swapd.store.database import Database

log = structlog.get_logger(__name__)

# scrypt releases the GIL and takes a core while it runs: on two cores or fewer one thread,
# so that the event loop always keeps a core; two above that.
HASH_THREADS = 1 if (os.cpu_count() or 1) <= 2 else 2
# Hashes waiting or running, per thread: at ~40-100 ms a hash, an admitted login waits at most
# about 0.4 s; beyond that it is refused at once with 503 and Retry-After.
HASH_QUEUE_PER_THREAD = 4
HASH_BUSY_RETRY_AFTER_S = 2
MAX_VERIFIED_CACHE = 100_000
_CREDENTIALS_REQUIRED = "Basic auth with the station id as username is required"


class HashPoolFull(Exception):
    """Every slot of the hashing pool's queue is taken."""


class HashPool:
    """Password checks in threads of their own, never the event loop's nor asyncio's default
    executor (which the database calls and /healthz share), with at most ``max_pending``
    checks waiting or running."""

    def __init__(
        self, threads: int = HASH_THREADS, max_pending: int = HASH_THREADS * HASH_QUEUE_PER_THREAD
    ) -> None:
        assert threads > 0 and max_pending >= threads
        self.threads = threads
        self.max_pending = max_pending
        self.pending = 0  # touched only on the event loop
        self._executor: ThreadPoolExecutor | None = None

    async def verify(self, password: str, stored_hash: str) -> bool:
        """``verify_password`` in the pool; raises HashPoolFull at once when it is full."""
        if self.pending >= self.max_pending:
            raise HashPoolFull
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="swapd-scrypt")
        loop = asyncio.get_running_loop()
        future = self._executor.submit(verify_password, password, stored_hash)
        self.pending += 1

        def done(_: Future[bool]) -> None:
            # The slot is free when the hash has ended, not when its waiter gave up.
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to count
                loop.call_soon_threadsafe(self._done)

        future.add_done_callback(done)
        return await asyncio.wrap_future(future)

    def _done(self) -> None:
        self.pending -= 1

    def close(self) -> None:
        """Stop the threads (queued checks are dropped); the next ``verify`` starts new ones."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


@dataclass(frozen=True)
class Refusal:
    """An upgrade refused: the HTTP status, a reason (a metric label) and its text."""

    status: int
    reason: str
    text: str
    retry_after_s: float | None = None

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="swapd"'
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
        return headers


def basic_password(authorization: str, station_id: str) -> str | None:
    """The password of an HTTP Basic ``Authorization`` header whose username is ``station_id``."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return password if sep and username == station_id else None


class StationAuth:
    def __init__(
        self,
        db: Database,
        metrics: GatewayMetrics,
        *,
        pool: HashPool | None = None,
        addresses: FailureWindow | None = None,
        gate: StationGate | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics
        self.pool = pool or HashPool()
        self.addresses = addresses or FailureWindow(ADDRESS_LIMITS)
        self.gate = gate or StationGate()
        # Stations reconnect often and all at once after an outage; scrypt per connection would
        # then cost minutes of CPU. A password verified once is remembered as a SHA-256 digest
        # (in memory only) for as long as the stored hash is the one it was verified against.
        self.verified: dict[str, tuple[str, bytes]] = {}

    def address_retry_after_s(self, client: str) -> float | None:
        """Seconds until ``client`` may try again (counted as a refusal), or None."""
        retry_s = self.addresses.retry_after_s(address_key(client))
        if retry_s is not None:
            self.metrics.auth_refusals.labels("address_limited").inc()
        return retry_s

    async def admit(self, station_id: str, client: str, authorization: str) -> StationAccess | Refusal:
        """The station's access row when the upgrade's credentials are right, else why not."""
        if (retry_s := self.address_retry_after_s(client)) is not None:
            return Refusal(429, "address_limited", "too many failed logins", retry_s)
        if not authorization:
            # HTTP's challenge, answered without the database and not counted as a failure: a
            # client may ask first and send its credentials on the next request.
            return self._refused(Refusal(401, "no_credentials", _CREDENTIALS_REQUIRED))
        address = address_key(client)
        password = basic_password(authorization, station_id)
        digest = None if password is None else hashlib.sha256(password.encode()).digest()
        # A password that will need a hash takes the station id's turn before the database is
        # read: a burst for one id then costs one read and one hash, not one read each.
        gated = digest is not None and self._cached_hash(station_id, digest) is None
        if gated and (retry_s := self.gate.acquire(station_id)) is not None:
            return self._failed(station_id, client, address, _station_limited(retry_s))
        verified: bool | None = None
        try:
            access = await asyncio.to_thread(stations.access, self.db, station_id)
            if access is None:
                refusal = Refusal(404, "unknown_station", f"unknown station {station_id}")
                return self._failed(station_id, client, address, refusal)
            if password is None or digest is None or access.password_hash is None:
                refusal = Refusal(401, "bad_credentials", _CREDENTIALS_REQUIRED)
                return self._failed(station_id, client, address, refusal)
            if self._cached_hash(station_id, digest) == access.password_hash:
                return access
            if not gated:  # cached against an older stored hash: the password was changed
                if (retry_s := self.gate.acquire(station_id)) is not None:
                    return self._failed(station_id, client, address, _station_limited(retry_s))
                gated = True
            try:
                verified = await self.pool.verify(password, access.password_hash)
            except HashPoolFull:
                busy = Refusal(503, "hash_pool_full", "busy, retry later", HASH_BUSY_RETRY_AFTER_S)
                return self._refused(busy)
        finally:
            if gated and self.gate.release(station_id, verified=verified):
                log.warning("station_auth_limited", station=station_id, client=client)
        if not verified:
            wrong = Refusal(401, "wrong_password", "wrong password")
            return self._failed(station_id, client, address, wrong)
        self._remember(station_id, access.password_hash, digest)
        return access

    def _remember(self, station_id: str, password_hash: str, digest: bytes) -> None:
        """Skip scrypt next time this password comes for this id, while the stored hash holds."""
        # Bounded: when full it starts over; a forgotten password costs one hash at its next login.
        if len(self.verified) >= MAX_VERIFIED_CACHE:
            self.verified.clear()
        self.verified[station_id] = (password_hash, digest)

    def _cached_hash(self, station_id: str, digest: bytes) -> str | None:
        """The stored hash this password was verified against, if it was."""
        known = self.verified.get(station_id)
        if known is None or not hmac.compare_digest(known[1], digest):
            return None
        return known[0]

    def _refused(self, refusal: Refusal) -> Refusal:
        self.metrics.auth_refusals.labels(refusal.reason).inc()
        return refusal

    def _failed(self, station_id: str, client: str, address: str, refusal: Refusal) -> Refusal:
        log.warning(
            "station_auth_failed",
            station=station_id,
            client=client,
            reason=refusal.reason,
            status=refusal.status,
        )
        if self.addresses.fail(address):
            log.warning("station_auth_address_limited", client=client, address=address)
        return self._refused(refusal)

    def close(self) -> None:
        self.pool.close()


def _station_limited(retry_s: float) -> Refusal:
    return Refusal(429, "station_limited", "too many failed logins for this station", retry_s)

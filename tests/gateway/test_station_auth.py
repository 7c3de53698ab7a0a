"""Station logins under attack: scrypt in a bounded pool of its own, failures limited per station
id and per client address (429 with Retry-After, no hash, and for a limited address no database
either), a full pool answered 503 at once, and each failure one warning line."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
import websockets
from websockets.exceptions import InvalidStatus

from swapd.gateway import auth
from swapd.gateway.auth import HashPool, Refusal, StationAuth
from swapd.gateway.auth_limits import ADDRESS_LIMITS, STATION_LIMITS, StationGate
from swapd.gateway.metrics import GatewayMetrics
from swapd.services import stations
from swapd.services.stations import StationAccess
from swapd.store.database import Database
from tests.gateway.conftest import LiveServer, basic_auth, connect, network

# Hash pools, gates and lockouts are about what a hash costs: keep the real cost.
pytestmark = [pytest.mark.anyio, pytest.mark.real_password_cost]

WRONG = "wrong-password-123"


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def scrypt_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The name of the thread of every scrypt hash from now on."""
    names: list[str] = []
    real = hashlib.scrypt

    def recorded(*args: Any, **kwargs: Any) -> bytes:
        names.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", recorded)
    yield names


async def _upgrade(
    server: LiveServer, station_id: str, password: str, *, local: str = "127.0.0.1"
) -> tuple[int, dict[str, str]]:
    """The upgrade's HTTP status (101 when it connected) and the refusal's headers."""
    try:
        ws = await websockets.connect(
            f"{server.url}/ocpp/{station_id}",
            subprotocols=[websockets.Subprotocol("ocpp2.1")],
            additional_headers=basic_auth(station_id, password),
            local_addr=(local, 0),
        )
    except InvalidStatus as refused:
        return refused.response.status_code, dict(refused.response.headers)
    await ws.close()
    return 101, {}


def _authorization(station_id: str, password: str) -> str:
    return basic_auth(station_id, password)["Authorization"]


async def test_scrypt_runs_in_its_own_pool_not_on_the_loop_nor_the_default_executor(
    db: Database, live_server: LiveServer, scrypt_threads: list[str]
) -> None:
    passwords = network(db)
    scrypt_threads.clear()  # network() hashed the passwords it set, here
    assert (await _upgrade(live_server, "ST1", WRONG))[0] == 401
    assert (await _upgrade(live_server, "ST1", passwords["ST1"]))[0] == 101
    assert len(scrypt_threads) == 2
    # Not the loop's default executor (uvloop_0, asyncio_0, ...), which /healthz and the
    # database calls share.
    assert all(name.startswith("swapd-scrypt") for name in scrypt_threads), scrypt_threads


async def test_wrong_passwords_limit_the_station_id_without_hashing_but_a_verified_password_gets_in(
    db: Database, live_server: LiveServer, scrypt_threads: list[str]
) -> None:
    passwords = network(db)
    assert (await _upgrade(live_server, "ST1", passwords["ST1"]))[0] == 101  # verified once
    for _ in range(STATION_LIMITS.max_failures):
        assert (await _upgrade(live_server, "ST1", WRONG, local="127.0.0.2"))[0] == 401
    hashes = len(scrypt_threads)
    status, headers = await _upgrade(live_server, "ST1", WRONG, local="127.0.0.3")
    assert status == 429 and int(headers["retry-after"]) >= 1
    assert len(scrypt_threads) == hashes  # refused without a hash
    # The real station, whose password this server verified before, is let in all the same,
    # and other stations are not affected.
    assert (await _upgrade(live_server, "ST1", passwords["ST1"]))[0] == 101
    assert (await _upgrade(live_server, "ST2", passwords["ST2"]))[0] == 101


async def test_a_limited_address_is_refused_before_any_database_work(
    db: Database, live_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    passwords = network(db)
    reads: list[str] = []
    real_access: Callable[[Database, str], StationAccess | None] = stations.access

    def counted(database: Database, station_id: str) -> StationAccess | None:
        reads.append(station_id)
        return real_access(database, station_id)

    monkeypatch.setattr(stations, "access", counted)
    for n in range(ADDRESS_LIMITS.max_failures):  # guessing station ids: 404s, no hash
        assert (await _upgrade(live_server, f"NOPE{n}", WRONG, local="127.0.0.5"))[0] == 404
    reads.clear()
    status, headers = await _upgrade(live_server, "ST2", passwords["ST2"], local="127.0.0.5")
    assert status == 429 and int(headers["retry-after"]) >= 1
    assert reads == []
    # Another address is not affected.
    assert (await _upgrade(live_server, "ST2", passwords["ST2"]))[0] == 101


async def test_a_refused_upgrade_is_one_warning_and_no_error(
    db: Database, live_server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    network(db)
    with caplog.at_level(logging.INFO), structlog.testing.capture_logs() as logged:
        assert (await _upgrade(live_server, "ST1", WRONG, local="127.0.0.6"))[0] == 401
        await asyncio.sleep(0.1)  # the server's task ends after the client has its answer
    failures = [e for e in logged if e["event"] == "station_auth_failed"]
    assert failures == [
        {
            "event": "station_auth_failed",
            "log_level": "warning",
            "station": "ST1",
            "client": "127.0.0.6",
            "reason": "wrong_password",
            "status": 401,
        }
    ]
    assert WRONG not in repr(logged) and WRONG not in caplog.text
    # uvicorn reported every refusal as "ASGI callable returned without completing handshake".
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_full_hashing_pool_answers_503_at_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    passwords = network(db)
    release = threading.Event()

    def blocked(password: str, stored: str) -> bool:
        release.wait(10)
        return False

    monkeypatch.setattr(auth, "verify_password", blocked)
    checker = StationAuth(db, GatewayMetrics(), pool=HashPool(threads=1, max_pending=1))
    try:
        first = asyncio.create_task(
            checker.admit("ST1", "10.0.0.1", _authorization("ST1", passwords["ST1"]))
        )
        while checker.pool.pending == 0:
            await asyncio.sleep(0.01)
        second = await asyncio.wait_for(
            checker.admit("ST2", "10.0.0.2", _authorization("ST2", passwords["ST2"])), 1.0
        )
        assert isinstance(second, Refusal) and second.status == 503
        assert second.headers()["Retry-After"] == str(auth.HASH_BUSY_RETRY_AFTER_S)
        release.set()
        assert isinstance(await first, Refusal)
        # The slot is free again once the hash has ended; the full pool counted no failure.
        assert checker.pool.pending == 0
        assert checker.gate.retry_after_s("ST2") is None
    finally:
        release.set()
        checker.close()


async def test_a_never_verified_station_gets_in_on_a_retry_while_its_id_is_limited(
    db: Database,
) -> None:
    passwords = network(db)
    clock = FakeClock()
    checker = StationAuth(db, GatewayMetrics(), gate=StationGate(STATION_LIMITS, clock))
    wrong, right = _authorization("ST1", WRONG), _authorization("ST1", passwords["ST1"])
    try:
        for n in range(STATION_LIMITS.max_failures):
            refused = await checker.admit("ST1", f"10.0.1.{n}", wrong)
            assert isinstance(refused, Refusal) and refused.status == 401
        refused = await checker.admit("ST1", "10.0.2.1", right)
        assert isinstance(refused, Refusal) and refused.status == 429
        assert STATION_LIMITS.trickle_every_s is not None
        clock.now_s += STATION_LIMITS.trickle_every_s
        admitted = await checker.admit("ST1", "10.0.2.1", right)
        assert isinstance(admitted, StationAccess) and admitted.station_id == "ST1"
    finally:
        checker.close()


async def test_a_changed_password_is_checked_again_not_taken_from_the_cache(
    db: Database,
) -> None:
    passwords = network(db)
    checker = StationAuth(db, GatewayMetrics())
    try:
        old = _authorization("ST1", passwords["ST1"])
        assert isinstance(await checker.admit("ST1", "10.0.0.1", old), StationAccess)
        new = stations.set_password(db, "ST1")
        refused = await checker.admit("ST1", "10.0.0.1", old)
        assert isinstance(refused, Refusal) and refused.status == 401
        admitted = await checker.admit("ST1", "10.0.0.1", _authorization("ST1", new))
        assert isinstance(admitted, StationAccess)
    finally:
        checker.close()


async def test_the_upgrade_checks_keep_their_statuses(db: Database, live_server: LiveServer) -> None:
    passwords = network(db)
    assert (await _upgrade(live_server, "NOPE", WRONG))[0] == 404
    ok = await connect(live_server, "ST1", passwords["ST1"])
    await ok.close()
    status, headers = await _upgrade(live_server, "ST1", WRONG)
    assert status == 401 and headers["www-authenticate"] == 'Basic realm="swapd"'


async def test_an_upgrade_without_credentials_is_challenged_at_no_cost(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    network(db)
    reads: list[str] = []
    monkeypatch.setattr(stations, "access", lambda _db, station_id: reads.append(station_id))
    checker = StationAuth(db, GatewayMetrics())
    for _ in range(2 * ADDRESS_LIMITS.max_failures):
        refused = await checker.admit("ST1", "10.0.0.1", "")
        assert isinstance(refused, Refusal) and refused.status == 401
        assert refused.headers()["WWW-Authenticate"] == 'Basic realm="swapd"'
    # No database read, and the client's address is not limited for asking.
    assert reads == []
    assert checker.address_retry_after_s("10.0.0.1") is None

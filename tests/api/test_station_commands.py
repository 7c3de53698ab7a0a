"""POST /api/v1/ops/stations/{id}/commands: staff manage a station over OCPP through the real
server, which holds the station's socket; reads of the history, inventory and notifications."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from swapd.services import identity
from swapd.services.identity import Role
from swapd.sim.embedded import embedded_server
from swapd.store.database import Database
from tests.api.conftest import PASSWORD, bearer
from tests.gateway.conftest import LiveServer, network
from tests.gateway.test_station_management import ManagedStation, _connect

pytestmark = pytest.mark.anyio
_emails = itertools.count(1)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def live(db: Database) -> Iterator[LiveServer]:
    with embedded_server(db) as url:
        yield LiveServer(url)


@pytest.fixture
async def http(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    base = live.url.replace("ws://", "http://", 1)
    async with httpx.AsyncClient(base_url=f"{base}/api/v1/ops/stations", timeout=60) as client:
        yield client


async def _login(live: LiveServer, db: Database, role: Role) -> dict[str, str]:
    email = f"{role.value}-cmd{next(_emails)}@example.com"
    await asyncio.to_thread(identity.add_staff, db, email, PASSWORD, role)
    base = live.url.replace("ws://", "http://", 1)
    async with httpx.AsyncClient(base_url=base) as client:
        answer = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return bearer(answer.json()["token"])


async def test_staff_send_commands_to_a_connected_station_and_read_what_came_back(
    db: Database, live: LiveServer, http: httpx.AsyncClient
) -> None:
    passwords = network(db)
    operator = await _login(live, db, Role.OPERATOR)
    admin = await _login(live, db, Role.ADMIN)
    support = await _login(live, db, Role.SUPPORT)
    st1 = await _connect(live, "ST1", passwords["ST1"])
    station: ManagedStation = st1.station  # type: ignore[assignment]

    answer = await http.post("/ST1/commands", json={"command": "unlock", "slot": 2}, headers=operator)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["action"], body["state"], body["answer_status"]) == (
        "UnlockConnector",
        "answered",
        "Unlocked",
    )
    assert body["request"] == {"evseId": 2, "connectorId": 1}
    assert body["requested_by"].startswith("user:") or "@" in body["requested_by"]

    # Firmware changes what the station is: an operator may not, an admin may.
    firmware = {"command": "firmware", "url": "https://fw.example/2.5.bin"}
    assert (await http.post("/ST1/commands", json=firmware, headers=operator)).status_code == 403
    answer = await http.post("/ST1/commands", json=firmware, headers=admin)
    assert answer.status_code == 200 and answer.json()["answer_status"] == "Accepted"
    firmware_id = answer.json()["id"]

    report = await http.post("/ST1/commands", json={"command": "report"}, headers=operator)
    assert report.status_code == 200, report.text

    async def settled() -> bool:
        one = (await http.get(f"/ST1/commands/{firmware_id}", headers=support)).json()
        inventory = (await http.get("/ST1/inventory", headers=support)).json()
        return one["status"] == "Installed" and len(inventory) == 2

    for _ in range(200):
        if await settled():
            break
        await asyncio.sleep(0.05)
    assert await settled()
    notes = (await http.get("/ST1/notifications", headers=support)).json()
    assert {n["action"] for n in notes} == {"FirmwareStatusNotification", "NotifyReport"}
    history = (await http.get("/ST1/commands", headers=support)).json()
    assert [c["action"] for c in history] == ["GetBaseReport", "UpdateFirmware", "UnlockConnector"]
    assert station.schema_errors == []
    # Support staff read, they do not command.
    assert (
        await http.post(
            "/ST1/commands", json={"command": "trigger", "message": "status"}, headers=support
        )
    ).status_code == 403
    await st1.close()


async def test_a_station_away_is_409_at_once_or_202_when_queued(
    db: Database, live: LiveServer, http: httpx.AsyncClient
) -> None:
    network(db)
    operator = await _login(live, db, Role.OPERATOR)
    refused = await http.post("/ST2/commands", json={"command": "reset"}, headers=operator)
    assert refused.status_code == 409 and refused.json()["code"] == "station_offline"
    queued = await http.post(
        "/ST2/commands", json={"command": "reset", "queue_s": 3600}, headers=operator
    )
    assert queued.status_code == 202, queued.text
    assert (queued.json()["state"], queued.json()["queued"]) == ("pending", True)
    bad = await http.post("/ST2/commands", json={"command": "reset", "queue_s": 10**9}, headers=operator)
    assert bad.status_code == 422
    unknown = await http.post("/NOPE/commands", json={"command": "reset"}, headers=operator)
    assert unknown.status_code == 404
    other = await http.get(f"/ST1/commands/{queued.json()['id']}", headers=operator)
    assert other.status_code == 404  # the command is ST2's

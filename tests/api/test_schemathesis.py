"""Property-based tests of the whole HTTP API from its live OpenAPI document (schemathesis).

For every operation, requests generated from the documented schemas go to a real uvicorn server
over HTTP, signed in as an admin (as a rider for the /me routes), and each answer is checked:
never a 5xx, a status code the operation documents, a body that matches the documented schema,
and no change to any table when the answer is a refusal (4xx).
The database holds a small network (plans, stations with packs, a rider with allowance, a pack
out) so that lookups can find something. Examples per operation are capped to keep the run short.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from swapd.domain.riders import IdToken, TokenType
from swapd.services import catalog, identity, payments, stations, swaps
from swapd.services.identity import Role
from swapd.services.swaps import BatteryReading
from swapd.sim.embedded import embedded_server
from swapd.store import schema as t
from swapd.store.database import Database
from tests import soak
from tests.api.conftest import PASSWORD
from tests.plans import ENERGY, TIME

pytestmark = pytest.mark.soak

MAX_EXAMPLES = soak.size(4, 20)


CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@dataclass
class Api:
    url: str
    admin: dict[str, str]
    rider: dict[str, str]
    db: Database


# Failed logins are counted by design (the login limit); no other refusal may write anything.
_WRITTEN_BY_REFUSALS = {"rate_limits"}


def _snapshot(db: Database) -> dict[str, list[tuple[object, ...]]]:
    def work(tx: Any) -> dict[str, list[tuple[object, ...]]]:
        return {
            table.name: sorted(map(tuple, tx.repo.execute(sa.select(table)).all()), key=repr)
            for table in t.metadata.sorted_tables
            if table.name not in _WRITTEN_BY_REFUSALS
        }

    return db.read(work)


def _login(url: str, email: str) -> dict[str, str]:
    answer = httpx.post(f"{url}/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def _seed(db: Database, url: str) -> Api:
    catalog.add_pack_model(db, "G2", 1700)
    catalog.add_plan(db, ENERGY)
    catalog.add_plan(db, TIME)
    for station_id, lat in (("ST1", 37_566_535), ("ST2", 37_575_535)):
        catalog.add_station(db, station_id, 8)
        stations.set_password(db, station_id)
        db.write(
            lambda tx, sid=station_id, lat=lat: tx.repo.execute(
                sa.update(t.stations)
                .where(t.stations.c.id == sid)
                .values(name=f"Station {sid}", lat_microdeg=lat, lon_microdeg=126_977_969)
            )
        )
    catalog.register_pack(db, "B-0001", "G2", soc=98, soh=95, station_id="ST1", slot_no=3)
    catalog.register_pack(db, "B-0002", "G2", soc=100, soh=100, station_id="ST2", slot_no=1)
    identity.add_staff(db, "admin@example.com", PASSWORD, Role.ADMIN)
    identity.sign_up_rider(db, "rider@example.com", PASSWORD, ENERGY.id)
    (rider_id,) = [u.rider_id for u in identity.users(db) if u.rider_id is not None]
    assert rider_id is not None
    payments.top_up(db, rider_id, 10_000, "pay-1")
    catalog.add_token(db, TokenType.RFID, "04A1B2C3", rider_id=rider_id)
    app = IdToken(TokenType.APP, rider_id)
    assert swaps.authorize(db, "ST1", app).accepted
    swaps.battery_out(db, "ST1", "r1", [BatteryReading(3, "B-0001", 9800, 9500)], token=app)
    return Api(url, _login(url, "admin@example.com"), _login(url, "rider@example.com"), db)


@pytest.fixture
def api(db: Database) -> Iterator[Api]:
    with embedded_server(db) as ws_url:
        url = ws_url.replace("ws://", "http://", 1)
        yield _seed(db, url)


@pytest.fixture
def api_schema(api: Api) -> BaseSchema:
    return schemathesis.openapi.from_url(f"{api.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case, api: Api) -> None:
    is_rider_route = case.path == "/api/v1/me" or case.path.startswith("/api/v1/me/")
    headers = api.rider if is_rider_route else api.admin
    before = _snapshot(api.db)
    response = case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)
    if response.status_code >= 400:
        # Bad input gets a clear refusal and changes nothing.
        assert _snapshot(api.db) == before, f"{case.method} {case.path} refused but wrote"

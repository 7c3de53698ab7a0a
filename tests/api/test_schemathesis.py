"""Property-based tests of the whole HTTP API from its live OpenAPI document (schemathesis).

For every operation, requests generated from the documented schemas go to a real uvicorn server
over HTTP, signed in as an admin (as a rider for the /me routes), and each answer is checked:
never a 5xx, a status code the operation documents, a body that matches the documented schema,
and no change to any table when the answer is a refusal (4xx).
The database holds a small network (plans, stations with packs, a rider with allowance, a pack
out) so that lookups can find something. Examples per operation are capped to keep the run short.
"""

from __future__ import annotations

import sqlite3
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
from swapd.services import catalog, identity, payments, swaps
from swapd.services.identity import Role
from swapd.services.swaps import BatteryReading
from swapd.sim.embedded import embedded_server
from swapd.store import schema as t
from swapd.store.database import Database
from tests import network as net
from tests import soak
from tests.api.conftest import PASSWORD
from tests.plans import ENERGY, TIME

pytestmark = pytest.mark.soak

MAX_EXAMPLES = soak.size(4, 20)


CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


# Failed logins are counted by design (the login limit); no other refusal may write anything.
# The server's own loop trims the local lists' change marks whenever it comes round
# (swapd.gateway.local_lists), whatever request is being refused at the time.
_WRITTEN_BY_REFUSALS = {"rate_limits", "local_list_changes"}
_WATCHED = [table for table in t.metadata.sorted_tables if table.name not in _WRITTEN_BY_REFUSALS]

Snapshot = dict[str, object]


class Tables:
    """What the watched tables hold, cheaply enough to ask before and after every one of some
    two thousand cases: the rows are read again only when something may have been written.

    SQLite: ``PRAGMA data_version`` on a connection of our own changes whenever another
    connection commits. PostgreSQL: a transaction gets an id only when it writes, so while the
    next id to be given out (the xmax of a snapshot) stays put, nothing was written; when it
    moves (other tests on the same server move it too), one statement answers an md5 of every
    table's rows, computed by the server. Either way a refusal that wrote to a watched table is
    seen, and named.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._sqlite: sqlite3.Connection | None = None
        self._seen: object = None
        self._rows: Snapshot = {}
        if db.engine.dialect.name == "sqlite":
            path = db.engine.url.database
            assert path and path != ":memory:", "the watched SQLite database must be a file"
            self._sqlite = sqlite3.connect(path)
        else:
            quote = db.engine.dialect.identifier_preparer.quote
            digests = ", ".join(
                f"(SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) "
                f"FROM {quote(table.name)} AS x) AS {quote(table.name)}"
                for table in _WATCHED
            )
            self._digest_query = sa.text(f"SELECT {digests}")

    def now(self) -> Snapshot:
        if self._sqlite is not None:
            (version,) = self._sqlite.execute("PRAGMA data_version").fetchone()
            if version != self._seen:
                self._seen, self._rows = version, self._db.read(_rows)
            return self._rows
        with self._db.engine.connect() as connection:
            next_id = connection.scalar(sa.text("SELECT pg_snapshot_xmax(pg_current_snapshot())"))
            if next_id != self._seen:
                self._rows = dict(connection.execute(self._digest_query).one()._mapping)
                self._seen = next_id
        return self._rows

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()


def _rows(tx: Any) -> Snapshot:
    return {
        table.name: sorted(map(tuple, tx.repo.execute(sa.select(table)).all()), key=repr)
        for table in _WATCHED
    }


def _changed(before: Snapshot, after: Snapshot) -> list[str]:
    return [name for name in before if before[name] != after[name]]


@dataclass
class Api:
    url: str
    admin: dict[str, str]
    rider: dict[str, str]
    db: Database
    tables: Tables

    def headers_for(self, case: schemathesis.Case) -> dict[str, str]:
        if case.path == "/api/v1/me" or case.path.startswith("/api/v1/me/"):
            return self.rider
        if case.path == "/api/v1/auth/logout":
            # Signing out ends the session it is called with: a throwaway one, not the admin's
            # that every later case needs (else all but the first few hundred cases are 401).
            admin = identity.user_by_email(self.db, "admin@example.com")
            key = identity.create_api_key(self.db, admin.id, "signed out by a case")
            return {"Authorization": f"Bearer {key.token}"}
        return self.admin


def _login(url: str, email: str) -> dict[str, str]:
    answer = httpx.post(f"{url}/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def _seed(db: Database, url: str) -> Api:
    net.pack_model(db)
    net.plans(db, ENERGY, TIME)
    for station_id, lat in (("ST1", 37_566_535), ("ST2", 37_575_535)):
        net.station(db, station_id)
        net.password(db, station_id)
        name = f"Station {station_id}"
        net.locate(db, station_id, name=name, lat_microdeg=lat, lon_microdeg=126_977_969)
    net.pack(db, "B-0001", soc_pct=98, soh_pct=95, station_id="ST1", slot_no=3)
    net.pack(db, "B-0002", station_id="ST2", slot_no=1)
    identity.add_staff(db, "admin@example.com", PASSWORD, Role.ADMIN)
    identity.sign_up_rider(db, "rider@example.com", PASSWORD, ENERGY.id)
    (rider_id,) = [u.rider_id for u in identity.users(db) if u.rider_id is not None]
    assert rider_id is not None
    payments.top_up(db, rider_id, 10_000, "pay-1")
    net.card(db, rider_id, "04A1B2C3")
    app = IdToken(TokenType.APP, rider_id)
    assert swaps.authorize(db, "ST1", app).accepted
    swaps.battery_out(db, "ST1", "r1", [BatteryReading(3, "B-0001", 9800, 9500)], token=app)
    admin, rider = _login(url, "admin@example.com"), _login(url, "rider@example.com")
    return Api(url, admin, rider, db, Tables(db))


@pytest.fixture
def api(db: Database) -> Iterator[Api]:
    with embedded_server(db) as ws_url:
        url = ws_url.replace("ws://", "http://", 1)
        seeded = _seed(db, url)
        yield seeded
        seeded.tables.close()
        # Had a case signed the admin or the rider out, every case after it would have been
        # refused with 401 and proven nothing.
        for headers in (seeded.admin, seeded.rider):
            assert httpx.get(f"{url}/api/v1/me", headers=headers).status_code == 200


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
    headers = api.headers_for(case)
    before = api.tables.now()
    response = case.call_and_validate(headers=headers, checks=CHECKS, timeout=30)
    if response.status_code >= 400:
        # Bad input gets a clear refusal and changes nothing.
        changed = _changed(before, api.tables.now())
        assert not changed, f"{case.method} {case.path} refused but wrote to {changed}"


def test_the_watch_on_the_tables_sees_a_write_from_another_connection(db: Database) -> None:
    """The check above can fail: a row written elsewhere (as a server would) is seen and named,
    and asking again without a write reads the same."""
    tables = Tables(db)
    try:
        before = tables.now()
        assert tables.now() == before
        catalog.add_pack_model(db, "G9", 1500)
        after = tables.now()
        assert _changed(before, after) == ["pack_models"]
        assert tables.now() == after
    finally:
        tables.close()

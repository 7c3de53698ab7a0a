"""The in-memory store answers as SQLite does: random sequences of station events, run on both,
give the same answers, the same refusals and the same balances and packs at the end. A rule the
fake got wrong (a reservation it forgets, a hold it releases twice) shows here first."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import copy_of_migrated_sqlite
from tests.unit.services.conftest import START, MemoryNetwork, Network, SqlNetwork, balance, pack

from swapd.domain.errors import DomainError
from swapd.domain.pack_choice import BALANCED
from swapd.domain.riders import IdToken, TokenType
from swapd.services import swaps
from swapd.services.swaps import BatteryReading
from swapd.store.database import Database, ManualClock
from swapd.store.engine import make_engine

RIDERS = ("R1", "R2", "R3")
SERIALS = ("P1", "P2", "P3", "P4")
STATIONS = ("ST1", "ST2")


def _build(network: Network) -> None:
    for station_id in STATIONS:
        network.station(station_id, slot_count=4)
    network.pack("P1", station_id="ST1", slot_no=1)
    network.pack("P2", soc_pct=95, station_id="ST1", slot_no=2)
    network.pack("P3", station_id="ST2", slot_no=1)
    network.pack("P4", soc_pct=50, station_id="ST2", slot_no=2)
    network.rider("R1", top_up_minor=5_000)
    network.rider("R2", top_up_minor=1_000)
    # R3's 1,000 Wh hold no full pack: ST2 right-sizes (the 50 % pack) with the fleet policy.
    network.rider("R3", top_up_minor=300)
    network.right_size("ST2", 3_000, BALANCED)


_token = st.one_of(
    st.sampled_from(RIDERS).map(lambda r: IdToken(TokenType.APP, r)),
    st.sampled_from(SERIALS).map(lambda s: IdToken(TokenType.BATTERY_SERIAL, s)),
)
_reading = st.builds(
    BatteryReading,
    st.integers(1, 4),
    st.sampled_from(SERIALS),
    st.integers(0, 10_000),
    st.integers(8_000, 10_000),
)
_station = st.sampled_from(STATIONS)
_request = st.sampled_from(("1", "2", "3", "4"))
_step = st.one_of(
    st.tuples(st.just("authorize"), _station, _token, st.one_of(st.none(), _request), st.booleans()),
    st.tuples(st.just("battery_out"), _station, _request, _reading, st.one_of(st.none(), _token)),
    st.tuples(st.just("battery_in"), _station, _request, _reading, st.one_of(st.none(), _token)),
    st.tuples(st.just("timeout"), _station, _request),
    st.tuples(st.just("wait"), st.integers(1, 7_200)),
)


def _apply(network: Network, step: tuple[Any, ...]) -> object:
    kind = step[0]
    call: Callable[[], object]
    if kind == "wait":
        network.clock.set(network.clock.now() + timedelta(seconds=step[1]))
        return None
    if kind == "authorize":
        _, station_id, token, request_id, consented = step
        call = lambda: swaps.authorize(  # noqa: E731
            network.db, station_id, token, request_id=request_id, consented=consented
        )
    elif kind == "timeout":
        _, station_id, request_id = step
        call = lambda: swaps.battery_out_timeout(network.db, station_id, request_id)  # noqa: E731
    else:
        _, station_id, request_id, reading, token = step
        event = swaps.battery_out if kind == "battery_out" else swaps.battery_in
        call = lambda: event(network.db, station_id, request_id, [reading], token=token)  # noqa: E731
    try:
        return call()
    except DomainError as error:
        return (type(error).__name__, error.message)


def _end_state(network: Network) -> tuple[object, ...]:
    packs = tuple(pack(network, s) for s in SERIALS)
    # Why each offer's packs were chosen, and the consent of right-sized ones (12 steps: at most
    # 12 swaps).
    choices = network.db.read(lambda uow: tuple(uow.repo.choice(i) for i in range(1, 13)))
    balances = tuple(balance(network, r) for r in RIDERS)
    return packs, balances, tuple(sorted(network.alerts())), choices


@settings(
    # More for a deeper search: SWAPD_FAKE_EXAMPLES=500 pytest tests/unit/services
    max_examples=int(os.environ.get("SWAPD_FAKE_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(_step, min_size=1, max_size=12))
def test_random_events_give_the_same_answers_on_memory_and_sqlite(
    steps: list[tuple[Any, ...]], migrated_sqlite_file: Path, tmp_path_factory: Any
) -> None:
    memory = MemoryNetwork()
    url = copy_of_migrated_sqlite(migrated_sqlite_file, tmp_path_factory.mktemp("sql"))
    clock = ManualClock(START)
    database = Database(make_engine(url), clock)
    try:
        sql = SqlNetwork(database, clock)
        _build(memory)
        _build(sql)
        for step in steps:
            assert _apply(memory, step) == _apply(sql, step), step
        assert _end_state(memory) == _end_state(sql)
    finally:
        database.dispose()

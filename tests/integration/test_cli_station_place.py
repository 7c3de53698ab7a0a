"""``swapd station add --name --lat --lon``: the name and place are kept exactly (decimal degrees to
millionths of a degree, no float on the way), shown by ``station show`` and ``station list``, and
riders then find the station among the stations near them. Bad coordinates are one line, exit 2,
and add nothing.

Each command runs the real ``swapd`` in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from swapd.readmodels import stations
from swapd.store.database import Database
from tests.integration.cli_process import succeeded, swapd


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = tmp_path / "swapd.db"
    succeeded(swapd("db", "upgrade", "--database", str(path)))
    return str(path)


def add(database: str, station: str, *args: str) -> dict[str, object]:
    out = succeeded(
        swapd("station", "add", station, "--slots", "4", *args, "--json", "--database", database)
    )
    found = json.loads(out)
    assert isinstance(found, dict)
    return found


def test_a_station_added_with_a_place_is_shown_with_it_and_found_nearby(database: str) -> None:
    added = add(database, "SEOUL", "--name", "City Hall", "--lat", "37.566535", "--lon", "126.977969")
    place = {
        "name": "City Hall",
        "lat": "37.566535",
        "lon": "126.977969",
        "lat_microdeg": 37_566_535,
        "lon_microdeg": 126_977_969,
    }
    assert {k: added[k] for k in place} == place
    add(database, "SOUTH", "--name", "Sydney", "--lat=-33.8688", "--lon", "151.2093")
    add(database, "NOWHERE", "--name", "Depot")

    shown = json.loads(succeeded(swapd("station", "show", "SEOUL", "--json", "--database", database)))
    assert (shown["name"], shown["lat_microdeg"], shown["lon_microdeg"]) == (
        "City Hall",
        37_566_535,
        126_977_969,
    )
    listed = json.loads(succeeded(swapd("station", "list", "--json", "--database", database)))
    assert [(s["id"], s["name"], s["lat_microdeg"], s["lon_microdeg"]) for s in listed] == [
        ("NOWHERE", "Depot", None, None),
        ("SEOUL", "City Hall", 37_566_535, 126_977_969),
        ("SOUTH", "Sydney", -33_868_800, 151_209_300),
    ]

    text = succeeded(swapd("station", "show", "SEOUL", "--database", database))
    assert text.splitlines()[0].startswith("station SEOUL (City Hall at 37.566535, 126.977969): 4 slots")
    table = succeeded(swapd("station", "list", "--database", database))
    assert "Sydney at -33.8688, 151.2093" in table

    db = Database.open(database)
    try:
        near = stations.nearby(db, 37_560_000, 126_970_000, 5_000, limit=10)
    finally:
        db.dispose()
    assert [(s.id, s.name, s.lat_microdeg, s.lon_microdeg) for s in near] == [
        ("SEOUL", "City Hall", 37_566_535, 126_977_969)
    ]


BAD = {
    "seven decimals": (
        ("--lat", "37.5665351", "--lon", "126.97"),
        "--lat takes at most 6 decimals (a millionth of a degree), got 37.5665351",
    ),
    "latitude past the pole": (
        ("--lat", "90.000001", "--lon", "0"),
        "--lat must be between -90 and 90, got 90.000001",
    ),
    "longitude out of range": (
        ("--lat", "0", "--lon", "-180.5"),
        "--lon must be between -180 and 180, got -180.5",
    ),
    "not a number": (
        ("--lat", "1e3", "--lon", "0"),
        "--lat must be decimal degrees such as 37.5665, got '1e3'",
    ),
    "latitude alone": (("--lat", "10"), "give both --lat and --lon, or neither"),
}


@pytest.mark.parametrize("args, message", BAD.values(), ids=BAD.keys())
def test_bad_coordinates_are_one_line_and_add_nothing(
    database: str, args: tuple[str, ...], message: str
) -> None:
    result = swapd("station", "add", "ST1", "--slots", "2", *args, "--database", database)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [f"error: {message}"]
    listed = json.loads(succeeded(swapd("station", "list", "--json", "--database", database)))
    assert listed == []

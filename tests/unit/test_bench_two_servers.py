"""bench.swaps's two-server phase hands faults/verify.py what its stations saw, and reads from
the server's log which worker took each station."""

from __future__ import annotations

import json
from pathlib import Path

from bench.swaps import RecordedLoad, _stations_by_worker, _stations_moved
from faults.load import Ack


def test_the_recorded_load_places_packs_in_slots_and_with_riders_and_counts_swaps() -> None:
    load = RecordedLoad(
        "BENCH2",
        ["BENCH2-S0000"],
        7,
        [
            Ack("BENCH2-S0000", 1, "BatteryIn", ("BENCH2-P0000-R0",)),
            Ack("BENCH2-S0000", 1, "BatteryOut", ("BENCH2-P0000-S1",)),
        ],
        [("BENCH2-S0000", {1: None, 2: "BENCH2-P0000-R0"}, {"BENCH2-P0000-S1": "BENCH2-R0000-0"})],
    )
    assert load.swaps_acknowledged == 1
    assert load.places() == {
        "BENCH2-P0000-R0": ("slot", "BENCH2-S0000", "2"),
        "BENCH2-P0000-S1": ("rider", "BENCH2-R0000-0"),
    }


def test_stations_are_counted_by_worker_and_as_moved_when_their_last_two_workers_differ(
    tmp_path: Path,
) -> None:
    log = tmp_path / "serve.log"
    lines = [
        {"event": "serving"},
        {"event": "station_connected", "station": "A", "worker": 0},
        {"event": "station_connected", "station": "B", "worker": 1},
        {"event": "station_connected", "station": "C", "worker": 1},
        {"event": "station_connected", "station": "A", "worker": 1},  # moved
        {"event": "station_connected", "station": "B", "worker": 1},  # stayed
    ]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert _stations_by_worker(log) == {0: 1, 1: 4}
    assert _stations_moved(log) == 1


def test_records_two_workers_wrote_on_one_line_are_each_counted(tmp_path: Path) -> None:
    """A full run's log held a line with two records (the JSON decoder failed on it, and the
    whole swaps benchmark with it); a cut-off record is skipped."""
    log = tmp_path / "serve.log"
    first = json.dumps({"event": "station_connected", "station": "A", "worker": 0})
    second = json.dumps({"event": "station_connected", "station": "B", "worker": 1})
    log.write_text(first + second + '\n{"event": "station_conn\n' + second + "\n")
    assert _stations_by_worker(log) == {0: 1, 1: 2}

"""``swapd station pack-policy``, ``swapd station right-sizing``, ``swapd pack spread`` and
``swapd rider right-size``: set and show a station's floor and weights and a rider's consent,
read the numbers; bad input is one line and exit 2. Each command runs the real ``swapd``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.cli_process import succeeded, swapd


@pytest.fixture
def database(tmp_path: Path) -> str:
    path = str(tmp_path / "swapd.db")
    succeeded(swapd("db", "upgrade", "--database", path))
    succeeded(swapd("station", "add", "ST1", "--slots", "4", "--database", path))
    succeeded(swapd("plan", "add", "energy", "--kind", "prepaid_energy", "--currency", "KRW",
                    "--price-minor", "300", "--price-units", "1000", "--database", path))  # fmt: skip
    succeeded(swapd("rider", "add", "R1", "--plan", "energy", "--database", path))
    return path


def test_a_station_pack_policy_is_shown_set_and_audited(database: str) -> None:
    shown = succeeded(swapd("station", "pack-policy", "ST1", "--database", database))
    assert "right-sizing off; pack choice fullest pack first" in shown
    out = succeeded(
        swapd(
            "station",
            "pack-policy",
            "ST1",
            "--floor",
            "30",
            "--preset",
            "balanced",
            "--cycles-weight",
            "5",
            "--json",
            "--database",
            database,
        )
    )
    settings = json.loads(out)
    assert settings["right_size_floor_bp"] == 3000
    assert settings["policy"]["cycles_weight"] == 5 and settings["policy"]["soc_band_bp"] == 500
    off = succeeded(swapd("station", "pack-policy", "ST1", "--floor", "off", "--database", database))
    assert "right-sizing off" in off and "cycles 5" in off


@pytest.mark.parametrize(
    "args",
    [
        ("--floor", "0"),
        ("--floor", "120"),
        ("--preset", "greedy"),
        ("--cycles-weight", "101"),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(database: str, args: tuple[str, ...]) -> None:
    done = swapd("station", "pack-policy", "ST1", *args, "--database", database)
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_riders_consent_and_the_numbers(database: str) -> None:
    assert "right-sized packs ask" in succeeded(
        swapd("rider", "right-size", "R1", "--database", database)
    )
    out = succeeded(swapd("rider", "right-size", "R1", "always", "--json", "--database", database))
    assert json.loads(out) == {"rider_id": "R1", "right_size_consent": "always"}
    refused = swapd("rider", "right-size", "R1", "sometimes", "--database", database)
    assert refused.returncode == 2
    days = json.loads(succeeded(swapd("station", "right-sizing", "--json", "--database", database)))
    assert days == []
    spread = json.loads(succeeded(swapd("pack", "spread", "--json", "--database", database)))
    assert spread["packs"] == 0 and spread["cycles_spread"] == 0

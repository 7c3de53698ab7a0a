"""After the drill: is every acknowledged event in the database exactly once, charged exactly
once, and do the books and the packs' places agree?"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa

from faults.load import Ack
from faults.server import swapd_executable
from swapd.store import schema as t
from swapd.store.engine import make_engine

MAX_LISTED = 20


class Acknowledged(Protocol):
    """What a load recorded, for the verifier: the drills' Load, or the swap benchmark's stations
    (bench/swaps.py). Its stations' ids start with ``<prefix>-S`` and its packs' serials with
    ``<prefix>-P``; swaps with ids up to ``baseline_swap_id`` were made before it started."""

    @property
    def prefix(self) -> str: ...
    @property
    def station_ids(self) -> list[str]: ...
    @property
    def baseline_swap_id(self) -> int: ...
    @property
    def acks(self) -> Sequence[Ack]: ...
    @property
    def swaps_acknowledged(self) -> int: ...
    def places(self) -> dict[str, tuple[str, ...]]: ...


@dataclass
class Verdict:
    events_acknowledged: int
    swaps_acknowledged: int
    server_completed: int
    ledger_ok: bool
    ledger_transfers: int
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    duplicate_transfer_keys: int = 0
    place_mismatches: list[str] = field(default_factory=list)
    ledger_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.ledger_ok
            and not self.lost
            and not self.doubled
            and self.duplicate_transfer_keys == 0
            and not self.place_mismatches
            and self.server_completed == self.swaps_acknowledged
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events_acknowledged": self.events_acknowledged,
            "swaps_acknowledged": self.swaps_acknowledged,
            "server_completed": self.server_completed,
            "lost": len(self.lost),
            "doubled": len(self.doubled),
            "duplicate_transfer_keys": self.duplicate_transfer_keys,
            "ledger_ok": self.ledger_ok,
            "ledger_transfers": self.ledger_transfers,
            "examples": (self.lost + self.doubled + self.place_mismatches + self.ledger_problems)[
                :MAX_LISTED
            ],
        }


def ledger_check_cli(database_url: str) -> dict[str, Any]:
    """``swapd ledger check --json``, run as an operator would, in its own process."""
    result = subprocess.run(
        [swapd_executable(), "ledger", "check", "--json", "--database", database_url],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if not result.stdout.strip():
        raise RuntimeError(f"swapd ledger check printed nothing: {result.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(result.stdout)
    report["exit_code"] = result.returncode
    return report


def verify(database_url: str, load: Acknowledged) -> Verdict:
    ledger = ledger_check_cli(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return _verify(connection, load, ledger)
    finally:
        engine.dispose()


def _verify(connection: sa.Connection, load: Acknowledged, ledger: dict[str, Any]) -> Verdict:
    ids = load.station_ids
    baseline = load.baseline_swap_id
    e, s, p, tr = t.station_events.c, t.swaps.c, t.possessions.c, t.transfers.c
    events = Counter(
        (r.station_id, r.request_id, r.event_type)
        for r in connection.execute(
            sa.select(e.station_id, e.request_id, e.event_type).where(e.station_id.in_(ids))
        )
    )
    swaps = {
        (r.station_id, r.request_id): r
        for r in connection.execute(
            sa.select(s.id, s.station_id, s.request_id, s.state).where(
                s.station_id.in_(ids), s.id > baseline
            )
        )
    }
    closed = Counter(
        (int(r.swap_in_id), r.pack_serial)
        for r in connection.execute(
            sa.select(p.swap_in_id, p.pack_serial).where(
                p.station_in.in_(ids), p.swap_in_id.is_not(None), p.swap_in_id > baseline
            )
        )
    )
    opened = Counter(
        (int(r.swap_out_id), r.pack_serial)
        for r in connection.execute(
            sa.select(p.swap_out_id, p.pack_serial).where(
                p.station_out.in_(ids), p.swap_out_id.is_not(None), p.swap_out_id > baseline
            )
        )
    )
    prefix = f"{load.prefix}-S"
    posts = Counter(
        str(r.key)
        for r in connection.execute(
            sa.select(tr.key).where(tr.key.startswith(prefix, autoescape=True), tr.key.endswith(":post"))
        )
    )
    duplicate_keys = int(
        connection.execute(
            sa.select(sa.func.count()).select_from(
                sa.select(tr.key).group_by(tr.key).having(sa.func.count() > 1).subquery()
            )
        ).scalar_one()
    )
    verdict = Verdict(
        events_acknowledged=len(load.acks),
        swaps_acknowledged=load.swaps_acknowledged,
        server_completed=sum(1 for r in swaps.values() if r.state == "completed"),
        ledger_ok=bool(ledger.get("ok")) and ledger.get("exit_code") == 0,
        ledger_transfers=int(ledger.get("transfers", 0)),
        ledger_problems=[str(x) for x in ledger.get("problems", [])],
        duplicate_transfer_keys=duplicate_keys,
    )
    expected_closed: set[tuple[int, str]] = set()
    expected_opened: set[tuple[int, str]] = set()
    expected_posts: set[str] = set()
    for ack in load.acks:
        name = f"{ack.station_id} request {ack.request_id} {ack.event}"
        count = events[(ack.station_id, str(ack.request_id), ack.event)]
        if count == 0:
            verdict.lost.append(f"{name}: no station event recorded")
        elif count > 1:
            verdict.doubled.append(f"{name}: recorded {count} times")
        swap = swaps.get((ack.station_id, str(ack.request_id)))
        if swap is None:
            verdict.lost.append(f"{name}: no swap with this requestId")
            continue
        for serial in ack.serials:
            if ack.event == "BatteryIn":
                expected_closed.add((int(swap.id), serial))
                expected_posts.add(f"{ack.station_id}:{ack.request_id}:{serial}:BatteryIn:post")
            else:
                expected_opened.add((int(swap.id), serial))
    _compare(verdict, "possession closed (charged)", expected_closed, closed)
    _compare(verdict, "possession opened", expected_opened, opened)
    _compare(verdict, "usage posted", expected_posts, posts)
    theirs = _places(connection, load.prefix)
    ours = load.places()
    verdict.place_mismatches = [
        f"{serial}: load {ours.get(serial)} server {theirs.get(serial)}"
        for serial in sorted(set(ours) | set(theirs))
        if ours.get(serial) != theirs.get(serial)
    ][:MAX_LISTED]
    return verdict


def _compare(verdict: Verdict, what: str, expected: set[Any], found: Counter[Any]) -> None:
    """Each expected row exactly once, and no row that no acknowledged event explains."""
    for item in sorted(expected, key=str):
        if found[item] == 0:
            verdict.lost.append(f"{what} missing for {item}")
        elif found[item] > 1:
            verdict.doubled.append(f"{what} {found[item]} times for {item}")
    for item, count in found.items():
        if item not in expected:
            verdict.doubled.append(
                f"{what} {count} times for {item}, which no acknowledged event explains"
            )


def _places(connection: sa.Connection, prefix: str) -> dict[str, tuple[str, ...]]:
    k = t.packs.c
    places: dict[str, tuple[str, ...]] = {}
    for row in connection.execute(
        sa.select(k.serial, k.status, k.rider_id, k.station_id, k.slot_no).where(
            k.serial.startswith(f"{prefix}-P", autoescape=True)
        )
    ):
        if row.status == "with_rider":
            places[row.serial] = ("rider", str(row.rider_id))
        elif row.status == "in_slot":
            places[row.serial] = ("slot", str(row.station_id), str(row.slot_no))
        else:
            places[row.serial] = (str(row.status),)
    return places

"""The local authorization list a station keeps for the times it cannot reach swapd (OCPP 2.1
D01/D02: SendLocalList, GetLocalListVersion). Pure: the list wanted from the facts, what changed
since the list a station holds, the messages that carry the change, and the rule a station
follows with it while offline.

What every station's list holds (the same list for all: a rider may turn up anywhere):

- each RFID card of a rider, and each pack of the fleet by serial (idToken type ``BatterySerial``:
  the pack is the rider's key);
- ``idTokenInfo.status``: ``Accepted`` for a rider's cards and the packs the rider holds;
  ``Blocked`` when the rider is blocked, and for every pack that nobody holds (in a slot, in the
  depot, quarantined, retired). A pack is somebody's key only while that somebody holds it, and a
  Blocked entry outranks whatever the station's authorization cache remembers of an earlier
  Authorize of the same serial;
- ``idTokenInfo.groupIdToken``: the rider (type ``Central``), so that a station counts a rider's
  offline swaps across their cards and packs;
- ``idTokenInfo.customData``: ``{"vendorId": "org.swapd", "offlineSwapsMax": N}``, the plan's
  offline limit (``Plan.offline_swaps_max``) on the rider's Accepted entries.

A list has a version per station: 0 while the station holds none, then 1, 2, ... A differential
update carries the version the list has once it is applied, so each message of an update takes
the next version; a full update starts from the version after the station's. A message carries
at most ``MAX_LOCAL_LIST_ITEMS`` entries and ``MAX_LOCAL_LIST_BYTES`` of them: a larger list
goes as a Full message followed by Differential ones.

Size: one entry per card and per pack of the fleet; a station's list must hold that many
(its LocalAuthListCtrlr.Entries).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from swapd.domain.riders import RiderStatus, TokenType

VENDOR_ID = "org.swapd"  # the customData vendorId of swapd's extensions (offline limit, replays)
GROUP_TOKEN_TYPE = "Central"  # the groupIdToken's type: an identifier the CSMS made (the rider id)
# OCPP's versionNumber is an integer; stations keep it in 32 bits. Past this, a full update
# starts again from 1.
MAX_LIST_VERSION = 2**31 - 1
# Entries per SendLocalList message: below what stations commonly take in one message
# (LocalAuthListCtrlr.ItemsPerMessage), and below MAX_LOCAL_LIST_BYTES of the largest entries.
MAX_LOCAL_LIST_ITEMS = 100
# The entries' JSON per message, below swapd.services.station_requests.MAX_REQUEST_BYTES (60,000)
# with room for the envelope: a card's idToken may be 255 characters, escaped up to 12 bytes each.
MAX_LOCAL_LIST_BYTES = 50_000

EntryKey = tuple[str, str]  # (idToken type, idToken): one entry per key


class ListStatus(enum.StrEnum):
    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"


class UpdateType(enum.StrEnum):
    FULL = "Full"
    DIFFERENTIAL = "Differential"


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One idToken of a station's list. ``group_id`` is the rider the token stands for (None
    for a pack nobody holds); ``offline_swaps_max`` is set on Accepted entries only."""

    token_type: str
    id_token: str
    status: ListStatus
    group_id: str | None = None
    offline_swaps_max: int | None = None

    def __post_init__(self) -> None:
        assert (self.offline_swaps_max is not None) == (self.status is ListStatus.ACCEPTED), (
            "the offline limit goes with Accepted entries, and only with them"
        )
        assert self.offline_swaps_max is None or self.offline_swaps_max >= 0

    @property
    def key(self) -> EntryKey:
        return (self.token_type, self.id_token)

    def to_wire(self) -> dict[str, Any]:
        info: dict[str, Any] = {"status": self.status.value}
        if self.group_id is not None:
            info["groupIdToken"] = {"idToken": self.group_id, "type": GROUP_TOKEN_TYPE}
        if self.offline_swaps_max is not None:
            info["customData"] = {"vendorId": VENDOR_ID, "offlineSwapsMax": self.offline_swaps_max}
        return {"idToken": {"idToken": self.id_token, "type": self.token_type}, "idTokenInfo": info}

    @classmethod
    def from_wire(cls, item: Mapping[str, Any]) -> ListEntry | None:
        """An entry as a station received it; None for a removal (no idTokenInfo)."""
        token, info = item["idToken"], item.get("idTokenInfo")
        if info is None:
            return None
        group = info.get("groupIdToken")
        custom = info.get("customData") or {}
        limit = custom.get("offlineSwapsMax") if custom.get("vendorId") == VENDOR_ID else None
        status = ListStatus(info["status"])
        return cls(
            str(token["type"]),
            str(token["idToken"]),
            status,
            None if group is None else str(group["idToken"]),
            (int(limit) if limit is not None else 0) if status is ListStatus.ACCEPTED else None,
        )


def removal_to_wire(key: EntryKey) -> dict[str, Any]:
    """A differential update removes an entry by sending its idToken without idTokenInfo."""
    return {"idToken": {"idToken": key[1], "type": key[0]}}


# -- the list wanted ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RiderStanding:
    status: RiderStatus
    offline_swaps_max: int  # the rider's plan's


@dataclass(frozen=True, slots=True)
class ListFacts:
    """What the list is made from, as read in one transaction."""

    riders: Mapping[str, RiderStanding]
    cards: Sequence[tuple[str, str, str]]  # (token type, value, rider id)
    packs: Sequence[tuple[str, str | None]]  # (serial, the rider holding it or None)


def _for_rider(token_type: str, value: str, standing: RiderStanding, rider_id: str) -> ListEntry:
    if standing.status is RiderStatus.BLOCKED:
        return ListEntry(token_type, value, ListStatus.BLOCKED, rider_id)
    return ListEntry(token_type, value, ListStatus.ACCEPTED, rider_id, standing.offline_swaps_max)


def desired_list(facts: ListFacts) -> dict[EntryKey, ListEntry]:
    """The list every station should hold, by key."""
    wanted: dict[EntryKey, ListEntry] = {}
    for token_type, value, rider_id in facts.cards:
        standing = facts.riders.get(rider_id)
        if standing is not None:
            entry = _for_rider(token_type, value, standing, rider_id)
            wanted[entry.key] = entry
    serial_type = TokenType.BATTERY_SERIAL.value
    for serial, holder in facts.packs:
        standing = None if holder is None else facts.riders.get(holder)
        if holder is None or standing is None:
            entry = ListEntry(serial_type, serial, ListStatus.BLOCKED)
        else:
            entry = _for_rider(serial_type, serial, standing, holder)
        wanted[entry.key] = entry
    return wanted


# -- what changed, and the messages that carry it -------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListDiff:
    upserts: tuple[ListEntry, ...]  # new or changed entries, in key order
    removals: tuple[EntryKey, ...]  # keys the station holds and should not, in order

    def __len__(self) -> int:
        return len(self.upserts) + len(self.removals)


def diff(held: Mapping[EntryKey, ListEntry], wanted: Mapping[EntryKey, ListEntry]) -> ListDiff:
    """What turns the list a station holds into the one wanted."""
    upserts = tuple(wanted[k] for k in sorted(wanted) if held.get(k) != wanted[k])
    removals = tuple(k for k in sorted(held) if k not in wanted)
    return ListDiff(upserts, removals)


@dataclass(frozen=True, slots=True)
class ListUpdate:
    """One SendLocalList message: the version the station's list has once it applied it."""

    update_type: UpdateType
    version: int
    upserts: tuple[ListEntry, ...] = ()
    removals: tuple[EntryKey, ...] = ()

    def __post_init__(self) -> None:
        assert 1 <= self.version <= MAX_LIST_VERSION
        assert self.update_type is UpdateType.DIFFERENTIAL or not self.removals, (
            "a full update lists what the station keeps; it removes nothing by name"
        )

    def to_wire(self) -> dict[str, Any]:
        """The SendLocalListRequest in the wire's casing (no list at all when empty: the schema
        wants at least one item when there is one)."""
        items = [e.to_wire() for e in self.upserts] + [removal_to_wire(k) for k in self.removals]
        payload: dict[str, Any] = {"versionNumber": self.version, "updateType": self.update_type.value}
        if items:
            payload["localAuthorizationList"] = items
        return payload

    def apply(self, held: Mapping[EntryKey, ListEntry]) -> dict[EntryKey, ListEntry]:
        """The list a station holds after this message (what OCPP says a station does)."""
        after = {} if self.update_type is UpdateType.FULL else dict(held)
        for key in self.removals:
            after.pop(key, None)
        for entry in self.upserts:
            after[entry.key] = entry
        return after


def _size(item: dict[str, Any]) -> int:
    return len(json.dumps(item, separators=(",", ":"))) + 1  # and its comma


def _chunks(
    items: Sequence[ListEntry | EntryKey], max_items: int, max_bytes: int
) -> list[list[ListEntry | EntryKey]]:
    """Consecutive runs of ``items``, each at most ``max_items`` long and ``max_bytes`` of JSON
    (an entry is far below ``max_bytes``: a run always takes at least one)."""
    runs: list[list[ListEntry | EntryKey]] = []
    run: list[ListEntry | EntryKey] = []
    run_bytes = 0
    for item in items:
        size = _size(item.to_wire() if isinstance(item, ListEntry) else removal_to_wire(item))
        if run and (len(run) >= max_items or run_bytes + size > max_bytes):
            runs.append(run)
            run, run_bytes = [], 0
        run.append(item)
        run_bytes += size
    if run:
        runs.append(run)
    return runs


def _update(kind: UpdateType, version: int, run: Iterable[ListEntry | EntryKey]) -> ListUpdate:
    run = list(run)
    upserts = tuple(i for i in run if isinstance(i, ListEntry))
    removals = tuple(i for i in run if not isinstance(i, ListEntry))
    return ListUpdate(kind, version, upserts, removals)


def plan_updates(
    held_version: int,
    held: Mapping[EntryKey, ListEntry],
    wanted: Mapping[EntryKey, ListEntry],
    *,
    full: bool,
    max_items: int = MAX_LOCAL_LIST_ITEMS,
    max_bytes: int = MAX_LOCAL_LIST_BYTES,
) -> list[ListUpdate]:
    """The messages that take a station from ``held`` (at ``held_version``) to ``wanted``, in
    order: a full update (Full, then Differential for the rest of a long list), or the
    differences alone (none when there are none). A differential update whose versions would
    pass MAX_LIST_VERSION becomes a full one from version 1."""
    assert 0 <= held_version <= MAX_LIST_VERSION and max_items >= 1
    changes = diff(held, wanted)
    if not full:
        if not changes:
            return []
        runs = _chunks([*changes.upserts, *changes.removals], max_items, max_bytes)
        if held_version + len(runs) <= MAX_LIST_VERSION:
            return [
                _update(UpdateType.DIFFERENTIAL, held_version + n, run)
                for n, run in enumerate(runs, start=1)
            ]
    runs = _chunks([wanted[k] for k in sorted(wanted)], max_items, max_bytes) or [[]]
    first = held_version + 1 if held_version + len(runs) <= MAX_LIST_VERSION else 1
    return [
        _update(UpdateType.FULL if n == 0 else UpdateType.DIFFERENTIAL, first + n, run)
        for n, run in enumerate(runs)
    ]


# -- the station's side ---------------------------------------------------------------------------


class OfflineAnswer(enum.StrEnum):
    """What a station answers from its list while offline (an OCPP AuthorizationStatus)."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    UNKNOWN = "Unknown"  # not on the list: a station refuses it offline
    NO_CREDIT = "NoCredit"  # the rider's offline limit is used up until the station is back


def offline_answer(entry: ListEntry | None, served_offline: int) -> OfflineAnswer:
    """The rule for stations: serve a token offline when its entry is Accepted and its group
    (the rider) has had fewer than ``offlineSwapsMax`` swaps at this station since it lost the
    server. swapd checks the same count again when the swaps are replayed."""
    if entry is None:
        return OfflineAnswer.UNKNOWN
    if entry.status is not ListStatus.ACCEPTED:
        return OfflineAnswer.BLOCKED
    assert entry.offline_swaps_max is not None
    if served_offline >= entry.offline_swaps_max:
        return OfflineAnswer.NO_CREDIT
    return OfflineAnswer.ACCEPTED

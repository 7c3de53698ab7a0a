"""The swap path's statements, built once (see ``swapd.store.repository`` for why), and its rows
read back as the lifecycle's entities."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from swapd.domain.errors import Conflict
from swapd.domain.lifecycle import Offer, OfferState, Possession, Swap, SwapState
from swapd.domain.pack_choice import ChoiceRecord, PickRule
from swapd.domain.riders import IdToken, TokenType
from swapd.domain.right_sizing import ConsentState
from swapd.store import schema as t
from swapd.store.prepared import Prepared

_B = sa.bindparam

# The state is written as a literal so that SQLite can use the partial index ix_swaps_offered.
_OFFERED: sa.ColumnElement[str] = sa.literal_column(f"'{SwapState.OFFERED}'")

INSERT_SWAP = Prepared(sa.insert(t.swaps).returning(t.swaps.c.id))

SWAP = Prepared(sa.select(t.swaps).where(t.swaps.c.id == _B("swap_id")))

SWAP_BY_REQUEST = Prepared(
    sa.select(t.swaps).where(
        t.swaps.c.station_id == _B("station_id"), t.swaps.c.request_id == _B("request_id")
    )
)

# The rider's offer at a station that no BatterySwap event has claimed yet, newest first.
OPEN_OFFER = Prepared(
    sa.select(t.swaps)
    .where(
        t.swaps.c.station_id == _B("station_id"),
        t.swaps.c.rider_id == _B("rider_id"),
        t.swaps.c.state == _OFFERED,
    )
    .order_by(t.swaps.c.id.desc())
)

# Every swap still offered to a rider, newest first: the open offer at this station, and the
# same pack as the key of a swap still open at another station (R3: one pack, one place).
OFFERED_TO_RIDER = Prepared(
    sa.select(t.swaps)
    .where(t.swaps.c.rider_id == _B("rider_id"), t.swaps.c.state == _OFFERED)
    .order_by(t.swaps.c.id.desc())
)

OFFERS = Prepared(
    sa.select(t.swap_offers)
    .where(t.swap_offers.c.swap_id == _B("swap_id"))
    .order_by(t.swap_offers.c.slot_no)
)

INSERT_OFFER = Prepared(sa.insert(t.swap_offers))

SET_OFFER_STATE = Prepared(
    sa.update(t.swap_offers)
    .where(t.swap_offers.c.swap_id == _B("p_swap_id"), t.swap_offers.c.pack_serial == _B("p_serial"))
    .values(state=_B("v_state"))
)

UNRESERVE_PACK = Prepared(
    sa.update(t.packs)
    .where(t.packs.c.serial == _B("p_serial"), t.packs.c.reserved_swap_id == _B("p_swap_id"))
    .values(reserved_swap_id=None, updated_at=_B("now"))
)

OPEN_POSSESSION = Prepared(
    sa.select(t.possessions).where(
        t.possessions.c.pack_serial == _B("serial"), t.possessions.c.at_in.is_(None)
    )
)

INSERT_POSSESSION = Prepared(sa.insert(t.possessions))

ADD_CONSUMED = Prepared(
    sa.update(t.subscriptions)
    .where(t.subscriptions.c.rider_id == _B("p_rider_id"))
    .values(consumed_units=t.subscriptions.c.consumed_units + _B("units"))
)

# An event is found through station_event_keys (unique over all time, archived months too):
# its received_at there names the row, and on PostgreSQL the month's partition (a scalar
# subquery, evaluated before the scan: PostgreSQL prunes the other months at run time). One row
# always: received_at NULL for an event never seen, result NULL for one whose month was archived.
_EK, _EV = t.station_event_keys.c, t.station_events.c
_RECEIVED = (
    sa.select(_EK.received_at)
    .where(
        _EK.station_id == _B("station_id"),
        _EK.request_id == _B("request_id"),
        _EK.event_type == _B("event_type"),
    )
    .scalar_subquery()
)
_STATION_EVENT_Q = sa.select(
    _RECEIVED.label("received_at"),
    sa.select(_EV.result)
    .where(
        _EV.station_id == _B("station_id"),
        _EV.request_id == _B("request_id"),
        _EV.event_type == _B("event_type"),
        _EV.received_at == _RECEIVED,
    )
    .scalar_subquery()
    .label("result"),
)
STATION_EVENT = Prepared(_STATION_EVENT_Q)

# The station an event came from and, in the same statement, when the event was applied if it
# was (its key row): every BatteryIn and BatteryOut reads both first. Only a repeat reads its
# recorded result (STATION_EVENT) after: the result lives in station_events, and a generic
# plan that reads a partitioned table locks every month attached on each run (PostgreSQL 15:
# a read by key cost 132 us of backend CPU with 5 months attached, 500 us with 40), while the
# key table is one table.
STATION_COLUMNS = [
    *(t.stations.c[name] for name in ("id", "slot_count", "enabled", "charged_soc_bp", "min_soh_bp")),
    t.stations.c.right_size_floor_bp,
    *(c for c in t.stations.c if c.name.startswith("pick_")),
]
STATION_WITH_EVENT = Prepared(
    sa.select(*STATION_COLUMNS, _RECEIVED.label("event_received_at")).where(
        t.stations.c.id == _B("station_id")
    )
)

# The station an Authorize came to and the swap its requestId names there already, if any
# (a repeated Authorize is answered from it): both are what an Authorize reads first.
STATION_WITH_REQUEST = Prepared(
    sa.select(*STATION_COLUMNS, *(c.label(f"swap_{c.name}") for c in t.swaps.c))
    .select_from(
        t.stations.outerjoin(
            t.swaps,
            sa.and_(
                t.swaps.c.station_id == t.stations.c.id,
                t.swaps.c.request_id == _B("request_id"),
            ),
        )
    )
    .where(t.stations.c.id == _B("station_id"))
)

# Recording an event claims its key (a second one fails on the primary key, as before), then
# writes its row.
INSERT_EVENT_KEY = Prepared(sa.insert(t.station_event_keys))
INSERT_EVENT = Prepared(sa.insert(t.station_events))


def _insert_event_keyed() -> sa.Insert:
    """PostgreSQL: both in one statement (a data-modifying WITH, which SQLite does not have)."""
    c = t.station_events.c

    def value(name: str) -> sa.BindParameter[Any]:
        return _B(f"v_{name}", type_=c[name].type)

    claimed = (
        sa.insert(t.station_event_keys)
        .values(
            **{name: value(name) for name in ("station_id", "request_id", "event_type", "received_at")}
        )
        .returning(_EK.received_at)
        .cte("claimed")
    )
    names = [column.name for column in t.station_events.columns]
    rows = sa.select(*(value(name) for name in names)).select_from(claimed)
    return sa.insert(t.station_events).from_select(names, rows).add_cte(claimed)


INSERT_EVENT_KEYED = Prepared(_insert_event_keyed())

STALE_OFFERS = (
    sa.select(t.swaps.c.id)
    .where(t.swaps.c.state == _OFFERED, t.swaps.c.updated_at < _B("updated_before"))
    .order_by(t.swaps.c.id)
    .limit(_B("limit"))
)

# Why an offer's packs were chosen, and the consent of a right-sized one.
INSERT_CHOICE = Prepared(sa.insert(t.swap_choices))
CHOICE = Prepared(sa.select(t.swap_choices).where(t.swap_choices.c.swap_id == _B("swap_id")))
CONFIRM_CHOICE = Prepared(
    sa.update(t.swap_choices)
    .where(t.swap_choices.c.swap_id == _B("p_swap_id"))
    .values(consent=ConsentState.CONFIRMED.value, confirmed_at=_B("now"))
)

# Every prepared select here: the tests compile them (tests/integration/test_query_plans.py) and
# compare them with SQLAlchemy's results (test_prepared.py).
PREPARED_SELECTS = (
    SWAP,
    SWAP_BY_REQUEST,
    OPEN_OFFER,
    OFFERED_TO_RIDER,
    OFFERS,
    OPEN_POSSESSION,
    CHOICE,
)


def swap_of(row: Any, prefix: str = "") -> Swap:
    """A swap from a row of ``swaps``, or from its columns labelled ``<prefix><name>``."""

    def column(name: str) -> Any:
        return getattr(row, prefix + name)

    return Swap(
        column("id"),
        column("station_id"),
        column("rider_id"),
        SwapState(column("state")),
        column("request_id"),
        column("reason"),
        IdToken(TokenType(column("token_type")), column("token_value")),
    )


def choice_of(row: Any) -> ChoiceRecord:
    return ChoiceRecord(
        row.swap_id,
        row.station_id,
        PickRule(row.rule),
        row.detail,
        bool(row.right_sized),
        row.consent,
        int(row.required_units),
        int(row.full_required_units),
        row.created_at,
        row.confirmed_at,
    )


def offer_of(row: Any) -> Offer:
    return Offer(
        row.swap_id,
        row.pack_serial,
        row.slot_no,
        int(row.hold_units),
        row.hold_transfer_id,
        OfferState(row.state),
    )


def possession_of(row: Any) -> Possession:
    return Possession(
        row.id,
        row.rider_id,
        row.pack_serial,
        row.plan_id,
        row.at_out,
        row.soc_out_bp,
        row.soh_out_bp,
        int(row.hold_units),
        row.hold_transfer_id,
        row.at_in,
        row.swap_out_id,
        row.station_out,
        row.slot_out,
    )


def recorded_result(received_at: Any, result: Any, where: Mapping[str, str]) -> Mapping[str, Any] | None:
    """A station event's recorded result from STATION_EVENT's columns: None if it was never
    applied; Conflict if it was, in a month archived since (its result is in the archive)."""
    if received_at is None:
        return None
    if result is None:
        raise Conflict(
            f"station {where['station_id']}'s {where['event_type']} {where['request_id']!r} was "
            "applied in a month since archived"
        )
    recorded: Mapping[str, Any] = result
    return recorded

"""R6: whether a rider may take charged packs now, and which ones. Pure: the caller resolves facts."""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from swapd.domain.pack_choice import Pick, choose
from swapd.domain.packs import Pack, PackStatus
from swapd.domain.plans import Plan
from swapd.domain.riders import Rider, RiderStatus
from swapd.domain.right_sizing import Consent, right_sized
from swapd.domain.stations import Station


class RefusalReason(enum.StrEnum):
    """Why a swap is refused; each maps to an OCPP authorization status or reason code."""

    UNKNOWN_TOKEN = "unknown_token"
    UNKNOWN_PACK = "unknown_pack"
    PACK_NOT_ASSIGNED = "pack_not_assigned"
    PACK_HELD_BY_OTHER = "pack_held_by_other"
    RIDER_BLOCKED = "rider_blocked"
    NO_CREDIT = "no_credit"
    PACK_DAMAGED = "pack_damaged"
    PACK_SOH_LOW = "pack_soh_low"
    NO_CHARGED_PACK = "no_charged_pack"
    VEHICLE_FULL = "vehicle_full"
    STATION_DISABLED = "station_disabled"
    # The pack presented as the key has an open offer at another station: a pack is in one place,
    # so one of the two readings is wrong (a cloned tag, a misread serial) and neither is trusted.
    PACK_AT_OTHER_STATION = "pack_at_other_station"


REFUSAL_TEXT = {
    RefusalReason.UNKNOWN_TOKEN: "Card or account not recognised",
    RefusalReason.UNKNOWN_PACK: "This battery is not from our network",
    RefusalReason.PACK_NOT_ASSIGNED: "This battery is not rented to anyone",
    RefusalReason.PACK_HELD_BY_OTHER: "This battery is rented to someone else",
    RefusalReason.RIDER_BLOCKED: "Account blocked: please contact support",
    RefusalReason.NO_CREDIT: "Not enough allowance: please top up",
    RefusalReason.PACK_DAMAGED: "Battery damaged: please contact support",
    RefusalReason.PACK_SOH_LOW: "Battery worn out: please contact support",
    RefusalReason.NO_CHARGED_PACK: "No charged battery available here now",
    RefusalReason.VEHICLE_FULL: "You already hold as many batteries as your vehicle takes",
    RefusalReason.STATION_DISABLED: "Station out of service",
    RefusalReason.PACK_AT_OTHER_STATION: "This battery is in a swap at another station",
}


@dataclass(frozen=True, slots=True)
class Offer:
    """A charged pack offered to the rider, with the hold it places on the allowance."""

    pack: Pack
    hold_units: int


@dataclass(frozen=True, slots=True)
class Decision:
    """``picks``: why each offered pack was chosen (domain.pack_choice), in the offers' order.

    A right-sized offer (``right_sized``) the rider has not consented to yet is not accepted: it
    is refused with NO_CREDIT and ``asks`` set, and its ``offers`` are what the rider is asked
    to take (the caller reserves them, so that the rider's yes finds them still there)."""

    accepted: bool
    reason: RefusalReason | None
    offers: tuple[Offer, ...] = ()
    required_units: int = 0
    available_units: int = 0
    # The explanation, not the outcome: two decisions offering the same packs are equal.
    picks: tuple[Pick, ...] = field(default=(), compare=False)
    right_sized: bool = False
    asks: bool = False
    full_required_units: int = 0  # what the full offer would have held (right-sized: refused)

    @property
    def text(self) -> str:
        return "Accepted" if self.reason is None else REFUSAL_TEXT[self.reason]


def refuse(reason: RefusalReason, *, available_units: int = 0, required_units: int = 0) -> Decision:
    return Decision(False, reason, (), required_units, available_units)


def is_charged(pack: Pack, station: Station) -> bool:
    return (
        pack.status is PackStatus.IN_SLOT
        and pack.reserved_swap_id is None
        and pack.soc_bp >= station.charged_soc_bp
        and pack.soh_bp >= station.min_soh_bp
    )


def check_returned_pack(pack: Pack | None, station: Station) -> RefusalReason | None:
    """R3 preconditions on a pack presented as the rider's key."""
    if pack is None:
        return RefusalReason.UNKNOWN_PACK
    if pack.status in (PackStatus.QUARANTINED, PackStatus.RETIRED):
        return RefusalReason.PACK_DAMAGED
    if pack.status is not PackStatus.WITH_RIDER:
        return RefusalReason.PACK_NOT_ASSIGNED
    if pack.soh_bp < station.min_soh_bp:
        return RefusalReason.PACK_SOH_LOW
    return None


def is_token_pack_mismatch(token_rider_id: str | None, holder_ids: Collection[str]) -> bool:
    """R3: the returned packs, not the token, name the rider billed. A token that names a rider
    who holds none of them (a lent card, a borrowed vehicle) is flagged, never silently obeyed.
    A token that names nobody, or packs that nobody holds, is no disagreement."""
    return token_rider_id is not None and bool(holder_ids) and token_rider_id not in holder_ids


def is_offerable(
    pack: Pack, station: Station, out_of_service: Collection[int], models: Collection[str]
) -> bool:
    """Whether a pack may be offered at all, whatever its charge: in a slot in service, not
    reserved by another swap, healthy enough, the model returned (when packs are returned)."""
    return (
        pack.status is PackStatus.IN_SLOT
        and pack.reserved_swap_id is None
        and pack.soh_bp >= station.min_soh_bp
        and pack.slot_no not in out_of_service
        and (not models or pack.model_code in models)
    )


def decide(
    *,
    station: Station,
    rider: Rider,
    plan: Plan,
    available_units: int,
    held_count: int,
    returning: Sequence[Pack],
    stock: Sequence[Pack],
    wanted: int | None = None,
    out_of_service: Collection[int] = frozenset(),
    now: datetime | None = None,
    consented: bool = False,
) -> Decision:
    """Pick the charged packs for a rider, or refuse with the reason the station shows.

    ``out_of_service``: the slots taken out of use (by the operator's ChangeAvailability, or
    reported Unavailable/Faulted by the station); a pack in one is never offered.

    ``available_units`` is the allowance after holds. The holds of packs being returned stay
    counted until their return is metered: the decision is made before the station reports the
    returned pack's SoC, so it must assume the worst (the whole hold is used).

    The packs are chosen by the station's policy (domain.pack_choice; ``now`` dates the packs'
    rest). When the allowance cannot hold them and the station has a right-size floor, the packs
    the allowance covers best are offered instead (domain.right_sizing): at once if the rider's
    consent is ``always`` or ``consented`` (the rider said yes to this offer), asked otherwise.
    """
    if not station.enabled:
        return refuse(RefusalReason.STATION_DISABLED)
    if rider.status is RiderStatus.BLOCKED:
        return refuse(RefusalReason.RIDER_BLOCKED)
    if wanted is None:
        wanted = len(returning) or (held_count or rider.vehicle_packs)
    if held_count - len(returning) + wanted > rider.vehicle_packs or wanted <= 0:
        return refuse(RefusalReason.VEHICLE_FULL)
    models = {p.model_code for p in returning}
    eligible = [p for p in stock if is_offerable(p, station, out_of_service, models)]
    charged = [p for p in eligible if p.soc_bp >= station.charged_soc_bp]
    picks = choose(charged, wanted, station.policy, min_soh_bp=station.min_soh_bp, now=now)
    if not picks:
        return refuse(RefusalReason.NO_CHARGED_PACK, available_units=available_units)
    required = [plan.requirement_for(p.pack) for p in picks]
    total_required = sum(required)
    if total_required > available_units and not plan.allows_overage:
        return _right_size(
            station, rider, plan, available_units, wanted, eligible, total_required, now, consented
        )
    # Overage plans hold what the allowance still covers; the rest is billed as overage.
    offers = []
    left = available_units
    for pick, need in zip(picks, required, strict=True):
        hold = min(need, max(left, 0))
        left -= hold
        offers.append(Offer(pick.pack, hold))
    return Decision(True, None, tuple(offers), total_required, available_units, picks)


def _right_size(
    station: Station,
    rider: Rider,
    plan: Plan,
    available_units: int,
    wanted: int,
    eligible: Sequence[Pack],
    full_required: int,
    now: datetime | None,
    consented: bool,
) -> Decision:
    """NO_CREDIT, unless a right-sized offer fits and the rider takes (or is asked to take) it."""
    no_credit = refuse(
        RefusalReason.NO_CREDIT, available_units=available_units, required_units=full_required
    )
    floor_bp = station.right_size_floor_bp
    if floor_bp is None or rider.right_size_consent is Consent.NEVER:
        return no_credit
    picks = right_sized(
        eligible,
        wanted,
        plan=plan,
        available_units=available_units,
        floor_bp=floor_bp,
        policy=station.policy,
        min_soh_bp=station.min_soh_bp,
        now=now,
    )
    if not picks:
        return no_credit
    offers = tuple(Offer(p.pack, plan.requirement_for(p.pack)) for p in picks)
    required = sum(o.hold_units for o in offers)
    assert required <= available_units, "a right-sized offer never holds more than the allowance"
    if consented or rider.right_size_consent is Consent.ALWAYS:
        return Decision(True, None, offers, required, available_units, picks, True, False, full_required)
    return Decision(
        False,
        RefusalReason.NO_CREDIT,
        offers,
        required,
        available_units,
        picks,
        right_sized=True,
        asks=True,
        full_required_units=full_required,
    )

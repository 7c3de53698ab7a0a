"""Which of the packs that qualify a rider gets: the fleet-aware choice, with the rule that decided.

Pure. The caller has already kept only the packs that may be offered at all (in a slot, not
reserved, not quarantined, not in a slot out of service, healthy enough, the right model; for a
right-sized offer also above the station's floor and within the allowance). This module only
orders them.

The order, for every offer:

1. SoC band. Packs within ``soc_band_bp`` of the fullest candidate form the first band, the next
   ``soc_band_bp`` below the second, and so on: a rider never gets a pack from a lower band while
   one in a higher band qualifies. With a band of 0 every SoC is its own band (the fullest pack
   first, as before the policy existed).
2. Within a band, a score: the operator's integer weights times three criteria, each normalised
   to 0..1000 over the band's packs:
   - rested: finished charging longest ago (we read it as the longest in its slot: a pack put in
     earlier has been full, cooling and balancing, for longer);
   - cycles: fewest cycles first, so wear spreads across the fleet;
   - SoH: a pack whose SoH is within ``retirement_margin_bp`` of the station's minimum is kept
     for short trips: last for a full offer, first for a right-sized one (a rider whose allowance
     only covers part of a pack is on a short trip).
3. Ties: higher SoC, higher SoH, lower slot number (the rule before the policy).

Invariant: all weights 0 gives exactly the order before the policy (SoC, SoH, slot).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from swapd.domain.errors import InvalidInput
from swapd.domain.packs import Pack
from swapd.domain.quantities import PERCENT_BP

MAX_WEIGHT = 100
_NORM = 1_000  # each criterion scores 0.._NORM within its band


class PickRule(enum.StrEnum):
    """Which rule set the chosen pack apart from the best pack left in the station."""

    ONLY_CHOICE = "only_choice"
    FULLEST = "fullest"
    RIGHT_SIZED = "right_sized"
    RESTED = "rested"
    FEWEST_CYCLES = "fewest_cycles"
    SOH_KEPT = "soh_kept"
    SLOT_ORDER = "slot_order"


RULE_TEXT = {
    PickRule.ONLY_CHOICE: "the only pack that qualified",
    PickRule.FULLEST: "highest state of charge",
    PickRule.RIGHT_SIZED: "highest state of charge the allowance covers",
    PickRule.RESTED: "finished charging longest ago",
    PickRule.FEWEST_CYCLES: "fewest cycles in its charge band",
    PickRule.SOH_KEPT: "packs near retirement kept for short trips",
    PickRule.SLOT_ORDER: "equal on every rule: lowest slot",
}


@dataclass(frozen=True, slots=True)
class PackPolicy:
    """The operator's weights for a station's choice of pack. All 0: the fullest pack first."""

    soc_band_bp: int = 0
    rest_weight: int = 0
    cycles_weight: int = 0
    soh_weight: int = 0
    retirement_margin_bp: int = 500

    def __post_init__(self) -> None:
        for name in ("rest_weight", "cycles_weight", "soh_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_WEIGHT:
                raise InvalidInput(f"{name} must be an integer 0..{MAX_WEIGHT}, got {value!r}")
        for name in ("soc_band_bp", "retirement_margin_bp"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= PERCENT_BP:
                raise InvalidInput(f"{name} must be 0..{PERCENT_BP} basis points, got {value!r}")

    @property
    def fleet_aware(self) -> bool:
        return bool(self.rest_weight or self.cycles_weight or self.soh_weight)


# The weights an operator gets from ``--preset balanced``: cycles count most (wear is what a fleet
# pays for), then rest; bands of 5 % keep the rider's pack full.
BALANCED = PackPolicy(
    soc_band_bp=500, rest_weight=2, cycles_weight=3, soh_weight=2, retirement_margin_bp=500
)


@dataclass(frozen=True, slots=True)
class Pick:
    """One chosen pack and why it was chosen over the best pack not chosen."""

    pack: Pack
    rule: PickRule
    detail: str


@dataclass(frozen=True, slots=True)
class ChoiceRecord:
    """What a swap's detail shows of its offer: the rule that chose its (first) pack and every
    pack's reason; for a right-sized offer, the rider's consent (a right_sizing.ConsentState)
    and what the full offer would have held."""

    swap_id: int
    station_id: str
    rule: PickRule
    detail: str
    right_sized: bool
    consent: str | None
    required_units: int
    full_required_units: int
    created_at: datetime
    confirmed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Ranked:
    pack: Pack
    band: int
    score: int
    parts: tuple[int, int, int]  # weighted rest, cycles, SoH: what the score is made of


def near_retirement(pack: Pack, min_soh_bp: int, policy: PackPolicy) -> bool:
    return pack.soh_bp < min_soh_bp + policy.retirement_margin_bp


def rank(
    candidates: Sequence[Pack],
    policy: PackPolicy,
    *,
    min_soh_bp: int,
    now: datetime | None,
    short_trip: bool = False,
) -> list[Ranked]:
    """The candidates, best first (see the module's docstring)."""
    if not candidates:
        return []
    top_soc = max(p.soc_bp for p in candidates)
    width = policy.soc_band_bp

    def band_of(p: Pack) -> int:
        return (top_soc - p.soc_bp) // width if width > 0 else top_soc - p.soc_bp

    bands: dict[int, list[Pack]] = {}
    for p in candidates:
        bands.setdefault(band_of(p), []).append(p)
    ranked = []
    for band, members in bands.items():
        rests = [_rest_s(p, now) for p in members]
        cycles = [p.cycle_count for p in members]
        for p, rest_s in zip(members, rests, strict=True):
            worn = near_retirement(p, min_soh_bp, policy)
            parts = (
                policy.rest_weight * _spread(rest_s, rests),
                policy.cycles_weight * _spread(-p.cycle_count, [-c for c in cycles]),
                policy.soh_weight * (_NORM if worn == short_trip else 0),
            )
            ranked.append(Ranked(p, band, sum(parts), parts))
    ranked.sort(key=lambda r: (r.band, -r.score, -r.pack.soc_bp, -r.pack.soh_bp, r.pack.slot_no or 0))
    return ranked


def explain(chosen: Ranked, runner_up: Ranked | None, *, right_sized: bool) -> Pick:
    """The rule that put ``chosen`` ahead of ``runner_up`` (the best pack not chosen)."""
    pack = chosen.pack
    if runner_up is None:
        return Pick(pack, PickRule.ONLY_CHOICE, RULE_TEXT[PickRule.ONLY_CHOICE])
    other = runner_up.pack
    if chosen.band != runner_up.band or chosen.score == runner_up.score:
        if pack.soc_bp != other.soc_bp or chosen.band != runner_up.band:
            rule = PickRule.RIGHT_SIZED if right_sized else PickRule.FULLEST
            return Pick(pack, rule, f"{RULE_TEXT[rule]} ({_pct(pack.soc_bp)} vs {_pct(other.soc_bp)})")
        if pack.soh_bp != other.soh_bp:
            rule = PickRule.RIGHT_SIZED if right_sized else PickRule.FULLEST
            return Pick(pack, rule, f"{RULE_TEXT[rule]}, then SoH ({_pct(pack.soh_bp)})")
        return Pick(pack, PickRule.SLOT_ORDER, RULE_TEXT[PickRule.SLOT_ORDER])
    gains = [a - b for a, b in zip(chosen.parts, runner_up.parts, strict=True)]
    best = max(range(3), key=lambda i: gains[i])
    rule = (PickRule.RESTED, PickRule.FEWEST_CYCLES, PickRule.SOH_KEPT)[best]
    if rule is PickRule.FEWEST_CYCLES:
        detail = f"{RULE_TEXT[rule]} ({pack.cycle_count:,} vs {other.cycle_count:,})"
    elif rule is PickRule.SOH_KEPT:
        detail = f"{RULE_TEXT[rule]} (SoH {_pct(pack.soh_bp)} vs {_pct(other.soh_bp)})"
    else:
        detail = RULE_TEXT[rule]
    return Pick(pack, rule, detail)


def choose(
    candidates: Sequence[Pack],
    wanted: int,
    policy: PackPolicy,
    *,
    min_soh_bp: int,
    now: datetime | None,
) -> tuple[Pick, ...]:
    """The ``wanted`` best packs of a full offer, each with its rule; () if too few qualify."""
    ranked = rank(candidates, policy, min_soh_bp=min_soh_bp, now=now)
    if len(ranked) < wanted:
        return ()
    runner_up = ranked[wanted] if len(ranked) > wanted else None
    return tuple(explain(r, runner_up, right_sized=False) for r in ranked[:wanted])


def _rest_s(pack: Pack, now: datetime | None) -> int:
    if now is None or pack.placed_at is None:
        return 0
    return max(0, int((now - pack.placed_at).total_seconds()))


def _spread(value: int, values: Sequence[int]) -> int:
    """``value`` placed on 0.._NORM between the smallest and the largest of ``values``."""
    low, high = min(values), max(values)
    if high == low:
        return 0
    return (value - low) * _NORM // (high - low)


def _pct(bp: int) -> str:
    return f"{bp / 100:.0f} %" if bp % 100 == 0 else f"{bp / 100:.2f} %"

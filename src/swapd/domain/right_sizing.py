"""Right-sized offers: a pack with less charge for a rider whose allowance cannot hold a full one.

Pure. R6 requires the allowance after holds to cover the pack handed over; a rider short of a full
pack's hold would be refused although a pack at half charge would get them home. A right-sized
offer is the pack whose hold the allowance covers best (the highest SoC that fits), never below
the floor the operator set for the station, and only with the rider's consent. The pricing is the
method's: usage is metered at return (R4), so a smaller pack costs less by construction, and the
hold follows the pack offered.

Invariants of ``right_sized``: the holds of the packs picked add up to at most the allowance; no
pack picked is below the floor; nothing is picked for an overage plan (the overage covers it).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime

from swapd.domain.errors import InvalidInput
from swapd.domain.pack_choice import RULE_TEXT, PackPolicy, Pick, PickRule, Ranked, explain, rank
from swapd.domain.packs import Pack
from swapd.domain.plans import Plan
from swapd.domain.quantities import PERCENT_BP


class Consent(enum.StrEnum):
    """A rider's standing answer to a right-sized offer."""

    ALWAYS = "always"  # take it without asking
    ASK = "ask"  # ask at the station (or in the app) each time: the default
    NEVER = "never"  # refuse as before: top up instead


class ConsentState(enum.StrEnum):
    """Where a right-sized offer stands with the rider (``swap_choices.consent``)."""

    ASKED = "asked"  # the station asked; the offer waits for the rider's yes, or expires
    CONFIRMED = "confirmed"  # the rider said yes (a second Authorize, or the app)
    STANDING = "standing"  # the rider's setting is "always": nobody was asked


def parse_consent(value: object) -> Consent:
    try:
        return Consent(str(value))
    except ValueError:
        raise InvalidInput(
            f"right-size consent must be one of {', '.join(c.value for c in Consent)}, got {value!r}"
        ) from None


def validate_floor_bp(floor_bp: object) -> int | None:
    """A station's floor: None (right-sizing off) or 1..10,000 basis points of SoC."""
    if floor_bp is None:
        return None
    if isinstance(floor_bp, bool) or not isinstance(floor_bp, int) or not 1 <= floor_bp <= PERCENT_BP:
        raise InvalidInput(
            f"the right-size floor must be 1..{PERCENT_BP} basis points, got {floor_bp!r}"
        )
    return floor_bp


def right_sized(
    eligible: Sequence[Pack],
    wanted: int,
    *,
    plan: Plan,
    available_units: int,
    floor_bp: int,
    policy: PackPolicy,
    min_soh_bp: int,
    now: datetime | None,
) -> tuple[Pick, ...]:
    """The ``wanted`` packs the allowance covers best, at or above the floor; () when none fit.

    ``eligible``: packs that may be offered at all (in a slot, free, in service, healthy, the
    right model), whatever their charge. Packs are taken best first by the station's policy among
    those that fit; each pick leaves room for the smallest holds of the packs still to pick, so a
    two-pack vehicle gets two packs that fit together, or none.
    """
    if plan.allows_overage or wanted <= 0:
        return ()
    need = {p.serial: plan.requirement_for(p) for p in eligible}
    fits = [p for p in eligible if p.soc_bp >= floor_bp and need[p.serial] <= available_units]
    ranked = rank(fits, policy, min_soh_bp=min_soh_bp, now=now, short_trip=True)
    chosen: list[Ranked] = []
    left = available_units
    for i, candidate in enumerate(ranked):
        still = wanted - len(chosen) - 1
        rest = sorted(need[r.pack.serial] for r in ranked[i + 1 :])[:still]
        if len(rest) < still:
            break
        if need[candidate.pack.serial] + sum(rest) <= left:
            chosen.append(candidate)
            left -= need[candidate.pack.serial]
            if len(chosen) == wanted:
                break
    if len(chosen) < wanted:
        return ()
    picked = {r.pack.serial for r in chosen}
    runner_up = next((r for r in ranked if r.pack.serial not in picked), None)
    picks = (explain(r, runner_up, right_sized=True) for r in chosen)
    # The one pack that fits was still chosen for fitting: say so rather than "the only one".
    return tuple(_fitting(p) if p.rule is PickRule.ONLY_CHOICE else p for p in picks)


def _fitting(pick: Pick) -> Pick:
    text = f"{RULE_TEXT[PickRule.RIGHT_SIZED]} ({pick.pack.soc_bp // 100} %)"
    return Pick(pick.pack, PickRule.RIGHT_SIZED, text)


def ask_text(available_units: int, unit: str, slots_socs: Sequence[tuple[int, int]]) -> str:
    """What the station shows when it asks: 'Only 900 Wh left: take slot 4 at 48 %? Top up for
    a full pack'. The rider answers by presenting again (or in the app)."""
    offer = " and ".join(f"slot {slot} at {soc // 100} %" for slot, soc in slots_socs)
    return (
        f"Only {max(available_units, 0):,} {unit} left: take {offer}? "
        "Present again to accept. Top up for a full pack"
    )

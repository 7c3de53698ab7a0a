"""The settings of right-sized offers and of the fleet-aware choice of pack: a station's floor and
policy weights (the operator's, audited), and a rider's consent (the rider's own, or staff's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from swapd.domain.errors import InvalidInput, NotFound
from swapd.domain.pack_choice import BALANCED, PackPolicy
from swapd.domain.right_sizing import Consent, parse_consent, validate_floor_bp
from swapd.services import audit
from swapd.store import schema as t
from swapd.store.database import Database, Tx
from swapd.store.repository import policy_from_row

PRESETS = {"off": PackPolicy(), "balanced": BALANCED}


@dataclass(frozen=True, slots=True)
class StationPackSettings:
    station_id: str
    right_size_floor_bp: int | None
    policy: PackPolicy

    def to_json(self) -> dict[str, Any]:
        """One serializer for the API and the CLI's --json."""
        p = self.policy
        return {
            "station_id": self.station_id,
            "right_size_floor_bp": self.right_size_floor_bp,
            "policy": {
                "soc_band_bp": p.soc_band_bp,
                "rest_weight": p.rest_weight,
                "cycles_weight": p.cycles_weight,
                "soh_weight": p.soh_weight,
                "retirement_margin_bp": p.retirement_margin_bp,
            },
        }


@dataclass(frozen=True, slots=True)
class PackSettingsEdit:
    """What to change. ``floor_bp``: set it when ``set_floor`` (None turns right-sizing off).
    ``preset`` replaces every weight first; the named weights then apply on top."""

    set_floor: bool = False
    floor_bp: int | None = None
    preset: str | None = None
    soc_band_bp: int | None = None
    rest_weight: int | None = None
    cycles_weight: int | None = None
    soh_weight: int | None = None
    retirement_margin_bp: int | None = None

    def weights(self) -> dict[str, int]:
        fields = ("soc_band_bp", "rest_weight", "cycles_weight", "soh_weight", "retirement_margin_bp")
        return {name: getattr(self, name) for name in fields if getattr(self, name) is not None}


def _settings(tx: Tx, station_id: str) -> StationPackSettings:
    row = tx.repo.execute(sa.select(t.stations).where(t.stations.c.id == station_id)).first()
    if row is None:
        raise NotFound(f"unknown station {station_id}")
    return StationPackSettings(station_id, row.right_size_floor_bp, policy_from_row(row))


def station_settings(db: Database, station_id: str) -> StationPackSettings:
    return db.read(lambda tx: _settings(tx, station_id))


def edit_station_settings(
    db: Database, actor: str, station_id: str, edit: PackSettingsEdit, reason: str
) -> StationPackSettings:
    """Change a station's floor and policy; every value is checked before anything is written,
    and the change and its audit row commit together."""
    reason = audit.check_reason(reason)
    if edit.preset is not None and edit.preset not in PRESETS:
        raise InvalidInput(f"preset must be one of {', '.join(PRESETS)}, got {edit.preset!r}")
    floor_bp = validate_floor_bp(edit.floor_bp) if edit.set_floor else None
    if not edit.set_floor and edit.preset is None and not edit.weights():
        raise InvalidInput("nothing to change: give a floor, a preset or a weight")

    def work(tx: Tx) -> StationPackSettings:
        now = _settings(tx, station_id)
        base = PRESETS[edit.preset] if edit.preset is not None else now.policy
        policy = PackPolicy(**{**_fields(base), **edit.weights()})  # checks every weight
        floor = floor_bp if edit.set_floor else now.right_size_floor_bp
        values = {
            "right_size_floor_bp": floor,
            "pick_soc_band_bp": policy.soc_band_bp,
            "pick_rest_weight": policy.rest_weight,
            "pick_cycles_weight": policy.cycles_weight,
            "pick_soh_weight": policy.soh_weight,
            "pick_retirement_margin_bp": policy.retirement_margin_bp,
        }
        tx.repo.execute(sa.update(t.stations).where(t.stations.c.id == station_id).values(**values))
        audit.record(tx, actor, "station.pack_policy", station_id, reason, values)
        return StationPackSettings(station_id, floor, policy)

    return db.write(work)


def _fields(policy: PackPolicy) -> dict[str, int]:
    return {
        "soc_band_bp": policy.soc_band_bp,
        "rest_weight": policy.rest_weight,
        "cycles_weight": policy.cycles_weight,
        "soh_weight": policy.soh_weight,
        "retirement_margin_bp": policy.retirement_margin_bp,
    }


# -- the rider's consent ---------------------------------------------------------------------------


def rider_consent(db: Database, rider_id: str) -> Consent:
    def work(tx: Tx) -> Consent:
        rider = tx.repo.rider(rider_id)
        if rider is None:
            raise NotFound(f"unknown rider {rider_id}")
        return rider.right_size_consent

    return db.read(work)


def set_rider_consent(db: Database, rider_id: str, consent: object) -> Consent:
    """The rider's standing answer to right-sized offers. Setting the same value again changes
    nothing (a repeated request is harmless)."""
    chosen = parse_consent(consent)

    def work(tx: Tx) -> Consent:
        result = tx.repo.execute(
            sa.update(t.riders).where(t.riders.c.id == rider_id).values(right_size_consent=chosen.value)
        )
        if result.rowcount != 1:
            raise NotFound(f"unknown rider {rider_id}")
        return chosen

    return db.write(work)

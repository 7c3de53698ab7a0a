"""What every scenario step shares: the run's context, a step's result, and how numbers read."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

from swapd.domain.quantities import Unit, bp_to_percent
from swapd.readmodels.money import rider_balance
from swapd.scenario.fields import Fields
from swapd.services import swaps
from swapd.store.database import Database, ManualClock

MAX_PACKS_PER_EVENT = swaps.MAX_PACKS_PER_SWAP


@dataclass
class Context:
    """What the steps of one run share."""

    db: Database
    clock: ManualClock
    riders: list[str] = field(default_factory=list)  # in the order the scenario added them
    _units: dict[str, tuple[str, str]] = field(default_factory=dict)

    def units_of(self, rider_id: str) -> tuple[str, str]:
        """The (unit, currency) a rider's plan counts in, for readable summaries."""
        if rider_id not in self._units:
            balance = rider_balance(self.db, rider_id)
            self._units[rider_id] = (balance.unit, balance.currency)
        return self._units[rider_id]


@dataclass(frozen=True, slots=True)
class Done:
    """A step's result: ``result`` is what ``expect`` steps compare, ``summary`` is for people."""

    result: dict[str, Any]
    summary: str


def quantity(amount: int, unit: str) -> str:
    if unit == Unit.DELIVERIES.value:
        return f"{amount:,} deliver{'y' if amount == 1 else 'ies'}"
    return f"{amount:,} {unit}"


def percent(value_bp: int) -> str:
    """Basis points as the percentage a BMS reports (98.0, 95.25): exact, no float."""
    return bp_to_percent(value_bp)


class Action(abc.ABC):
    """One step that does something. ``result_keys`` are what ``expect.result`` may check."""

    kind: ClassVar[str]
    result_keys: ClassVar[frozenset[str]] = frozenset()
    moves_clock: ClassVar[bool] = False

    @classmethod
    @abc.abstractmethod
    def parse(cls, f: Fields, number: int) -> Action: ...

    @abc.abstractmethod
    def describe(self) -> str: ...

    @abc.abstractmethod
    def run(self, ctx: Context) -> Done: ...

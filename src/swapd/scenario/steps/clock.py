"""Steps that move the scenario's manual clock: to an instant, or forward by a span."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from swapd.scenario.fields import Fields
from swapd.scenario.steps.base import Action, Context, Done


@dataclass(frozen=True, slots=True)
class At(Action):
    kind: ClassVar[str] = "at"
    result_keys: ClassVar[frozenset[str]] = frozenset({"now"})
    moves_clock: ClassVar[bool] = True
    when: datetime

    @classmethod
    def parse(cls, f: Fields, number: int) -> Action:
        return cls(f.instant("time"))

    def describe(self) -> str:
        return f"clock to {self.when.isoformat()}"

    def run(self, ctx: Context) -> Done:
        ctx.clock.set(self.when)
        return Done({"now": self.when.isoformat()}, f"now {self.when.isoformat()}")


_SPANS = {"days": 86_400, "hours": 3_600, "minutes": 60, "seconds": 1}


@dataclass(frozen=True, slots=True)
class Advance(Action):
    kind: ClassVar[str] = "advance"
    result_keys: ClassVar[frozenset[str]] = frozenset({"now"})
    moves_clock: ClassVar[bool] = True
    seconds: int

    @classmethod
    def parse(cls, f: Fields, number: int) -> Action:
        total = sum(f.integer(name, minimum=0, default=0) * s for name, s in _SPANS.items())
        if total == 0:
            raise f.error("seconds", "advance by at least one of days, hours, minutes, seconds > 0")
        return cls(total)

    def describe(self) -> str:
        return f"clock forward {timedelta(seconds=self.seconds)} ({self.seconds:,} s)"

    def run(self, ctx: Context) -> Done:
        now = ctx.clock.now() + timedelta(seconds=self.seconds)
        ctx.clock.set(now)
        return Done({"now": now.isoformat()}, f"now {now.isoformat()}")

"""What the simulator counts while it runs, and the progress snapshots it hands to the view."""

from __future__ import annotations

import math
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field

MAX_LATENCY_SAMPLES = 200_000  # beyond this, a uniform reservoir keeps the percentiles honest
MAX_NOTES = 50  # anomalies kept verbatim for the report


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One frame of the live view."""

    sim_s: float
    end_s: float
    real_s: float
    swaps: int
    refusals: int
    refusals_by_reason: dict[str, int]
    messages: int
    messages_per_s: float
    decision_p50_ms: float
    walked_away: int
    errors: int


@dataclass
class Stats:
    swaps: Counter[str] = field(default_factory=Counter)  # completed, by flow
    refusals: Counter[str] = field(default_factory=Counter)  # by wire status / reason code
    skipped: Counter[str] = field(default_factory=Counter)  # attempts the rider gave up locally
    errors: Counter[str] = field(default_factory=Counter)
    sent: Counter[str] = field(default_factory=Counter)  # CALLs the stations sent, by action
    received: Counter[str] = field(default_factory=Counter)  # CALLs the stations got
    call_errors: Counter[str] = field(default_factory=Counter)  # CALLERRORs, by action and code
    walked_away: int = 0
    resends: int = 0
    resends_changed: int = 0
    top_ups: int = 0
    reconnects: int = 0
    notes: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    _latency_seen: int = 0
    _rng: random.Random = field(default_factory=lambda: random.Random(0))
    _rate_window: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=40))

    @property
    def completed(self) -> int:
        return sum(self.swaps.values())

    @property
    def messages(self) -> int:
        return sum(self.sent.values())

    def note(self, text: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text)

    def decision(self, seconds: float) -> None:
        self._latency_seen += 1
        if len(self.latencies_s) < MAX_LATENCY_SAMPLES:
            self.latencies_s.append(seconds)
            return
        slot = self._rng.randrange(self._latency_seen)
        if slot < MAX_LATENCY_SAMPLES:
            self.latencies_s[slot] = seconds

    def latency_ms(self) -> dict[str, float | int]:
        values = sorted(self.latencies_s)
        return {
            "count": self._latency_seen,
            "p50": round(percentile(values, 0.50) * 1000, 2),
            "p99": round(percentile(values, 0.99) * 1000, 2),
            "max": round((values[-1] if values else 0.0) * 1000, 2),
        }

    def snapshot(self, sim_s: float, end_s: float, real_s: float) -> Snapshot:
        now = time.monotonic()
        total = self.messages
        self._rate_window.append((now, total))
        first_t, first_n = self._rate_window[0]
        rate = (total - first_n) / (now - first_t) if now - first_t > 0.2 else 0.0
        values = sorted(self.latencies_s[-2000:])
        return Snapshot(
            sim_s=sim_s,
            end_s=end_s,
            real_s=real_s,
            swaps=self.completed,
            refusals=sum(self.refusals.values()),
            refusals_by_reason=dict(self.refusals.most_common()),
            messages=total,
            messages_per_s=rate,
            decision_p50_ms=percentile(values, 0.5) * 1000,
            walked_away=self.walked_away,
            errors=sum(self.errors.values()) + sum(self.call_errors.values()),
        )

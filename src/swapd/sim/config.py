"""What a simulation run is asked to do, checked before anything is set up."""

from __future__ import annotations

from dataclasses import dataclass

from swapd.domain.stations import MAX_SLOTS

MAX_STATIONS = 500
MAX_RIDERS = 100_000
MAX_HOURS = 24 * 31
MAX_SPEED = 100_000


@dataclass(frozen=True, slots=True)
class Shares:
    """How the population and its swaps are mixed (fractions 0..1)."""

    two_packs: float = 0.10  # riders whose vehicle takes two packs
    cards: float = 0.10  # riders with an RFID card
    short_of_credit: float = 0.10  # riders topped up with too little allowance
    deliveries_plan: float = 0.20  # riders on the prepaid-deliveries plan (the rest: energy)
    card_use: float = 0.7  # swaps by card, for riders who have one
    app_use: float = 0.10  # swaps started from the app
    resend: float = 0.03  # swaps where the station resends a BatterySwap after a reconnect
    walk_away: float = 0.02  # swaps where the rider never takes the offered pack
    top_up_after_refusal: float = 0.5  # a rider refused for no credit tops up before retrying

    def check(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"share {name} must be within 0..1, got {value}")


@dataclass(frozen=True, slots=True)
class SimConfig:
    # About 10 riders a station (200 by default): charging keeps up with their swaps, so a refusal
    # for want of a charged pack stays rare. Twice as many riders a station empty the stock.
    stations: int = 20
    slots: int = 12
    riders: int = 200
    hours: float = 24.0
    speed: float = 600.0  # simulated seconds per real second
    server: str | None = None  # ws://host:port of a running server; None: start one in-process
    database: str | None = None  # None: a temporary SQLite file (embedded only)
    seed: int = 1
    allow_real_data: bool = False  # with --server: run even if the database holds real riders
    shares: Shares = Shares()
    meter_interval_s: int = 900  # simulated seconds between SoC reports of a charging pack
    heartbeat_interval_s: int = 1800  # simulated seconds between heartbeats
    response_timeout_s: float = 30.0  # real seconds a station waits for an answer
    app_timeout_s: float = 15.0  # real seconds an app request waits for the station
    grace_s: float = 120.0  # real seconds granted to swaps under way when the time is up

    @property
    def embedded(self) -> bool:
        return self.server is None

    @property
    def empty_slots(self) -> int:
        """Slots left empty per station at the start: riders need one to insert a pack."""
        return max(2, self.slots // 4)

    @property
    def duration_s(self) -> float:
        return self.hours * 3600

    def check(self) -> None:
        if not 1 <= self.stations <= MAX_STATIONS:
            raise ValueError(f"--stations must be 1..{MAX_STATIONS}, got {self.stations}")
        if not 4 <= self.slots <= MAX_SLOTS:
            raise ValueError(f"--slots must be 4..{MAX_SLOTS}, got {self.slots}")
        if not 1 <= self.riders <= MAX_RIDERS:
            raise ValueError(f"--riders must be 1..{MAX_RIDERS}, got {self.riders}")
        if not 0 < self.hours <= MAX_HOURS:
            raise ValueError(f"--hours must be above 0 and at most {MAX_HOURS}, got {self.hours}")
        if not 0 < self.speed <= MAX_SPEED:
            raise ValueError(f"--speed must be above 0 and at most {MAX_SPEED}, got {self.speed}")
        if self.server is not None and not self.server.startswith(("ws://", "wss://")):
            raise ValueError(f"--server must be a ws:// or wss:// URL, got {self.server!r}")
        if self.meter_interval_s <= 0 or self.heartbeat_interval_s <= 0:
            raise ValueError("intervals must be positive")
        if self.response_timeout_s <= 0 or self.app_timeout_s <= 0 or self.grace_s <= 0:
            raise ValueError("timeouts must be positive")
        self.shares.check()

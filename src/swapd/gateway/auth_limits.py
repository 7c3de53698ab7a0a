"""Limits on failed station logins, per client address and per station id.

A wrong password costs the server one scrypt hash (tens of milliseconds of CPU) and the guesser
nothing, so failures are counted and, past a limit, refused at once without hashing:

- per client address (``ADDRESS_LIMITS``): every upgrade with credentials that did not
  authenticate counts (an unknown station id, unreadable credentials or another station's, a
  wrong password, a refusal because the station id is limited). Checked before any database
  work, so a limited address costs a dictionary lookup. IPv6 clients count per /64
  (``address_key``), the block one subscriber gets.
- per station id (``StationGate``): wrong passwords for that id, whatever their address, so that
  guessing one station's password from many addresses is limited too. At most one hash per
  station id is in flight at any time (a real station opens one connection at a time).

Pure bookkeeping: no I/O, no threads, the clock injected; the event loop is its only caller.
Memory is bounded: each map holds at most ``max_keys`` keys and forgets the least recently
failed one first; an entry whose window has passed is dropped as the map is next touched.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass(frozen=True)
class Limits:
    """``max_failures`` failures within ``window_s`` of the first one limit a key until that
    window ends. ``trickle_every_s``: while limited, an attempt may still pass once this long
    after the last failure."""

    window_s: float
    max_failures: int
    max_keys: int
    trickle_every_s: float | None = None


# A station that lost its password retries every few seconds; 20 failures a minute from one
# address is a guesser or a broken station, not a reconnect storm (those succeed). Carrier NAT
# puts many stations behind one address; their failures add up, which this allows for.
ADDRESS_LIMITS = Limits(window_s=60.0, max_failures=20, max_keys=65_536)
# Five wrong passwords a minute for one station id limit it. A station whose password this
# process verified before is let in from the cache without this check (see StationAuth); one
# never verified here gets a chance every ``trickle_every_s`` (see StationGate).
STATION_LIMITS = Limits(window_s=60.0, max_failures=5, max_keys=100_000, trickle_every_s=1.0)
IPV6_PREFIX_BITS = 64


def address_key(host: str) -> str:
    """The key a client address counts under: IPv4 as is, IPv6 by its /64 (a subscriber's
    block: any address in it is as cheap to the attacker as the next)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX_BITS), strict=False))
    return str(address)


@dataclass
class _Entry:
    started_s: float
    failed_s: float
    failures: int


class FailureWindow:
    """Failures per key in a fixed window of ``limits.window_s`` from the first failure."""

    def __init__(self, limits: Limits, clock: Clock = time.monotonic) -> None:
        assert limits.window_s > 0 and limits.max_failures > 0 and limits.max_keys > 0
        self.limits = limits
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently failed first

    def __len__(self) -> int:
        return len(self._entries)

    def _live(self, key: str, now_s: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and now_s - entry.started_s >= self.limits.window_s:
            del self._entries[key]
            return None
        return entry

    def retry_after_s(self, key: str) -> float | None:
        """Seconds until ``key`` may try again, or None when it is not limited. Changes nothing."""
        now_s = self._clock()
        entry = self._live(key, now_s)
        if entry is None or entry.failures < self.limits.max_failures:
            return None
        left_s = entry.started_s + self.limits.window_s - now_s
        every_s = self.limits.trickle_every_s
        if every_s is not None:
            left_s = min(left_s, entry.failed_s + every_s - now_s)
        return left_s if left_s > 0 else None

    def fail(self, key: str) -> bool:
        """Count one failure; True when this one made ``key`` limited (to log that once)."""
        now_s = self._clock()
        entry = self._live(key, now_s)
        if entry is None:
            entry = self._entries[key] = _Entry(now_s, now_s, 0)
        else:
            self._entries.move_to_end(key)
        entry.failed_s = now_s
        entry.failures += 1
        self._prune(now_s)
        return entry.failures == self.limits.max_failures

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def _prune(self, now_s: float) -> None:
        while self._entries:
            oldest_key, oldest = next(iter(self._entries.items()))
            expired = now_s - oldest.started_s >= self.limits.window_s
            if not expired and len(self._entries) <= self.limits.max_keys:
                return
            del self._entries[oldest_key]


class StationGate:
    """Whether a password may be hashed for a station id now.

    At most one hash per station id is in flight; a request that finds one gets a refusal at
    once instead of queueing behind it. Past ``STATION_LIMITS`` failures the id is limited, and
    then a hash is let through only ``trickle_every_s`` after the last failure: a real station
    that this process never verified (it just restarted, say) still gets in while its id is
    under attack, on a retry that finds the turn free. The attack's share of the hashing is then
    one hash per ``trickle_every_s`` per station id it targets, and each attacker address is
    limited after ``ADDRESS_LIMITS`` failures, which leaves the turns to the real station.
    """

    def __init__(self, limits: Limits = STATION_LIMITS, clock: Clock = time.monotonic) -> None:
        assert limits.trickle_every_s is not None and limits.trickle_every_s > 0
        self.failures = FailureWindow(limits, clock)
        self._in_flight: set[str] = set()  # bounded by the hashing pool's queue

    def retry_after_s(self, station_id: str) -> float | None:
        """Seconds until ``station_id`` may have a hash, or None if it may now. Changes nothing."""
        if station_id in self._in_flight:
            return self.failures.limits.trickle_every_s
        return self.failures.retry_after_s(station_id)

    def acquire(self, station_id: str) -> float | None:
        """None: the caller may hash and must ``release``; else seconds to wait."""
        if station_id in self._in_flight:
            return self.failures.limits.trickle_every_s
        retry_s = self.failures.retry_after_s(station_id)
        if retry_s is None:
            self._in_flight.add(station_id)
        return retry_s

    def release(self, station_id: str, *, verified: bool | None) -> bool:
        """End the hash: ``verified`` True forgets the id's failures, False counts one, None (no
        verdict: the pool was full) neither. True when this failure made the id limited."""
        self._in_flight.discard(station_id)
        if verified is None:
            return False
        if verified:
            self.failures.forget(station_id)
            return False
        return self.failures.fail(station_id)

"""The failed-login limits: per key in a window, a trickle for limited station ids, one hash per
station id at a time, and memory bounded however many keys an attacker invents."""

from __future__ import annotations

import pytest

from swapd.gateway.auth_limits import (
    ADDRESS_LIMITS,
    STATION_LIMITS,
    FailureWindow,
    Limits,
    StationGate,
    address_key,
)

LIMITS = Limits(window_s=60.0, max_failures=3, max_keys=100)
TRICKLE = Limits(window_s=60.0, max_failures=3, max_keys=100, trickle_every_s=2.0)


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_a_key_is_limited_after_max_failures_until_its_window_ends() -> None:
    clock = FakeClock()
    window = FailureWindow(LIMITS, clock)
    assert [window.fail("a"), window.fail("a")] == [False, False]
    assert window.retry_after_s("a") is None
    assert window.fail("a") is True  # the failure that limits it, reported once
    clock.now_s += 10.0
    assert window.retry_after_s("a") == pytest.approx(50.0)
    assert window.retry_after_s("b") is None  # other keys are not touched
    assert window.fail("a") is False  # already limited: not reported again
    clock.now_s += 50.0
    assert window.retry_after_s("a") is None
    assert len(window) == 0  # the expired entry went with the check


def test_failures_spread_over_more_than_a_window_never_limit() -> None:
    clock = FakeClock()
    window = FailureWindow(LIMITS, clock)
    for _ in range(10):
        window.fail("a")
        assert window.retry_after_s("a") is None
        clock.now_s += 30.0  # two failures a window at most
        window.fail("a")
        clock.now_s += 31.0


def test_forget_clears_a_limited_key() -> None:
    window = FailureWindow(LIMITS, FakeClock())
    for _ in range(3):
        window.fail("a")
    window.forget("a")
    assert window.retry_after_s("a") is None


def test_memory_is_bounded_under_a_flood_of_distinct_keys() -> None:
    clock = FakeClock()
    window = FailureWindow(LIMITS, clock)
    for n in range(10 * LIMITS.max_keys):
        window.fail(f"10.0.{n // 256}.{n % 256}")
        assert len(window) <= LIMITS.max_keys
    # The most recently failing keys are the ones kept.
    last = f"10.0.{(10 * LIMITS.max_keys - 1) // 256}.{(10 * LIMITS.max_keys - 1) % 256}"
    window.fail(last)
    window.fail(last)
    assert window.retry_after_s(last) is not None


def test_expired_keys_are_dropped_as_the_map_is_touched() -> None:
    clock = FakeClock()
    window = FailureWindow(LIMITS, clock)
    for n in range(50):
        window.fail(f"old-{n}")
    clock.now_s += LIMITS.window_s
    window.fail("new")
    assert len(window) == 1


def test_a_limited_station_id_lets_one_attempt_through_per_trickle_interval() -> None:
    clock = FakeClock()
    window = FailureWindow(TRICKLE, clock)
    for _ in range(3):
        window.fail("ST1")
    assert window.retry_after_s("ST1") == pytest.approx(2.0)
    clock.now_s += 2.0
    assert window.retry_after_s("ST1") is None  # the trickle's turn
    window.fail("ST1")  # it failed too: the next turn is 2 s later
    assert window.retry_after_s("ST1") == pytest.approx(2.0)


def test_at_most_one_hash_per_station_id_is_in_flight() -> None:
    gate = StationGate(TRICKLE, FakeClock())
    assert gate.acquire("ST1") is None
    assert gate.retry_after_s("ST1") is not None
    assert gate.acquire("ST1") is not None  # a second one must not queue behind it
    assert gate.acquire("ST2") is None  # other ids are not held up
    gate.release("ST1", verified=False)
    assert gate.acquire("ST1") is None


def test_a_never_verified_station_gets_through_its_limited_id_on_the_trickle() -> None:
    clock = FakeClock()
    gate = StationGate(TRICKLE, clock)
    for n in range(3):
        assert gate.acquire("ST1") is None
        assert gate.release("ST1", verified=False) is (n == 2)  # limited on the third
    assert gate.acquire("ST1") is not None  # the attacker retries at once: refused
    clock.now_s += 2.0
    assert gate.acquire("ST1") is None  # the real station's retry finds the turn free
    gate.release("ST1", verified=True)
    # Verified: the id's failures are forgotten, its next connections go through at once.
    assert gate.acquire("ST1") is None


def test_no_verdict_counts_nothing() -> None:
    gate = StationGate(TRICKLE, FakeClock())
    for _ in range(10):
        assert gate.acquire("ST1") is None
        gate.release("ST1", verified=None)  # the hashing pool was full
    assert gate.retry_after_s("ST1") is None


def test_the_limits_have_units_and_sensible_sizes() -> None:
    assert STATION_LIMITS.trickle_every_s is not None
    assert STATION_LIMITS.max_failures < ADDRESS_LIMITS.max_failures
    assert ADDRESS_LIMITS.trickle_every_s is None  # a limited address waits out its window
    assert ADDRESS_LIMITS.window_s > 0 and ADDRESS_LIMITS.max_keys <= 100_000


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # the same /64: one key
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("testclient", "testclient"),
    ],
)
def test_ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4(host: str, key: str) -> None:
    assert address_key(host) == key

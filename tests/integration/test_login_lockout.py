"""The login limit under parallel attempts, on both databases and across server processes.

Each attempt is counted before its password is checked, in one atomic statement, so that of any
number of attempts at once no more than the limit reach the (slow) check; two Database objects on
one URL stand for two server processes.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa

from swapd import security
from swapd.domain.errors import RateLimited, Unauthenticated
from swapd.security import Busy, PasswordGate
from swapd.services import identity
from swapd.services.identity import Role
from swapd.store import schema as t
from swapd.store.database import Database, ManualClock

# Hash pools, gates and lockouts are about what a hash costs: keep the real cost.
pytestmark = pytest.mark.real_password_cost

PASSWORD = "correct horse battery"
WRONG = "not the password"
ATTEMPTS = 40


@pytest.fixture(autouse=True)
def wide_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let every attempt of these tests through to the database (the gate is tested apart)."""
    monkeypatch.setattr(
        identity, "PASSWORD_CHECKS", PasswordGate(running=2, admitted=2 * ATTEMPTS), raising=False
    )


def _at_once(attempts: list[Callable[[], object]]) -> Counter[str]:
    """Run ``attempts`` in threads released together; how many ended each way."""
    start = threading.Barrier(len(attempts))
    outcomes: list[str] = []

    def run(attempt: Callable[[], object]) -> None:
        start.wait()
        try:
            attempt()
        except RateLimited:
            outcomes.append("429")
        except Unauthenticated:
            outcomes.append("401")
        else:
            outcomes.append("200")

    threads = [threading.Thread(target=run, args=(a,)) for a in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(outcomes) == len(attempts)
    return Counter(outcomes)


def _count(db: Database, key: str) -> int:
    row = db.read(
        lambda tx: tx.repo.execute(
            sa.select(t.rate_limits.c.count).where(t.rate_limits.c.key == key)
        ).first()
    )
    return 0 if row is None else int(row[0])


def _login(db: Database, email: str, password: str, client: str = "10.0.0.1") -> Callable[[], object]:
    return lambda: identity.login(db, email, password, client=client)


def test_parallel_wrong_passwords_are_checked_at_most_the_limit_then_even_the_right_one_waits(
    two_processes: tuple[Database, Database],
) -> None:
    first, second = two_processes
    identity.add_staff(first, "ops@example.com", PASSWORD, Role.OPERATOR)
    outcomes = _at_once(
        [_login((first, second)[i % 2], "ops@example.com", WRONG) for i in range(ATTEMPTS)]
    )
    limit = identity.LOGIN_MAX_FAILURES_PER_ACCOUNT
    assert outcomes == Counter({"401": limit, "429": ATTEMPTS - limit})
    with pytest.raises(RateLimited):
        identity.login(second, "ops@example.com", PASSWORD, client="10.0.0.1")
    # Every failure counted, none lost; the refused attempts counted nothing.
    assert _count(first, "login:account:ops@example.com") == limit
    assert _count(first, "login:client:10.0.0.1") == limit


def test_the_right_password_among_parallel_guesses_adds_no_check_for_the_guesses(
    two_processes: tuple[Database, Database],
) -> None:
    first, second = two_processes
    identity.add_staff(first, "ops@example.com", PASSWORD, Role.OPERATOR)
    attempts = [_login((first, second)[i % 2], "ops@example.com", WRONG) for i in range(ATTEMPTS)]
    attempts[ATTEMPTS // 2] = _login(second, "ops@example.com", PASSWORD)
    outcomes = _at_once(attempts)
    assert outcomes["401"] <= identity.LOGIN_MAX_FAILURES_PER_ACCOUNT
    assert outcomes["200"] <= 1
    assert outcomes["401"] + outcomes["200"] + outcomes["429"] == ATTEMPTS
    # A success takes back its own attempt and no other: the counter holds the failures.
    assert _count(first, "login:account:ops@example.com") == outcomes["401"]


def test_parallel_logins_to_many_accounts_from_one_address_are_checked_at_most_its_limit(
    two_processes: tuple[Database, Database],
) -> None:
    first, second = two_processes
    attempts = [_login((first, second)[i % 2], f"nobody{i}@example.com", WRONG) for i in range(ATTEMPTS)]
    outcomes = _at_once(attempts)
    limit = identity.LOGIN_MAX_FAILURES_PER_CLIENT
    assert outcomes == Counter({"401": limit, "429": ATTEMPTS - limit})
    assert _count(first, "login:client:10.0.0.1") == limit
    # Another address is not held up by this one.
    with pytest.raises(Unauthenticated):
        identity.login(first, "nobody0@example.com", WRONG, client="10.0.0.2")


def test_failures_stay_counted_after_a_success_in_the_same_window(
    db: Database, clock: ManualClock
) -> None:
    identity.add_staff(db, "ops@example.com", PASSWORD, Role.OPERATOR)
    limit = identity.LOGIN_MAX_FAILURES_PER_ACCOUNT
    for _ in range(limit - 1):
        with pytest.raises(Unauthenticated):
            identity.login(db, "ops@example.com", WRONG, client="10.0.0.1")
    identity.login(db, "ops@example.com", PASSWORD, client="10.0.0.1")
    assert _count(db, "login:account:ops@example.com") == limit - 1
    assert _count(db, "login:client:10.0.0.1") == limit - 1
    with pytest.raises(Unauthenticated):
        identity.login(db, "ops@example.com", WRONG, client="10.0.0.1")
    with pytest.raises(RateLimited) as refused:
        identity.login(db, "ops@example.com", PASSWORD, client="10.0.0.1")
    assert 0 < refused.value.retry_after_s <= identity.LOGIN_WINDOW_S
    clock.set(clock.now() + timedelta(seconds=identity.LOGIN_WINDOW_S))
    identity.login(db, "ops@example.com", PASSWORD, client="10.0.0.1")
    assert _count(db, "login:account:ops@example.com") == 0


def test_a_full_gate_refuses_a_login_before_it_counts_or_hashes_anything(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity.add_staff(db, "ops@example.com", PASSWORD, Role.OPERATOR)
    gate = PasswordGate(running=1, admitted=1)
    monkeypatch.setattr(identity, "PASSWORD_CHECKS", gate)
    with gate.admit(), pytest.raises(RateLimited) as refused:  # another request holds the place
        identity.login(db, "ops@example.com", PASSWORD, client="10.0.0.1")
    assert refused.value.retry_after_s == 1
    assert db.read(lambda tx: tx.repo.execute(sa.select(t.rate_limits)).all()) == []
    identity.login(db, "ops@example.com", PASSWORD, client="10.0.0.1")


def test_the_gate_admits_its_number_and_runs_fewer_hashes_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = PasswordGate(running=1, admitted=3)
    with gate.admit(), gate.admit(), gate.admit(), pytest.raises(Busy), gate.admit():
        pass
    running, most = 0, 0
    lock = threading.Lock()

    def slow_check(password: str, stored: str) -> bool:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return True

    monkeypatch.setattr(security, "verify_password", slow_check)

    def check() -> None:
        with gate.admit():
            gate.verify(PASSWORD, "stored")

    assert _at_once([check] * 3) == Counter({"200": 3})  # the places were given back
    assert most == 1
    with pytest.raises(ValueError):
        PasswordGate(running=3, admitted=2)


def test_counters_of_ended_windows_are_forgotten_and_the_limit_still_holds(
    db: Database, clock: ManualClock
) -> None:
    identity.add_staff(db, "ops@example.com", PASSWORD, Role.OPERATOR)
    for n in range(3):  # keys an outsider makes up: unknown accounts, one address each
        with pytest.raises(Unauthenticated):
            identity.login(db, f"nobody{n}@example.com", WRONG, client=f"10.0.0.{n}")

    def keys() -> set[str]:
        return set(db.read(lambda tx: tx.repo.execute(sa.select(t.rate_limits.c.key)).scalars()))

    assert identity.forget_ended_login_windows(db) == 0  # inside their window: kept
    assert len(keys()) == 6
    clock.set(clock.now() + timedelta(seconds=identity.LOGIN_WINDOW_S - 1))
    for _ in range(identity.LOGIN_MAX_FAILURES_PER_ACCOUNT):
        with pytest.raises(Unauthenticated):
            identity.login(db, "ops@example.com", WRONG, client="10.1.1.1")
    clock.set(clock.now() + timedelta(seconds=1))
    assert identity.forget_ended_login_windows(db) == 6
    assert keys() == {"login:account:ops@example.com", "login:client:10.1.1.1"}
    with pytest.raises(RateLimited):  # the sweep left the live window alone
        identity.login(db, "ops@example.com", PASSWORD, client="10.1.1.1")

"""Staff changes: there is always an active admin, and a disabled or re-roled account's sessions
end for good (a disabled account's API keys too), on both databases."""

from __future__ import annotations

import threading

import pytest

from swapd.domain.errors import Conflict, Unauthenticated
from swapd.services import identity
from swapd.services.identity import Role
from swapd.store.database import Database

PASSWORD = "correct horse battery"
ROUNDS = 10


def _active_admins(db: Database) -> list[str]:
    return [u.email for u in identity.users(db) if u.role is Role.ADMIN and u.status == "active"]


def test_the_only_admin_can_be_neither_disabled_nor_demoted(db: Database) -> None:
    boss = identity.add_staff(db, "boss@example.com", PASSWORD, Role.ADMIN)
    for change in ({"status": "disabled"}, {"role": Role.OPERATOR}, {"role": Role.SUPPORT}):
        with pytest.raises(Conflict, match="last active admin"):
            identity.update_staff(db, boss.id, **change)
    assert _active_admins(db) == ["boss@example.com"]
    # A disabled admin does not count: the only active one is still the last.
    other = identity.add_staff(db, "other@example.com", PASSWORD, Role.ADMIN)
    identity.update_staff(db, other.id, status="disabled")
    with pytest.raises(Conflict):
        identity.update_staff(db, boss.id, role=Role.OPERATOR)
    # With a second active admin, either may go; then the other is the last.
    identity.update_staff(db, other.id, status="active")
    assert identity.update_staff(db, boss.id, role=Role.OPERATOR).role is Role.OPERATOR
    with pytest.raises(Conflict):
        identity.update_staff(db, other.id, status="disabled")
    # Changes that keep an active admin are fine.
    assert identity.update_staff(db, other.id, role=Role.ADMIN, status="active").status == "active"


def _refused_at_once(change: dict[str, object], *calls: tuple[Database, str]) -> list[str]:
    """Apply ``change`` to each (database, user) in threads released together; who was refused."""
    start = threading.Barrier(len(calls))
    refused: list[str] = []

    def apply(db: Database, user_id: str) -> None:
        start.wait()
        try:
            identity.update_staff(db, user_id, **change)  # type: ignore[arg-type]
        except Conflict:
            refused.append(user_id)

    threads = [threading.Thread(target=apply, args=call) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return refused


@pytest.mark.parametrize("change", [{"status": "disabled"}, {"role": Role.SUPPORT}])
def test_two_admins_removing_each_other_at_once_leave_one(
    two_processes: tuple[Database, Database], change: dict[str, object]
) -> None:
    first, second = two_processes
    for round_ in range(ROUNDS):
        a = identity.add_staff(first, f"a{round_}@example.com", PASSWORD, Role.ADMIN)
        b = identity.add_staff(first, f"b{round_}@example.com", PASSWORD, Role.ADMIN)
        for user in identity.users(first):  # only a and b are active admins this round
            if user.id not in (a.id, b.id) and user.status == "active":
                identity.update_staff(first, user.id, status="disabled")
        refused = _refused_at_once(change, (first, a.id), (second, b.id))
        assert len(refused) == 1, f"round {round_}: {refused}"
        assert len(_active_admins(first)) == 1


def test_a_disabled_account_loses_its_sessions_and_keys_for_good(db: Database) -> None:
    identity.add_staff(db, "boss@example.com", PASSWORD, Role.ADMIN)
    ops = identity.add_staff(db, "ops@example.com", PASSWORD, Role.OPERATOR)
    session = identity.login(db, "ops@example.com", PASSWORD, client="10.0.0.1")
    key = identity.create_api_key(db, ops.id, "erp")
    assert identity.authenticate(db, key.token).via is identity.TokenKind.API_KEY

    identity.update_staff(db, ops.id, status="disabled")
    identity.update_staff(db, ops.id, status="active")
    for secret in (session.token, key.token):
        with pytest.raises(Unauthenticated, match="revoked"):
            identity.authenticate(db, secret)
    assert all(line.revoked_at is not None for line in identity.tokens_of(db, ops.id))
    # Signing in again works.
    fresh = identity.login(db, "ops@example.com", PASSWORD, client="10.0.0.1")
    assert identity.authenticate(db, fresh.token).email == "ops@example.com"


def test_a_role_change_ends_the_sessions_and_keeps_the_api_keys(db: Database) -> None:
    identity.add_staff(db, "boss@example.com", PASSWORD, Role.ADMIN)
    ops = identity.add_staff(db, "ops@example.com", PASSWORD, Role.ADMIN)
    session = identity.login(db, "ops@example.com", PASSWORD, client="10.0.0.1")
    key = identity.create_api_key(db, ops.id, "erp")

    identity.update_staff(db, ops.id, role=Role.SUPPORT)
    with pytest.raises(Unauthenticated, match="revoked"):
        identity.authenticate(db, session.token)
    # An API key acts with its user's role as it is now.
    assert identity.authenticate(db, key.token).role is Role.SUPPORT
    # A change that changes nothing ends nothing.
    again = identity.login(db, "ops@example.com", PASSWORD, client="10.0.0.1")
    identity.update_staff(db, ops.id, role=Role.SUPPORT, status="active")
    assert identity.authenticate(db, again.token).role is Role.SUPPORT

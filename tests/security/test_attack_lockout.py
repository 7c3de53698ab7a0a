"""Parallel password guessing against one account must not get past the login limit.

An attacker from one address sends ``GUESSES`` wrong passwords for one account at once (released
together by a barrier), to one server or alternately to two server processes on one database.
At most ``LOGIN_MAX_FAILURES_PER_ACCOUNT`` of them may be checked (401); every other answer is
429, and so is the right password sent after them, until the window passes. With the right
password among the guesses, it may get in (200) if its turn comes before the limit, but the
guesses still get no more checks than the limit, and the right password after them is refused
exactly when the limit was reached.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Sequence

import httpx

from swapd.services import identity
from swapd.services.identity import Role
from swapd.store.database import Database
from tests.security.conftest import ServeFactory, Server

GUESSES = 40
PASSWORD = "correct horse battery"
WRONG = "wrong horse battery"
EMAIL = "ops@example.com"
ATTACKER = "127.0.0.7"
LIMIT = identity.LOGIN_MAX_FAILURES_PER_ACCOUNT


def _prepared(database_url: str) -> None:
    db = Database.open(database_url)
    identity.add_staff(db, EMAIL, PASSWORD, Role.OPERATOR)
    db.dispose()


def _at_once(servers: Sequence[Server], passwords: Sequence[str]) -> Counter[int]:
    """POST one login a password, all released together, the i-th to ``servers[i % n]``; how
    many answers of each status came back."""
    clients = [server.client(local_address=ATTACKER, timeout_s=120.0) for server in servers]
    start = threading.Barrier(len(passwords))
    answers: list[int] = []

    def guess(i: int, password: str) -> None:
        start.wait()
        answer = clients[i % len(clients)].post(
            "/api/v1/auth/login", json={"email": EMAIL, "password": password}
        )
        answers.append(answer.status_code)

    threads = [threading.Thread(target=guess, args=item) for item in enumerate(passwords)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    for client in clients:
        client.close()
    assert len(answers) == len(passwords)
    return Counter(answers)


def _login(server: Server, password: str) -> httpx.Response:
    with server.client(local_address=ATTACKER) as client:
        return client.post("/api/v1/auth/login", json={"email": EMAIL, "password": password})


def _assert_logged_without_password(servers: Sequence[Server], failures: int) -> None:
    events = [
        json.loads(line)
        for server in servers
        for line in server.log().splitlines()
        if line.startswith("{") and '"login_failed"' in line
    ]
    assert len(events) == failures
    assert all(e["email"] == EMAIL and e["client"] == ATTACKER for e in events)
    assert not any(WRONG in server.log() or PASSWORD in server.log() for server in servers)


def test_parallel_guesses_at_one_server_are_checked_at_most_the_limit(
    db_url: str, serve: ServeFactory
) -> None:
    _prepared(db_url)
    server = serve(db_url)
    answers = _at_once([server], [WRONG] * GUESSES)
    assert answers[401] <= LIMIT and answers[401] + answers[429] == GUESSES, answers
    after = _login(server, PASSWORD)
    assert after.status_code == 429, after.text
    assert int(after.headers["retry-after"]) > 0
    _assert_logged_without_password([server], answers[401])


def test_parallel_guesses_spread_over_two_servers_are_checked_at_most_the_limit(
    db_url: str, serve: ServeFactory
) -> None:
    _prepared(db_url)
    servers = [serve(db_url), serve(db_url)]
    answers = _at_once(servers, [WRONG] * GUESSES)
    assert answers[401] <= LIMIT and answers[401] + answers[429] == GUESSES, answers
    for server in servers:
        assert _login(server, PASSWORD).status_code == 429
    _assert_logged_without_password(servers, answers[401])


def test_the_right_password_among_parallel_guesses_gives_the_guesses_no_more_checks(
    db_url: str, serve: ServeFactory
) -> None:
    _prepared(db_url)
    servers = [serve(db_url), serve(db_url)]
    passwords = [WRONG] * GUESSES
    passwords[GUESSES // 2] = PASSWORD
    answers = _at_once(servers, passwords)
    assert answers[401] <= LIMIT and answers[200] <= 1, answers
    assert answers[401] + answers[200] + answers[429] == GUESSES, answers
    # A success takes back its own count only: the failures stay counted for the window.
    after = _login(servers[0], PASSWORD)
    assert after.status_code == (429 if answers[401] == LIMIT else 200), (answers, after.text)

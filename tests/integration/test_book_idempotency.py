"""A transfer applies once per key, on both databases: a repeat returns the first transfer and moves
nothing, even when the accounts could no longer pay for it or its hold is resolved already; the
same key for a different transfer is refused; and nothing about a refused first attempt sticks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from swapd.ledger.model import (
    OPERATOR,
    Account,
    AccountCode,
    LedgerError,
    Transfer,
    TransferCode,
    TransferFlags,
    TransferRequest,
)
from swapd.store import ledger_book
from swapd.store.database import Database, Tx
from swapd.store.ledger_book import Book
from swapd.store.prepared import Prepared

LEDGER = "Wh"


def _write(db: Database, work: Callable[[Book], Any]) -> Any:
    def run(tx: Tx) -> Any:
        return work(tx.book)

    return db.write(run)


def _accounts(book: Book) -> tuple[Account, Account, Account]:
    allowance = book.account(LEDGER, AccountCode.ALLOWANCE, "R1")
    issued = book.account(LEDGER, AccountCode.ALLOWANCE_ISSUED, OPERATOR)
    consumed = book.account(LEDGER, AccountCode.ALLOWANCE_CONSUMED, OPERATOR)
    return allowance, issued, consumed


def _balances(db: Database) -> tuple[tuple[int, int, int, int], ...]:
    def read(tx: Tx) -> tuple[tuple[int, int, int, int], ...]:
        return tuple(
            (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
            for a in _accounts(tx.book)
        )

    return db.read(read)


def _grant(db: Database, units: int, key: str = "grant") -> Transfer:
    def work(book: Book) -> Transfer:
        allowance, issued, _ = _accounts(book)
        return book.transfer(
            TransferRequest(
                key, LEDGER, issued.id, allowance.id, units, TransferCode.TOP_UP, rider_id="R1"
            )
        )

    result: Transfer = _write(db, work)
    return result


def _use(db: Database, units: int, key: str, flags: TransferFlags = TransferFlags.NONE) -> Transfer:
    def work(book: Book) -> Transfer:
        allowance, _, consumed = _accounts(book)
        return book.transfer(
            TransferRequest(
                key, LEDGER, allowance.id, consumed.id, units, TransferCode.USAGE, flags, rider_id="R1"
            )
        )

    result: Transfer = _write(db, work)
    return result


def _resolution(pending: Transfer, amount: int, key: str, flags: TransferFlags) -> TransferRequest:
    """The post or void of ``pending`` under ``key``."""
    return TransferRequest(
        key,
        LEDGER,
        pending.debit_account_id,
        pending.credit_account_id,
        amount,
        TransferCode.USAGE,
        flags,
        pending_id=pending.id,
        rider_id="R1",
    )


def _resolve(db: Database, pending: Transfer, amount: int, key: str, flags: TransferFlags) -> Transfer:
    def work(book: Book) -> Transfer:
        return book.transfer(_resolution(pending, amount, key, flags))

    result: Transfer = _write(db, work)
    return result


def test_a_repeat_returns_the_first_transfer_and_moves_nothing(db: Database) -> None:
    first = _grant(db, 1000)
    after_first = _balances(db)
    again = _grant(db, 1000)
    assert again == first
    assert _balances(db) == after_first
    assert after_first[0][3] == 1000  # the allowance was credited once


def test_a_repeat_succeeds_even_when_the_accounts_could_not_pay_for_it_now(db: Database) -> None:
    _grant(db, 100)
    first = _use(db, 100, "use-all")
    after = _balances(db)
    assert after[0][1] == 100  # the allowance is spent: a new transfer of 100 would be refused
    with pytest.raises(LedgerError) as refused:
        _use(db, 100, "use-more")
    assert refused.value.code == "exceeds_credits"
    assert _use(db, 100, "use-all") == first
    assert _balances(db) == after


def test_a_repeated_post_returns_the_post_not_already_posted(db: Database) -> None:
    _grant(db, 500)
    hold = _use(db, 300, "hold", TransferFlags.PENDING)
    post = _resolve(db, hold, 200, "post", TransferFlags.POST_PENDING)
    after = _balances(db)
    assert _resolve(db, hold, 200, "post", TransferFlags.POST_PENDING) == post
    assert _balances(db) == after
    with pytest.raises(LedgerError) as refused:  # a second resolution under another key
        _resolve(db, hold, 300, "void", TransferFlags.VOID_PENDING)
    assert refused.value.code == "pending_transfer_already_posted"
    assert _balances(db) == after


def test_the_same_key_for_a_different_transfer_is_refused(db: Database) -> None:
    _grant(db, 500)
    _use(db, 100, "use")
    after = _balances(db)
    for units in (101, 100_000):  # one the accounts could pay for, one they could not
        with pytest.raises(LedgerError) as refused:
            _use(db, units, "use")
        assert refused.value.code == "exists_with_different_fields"
    assert _balances(db) == after


def test_a_refused_first_attempt_leaves_the_key_free(db: Database) -> None:
    _grant(db, 50)
    with pytest.raises(LedgerError) as refused:
        _use(db, 80, "big")
    assert refused.value.code == "exceeds_credits"
    _grant(db, 50, key="grant-2")
    used = _use(db, 80, "big")
    assert used.amount == 80
    assert _balances(db)[0][1] == 80


def test_a_hold_read_by_id_carries_its_resolution_into_the_post_and_the_repeat(
    db: Database, request: pytest.FixtureRequest
) -> None:
    """A hold read by id comes with whether it is resolved: posting it then needs no statement
    of its own to ask, and the book knows, in the same transaction and in the next, that it
    was posted (a second post or a void is refused)."""
    _grant(db, 1_000)
    hold = _use(db, 300, "hold", TransferFlags.PENDING)
    sent: list[Prepared] = request.getfixturevalue("prepared_runs")

    def read_post_and_post_again(book: Book) -> tuple[bool, bool, str]:
        read = book.transfer_by_id(hold.id)
        assert read == hold
        unresolved = not book.is_resolved(hold.id)
        before = len(sent)
        book.transfer(_resolution(hold, 200, "post", TransferFlags.POST_PENDING))
        posting = sent[before:]
        with pytest.raises(LedgerError) as refused:
            book.transfer(_resolution(hold, 300, "void", TransferFlags.VOID_PENDING))
        asked = {ledger_book._RESOLUTION_FLAGS, ledger_book._RESOLUTION_ID}
        assert not asked & set(posting), "the post asked again whether the hold is resolved"
        return unresolved, book.is_resolved(hold.id), refused.value.code

    unresolved, resolved, code = _write(db, read_post_and_post_again)
    assert unresolved and resolved
    assert code == "pending_transfer_already_posted"
    with pytest.raises(LedgerError) as later:
        _resolve(db, hold, 300, "void-later", TransferFlags.VOID_PENDING)
    assert later.value.code == "pending_transfer_already_posted"

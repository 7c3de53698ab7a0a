"""Pure tests of the ledger model (swapd.ledger.model): request rules, deltas, account limits."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.ledger.model import (
    ACCOUNT_FLAGS,
    RIDER_CODES,
    Account,
    AccountCode,
    AccountFlags,
    Delta,
    LedgerError,
    Transfer,
    TransferCode,
    TransferFlags,
    TransferRequest,
    deltas_for,
    validate_request,
)


def account(id: int, ledger: str, code: AccountCode, owner: str = "", **columns: int) -> Account:
    return Account(id, ledger, code, owner, ACCOUNT_FLAGS.get(code, AccountFlags.NONE), **columns)


ISSUED = account(1, "Wh", AccountCode.ALLOWANCE_ISSUED)
ALLOWANCE = account(2, "Wh", AccountCode.ALLOWANCE, "R1")
CONSUMED = account(3, "Wh", AccountCode.ALLOWANCE_CONSUMED)
CASH = account(4, "KRW", AccountCode.CASH)
PREPAID = account(5, "KRW", AccountCode.PREPAID, "R1")


def request(
    key: str,
    debit: Account,
    credit: Account,
    amount: int,
    code: TransferCode = TransferCode.USAGE,
    flags: TransferFlags = TransferFlags.NONE,
    pending_id: int | None = None,
) -> TransferRequest:
    return TransferRequest(
        key, debit.ledger, debit.id, credit.id, amount, code, flags, pending_id, rider_id="R1"
    )


def stored(transfer_id: int, req: TransferRequest) -> Transfer:
    return Transfer(
        transfer_id,
        req.key,
        req.ledger,
        req.debit_account_id,
        req.credit_account_id,
        req.amount,
        req.code,
        req.flags,
        req.pending_id,
        req.rider_id,
        req.actor,
        req.memo,
    )


def apply(
    req: TransferRequest, debit: Account, credit: Account, pending: Transfer | None = None
) -> tuple[Account, Account]:
    """What the book does without I/O: validate, compute the deltas, check both accounts."""
    validate_request(req, debit, credit)
    debit_delta, credit_delta = deltas_for(req, pending)
    new_debit, new_credit = debit.with_delta(debit_delta), credit.with_delta(credit_delta)
    new_debit.check_limits()
    new_credit.check_limits()
    return new_debit, new_credit


def code_of(call: object) -> str:
    assert callable(call)
    with pytest.raises(LedgerError) as raised:
        call()
    return raised.value.code


# ---------------------------------------------------------------------------------------------
# Flags and codes
# ---------------------------------------------------------------------------------------------


def test_account_flags() -> None:
    # rider credit-balance accounts must not go below zero; rider debit-balance ones neither
    assert ACCOUNT_FLAGS == {
        AccountCode.PREPAID: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
        AccountCode.ALLOWANCE: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
        AccountCode.RECEIVABLE: AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS,
        AccountCode.OVERDRAWN: AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS,
    }
    assert set(ACCOUNT_FLAGS) == RIDER_CODES  # operator accounts carry no limit


def test_flag_values_are_stable() -> None:
    # stored as integers in the database: the values must never change
    assert (AccountFlags.NONE, AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS) == (0, 1)
    assert int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS) == 2
    assert (TransferFlags.NONE, TransferFlags.PENDING) == (0, 1)
    assert (TransferFlags.POST_PENDING, TransferFlags.VOID_PENDING) == (2, 4)


def test_ledger_error_carries_a_stable_code() -> None:
    error = LedgerError("exceeds_credits", "account 2 would go below zero")
    assert (error.code, error.message) == ("exceeds_credits", "account 2 would go below zero")
    assert str(error) == "exceeds_credits: account 2 would go below zero"


# ---------------------------------------------------------------------------------------------
# validate_request
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "pending_id"),
    [
        (TransferFlags.NONE, None),
        (TransferFlags.PENDING, None),
        (TransferFlags.POST_PENDING, 7),
        (TransferFlags.VOID_PENDING, 7),
    ],
)
def test_valid_requests_pass(flags: TransferFlags, pending_id: int | None) -> None:
    req = request("k", ALLOWANCE, CONSUMED, 1_260, flags=flags, pending_id=pending_id)
    validate_request(req, ALLOWANCE, CONSUMED)  # no exception


@pytest.mark.parametrize(
    ("amount", "code", "message"),
    [
        (0, "amount_must_be_positive", "amount 0 must be > 0"),
        (-1_260, "amount_must_be_positive", "amount -1260 must be > 0"),
        # never a float, even an integral one
        (1_260.0, "amount_must_be_integer", "amount 1260.0 is not an integer"),
        (0.5, "amount_must_be_integer", "amount 0.5 is not an integer"),
        (True, "amount_must_be_integer", "amount True is not an integer"),
        ("1260", "amount_must_be_integer", "amount '1260' is not an integer"),
    ],
)
def test_amount_must_be_a_positive_integer(amount: object, code: str, message: str) -> None:
    req = replace(request("k", ALLOWANCE, CONSUMED, 1), amount=amount)  # type: ignore[arg-type]
    with pytest.raises(LedgerError) as raised:
        validate_request(req, ALLOWANCE, CONSUMED)
    assert (raised.value.code, raised.value.message) == (code, message)


def test_key_must_not_be_empty() -> None:
    req = request("", ALLOWANCE, CONSUMED, 1)
    assert code_of(lambda: validate_request(req, ALLOWANCE, CONSUMED)) == "key_must_not_be_empty"


def test_accounts_must_be_different() -> None:
    req = request("k", ALLOWANCE, ALLOWANCE, 1)
    assert code_of(lambda: validate_request(req, ALLOWANCE, ALLOWANCE)) == "accounts_must_be_different"


def test_a_transfer_stays_inside_one_ledger() -> None:
    # Wh allowance against a KRW account
    req = request("k", ALLOWANCE, PREPAID, 1)
    with pytest.raises(LedgerError) as raised:
        validate_request(req, ALLOWANCE, PREPAID)
    assert raised.value.code == "ledger_mismatch"
    assert raised.value.message == "transfer on Wh between Wh and KRW accounts"
    # both accounts in KRW but the request claims Wh
    req = replace(request("k", CASH, PREPAID, 1), ledger="Wh")
    assert code_of(lambda: validate_request(req, CASH, PREPAID)) == "ledger_mismatch"


@pytest.mark.parametrize(
    "flags",
    [
        TransferFlags.PENDING | TransferFlags.POST_PENDING,
        TransferFlags.PENDING | TransferFlags.VOID_PENDING,
        TransferFlags.POST_PENDING | TransferFlags.VOID_PENDING,
    ],
)
def test_a_transfer_has_one_phase(flags: TransferFlags) -> None:
    req = request("k", ALLOWANCE, CONSUMED, 1, flags=flags, pending_id=7)
    assert code_of(lambda: validate_request(req, ALLOWANCE, CONSUMED)) == "flags_are_mutually_exclusive"


@pytest.mark.parametrize(
    ("flags", "pending_id"),
    [
        (TransferFlags.POST_PENDING, None),  # a post must name its pending transfer
        (TransferFlags.VOID_PENDING, None),
        (TransferFlags.PENDING, 7),  # and only post/void may name one
        (TransferFlags.NONE, 7),
    ],
)
def test_pending_id_only_on_post_and_void(flags: TransferFlags, pending_id: int | None) -> None:
    req = request("k", ALLOWANCE, CONSUMED, 1, flags=flags, pending_id=pending_id)
    assert code_of(lambda: validate_request(req, ALLOWANCE, CONSUMED)) == "pending_id_mismatch"


# ---------------------------------------------------------------------------------------------
# deltas_for
# ---------------------------------------------------------------------------------------------

HOLD = request("hold:B-0001", ALLOWANCE, CONSUMED, 1_583, TransferCode.HOLD, TransferFlags.PENDING)
HOLD_STORED = stored(10, HOLD)


def test_posted_transfer_deltas() -> None:
    req = request("top-up", ISSUED, ALLOWANCE, 33_333, TransferCode.TOP_UP)
    assert deltas_for(req, None) == (Delta(debits_posted=33_333), Delta(credits_posted=33_333))


def test_pending_transfer_deltas() -> None:
    assert deltas_for(HOLD, None) == (Delta(debits_pending=1_583), Delta(credits_pending=1_583))


def test_post_of_less_than_the_hold_releases_the_rest() -> None:
    # E1: hold 1583 Wh, usage 1260 Wh posted, 323 Wh released
    post = request(
        "usage:B-0001", ALLOWANCE, CONSUMED, 1_260, flags=TransferFlags.POST_PENDING, pending_id=10
    )
    assert deltas_for(post, HOLD_STORED) == (
        Delta(debits_pending=-1_583, debits_posted=1_260),
        Delta(credits_pending=-1_583, credits_posted=1_260),
    )


def test_post_of_the_whole_hold() -> None:
    post = request("u", ALLOWANCE, CONSUMED, 1_583, flags=TransferFlags.POST_PENDING, pending_id=10)
    assert deltas_for(post, HOLD_STORED) == (
        Delta(debits_pending=-1_583, debits_posted=1_583),
        Delta(credits_pending=-1_583, credits_posted=1_583),
    )


def test_post_above_the_hold_is_refused() -> None:
    post = request("u", ALLOWANCE, CONSUMED, 1_584, flags=TransferFlags.POST_PENDING, pending_id=10)
    with pytest.raises(LedgerError) as raised:
        deltas_for(post, HOLD_STORED)
    assert raised.value.code == "exceeds_pending_transfer_amount"
    assert raised.value.message == "post of 1584 exceeds pending amount 1583"


def test_void_releases_the_whole_hold() -> None:
    void = request("v", ALLOWANCE, CONSUMED, 1_583, TransferCode.RELEASE, TransferFlags.VOID_PENDING, 10)
    assert deltas_for(void, HOLD_STORED) == (
        Delta(debits_pending=-1_583),
        Delta(credits_pending=-1_583),
    )


def test_void_of_a_different_amount_is_refused() -> None:
    void = request("v", ALLOWANCE, CONSUMED, 1_000, TransferCode.RELEASE, TransferFlags.VOID_PENDING, 10)
    assert code_of(lambda: deltas_for(void, HOLD_STORED)) == "void_amount_differs"


@pytest.mark.parametrize("flags", [TransferFlags.POST_PENDING, TransferFlags.VOID_PENDING])
def test_post_or_void_needs_a_pending_transfer(flags: TransferFlags) -> None:
    req = request("p", ALLOWANCE, CONSUMED, 1_583, flags=flags, pending_id=10)
    assert code_of(lambda: deltas_for(req, None)) == "pending_transfer_not_found"
    posted = stored(10, request("x", ALLOWANCE, CONSUMED, 1_583))  # exists but is not pending
    assert code_of(lambda: deltas_for(req, posted)) == "pending_transfer_not_found"


@pytest.mark.parametrize("flags", [TransferFlags.POST_PENDING, TransferFlags.VOID_PENDING])
def test_post_or_void_must_use_the_pending_accounts(flags: TransferFlags) -> None:
    swapped = request("p", CONSUMED, ALLOWANCE, 1_583, flags=flags, pending_id=10)
    assert code_of(lambda: deltas_for(swapped, HOLD_STORED)) == "pending_accounts_differ"
    other = request("p", ALLOWANCE, ISSUED, 1_583, flags=flags, pending_id=10)
    assert code_of(lambda: deltas_for(other, HOLD_STORED)) == "pending_accounts_differ"


def test_delta_addition() -> None:
    assert Delta(1, 2, 3, 4) + Delta(10, 20, 30, 40) == Delta(11, 22, 33, 44)
    assert Delta(debits_pending=5) + Delta(debits_pending=-5) == Delta()


# ---------------------------------------------------------------------------------------------
# Accounts: balances and limits
# ---------------------------------------------------------------------------------------------


def test_account_balances() -> None:
    a = replace(ALLOWANCE, credits_posted=33_333, debits_posted=1_260, debits_pending=1_700)
    assert a.credit_balance == 32_073  # 33333 - 1260
    assert a.available == 30_373  # 33333 - 1260 - 1700 (E1 step 4)
    assert a.held == 1_700
    assert a.debit_balance == -32_073


def test_with_delta_returns_a_new_account() -> None:
    after = ALLOWANCE.with_delta(Delta(1, 2, 3, 4))
    assert after == replace(
        ALLOWANCE, debits_pending=1, debits_posted=2, credits_pending=3, credits_posted=4
    )
    assert (ALLOWANCE.debits_pending, ALLOWANCE.credits_posted) == (0, 0)  # unchanged


def test_debits_must_not_exceed_credits() -> None:
    replace(ALLOWANCE, credits_posted=1_000, debits_pending=1_000).check_limits()  # exactly 0 left
    over = replace(ALLOWANCE, credits_posted=1_000, debits_posted=400, debits_pending=601)
    with pytest.raises(LedgerError) as raised:
        over.check_limits()
    assert raised.value.code == "exceeds_credits"
    assert raised.value.message == "account 2 (allowance R1 Wh) would go below zero"


def test_credits_must_not_exceed_debits() -> None:
    receivable = account(6, "KRW", AccountCode.RECEIVABLE, "R1", debits_posted=450)
    replace(receivable, credits_posted=450).check_limits()  # owes nothing
    with pytest.raises(LedgerError) as raised:
        replace(receivable, credits_posted=400, credits_pending=51).check_limits()
    assert raised.value.code == "exceeds_debits"
    assert raised.value.message == "account 6 (receivable R1 KRW) would go below zero"


def test_operator_accounts_have_no_limit() -> None:
    # every unit of allowance ever granted comes from the issued account: it runs a debit balance
    replace(ISSUED, debits_posted=33_333).check_limits()
    replace(CONSUMED, debits_posted=5).check_limits()


def test_a_negative_column_is_refused() -> None:
    broken = replace(ISSUED, debits_pending=-1)
    assert code_of(broken.check_limits) == "negative_column"


# ---------------------------------------------------------------------------------------------
# Idempotency: a repeated key must be the same transfer
# ---------------------------------------------------------------------------------------------


def test_same_request() -> None:
    req = request(
        "ST2:42:B-0001:BatteryIn",
        ALLOWANCE,
        CONSUMED,
        1_260,
        flags=TransferFlags.POST_PENDING,
        pending_id=10,
    )
    transfer = stored(11, req)
    assert transfer.same_request(req)  # E5: the resend is recognised as the same transfer
    # who sent it and why it says so do not make it another transfer
    assert transfer.same_request(replace(req, actor="operator", memo="resent", rider_id=None))
    for different in (
        replace(req, amount=1_261),
        replace(req, ledger="KRW"),
        replace(req, debit_account_id=3, credit_account_id=2),
        replace(req, code=TransferCode.OVERAGE),
        replace(req, flags=TransferFlags.NONE, pending_id=None),
        replace(req, pending_id=12),
    ):
        assert not transfer.same_request(different)


# ---------------------------------------------------------------------------------------------
# The worked examples on the model
# ---------------------------------------------------------------------------------------------


def test_e1_allowance_hold_post_and_next_hold() -> None:
    # 1. 10,000 KRW paid: 10000 * 1000 / 300 = 33333 Wh issued
    issued, allowance = apply(
        request("pay", ISSUED, ALLOWANCE, 33_333, TransferCode.TOP_UP), ISSUED, ALLOWANCE
    )
    assert allowance.available == 33_333
    assert issued.debit_balance == 33_333
    # 2. B-0001 handed over: hold ceil(1700 * 0.95 * 0.98) = 1583; 33333 - 1583 = 31750 available
    hold = request("hold:B-0001", ALLOWANCE, CONSUMED, 1_583, TransferCode.HOLD, TransferFlags.PENDING)
    allowance, consumed = apply(hold, allowance, CONSUMED)
    assert (allowance.available, allowance.held, allowance.credit_balance) == (31_750, 1_583, 33_333)
    # 3. returned at SoC 20: usage round(1700 * 0.95 * 0.78) = 1260; 33333 - 1260 = 32073, no hold
    post = request(
        "in:B-0001", ALLOWANCE, CONSUMED, 1_260, flags=TransferFlags.POST_PENDING, pending_id=20
    )
    allowance, consumed = apply(post, allowance, consumed, stored(20, hold))
    assert (allowance.available, allowance.held, allowance.credit_balance) == (32_073, 0, 32_073)
    assert (consumed.credits_posted, consumed.credits_pending) == (1_260, 0)
    # 4. B-0002 handed over: hold 1700; 32073 - 1700 = 30373 available
    hold2 = request("hold:B-0002", ALLOWANCE, CONSUMED, 1_700, TransferCode.HOLD, TransferFlags.PENDING)
    allowance, consumed = apply(hold2, allowance, consumed)
    assert (allowance.available, allowance.held) == (30_373, 1_700)


def test_e2_a_hold_beyond_the_allowance_is_refused() -> None:
    allowance = replace(ALLOWANCE, credits_posted=1_000)
    hold = request("hold", ALLOWANCE, CONSUMED, 1_600, TransferCode.HOLD, TransferFlags.PENDING)
    assert code_of(lambda: apply(hold, allowance, CONSUMED)) == "exceeds_credits"
    # after +3333 Wh the same hold fits: 4333 - 1600 = 2733
    allowance, _ = apply(hold, replace(allowance, credits_posted=4_333), CONSUMED)
    assert allowance.available == 2_733


def test_e4_two_deliveries_held_then_posted() -> None:
    issued = account(11, "count", AccountCode.ALLOWANCE_ISSUED)
    allowance = account(12, "count", AccountCode.ALLOWANCE, "R4")
    consumed = account(13, "count", AccountCode.ALLOWANCE_CONSUMED)
    issued, allowance = apply(
        request("buy", issued, allowance, 10, TransferCode.TOP_UP), issued, allowance
    )
    holds = []
    for n in (1, 2):
        hold = request(f"hold:{n}", allowance, consumed, 1, TransferCode.HOLD, TransferFlags.PENDING)
        allowance, consumed = apply(hold, allowance, consumed)
        holds.append(stored(100 + n, hold))
    assert (allowance.available, allowance.held) == (8, 2)
    for pending in holds:
        post = request(
            f"in:{pending.id}",
            allowance,
            consumed,
            1,
            flags=TransferFlags.POST_PENDING,
            pending_id=pending.id,
        )
        allowance, consumed = apply(post, allowance, consumed, pending)
    assert (allowance.available, allowance.held, allowance.credit_balance) == (8, 0, 8)
    assert consumed.credits_posted == 2


def test_void_of_an_abandoned_hand_over_restores_the_allowance() -> None:
    allowance = replace(ALLOWANCE, credits_posted=33_333)
    held, consumed = apply(HOLD, allowance, CONSUMED)
    void = request(
        "timeout", ALLOWANCE, CONSUMED, 1_583, TransferCode.RELEASE, TransferFlags.VOID_PENDING, 10
    )
    after, consumed = apply(void, held, consumed, HOLD_STORED)
    assert after == allowance
    assert consumed == CONSUMED


# ---------------------------------------------------------------------------------------------
# Properties: a prepaid rider never consumes more than paid
# ---------------------------------------------------------------------------------------------


@given(data=st.data(), balance=st.integers(min_value=0, max_value=10**9))
def test_hold_then_post_never_overdraws(data: st.DataObject, balance: int) -> None:
    start = replace(ALLOWANCE, credits_posted=balance)
    hold_amount = data.draw(st.integers(min_value=1, max_value=balance + 1_000), label="hold")
    hold = request("h", ALLOWANCE, CONSUMED, hold_amount, TransferCode.HOLD, TransferFlags.PENDING)
    if hold_amount > balance:
        assert code_of(lambda: apply(hold, start, CONSUMED)) == "exceeds_credits"
        return
    allowance, consumed = apply(hold, start, CONSUMED)
    assert allowance.available == balance - hold_amount >= 0
    usage = data.draw(st.integers(min_value=1, max_value=hold_amount + 1_000), label="usage")
    post = request("p", ALLOWANCE, CONSUMED, usage, flags=TransferFlags.POST_PENDING, pending_id=1)
    if usage > hold_amount:
        assert code_of(lambda: apply(post, allowance, consumed, stored(1, hold))) == (
            "exceeds_pending_transfer_amount"
        )
        return
    allowance, consumed = apply(post, allowance, consumed, stored(1, hold))
    assert allowance.available == allowance.credit_balance == balance - usage >= 0
    assert allowance.held == consumed.credits_pending == 0
    assert consumed.credits_posted == usage
    # double entry: what left the rider arrived at the operator
    assert allowance.debits_posted == consumed.credits_posted


@given(
    amount=st.integers(min_value=1, max_value=10**12),
    flags=st.sampled_from([TransferFlags.NONE, TransferFlags.PENDING]),
)
def test_deltas_balance(amount: int, flags: TransferFlags) -> None:
    debit, credit = deltas_for(request("k", ISSUED, ALLOWANCE, amount, flags=flags), None)
    # what is debited on one side is credited on the other, in the same column kind
    assert debit.debits_pending == credit.credits_pending
    assert debit.debits_posted == credit.credits_posted
    assert debit.debits_pending + debit.debits_posted == amount
    assert (debit.credits_pending, debit.credits_posted) == (0, 0)
    assert (credit.debits_pending, credit.debits_posted) == (0, 0)

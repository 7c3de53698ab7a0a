"""The bounds every amount and balance keeps (swapd.domain.quantities), pure: the plans that may
exist, the transfers and account columns the ledger accepts, and how ``ledger check`` reads a
stored value. At each bound: accepted and exact; one past it: refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateTable

from swapd.domain.errors import InvalidInput
from swapd.domain.plans import (
    MAX_GRANULARITY_S,
    MAX_TIME_HOLD_S,
    MAX_UNITS_PER_MINOR,
    Plan,
    PlanKind,
)
from swapd.domain.quantities import (
    MAX_ACCOUNT_COLUMN_AMOUNT,
    MAX_PAYMENT_MINOR,
    MAX_TRANSFER_AMOUNT,
    Unit,
)
from swapd.ledger.model import (
    ACCOUNT_FLAGS,
    Account,
    AccountCode,
    AccountFlags,
    Delta,
    LedgerError,
    TransferCode,
    TransferRequest,
    validate_request,
)
from swapd.store import schema as t
from swapd.store.ledger_check import out_of_bounds

INT64_MAX = 2**63 - 1
JSON_SAFE_MAX = 2**53 - 1
PREPAID = [
    (PlanKind.PREPAID_ENERGY, Unit.ENERGY_WH),
    (PlanKind.PREPAID_TIME, Unit.TIME_S),
    (PlanKind.PREPAID_DELIVERIES, Unit.DELIVERIES),
]

# -- the bounds themselves -----------------------------------------------------------------------


def test_one_transfer_is_json_safe_and_a_payment_fits_in_one() -> None:
    assert MAX_TRANSFER_AMOUNT == JSON_SAFE_MAX
    assert MAX_PAYMENT_MINOR <= MAX_TRANSFER_AMOUNT
    assert MAX_UNITS_PER_MINOR == 9_007  # what a plan may sell per minor unit, at most


def test_sums_of_columns_stay_inside_64_bits() -> None:
    # a rider's four accounts, both sides, plus one: any nine columns add up without overflow
    assert 9 * MAX_ACCOUNT_COLUMN_AMOUNT <= INT64_MAX
    # a column at its bound plus one more transfer is still a 64-bit integer a CHECK can refuse
    assert MAX_ACCOUNT_COLUMN_AMOUNT + MAX_TRANSFER_AMOUNT <= INT64_MAX
    assert MAX_TRANSFER_AMOUNT <= MAX_ACCOUNT_COLUMN_AMOUNT


# -- plans ---------------------------------------------------------------------------------------


def most_units_per_price(price_minor: int) -> int:
    """The largest price_units for price_minor: floor(P * u / p) <= T exactly when
    P * u < (T + 1) * p (P the largest payment, T the largest transfer)."""
    return min(MAX_TRANSFER_AMOUNT, ((MAX_TRANSFER_AMOUNT + 1) * price_minor - 1) // MAX_PAYMENT_MINOR)


@given(
    kind_unit=st.sampled_from(PREPAID),
    price_minor=st.integers(min_value=1, max_value=MAX_PAYMENT_MINOR),
)
def test_a_plan_may_sell_up_to_one_transfer_for_the_largest_payment_and_no_more(
    kind_unit: tuple[PlanKind, Unit], price_minor: int
) -> None:
    kind, unit = kind_unit
    price_units = most_units_per_price(price_minor)
    plan = Plan("P", kind, unit, "KRW", price_minor, price_units)
    units = plan.allowance_for_payment(MAX_PAYMENT_MINOR)
    assert units == MAX_PAYMENT_MINOR * price_units // price_minor <= MAX_TRANSFER_AMOUNT
    if price_units == MAX_TRANSFER_AMOUNT:
        return  # price_units itself is at its bound (price_minor is the largest payment)
    # one unit more for the same price, or the same units for one minor unit less: refused
    with pytest.raises(InvalidInput, match="price at most 9,007"):
        Plan("P", kind, unit, "KRW", price_minor, price_units + 1)
    if price_minor > 1 and MAX_PAYMENT_MINOR * price_units // (price_minor - 1) > MAX_TRANSFER_AMOUNT:
        with pytest.raises(InvalidInput, match="price at most 9,007"):
            Plan("P", kind, unit, "KRW", price_minor - 1, price_units)


@given(
    price_minor=st.integers(min_value=1, max_value=2**64),
    price_units=st.integers(min_value=1, max_value=2**64),
    amount_minor=st.integers(min_value=1, max_value=2**64),
)
def test_no_plan_converts_any_top_up_past_one_transfer(
    price_minor: int, price_units: int, amount_minor: int
) -> None:
    try:
        plan = Plan("P", PlanKind.PREPAID_ENERGY, Unit.ENERGY_WH, "KRW", price_minor, price_units)
    except InvalidInput:
        assert (
            price_minor > MAX_PAYMENT_MINOR
            or price_units > MAX_TRANSFER_AMOUNT
            or MAX_PAYMENT_MINOR * price_units // price_minor > MAX_TRANSFER_AMOUNT
        )
        return
    try:
        units = plan.allowance_for_payment(amount_minor)
    except InvalidInput:
        assert amount_minor > MAX_PAYMENT_MINOR or amount_minor * price_units < price_minor
        return
    assert 1 <= units <= MAX_TRANSFER_AMOUNT


def test_the_reported_plan_is_refused_with_a_reason_an_operator_can_act_on() -> None:
    with pytest.raises(InvalidInput) as refused:
        Plan("huge", PlanKind.PREPAID_ENERGY, Unit.ENERGY_WH, "KRW", 1, 10**12)
    assert refused.value.message == (
        "plan huge: 1 minor units for 1,000,000,000,000 Wh would sell "
        "1,000,000,000,000,000,000,000,000 Wh for the largest payment (1,000,000,000,000), above "
        "the 9,007,199,254,740,991 of one transfer; price at most 9,007 Wh per minor unit"
    )


def test_the_largest_payment_is_accepted_and_one_more_minor_unit_refused() -> None:
    plan = Plan("energy", PlanKind.PREPAID_ENERGY, Unit.ENERGY_WH, "KRW", 300, 1000)
    assert plan.allowance_for_payment(MAX_PAYMENT_MINOR) == MAX_PAYMENT_MINOR * 1000 // 300
    with pytest.raises(InvalidInput, match="above the limit of 1000000000000"):
        plan.allowance_for_payment(MAX_PAYMENT_MINOR + 1)


FIELD_BOUNDS = [
    ("price_minor", MAX_PAYMENT_MINOR),
    ("fee_minor", MAX_PAYMENT_MINOR),
    ("price_units", MAX_TRANSFER_AMOUNT),
    ("included_units", MAX_TRANSFER_AMOUNT),
    ("granularity_s", MAX_GRANULARITY_S),
    ("time_hold_s", MAX_TIME_HOLD_S),
]


@pytest.mark.parametrize(("field", "bound"), FIELD_BOUNDS)
def test_each_number_of_a_subscription_is_bounded(field: str, bound: int) -> None:
    terms = {
        "price_minor": 250,
        "price_units": 1000,
        "fee_minor": 30_000,
        "included_units": 60_000,
    }

    def sub(value: int) -> Plan:
        return Plan(
            "sub",
            PlanKind.SUBSCRIPTION,
            Unit.TIME_S,
            "KRW",
            **{**terms, field: value},  # type: ignore[arg-type]
        )

    assert getattr(sub(bound), field) == bound
    with pytest.raises(InvalidInput, match=f"plan sub: {field} .* is above the limit of {bound:,}"):
        sub(bound + 1)


# -- the ledger ----------------------------------------------------------------------------------


def account(id: int, code: AccountCode, owner: str = "", **columns: int) -> Account:
    return Account(id, "Wh", code, owner, ACCOUNT_FLAGS.get(code, AccountFlags.NONE), **columns)


def request(amount: int) -> TransferRequest:
    return TransferRequest("k", "Wh", 1, 2, amount, TransferCode.ADJUSTMENT)


ISSUED = account(1, AccountCode.ALLOWANCE_ISSUED)
ALLOWANCE = account(2, AccountCode.ALLOWANCE, "R1")


@given(amount=st.integers(min_value=1, max_value=MAX_TRANSFER_AMOUNT))
def test_a_transfer_up_to_the_bound_is_valid(amount: int) -> None:
    validate_request(request(amount), ISSUED, ALLOWANCE)


@given(amount=st.integers(min_value=MAX_TRANSFER_AMOUNT + 1, max_value=2**80))
def test_a_transfer_past_the_bound_is_refused(amount: int) -> None:
    with pytest.raises(LedgerError) as refused:
        validate_request(request(amount), ISSUED, ALLOWANCE)
    assert refused.value.code == "amount_exceeds_limit"


COLUMNS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")


@pytest.mark.parametrize("column", COLUMNS)
@given(below=st.integers(min_value=0, max_value=MAX_TRANSFER_AMOUNT))
def test_an_account_column_may_reach_its_bound_and_not_pass_it(column: str, below: int) -> None:
    # an operator account has no balance limit, so only the column bound can refuse it
    start = account(1, AccountCode.ALLOWANCE_CONSUMED, **{column: MAX_ACCOUNT_COLUMN_AMOUNT - below})
    at_bound = start.with_delta(Delta(**{column: below}))
    at_bound.check_limits()
    assert getattr(at_bound, column) == MAX_ACCOUNT_COLUMN_AMOUNT
    with pytest.raises(LedgerError) as refused:
        at_bound.with_delta(Delta(**{column: 1})).check_limits()
    assert refused.value.code == f"overflows_{column}"
    assert "above the limit of 1,000,000,000,000,000,000" in refused.value.message


def test_a_rider_allowance_at_its_bound_refuses_one_unit_more() -> None:
    full = account(2, AccountCode.ALLOWANCE, "R1", credits_posted=MAX_ACCOUNT_COLUMN_AMOUNT)
    full.check_limits()
    with pytest.raises(LedgerError) as refused:
        full.with_delta(Delta(credits_posted=1)).check_limits()
    assert refused.value.code == "overflows_credits_posted"
    assert "(allowance R1 Wh)" in refused.value.message


# -- what ledger check makes of a stored value ---------------------------------------------------


@given(value=st.integers(min_value=0, max_value=MAX_ACCOUNT_COLUMN_AMOUNT))
def test_an_integer_within_bounds_is_no_problem(value: int) -> None:
    assert out_of_bounds(value, 0, MAX_ACCOUNT_COLUMN_AMOUNT) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (1.8e19, "1.8e+19 is not an integer"),
        (5.0, "5.0 is not an integer"),
        ("100", "'100' is not an integer"),
        (b"\x01", "b'\\x01' is not an integer"),
        (None, "None is not an integer"),
        (True, "True is not an integer"),
        (-1, "-1 is outside 0..1,000,000,000,000,000,000"),
        (10**18 + 1, "1,000,000,000,000,000,001 is outside 0..1,000,000,000,000,000,000"),
        (2**64, "18,446,744,073,709,551,616 is outside 0..1,000,000,000,000,000,000"),
    ],
)
def test_anything_else_is_named_as_the_problem_it_is(value: object, problem: str) -> None:
    assert out_of_bounds(value, 0, MAX_ACCOUNT_COLUMN_AMOUNT) == problem


# -- the schema's checks -------------------------------------------------------------------------


def test_the_checks_say_integer_within_the_bound_in_each_database() -> None:
    on_sqlite = str(CreateTable(t.transfers).compile(dialect=sqlite.dialect()))
    on_postgresql = str(CreateTable(t.transfers).compile(dialect=postgresql.dialect()))
    assert (
        "CONSTRAINT ck_transfers_amount_bounded CHECK "
        "(typeof(amount) = 'integer' AND amount BETWEEN 1 AND 9007199254740991)"
    ) in on_sqlite
    assert (
        "CONSTRAINT ck_transfers_amount_bounded CHECK (amount BETWEEN 1 AND 9007199254740991)"
    ) in on_postgresql
    names = {c.name for c in t.accounts.constraints} | {c.name for c in t.payments.constraints}
    assert {
        "ck_accounts_debits_pending_bounded",
        "ck_accounts_debits_posted_bounded",
        "ck_accounts_credits_pending_bounded",
        "ck_accounts_credits_posted_bounded",
        "ck_payments_amount_minor_bounded",
    } <= names

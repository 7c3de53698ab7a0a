"""Pure tests of swapd.domain.quantities: integer money, exact rounding, percentages as bp."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swapd.domain.errors import InvalidInput
from swapd.domain.quantities import (
    CURRENCY_EXPONENTS,
    PERCENT_BP,
    Unit,
    bp_to_percent,
    ceil_div,
    currency_exponent,
    format_money,
    percent_to_bp,
    require_non_negative_int,
    require_positive_int,
    round_half_even,
)

# ---------------------------------------------------------------------------------------------
# Units and currencies
# ---------------------------------------------------------------------------------------------


def test_unit_values_are_the_ledger_names() -> None:
    assert [u.value for u in Unit] == ["Wh", "s", "count"]
    assert PERCENT_BP == 10_000  # 100.00 % == 10,000 bp


def test_currency_exponents_match_iso_4217() -> None:
    # ISO 4217 minor units: 0 for KRW/JPY/VND/RWF/UGX, 3 for BHD/KWD, 2 for the rest. The whole
    # table is tested in test_currencies.py; these are the currencies swap networks bill in today.
    assert {CURRENCY_EXPONENTS[code] for code in ["KRW", "JPY", "VND", "RWF", "UGX"]} == {0}
    assert {CURRENCY_EXPONENTS[code] for code in ["BHD", "KWD"]} == {3}
    two = ["IDR", "TWD", "CNY", "INR", "THB", "PHP", "MYR", "USD", "EUR", "GBP", "KES", "NGN"]
    assert {CURRENCY_EXPONENTS[code] for code in two} == {2}


@pytest.mark.parametrize(("currency", "exponent"), [("KRW", 0), ("USD", 2), ("BHD", 3), ("JPY", 0)])
def test_currency_exponent(currency: str, exponent: int) -> None:
    assert currency_exponent(currency) == exponent


@pytest.mark.parametrize("currency", ["XXX", "krw", "", " KRW"])
def test_unknown_currency_is_refused_in_one_line(currency: str) -> None:
    with pytest.raises(
        InvalidInput, match=re.escape(f"unknown currency {currency!r}: not an ISO 4217 code in use")
    ):
        currency_exponent(currency)


# ---------------------------------------------------------------------------------------------
# format_money
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount_minor", "currency", "text"),
    [
        (10_000, "KRW", "10,000 KRW"),  # E1 top-up; exponent 0: no decimal point
        (378, "KRW", "378 KRW"),  # E1 revenue of the first usage
        (0, "KRW", "0 KRW"),
        (-1_000, "KRW", "-1,000 KRW"),
        (1_000_000_000, "VND", "1,000,000,000 VND"),
        (123_456, "USD", "1,234.56 USD"),  # 123456 cents = 1234 dollars + 56 cents
        (5, "USD", "0.05 USD"),  # fraction is zero-padded to 2 digits
        (-5, "USD", "-0.05 USD"),  # the sign survives a zero whole part
        (-123_456, "EUR", "-1,234.56 EUR"),
        (100, "GBP", "1.00 GBP"),
        (0, "EUR", "0.00 EUR"),
        (1_234_567, "BHD", "1,234.567 BHD"),  # exponent 3: 1234567 fils = 1234.567 BHD
        (1, "KWD", "0.001 KWD"),
    ],
)
def test_format_money(amount_minor: int, currency: str, text: str) -> None:
    assert format_money(amount_minor, currency) == text


def test_format_money_unknown_currency() -> None:
    with pytest.raises(InvalidInput, match="unknown currency 'ABC'"):
        format_money(100, "ABC")


@pytest.mark.parametrize(
    ("amount", "currency"),
    [(1.5, "KRW"), (10.0, "KRW"), (1.5, "USD"), (True, "KRW"), (True, "USD")],
)
def test_format_money_refuses_non_integer_amounts(amount: object, currency: str) -> None:
    with pytest.raises(InvalidInput):
        format_money(amount, currency)  # type: ignore[arg-type]


@given(amount=st.integers(min_value=-(10**15), max_value=10**15))
def test_format_money_round_trips_for_two_decimal_currencies(amount: int) -> None:
    text = format_money(amount, "USD")
    number, currency = text.split(" ")
    assert currency == "USD"
    assert re.fullmatch(r"-?\d{1,3}(,\d{3})*\.\d{2}", number)
    assert Decimal(number.replace(",", "")) * 100 == amount


@given(amount=st.integers(min_value=-(10**15), max_value=10**15))
def test_format_money_round_trips_for_zero_decimal_currencies(amount: int) -> None:
    number, _ = format_money(amount, "KRW").split(" ")
    assert "." not in number
    assert int(number.replace(",", "")) == amount


# ---------------------------------------------------------------------------------------------
# round_half_even and ceil_div
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (5, 2, 2),  # 2.5 -> 2 (tie, to even)
        (7, 2, 4),  # 3.5 -> 4 (tie, to even)
        (1, 2, 0),  # 0.5 -> 0
        (3, 2, 2),  # 1.5 -> 2
        (-5, 2, -2),  # -2.5 -> -2
        (-7, 2, -4),  # -3.5 -> -4
        (-1, 2, 0),  # -0.5 -> 0
        (1, 3, 0),  # 0.333 -> 0
        (2, 3, 1),  # 0.667 -> 1
        (-2, 3, -1),  # -0.667 -> -1
        (10, 5, 2),  # exact
        (0, 7, 0),
        (12_597, 10, 1_260),  # 1259.7 -> 1260
        (1_700 * 9_500 * 7_800, 10**8, 1_260),  # E1 usage: 1700 * 95% * 78% = 1259.7 -> 1260
        (1_700 * 10_000 * 50, 10**8, 8),  # 1700 * 100% * 0.50% = 8.5 -> 8 (tie, to even)
        (1_700 * 10_000 * 150, 10**8, 26),  # 1700 * 100% * 1.50% = 25.5 -> 26 (tie, to even)
    ],
)
def test_round_half_even(numerator: int, denominator: int, expected: int) -> None:
    assert round_half_even(numerator, denominator) == expected


@pytest.mark.parametrize("denominator", [0, -1, -10])
def test_round_half_even_needs_a_positive_denominator(denominator: int) -> None:
    with pytest.raises(ValueError, match="denominator must be positive"):
        round_half_even(5, denominator)


@given(
    numerator=st.integers(min_value=-(10**18), max_value=10**18),
    denominator=st.integers(min_value=1, max_value=10**9),
)
def test_round_half_even_matches_fraction_rounding(numerator: int, denominator: int) -> None:
    # Python's round() of a Fraction is exact banker's rounding.
    result = round_half_even(numerator, denominator)
    assert result == round(Fraction(numerator, denominator))
    assert abs(Fraction(numerator, denominator) - result) <= Fraction(1, 2)


@given(half=st.integers(min_value=-(10**12), max_value=10**12))
def test_round_half_even_ties_always_land_on_even(half: int) -> None:
    # (2k+1)/2 is exactly k + 0.5: the result must be the even one of k and k+1
    result = round_half_even(2 * half + 1, 2)
    assert result in (half, half + 1)
    assert result % 2 == 0


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (7, 2, 4),  # 3.5 -> 4
        (6, 2, 3),  # exact
        (0, 5, 0),
        (1, 100, 1),  # 0.01 -> 1
        (99, 100, 1),
        (101, 100, 2),
        (-7, 2, -3),  # ceil(-3.5) = -3
        (-1, 100, 0),  # ceil(-0.01) = 0
        (1_700 * 9_500 * 9_800, 10**8, 1_583),  # E1 hold: 1700 * 95% * 98% = 1582.7 -> 1583
        (1_700 * 10_000 * 10_000, 10**8, 1_700),  # E1 step 4 hold: exactly 1700
    ],
)
def test_ceil_div(numerator: int, denominator: int, expected: int) -> None:
    assert ceil_div(numerator, denominator) == expected


@pytest.mark.parametrize("denominator", [0, -3])
def test_ceil_div_needs_a_positive_denominator(denominator: int) -> None:
    with pytest.raises(ValueError, match="denominator must be positive"):
        ceil_div(5, denominator)


@given(
    numerator=st.integers(min_value=-(10**18), max_value=10**18),
    denominator=st.integers(min_value=1, max_value=10**9),
)
def test_ceil_div_is_the_smallest_cover(numerator: int, denominator: int) -> None:
    result = ceil_div(numerator, denominator)
    assert result * denominator >= numerator
    assert (result - 1) * denominator < numerator
    assert result == math.ceil(Fraction(numerator, denominator))


# ---------------------------------------------------------------------------------------------
# percent_to_bp and bp_to_percent
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "bp"),
    [
        (98, 9_800),
        ("98.0", 9_800),
        (98.0, 9_800),  # BMS JSON number arrives as a float
        (95.25, 9_525),
        ("95.25", 9_525),
        (Decimal("20.5"), 2_050),
        (Decimal("20.50"), 2_050),
        (0, 0),
        (100, 10_000),
        ("100.00", 10_000),
        (" 40 ", 4_000),  # surrounding blanks are stripped
        ("0.01", 1),
        (0.01, 1),
        ("1e2", 10_000),  # 1E+2 == 100
    ],
)
def test_percent_to_bp_accepts(value: object, bp: int) -> None:
    assert percent_to_bp(value, "soc") == bp


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "soc must be between 0 and 100, got -1"),
        (-0.01, "soc must be between 0 and 100, got -0.01"),
        (100.01, "soc must be between 0 and 100, got 100.01"),
        (101, "soc must be between 0 and 100, got 101"),
        ("250", "soc must be between 0 and 100, got 250"),
        (float("nan"), "soc must be between 0 and 100, got nan"),
        ("inf", "soc must be between 0 and 100, got inf"),
        (float("-inf"), "soc must be between 0 and 100, got -inf"),
        ("98.001", "soc has more than two decimals: 98.001"),
        (0.1 + 0.2, "soc has more than two decimals: 0.30000000000000004"),
        (1e-05, "soc has more than two decimals: 1e-05"),
        ("abc", "soc must be a number between 0 and 100, got 'abc'"),
        ("", "soc must be a number between 0 and 100, got ''"),
        (None, "soc must be a number between 0 and 100, got None"),
        ([98], "soc must be a number between 0 and 100, got [98]"),
        (True, "soc must be a number between 0 and 100, got True"),
        (False, "soc must be a number between 0 and 100, got False"),
    ],
)
def test_percent_to_bp_refuses(value: object, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        percent_to_bp(value, "soc")
    assert raised.value.message == message
    assert raised.value.code == "invalid_input"


def test_percent_to_bp_names_the_field() -> None:
    with pytest.raises(InvalidInput, match=r"^soh must be between 0 and 100, got 120$"):
        percent_to_bp(120, "soh")


@pytest.mark.parametrize(
    ("bp", "text"),
    [
        (9_800, "98.0"),
        (9_525, "95.25"),
        (9_550, "95.5"),  # trailing zero of the fraction dropped
        (2_050, "20.5"),
        (5, "0.05"),
        (1, "0.01"),
        (0, "0.0"),
        (10_000, "100.0"),
    ],
)
def test_bp_to_percent(bp: int, text: str) -> None:
    assert bp_to_percent(bp) == text


@given(bp=st.integers(min_value=0, max_value=PERCENT_BP))
def test_percent_round_trips_through_text_decimal_and_float(bp: int) -> None:
    assert percent_to_bp(bp_to_percent(bp), "soc") == bp
    assert percent_to_bp(Decimal(bp) / 100, "soc") == bp
    # A two-decimal float (what a BMS sends as JSON) parses exactly, never off by one bp.
    assert percent_to_bp(bp / 100, "soc") == bp


@given(thousandths=st.integers(min_value=0, max_value=100_000).filter(lambda v: v % 10 != 0))
def test_percent_with_three_decimals_is_refused(thousandths: int) -> None:
    text = f"{thousandths // 1000}.{thousandths % 1000:03d}"  # e.g. 98.005
    with pytest.raises(InvalidInput, match="has more than two decimals"):
        percent_to_bp(text, "soc")


# ---------------------------------------------------------------------------------------------
# require_positive_int / require_non_negative_int
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 10_000, 10**18])
def test_require_positive_int_returns_the_value(value: int) -> None:
    assert require_positive_int(value, "amount_minor") == value


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0, "0"),
        (-1, "-1"),
        (True, "True"),  # bool is an int subclass, but not an amount
        (False, "False"),
        (1.0, "1.0"),  # floats are refused even when integral: money is never a float
        (10.5, "10.5"),
        ("10000", "'10000'"),  # strings are not coerced
        (Decimal(10), "Decimal('10')"),
        (None, "None"),
    ],
)
def test_require_positive_int_refuses(value: object, shown: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        require_positive_int(value, "amount_minor")
    assert raised.value.message == f"amount_minor must be a positive integer, got {shown}"


@pytest.mark.parametrize("value", [0, 1, 10**12])
def test_require_non_negative_int_accepts(value: int) -> None:
    assert require_non_negative_int(value, "price_minor") == value


@pytest.mark.parametrize("value", [-1, True, False, 0.0, "0", None])
def test_require_non_negative_int_refuses(value: object) -> None:
    with pytest.raises(InvalidInput) as raised:
        require_non_negative_int(value, "price_minor")
    assert raised.value.message == f"price_minor must be a non-negative integer, got {value!r}"


@given(value=st.integers(min_value=-(10**6), max_value=10**6))
def test_require_positive_int_accepts_exactly_the_positive_ints(value: int) -> None:
    if value > 0:
        assert require_positive_int(value, "n") == value
    else:
        with pytest.raises(InvalidInput):
            require_positive_int(value, "n")


def test_money_typed_in_major_units() -> None:
    from swapd.domain.quantities import parse_money

    assert parse_money("12,500", "KRW") == 12_500
    assert parse_money(" 10.50 ", "USD") == 1_050
    for bad, currency in (
        ("10.5", "KRW"),
        ("0", "KRW"),
        ("-3", "USD"),
        ("1.005", "USD"),
        ("NaN", "KRW"),
        ("x", "KRW"),
    ):
        with pytest.raises(InvalidInput):
            parse_money(bad, currency)

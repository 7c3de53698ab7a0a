"""The ISO 4217 table: current with Babel, and right where CLDR's display digits mislead."""

from __future__ import annotations

import re

import pytest
from babel.numbers import get_currency_precision
from scripts.gen_currencies import (
    ISO_LISTED_WITHOUT_TENDER,
    ISO_MINOR_UNITS,
    NOT_MINOR_UNIT_MONEY,
    iso_4217_exponents,
)

from swapd.domain.currencies import ISO_4217_EXPONENTS
from swapd.domain.errors import InvalidInput
from swapd.domain.quantities import CURRENCY_EXPONENTS, currency_exponent, format_money


def test_the_committed_table_is_what_the_generator_computes_from_babel() -> None:
    # Fails after a Babel upgrade that changes a currency: run `uv run python -m scripts.gen_currencies`.
    assert iso_4217_exponents() == ISO_4217_EXPONENTS


def test_every_iso_correction_still_differs_from_babel() -> None:
    # A correction Babel now agrees with is dead weight: drop it from the generator.
    agreed = [code for code, iso in ISO_MINOR_UNITS.items() if get_currency_precision(code) == iso]
    assert agreed == []


def test_the_old_name_is_the_new_table() -> None:
    assert CURRENCY_EXPONENTS is ISO_4217_EXPONENTS


def test_codes_are_three_capitals_and_exponents_are_iso_minor_units() -> None:
    assert all(re.fullmatch(r"[A-Z]{3}", code) for code in ISO_4217_EXPONENTS)
    assert set(ISO_4217_EXPONENTS.values()) == {0, 2, 3, 4}
    assert list(ISO_4217_EXPONENTS) == sorted(ISO_4217_EXPONENTS)
    assert len(ISO_4217_EXPONENTS) > 150


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [
        *[(code, 0) for code in ["JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XOF", "XAF", "XPF", "UYI"]],
        *[(code, 3) for code in ["BHD", "KWD", "JOD", "OMR", "TND", "LYD", "IQD"]],
        *[(code, 4) for code in ["CLF", "UYW"]],
        # CLDR displays these with 0 decimals; ISO 4217 and the ledger count their minor unit.
        *[(code, 2) for code in ["IDR", "HUF", "COP", "ALL", "AFN", "IRR", "LBP", "MMK", "MGA"]],
        *[(code, 2) for code in ["INR", "USD", "EUR", "TWD", "PKR", "AMD", "CZK", "XCD", "XCG"]],
    ],
)
def test_iso_4217_exponents_that_are_easy_to_get_wrong(currency: str, exponent: int) -> None:
    assert currency_exponent(currency) == exponent


@pytest.mark.parametrize("currency", sorted(ISO_LISTED_WITHOUT_TENDER))
def test_codes_iso_still_lists_are_accepted(currency: str) -> None:
    assert currency_exponent(currency) == ISO_LISTED_WITHOUT_TENDER[currency]


@pytest.mark.parametrize(
    "currency",
    [*sorted(NOT_MINOR_UNIT_MONEY), "DEM", "FRF", "ITL", "ANG", "BGN", "HRK", "SLL", "ZWL", "VEF"],
)
def test_metals_units_of_account_test_codes_and_withdrawn_currencies_are_refused(currency: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(f"unknown currency {currency!r}: not an ISO 4217")):
        currency_exponent(currency)


def test_the_unknown_currency_error_is_one_short_line() -> None:
    with pytest.raises(InvalidInput) as refused:
        currency_exponent("ABC")
    assert str(refused.value) == "unknown currency 'ABC': not an ISO 4217 code in use"


@pytest.mark.parametrize(
    ("amount_minor", "currency", "text"),
    [
        (1_000_000, "IDR", "10,000.00 IDR"),
        (1_234, "IQD", "1.234 IQD"),
        (12_345, "CLF", "1.2345 CLF"),
        (500, "XOF", "500 XOF"),
    ],
)
def test_format_money_uses_the_iso_exponent(amount_minor: int, currency: str, text: str) -> None:
    assert format_money(amount_minor, currency) == text

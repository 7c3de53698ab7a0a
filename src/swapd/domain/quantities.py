"""Integer quantities and the exact rounding rules the billing method uses.

Money is in ISO 4217 minor units, energy in Wh, time in seconds, deliveries as counts.
State of charge and state of health travel as basis points of a percent (``bp``:
98.0 % == 9800 bp) so that metering stays exact integer arithmetic.
"""

from __future__ import annotations

import enum
from decimal import Decimal, InvalidOperation

from swapd.domain.currencies import ISO_4217_EXPONENTS
from swapd.domain.errors import InvalidInput

PERCENT_BP = 10_000  # 100.00 % in basis points

# -- Bounds ----------------------------------------------------------------------------------------
# Every amount and balance is an integer inside these, on every database: the domain refuses what
# could pass them, the ledger refuses a transfer or a column past them, and the schema's CHECK
# constraints refuse a row past them. An "amount" is in its ledger's unit: minor units of money,
# Wh, s or count.
#
# One transfer, in any unit: the largest integer a JavaScript client reads exactly (2**53 - 1), so
# any single amount swapd shows survives JSON. It costs nothing: at the largest payment below, a
# plan may still sell up to 9,007 units per minor unit (a day of possession for 10 US cents).
MAX_TRANSFER_AMOUNT = 2**53 - 1
# One payment, refund, fee or price, in minor units: far above any real payment (a trillion KRW,
# ten billion USD), so that a typo cannot mint allowance; and small enough that MAX_TRANSFER_AMOUNT
# leaves room for real prices (see Plan's bounds).
MAX_PAYMENT_MINOR = 10**12
# Any of an account's four columns (debits/credits, pending/posted), in its ledger's unit. The
# operator's accounts add up every rider's flows for as long as the network runs: its cash account
# holds every payment ever received, its consumed account every Wh or second ever used. 2**53 would
# last an Indonesian network taking 1 billion USD a year in IDR minor units (1.6 million a dollar)
# about six years; 10^18 lasts it six centuries, and a million packs out day and night add 3*10^13
# seconds a year. And it keeps sums of columns inside signed 64 bits (9.22*10^18), as SQL's SUM
# and SQLite's integers need: any nine columns at the bound still add up without overflow, and a
# column at the bound plus one more transfer is still a 64-bit integer the CHECK can refuse.
MAX_ACCOUNT_COLUMN_AMOUNT = 10**18


class Unit(enum.StrEnum):
    """The unit an allowance is counted in. Its value is also the ledger name of that unit."""

    ENERGY_WH = "Wh"
    TIME_S = "s"
    DELIVERIES = "count"


# Every ISO 4217 currency in use and its minor-unit exponent (generated from Babel's CLDR data,
# corrected to ISO 4217: see src/swapd/domain/currencies.py). The old name stays for callers.
CURRENCY_EXPONENTS: dict[str, int] = ISO_4217_EXPONENTS


def currency_exponent(currency: str) -> int:
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise InvalidInput(f"unknown currency {currency!r}: not an ISO 4217 code in use") from None


def format_money(amount_minor: int, currency: str) -> str:
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise InvalidInput(f"money is an integer of minor units, got {amount_minor!r}")
    exponent = currency_exponent(currency)
    if exponent == 0:
        return f"{amount_minor:,} {currency}"
    sign = "-" if amount_minor < 0 else ""
    whole, frac = divmod(abs(amount_minor), 10**exponent)
    return f"{sign}{whole:,}.{frac:0{exponent}d} {currency}"


def parse_money(text: str, currency: str) -> int:
    """An amount as a person types it in the currency's major unit ("12,500" won, "10.50"
    dollars) in minor units; refused unless positive and exact to the minor unit."""
    try:
        amount = Decimal(text.strip().replace(",", ""))
    except InvalidOperation:
        raise InvalidInput(f"not an amount: {text[:40]!r}") from None
    if not amount.is_finite():
        raise InvalidInput(f"not an amount: {text[:40]!r}")
    minor = amount.scaleb(currency_exponent(currency))
    if minor != minor.to_integral_value() or minor <= 0:
        raise InvalidInput(f"{text[:40]} is not a positive amount of {currency}")
    return int(minor)


def round_half_even(numerator: int, denominator: int) -> int:
    """numerator/denominator rounded to the nearest integer, ties to even (banker's rounding)."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        return quotient + 1
    return quotient


def ceil_div(numerator: int, denominator: int) -> int:
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    return -((-numerator) // denominator)


def percent_to_bp(value: object, field: str) -> int:
    """Parse a percentage (int, str or Decimal; 0-100, at most two decimals) into basis points.

    Floats are accepted only when they are an exact decimal with two places (98.0, 95.25),
    because a BMS reports SoC as JSON numbers and those arrive as floats.
    """
    if isinstance(value, bool):
        raise InvalidInput(f"{field} must be a number between 0 and 100, got {value!r}")
    try:
        if isinstance(value, float):
            number = Decimal(repr(value))
        elif isinstance(value, int | str | Decimal):
            number = Decimal(str(value).strip())
        else:
            raise InvalidOperation
    except InvalidOperation:
        raise InvalidInput(f"{field} must be a number between 0 and 100, got {value!r}") from None
    if not number.is_finite() or number < 0 or number > 100:
        raise InvalidInput(f"{field} must be between 0 and 100, got {value}")
    scaled = number * 100
    if scaled != scaled.to_integral_value():
        raise InvalidInput(f"{field} has more than two decimals: {value}")
    return int(scaled)


def bp_to_percent(value_bp: int) -> str:
    whole, frac = divmod(value_bp, 100)
    return f"{whole}.{frac:02d}".rstrip("0").rstrip(".") if frac else f"{whole}.0"


def require_positive_int(value: object, field: str) -> int:
    """Amounts must be integers > 0; bools, floats and strings are refused, not coerced."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be a positive integer, got {value!r}")
    if value <= 0:
        raise InvalidInput(f"{field} must be a positive integer, got {value}")
    return value


def require_non_negative_int(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{field} must be a non-negative integer, got {value!r}")
    return value

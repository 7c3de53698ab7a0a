"""Generate src/swapd/domain/currencies.py: every ISO 4217 currency in use and its minor units.

Run from the repository root after upgrading Babel::

    uv run python -m scripts.gen_currencies

tests/unit/test_currencies.py recomputes the table with this module and fails until the committed
one matches, so a Babel upgrade that changes a currency cannot slip in unseen.

The source is Babel's copy of CLDR's supplemental currency data:

- The set: every code that is legal tender somewhere today (a tender period with no end date), the
  ISO 4217 fund codes CLDR lists as current non-tender money (CLF, UYW, USN, ...), and the codes ISO
  4217 still lists though CLDR has ended their tender (``ISO_LISTED_WITHOUT_TENDER``). Codes with no
  minor unit in ISO 4217 (metals, units of account, testing, "no currency") are left out: the ledger
  counts integer minor units and these have none.
- The exponent: CLDR's ``_digits`` (``babel.numbers.get_currency_precision``), except where CLDR
  deliberately differs from ISO 4217 (``ISO_MINOR_UNITS``). CLDR's digits are for display: it shows
  0 decimals where the minor unit no longer circulates, while ISO 4217 keeps the legal minor unit,
  and the ledger needs the ISO one (a payment processor bills IDR 10,000 as 1000000).

Babel is imported here, never by the domain: the CLI imports the domain and must start fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

TARGET = Path(__file__).resolve().parent.parent / "src" / "swapd" / "domain" / "currencies.py"

# ISO 4217 minor units where CLDR's digits differ (checked against ISO 4217 list one, 2024-06-25).
# Each of these CLDR shows with 0 decimals; tests/unit/test_currencies.py fails when Babel agrees
# with an entry, so that a correction no longer needed is dropped.
ISO_MINOR_UNITS: dict[str, int] = {
    "AFN": 2,  # Afghani: 100 pul
    "ALL": 2,  # Lek: 100 qindarka
    "COP": 2,  # Colombian Peso: 100 centavos
    "HUF": 2,  # Forint: 100 fillér
    "IDR": 2,  # Rupiah: 100 sen
    "IQD": 3,  # Iraqi Dinar: 1000 fils
    "IRR": 2,  # Iranian Rial: 100 dinars
    "KPW": 2,  # North Korean Won: 100 chon
    "LAK": 2,  # Lao Kip: 100 att
    "LBP": 2,  # Lebanese Pound: 100 piastres
    "MGA": 2,  # Malagasy Ariary: ISO says 2 though 1 ariary = 5 iraimbilanja
    "MMK": 2,  # Kyat: 100 pyas
    "SOS": 2,  # Somali Shilling: 100 cents
    "SYP": 2,  # Syrian Pound: 100 piastres
    "YER": 2,  # Yemeni Rial: 100 fils
}

# Still in ISO 4217 list one, but CLDR ends their tender: accepted so that every listed code is.
ISO_LISTED_WITHOUT_TENDER: dict[str, int] = {
    "CUC": 2,  # Cuban Peso Convertible: CLDR ends it 2021-06-01
    "SVC": 2,  # El Salvador Colon: CLDR ends it 2001-01-01, when the US dollar replaced it
}

# Current in CLDR but not money a ledger can count: no ISO 4217 minor unit, or not ISO at all.
NOT_MINOR_UNIT_MONEY: frozenset[str] = frozenset(
    {
        "XAG", "XAU", "XPD", "XPT",  # precious metals (troy ounces)
        "XBA", "XBB", "XBC", "XBD",  # European bond market units of account
        "XDR", "XSU", "XUA", "XAD",  # IMF SDR, Sucre, ADB unit, Arab Accounting Dinar
        "XTS", "XXX",  # reserved for testing; "no currency"
        "CNH",  # offshore renminbi: a market convention, not an ISO 4217 code
    }
)  # fmt: skip


def currencies_in_use() -> set[str]:
    """Codes with a current (open-ended) period in CLDR, tender or fund, less non-money."""
    from babel.core import get_global

    current: set[str] = set()
    for periods in get_global("territory_currencies").values():
        for code, _start, end, _tender in periods:
            if end is None:
                current.add(code)
    return (current - NOT_MINOR_UNIT_MONEY) | set(ISO_LISTED_WITHOUT_TENDER)


def iso_4217_exponents() -> dict[str, int]:
    """Every code in use and its ISO 4217 minor-unit exponent, sorted by code."""
    from babel.numbers import get_currency_precision

    exponents: dict[str, int] = {}
    for code in sorted(currencies_in_use()):
        if code in ISO_MINOR_UNITS:
            exponents[code] = ISO_MINOR_UNITS[code]
        elif code in ISO_LISTED_WITHOUT_TENDER:
            exponents[code] = ISO_LISTED_WITHOUT_TENDER[code]
        else:
            exponents[code] = get_currency_precision(code)
    return exponents


def render(exponents: dict[str, int]) -> str:
    import babel

    rows = "".join(f'    "{code}": {exponent},\n' for code, exponent in exponents.items())
    return (
        '"""ISO 4217 minor-unit exponents of every currency in use. Generated: do not edit.\n'
        "\n"
        "Regenerate with `uv run python -m scripts.gen_currencies` (from Babel "
        f"{babel.__version__}'s CLDR data,\n"
        "corrected to ISO 4217 where CLDR's display digits differ: see that script).\n"
        "tests/unit/test_currencies.py fails while this file differs from what the script computes.\n"
        '"""\n'
        "\n"
        "ISO_4217_EXPONENTS: dict[str, int] = {\n"
        f"{rows}"
        "}\n"
    )


def main() -> int:
    exponents = iso_4217_exponents()
    TARGET.write_text(render(exponents), encoding="utf-8")
    print(f"wrote {len(exponents)} currencies to {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

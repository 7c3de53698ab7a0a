"""Languages of the console, the rider app and the documents (receipts, statements): English
(the messages as written) and Korean (a Babel catalog, ``locales/ko/LC_MESSAGES/messages.po``).
The language follows the ``swapd_lang`` cookie when set (``/lang/{code}``), else the browser's
Accept-Language; numbers, money and times are formatted for it by Babel (KRW without decimals,
as its ISO 4217 exponent says)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from babel import Locale
from babel.core import UnknownLocaleError
from babel.dates import format_datetime
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal

from swapd.domain.quantities import currency_exponent

LANGUAGES = ("en", "ko")
DEFAULT = "en"
COOKIE = "swapd_lang"
_LOCALES = Path(__file__).parent / "locales"
_TERRITORY = {"en": "en_US", "ko": "ko_KR"}


@functools.cache
def _messages(language: str) -> dict[str, str]:
    """msgid -> msgstr of the language's catalog; English has none (the msgids are English)."""
    path = _LOCALES / language / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return {}
    with path.open("rb") as file:
        catalog = read_po(file, locale=language)
    return {str(m.id): str(m.string) for m in catalog if m.id and m.string and not m.fuzzy}


def catalog_ids(language: str) -> set[str]:
    return set(_messages(language))


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The language of a request: the cookie's if it names one we have, else the browser's best."""
    if cookie in LANGUAGES:
        return str(cookie)
    wanted = []
    for part in (accept_language or "").split(",")[:20]:  # bounded: a header is not a list to walk
        tag = part.split(";")[0].strip().replace("-", "_")
        if tag:
            wanted.append(tag)
    try:
        found = Locale.negotiate(wanted, list(LANGUAGES), sep="_") if wanted else None
    except (UnknownLocaleError, ValueError):
        found = None
    return found.language if found is not None else DEFAULT


@dataclass(frozen=True)
class Translator:
    """What a template needs of one language: ``_`` for text and the formatters."""

    language: str

    @property
    def locale(self) -> str:
        return _TERRITORY[self.language]

    def gettext(self, message: str) -> str:
        return _messages(self.language).get(message, message)

    def number(self, value: int) -> str:
        return format_decimal(value, locale=self.locale)

    def money(self, amount_minor: int, currency: str) -> str:
        exponent = currency_exponent(currency)
        amount = Decimal(amount_minor).scaleb(-exponent)
        return format_currency(amount, currency, locale=self.locale, currency_digits=True)

    def percent_bp(self, value_bp: int | None) -> str:
        if value_bp is None:
            return ""
        return format_decimal(Decimal(value_bp).scaleb(-2), format="#,##0.#", locale=self.locale) + "%"

    def when(self, at: datetime | None) -> str:
        if at is None:
            return ""
        return format_datetime(at, format="short", locale=self.locale)

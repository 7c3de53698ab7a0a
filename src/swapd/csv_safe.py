"""CSV that a spreadsheet opens as data, never as formulas (OWASP's CSV injection rule).

A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a
formula by Excel, LibreOffice and Google Sheets; riders choose their email and staff write memos,
so such a cell is written with a leading ``'``, which the spreadsheet shows as text. Numbers stay
numbers: an int, or a string that is a plain number (``-1500``, ``+3``, ``-0.5``), is written as
it is. Every CSV swapd writes goes through ``writer``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any, Protocol

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def cell(value: object) -> object:
    """``value`` as a CSV cell: text that would start a formula gets a leading ``'``."""
    if (
        isinstance(value, str)
        and value.startswith(_FORMULA_STARTS)
        and _PLAIN_NUMBER.fullmatch(value) is None
    ):
        return "'" + value
    return value


class _Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


class SafeWriter:
    """``csv.writer`` whose rows pass through ``cell``."""

    def __init__(self, file: _Writable, **fmtparams: Any) -> None:
        self._writer = csv.writer(file, **fmtparams)

    def writerow(self, row: Iterable[object]) -> None:
        self._writer.writerow([cell(value) for value in row])


def writer(file: _Writable, **fmtparams: Any) -> SafeWriter:
    return SafeWriter(file, **fmtparams)

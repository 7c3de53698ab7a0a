"""Packs imported from CSV (serial,model,soh,soc[,station,slot]), all or none: the one importer
behind ``swapd pack import`` and ``POST /api/v1/ops/packs/import``.

``parse`` reads the text and refuses, line by line, what can be judged without the database (a
missing serial or model, a slot that is not a whole number, too many fields, a serial or slot given
on an earlier line). ``import_rows`` then checks every remaining row against the database and the
rows before it, in one transaction, each row in a savepoint so that a refused row leaves nothing for
the next; any refused line rolls everything back, and the report names every line.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from swapd.domain.errors import DomainError, InvalidInput
from swapd.services import audit, catalog
from swapd.store.database import Database, Tx

COLUMNS = ("serial", "model", "soh", "soc", "station", "slot")
REQUIRED = frozenset({"serial", "model"})
_WHOLE = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class PackRow:
    """A line that parsed: the values as written (SoC and SoH are checked by the catalog)."""

    line: int
    serial: str
    model: str
    soh: str
    soc: str
    station: str | None
    slot: int | None


@dataclass(frozen=True, slots=True)
class ImportLine:
    """One line of an import, as reported back: ``error`` is None for a good line."""

    line: int
    serial: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Parsed:
    rows: tuple[PackRow, ...]
    refused: tuple[ImportLine, ...]  # lines refused before the database was asked


@dataclass(frozen=True, slots=True)
class ImportReport:
    imported: int  # 0 unless every line was good: an import is all or nothing
    lines: tuple[ImportLine, ...]  # every line, in file order

    @property
    def rejected(self) -> tuple[ImportLine, ...]:
        return tuple(line for line in self.lines if line.error is not None)


def parse(text: str, *, max_rows: int) -> Parsed:
    """The rows of a CSV text (a UTF-8 byte order mark is ignored; blank lines are skipped).
    Raises InvalidInput for what makes the whole file unreadable: no header, a header that does
    not name the columns, broken CSV quoting, more than ``max_rows`` rows."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    expected = ",".join(COLUMNS)
    rows: list[PackRow] = []
    refused: list[ImportLine] = []
    first_of_serial: dict[str, int] = {}
    first_of_slot: dict[tuple[str, int], int] = {}
    try:
        header = next(reader, None)
        if header is None:
            raise InvalidInput(f"the CSV is empty; expected a header line: {expected}")
        names = [name.strip().lower() for name in header]
        if (
            any(n not in COLUMNS for n in names)
            or len(set(names)) != len(names)
            or not (set(names) >= REQUIRED)
        ):
            raise InvalidInput(
                f"line 1: header {','.join(header)!r} must name the columns {expected} "
                "(serial and model required, each at most once)"
            )
        for record in reader:
            line = reader.line_num
            if not any(field.strip() for field in record):
                continue
            if len(rows) + len(refused) >= max_rows:
                raise InvalidInput(f"at most {max_rows:,} rows per import")
            if len(record) > len(names):
                error = f"{len(record)} fields, but the header names {len(names)}"
                refused.append(ImportLine(line, None, error))
                continue
            values = dict(zip(names, (field.strip() for field in record), strict=False))
            row = _row(line, values)
            if isinstance(row, ImportLine):
                refused.append(row)
                continue
            repeat = _repeat(row, first_of_serial, first_of_slot)
            if repeat is not None:
                refused.append(ImportLine(line, row.serial, repeat))
                continue
            rows.append(row)
    except csv.Error as error:
        raise InvalidInput(f"line {reader.line_num}: {error}") from None
    if not rows and not refused:
        raise InvalidInput("the CSV has no pack rows")
    return Parsed(tuple(rows), tuple(refused))


def _row(line: int, values: dict[str, str]) -> PackRow | ImportLine:
    serial, model = values.get("serial", ""), values.get("model", "")
    if not serial:
        return ImportLine(line, None, "serial is missing")
    if not model:
        return ImportLine(line, serial, "model is missing")
    slot_text = values.get("slot", "")
    if slot_text and not _WHOLE.fullmatch(slot_text):
        return ImportLine(line, serial, f"slot must be a whole number, got {slot_text!r}")
    return PackRow(
        line=line,
        serial=serial,
        model=model,
        soh=values.get("soh") or "100",
        soc=values.get("soc") or "0",
        station=values.get("station") or None,
        slot=int(slot_text) if slot_text else None,
    )


def _repeat(row: PackRow, serials: dict[str, int], slots: dict[tuple[str, int], int]) -> str | None:
    """Why the row repeats an earlier one (its serial, or its station's slot), or None."""
    first = serials.setdefault(row.serial, row.line)
    if first != row.line:
        return f"pack {row.serial} is given on line {first} already"
    if row.station is not None and row.slot is not None:
        first = slots.setdefault((row.station, row.slot), row.line)
        if first != row.line:
            return f"slot {row.slot} of station {row.station} is given on line {first} already"
    return None


class _Rejected(Exception):
    """Rolls the whole import back when any line was refused."""

    def __init__(self, lines: Sequence[ImportLine]) -> None:
        super().__init__(f"{sum(1 for line in lines if line.error)} lines refused")
        self.lines = tuple(lines)


def import_rows(
    db: Database,
    actor: str,
    parsed: Parsed,
    *,
    advance: Callable[[], None] = lambda: None,
    restart: Callable[[], None] = lambda: None,
) -> ImportReport:
    """Register every row, or none when any line is refused; audited as ``pack.import``.
    ``advance`` is called after each row and ``restart`` when the transaction starts (again, after
    a retry): a progress bar's hooks."""

    def work(tx: Tx) -> ImportReport:
        restart()
        report = list(parsed.refused)
        for row in parsed.rows:
            try:
                with tx.repo.conn.begin_nested():
                    catalog.register_pack(
                        tx,
                        row.serial,
                        row.model,
                        soh=row.soh,
                        soc=row.soc,
                        station_id=row.station,
                        slot_no=row.slot,
                    )
            except DomainError as error:
                report.append(ImportLine(row.line, row.serial, error.message))
            else:
                report.append(ImportLine(row.line, row.serial, None))
            advance()
        report.sort(key=lambda line: line.line)
        if any(line.error is not None for line in report):
            raise _Rejected(report)
        audit.record(tx, actor, "pack.import", "packs", "CSV import", {"packs": len(report)})
        return ImportReport(len(report), tuple(report))

    try:
        return db.write(work)
    except _Rejected as rejected:
        return ImportReport(0, rejected.lines)

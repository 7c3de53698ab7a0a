"""``swapd pack-model`` and ``swapd pack``: pack models, and packs registered, imported from CSV,
listed, moved and issued."""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from swapd.cli.common import (
    DatabaseOption,
    JsonOption,
    cell,
    err,
    fail,
    out,
    pct,
    print_json,
    say,
    units,
    warn,
    with_db,
)
from swapd.domain.errors import DomainError, InvalidInput
from swapd.domain.packs import Pack, PackStatus

if TYPE_CHECKING:
    from swapd.store.database import Database, Tx

pack_model_app = typer.Typer(help="Pack models: nominal energy per model.", no_args_is_help=True)
pack_app = typer.Typer(help="Packs: register, import, list, and move them.", no_args_is_help=True)


# -- pack models --------------------------------------------------------------------------------


@pack_model_app.command("add")
def pack_model_add(
    code: Annotated[str, typer.Argument(help="Model code, e.g. G2.")],
    nominal_wh: Annotated[int, typer.Option("--nominal-wh", help="Nominal energy in Wh.")],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a pack model."""
    from swapd.services import catalog

    model = with_db(database, lambda db: catalog.add_pack_model(db, code, nominal_wh))
    if as_json:
        print_json({"code": model.code, "nominal_wh": model.nominal_wh})
    else:
        say(f"pack model {model.code} added: {model.nominal_wh:,} Wh nominal")


@pack_model_app.command("list")
def pack_model_list(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """List the pack models."""
    from swapd.services import views

    lines = with_db(database, views.pack_models)
    if as_json:
        print_json(
            [{"code": m.model.code, "nominal_wh": m.model.nominal_wh, "packs": m.packs} for m in lines]
        )
        return
    table = Table("model", "nominal", "packs")
    for line in lines:
        table.add_row(cell(line.model.code), f"{line.model.nominal_wh:,} Wh", f"{line.packs:,}")
    out.print(table)


# -- packs --------------------------------------------------------------------------------------


def pack_json(pack: Pack) -> dict[str, Any]:
    return {
        "serial": pack.serial,
        "model": pack.model_code,
        "nominal_wh": pack.nominal_wh,
        "status": pack.status.value,
        "place": pack.place(),
        "station": pack.station_id,
        "slot": pack.slot_no,
        "rider": pack.rider_id,
        "soc": pct(pack.soc_bp),
        "soh": pct(pack.soh_bp),
        "deliverable_wh": pack.deliverable_wh,
        "cycle_count": pack.cycle_count,
        "reserved_swap_id": pack.reserved_swap_id,
    }


def show_pack(pack: Pack, verb: str, as_json: bool) -> None:
    if as_json:
        print_json(pack_json(pack))
    else:
        say(
            f"pack {pack.serial} ({pack.model_code}) {verb}: {pack.place()}, "
            f"SoC {pct(pack.soc_bp)} %, SoH {pct(pack.soh_bp)} %"
        )


@pack_app.command("add")
def pack_add(
    serial: Annotated[str, typer.Argument(help="The pack's serial number.")],
    model: Annotated[str, typer.Option("--model", help="Pack model code.")],
    soh: Annotated[str, typer.Option("--soh", help="State of health, %.")] = "100",
    soc: Annotated[str, typer.Option("--soc", help="State of charge, %.")] = "0",
    station: Annotated[str | None, typer.Option("--station", help="Put it in this station...")] = None,
    slot: Annotated[int | None, typer.Option("--slot", help="...in this empty slot.")] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a new pack, in the depot or straight into an empty slot."""
    from swapd.services import catalog

    pack = with_db(
        database,
        lambda db: catalog.register_pack(
            db, serial, model, soh=soh, soc=soc, station_id=station, slot_no=slot
        ),
    )
    show_pack(pack, "registered", as_json)


PACK_COLUMNS = ("serial", "model", "soh", "soc", "station", "slot")
PROGRESS_MIN_ROWS = 200
_WHOLE = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class PackRow:
    line: int
    serial: str
    model: str
    soh: str
    soc: str
    station: str | None
    slot: int | None


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    message: str


def read_pack_csv(path: Path) -> tuple[list[PackRow], list[BadRow]]:
    """Parse the file; rows that cannot even be parsed are returned as bad rows."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _parse_pack_csv(path, csv.reader(handle))
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text") from None


def _parse_pack_csv(path: Path, reader: Any) -> tuple[list[PackRow], list[BadRow]]:
    expected = ",".join(PACK_COLUMNS)
    try:
        header = next(reader, None)
        if header is None:
            raise InvalidInput(f"{path} is empty; expected a header line: {expected}")
        names = [name.strip().lower() for name in header]
        unknown = [name for name in names if name not in PACK_COLUMNS]
        if unknown or len(set(names)) != len(names) or not {"serial", "model"} <= set(names):
            raise InvalidInput(
                f"{path} line 1: header {','.join(header)!r} must name the columns {expected} "
                "(serial and model required, each at most once)"
            )
        rows: list[PackRow] = []
        bad: list[BadRow] = []
        for record in reader:
            line = reader.line_num
            if not any(field.strip() for field in record):
                continue
            if len(record) > len(names):
                bad.append(BadRow(line, f"{len(record)} fields, but the header names {len(names)}"))
                continue
            values = dict(zip(names, (field.strip() for field in record), strict=False))
            row = _pack_row(line, values)
            if isinstance(row, BadRow):
                bad.append(row)
            else:
                rows.append(row)
    except csv.Error as error:
        raise InvalidInput(f"{path} line {reader.line_num}: {error}") from None
    return rows, bad


def _pack_row(line: int, values: dict[str, str]) -> PackRow | BadRow:
    serial = values.get("serial", "")
    model = values.get("model", "")
    if not serial:
        return BadRow(line, "serial is missing")
    if not model:
        return BadRow(line, "model is missing")
    slot_text = values.get("slot", "")
    if slot_text and not _WHOLE.fullmatch(slot_text):
        return BadRow(line, f"slot must be a whole number, got {slot_text!r}")
    return PackRow(
        line=line,
        serial=serial,
        model=model,
        soh=values.get("soh") or "100",
        soc=values.get("soc") or "0",
        station=values.get("station") or None,
        slot=int(slot_text) if slot_text else None,
    )


def repeated_rows(rows: Sequence[PackRow]) -> dict[int, str]:
    """Rows that repeat an earlier row's serial or slot, by line."""
    serials: dict[str, int] = {}
    slots: dict[tuple[str, int], int] = {}
    repeats: dict[int, str] = {}
    for row in rows:
        first = serials.setdefault(row.serial, row.line)
        if first != row.line:
            repeats[row.line] = f"pack {row.serial} is given on line {first} already"
            continue
        if row.station is not None and row.slot is not None:
            first = slots.setdefault((row.station, row.slot), row.line)
            if first != row.line:
                repeats[row.line] = (
                    f"slot {row.slot} of station {row.station} is given on line {first} already"
                )
    return repeats


class _Rejected(Exception):
    """Rolls the import back: some rows were bad."""

    def __init__(self, bad: list[BadRow]) -> None:
        super().__init__(f"{len(bad)} bad rows")
        self.bad = bad


def import_packs(
    db: Database,
    rows: Sequence[PackRow],
    bad: Sequence[BadRow],
    advance: Callable[[], None] = lambda: None,
    restart: Callable[[], None] = lambda: None,
) -> int:
    """Check every row against the database and the rows before it, in one transaction: commit
    them all when every row is good, else roll back and raise ``_Rejected`` with all bad rows."""
    from swapd.services import catalog
    from swapd.store.database import Joined

    repeats = repeated_rows(rows)

    def work(tx: Tx) -> int:
        restart()
        joined = Joined(db, tx)
        found = list(bad)
        for row in rows:
            if row.line in repeats:
                found.append(BadRow(row.line, repeats[row.line]))
            else:
                try:
                    # A savepoint per row: a refused row leaves nothing behind for the next ones.
                    with tx.repo.conn.begin_nested():
                        catalog.register_pack(
                            joined,
                            row.serial,
                            row.model,
                            soh=row.soh,
                            soc=row.soc,
                            station_id=row.station,
                            slot_no=row.slot,
                        )
                except DomainError as error:
                    found.append(BadRow(row.line, error.message))
            advance()
        if found:
            raise _Rejected(sorted(found, key=lambda b: b.line))
        return len(rows)

    return db.write(work)


@pack_app.command("import")
def pack_import(
    file: Annotated[Path, typer.Argument(help="CSV with columns serial,model,soh,soc,station,slot.")],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import packs from a CSV file: every row is checked first, then all are imported or none."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    def action(db: Database) -> int | list[BadRow]:
        rows, bad = read_pack_csv(file)
        if not rows and not bad:
            raise InvalidInput(f"{file} has no pack rows")
        total = len(rows)
        try:
            if total < PROGRESS_MIN_ROWS or not err.is_terminal:
                return import_packs(db, rows, bad)
            with Progress(
                TextColumn("checking and importing packs"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            ) as progress:
                task = progress.add_task("import", total=total)
                return import_packs(
                    db,
                    rows,
                    bad,
                    advance=lambda: progress.advance(task),
                    restart=lambda: progress.reset(task, total=total),
                )
        except _Rejected as rejected:
            return rejected.bad

    result = with_db(database, action)
    if isinstance(result, int):
        if as_json:
            print_json({"file": str(file), "imported": result})
        else:
            say(f"imported {result:,} packs from {file}")
        return
    if as_json:
        print_json(
            {
                "file": str(file),
                "imported": 0,
                "bad_rows": [{"line": b.line, "error": b.message} for b in result],
            }
        )
    if not as_json:  # with --json the rows are in the JSON on stdout
        for bad_row in result:
            warn(f"{file} line {bad_row.line}: {bad_row.message}")
    fail(f"{len(result)} bad rows in {file}; nothing was imported", "bad_rows")


@pack_app.command("list")
def pack_list(
    station: Annotated[str | None, typer.Option("--station", help="Only this station's packs.")] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List packs and where each one is."""
    from swapd.services import queries

    def action(db: Database) -> list[Pack]:
        if station is None:
            return queries.all_packs(db)
        view = queries.station_view(db, station)
        return sorted(view.packs.values(), key=lambda p: p.slot_no or 0)

    packs = with_db(database, action)
    if as_json:
        print_json([pack_json(p) for p in packs])
        return
    table = Table("serial", "model", "place", "SoC %", "SoH %", "cycles", "reserved")
    for p in packs:
        table.add_row(
            cell(p.serial),
            cell(p.model_code),
            cell(p.place()),
            pct(p.soc_bp),
            pct(p.soh_bp),
            f"{p.cycle_count:,}",
            "" if p.reserved_swap_id is None else f"swap {p.reserved_swap_id}",
        )
    out.print(table)
    say(f"{len(packs):,} packs")


@pack_app.command("restock")
def pack_restock(
    serial: Annotated[str, typer.Argument(help="The pack's serial number.")],
    station: Annotated[str, typer.Option("--station", help="Station to put it in.")],
    slot: Annotated[int, typer.Option("--slot", help="An empty slot there.")],
    soc: Annotated[str, typer.Option("--soc", help="State of charge now, %.")],
    soh: Annotated[str | None, typer.Option("--soh", help="State of health now, %.")] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Put a pack from the depot (or quarantine) into an empty slot. No billing."""
    from swapd.services import catalog

    pack = with_db(database, lambda db: catalog.restock(db, station, slot, serial, soc=soc, soh=soh))
    show_pack(pack, "restocked", as_json)


def _move(serial: str, status: PackStatus, verb: str, database: str | None, as_json: bool) -> None:
    from swapd.services import catalog

    pack = with_db(database, lambda db: catalog.move_out_of_slot(db, serial, status))
    show_pack(pack, verb, as_json)


SerialArgument = Annotated[str, typer.Argument(help="The pack's serial number.")]


@pack_app.command("withdraw")
def pack_withdraw(
    serial: SerialArgument, database: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Take a pack out of its slot into the depot."""
    _move(serial, PackStatus.IN_STOCK, "withdrawn", database, as_json)


@pack_app.command("quarantine")
def pack_quarantine(
    serial: SerialArgument, database: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Take a pack out of service for inspection."""
    _move(serial, PackStatus.QUARANTINED, "quarantined", database, as_json)


@pack_app.command("retire")
def pack_retire(
    serial: SerialArgument, database: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Retire a pack for good."""
    _move(serial, PackStatus.RETIRED, "retired", database, as_json)


@pack_app.command("issue")
def pack_issue(
    serial: SerialArgument,
    rider: Annotated[str, typer.Option("--rider", help="The rider who takes the pack.")],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Hand a pack from its slot to a rider outside a swap (their first pack): same checks and
    hold as a station hand-over. Issuing it to the same rider again changes nothing."""
    from swapd.services import issue

    done = with_db(database, lambda db: issue.issue_pack(db, "cli", serial, rider))
    if as_json:
        print_json(dataclasses.asdict(done))
        return
    verb = "was already with" if done.repeated else "issued to"
    say(
        f"pack {done.serial} {verb} {done.rider_id} from slot {done.slot_no} of station "
        f"{done.station_id}: SoC {pct(done.soc_bp)} %, SoH {pct(done.soh_bp)} %, "
        f"hold {units(done.hold_units, done.unit)}; {units(done.available_units, done.unit)} available"
    )

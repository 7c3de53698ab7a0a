"""The operator's commands: pack models, packs, stations, plans, riders, cards, money, swaps, alerts.

Every command takes ``--database`` (or SWAPD_DATABASE_URL; default ./swapd.db) and ``--json``.
Errors a user can cause are one line on stderr and exit code 2, never a traceback. Money is
printed in minor units through ``format_money``; SoC and SoH as exact percentages.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from swapd.domain.decision import is_charged
from swapd.domain.errors import DomainError, InvalidInput
from swapd.domain.packs import Pack, PackStatus
from swapd.domain.plans import DEFAULT_TIME_HOLD_S, Plan, PlanKind
from swapd.domain.quantities import Unit, bp_to_percent, format_money
from swapd.domain.riders import RiderStatus, TokenType
from swapd.domain.stations import Station
from swapd.ledger.model import LedgerError
from swapd.services import app_swaps, catalog, issue, payments, queries, stations, views
from swapd.store.database import Database, Joined, Tx

T = TypeVar("T")

out = Console()
err = Console(stderr=True)

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        envvar="SWAPD_DATABASE_URL",
        help="SQLAlchemy URL or SQLite file path (default: ./swapd.db).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
HostOption = Annotated[
    str, typer.Option("--host", help="Host name or address the stations reach `swapd serve` at.")
]
PortOption = Annotated[int, typer.Option("--port", help="Port of `swapd serve`.")]
TlsOption = Annotated[bool, typer.Option("--tls", help="Stations connect with TLS (wss://).")]

# Negative numbers must reach the domain checks (and adjustments may be negative), not be taken
# for unknown options by the argument parser.
NUMBERS = {"ignore_unknown_options": True}

pack_model_app = typer.Typer(help="Pack models: nominal energy per model.", no_args_is_help=True)
pack_app = typer.Typer(help="Packs: register, import, list, and move them.", no_args_is_help=True)
station_app = typer.Typer(help="Stations: slots, credentials, what they hold.", no_args_is_help=True)
plan_app = typer.Typer(help="Plans: how payments become allowance.", no_args_is_help=True)
rider_app = typer.Typer(help="Riders: accounts, status, balances.", no_args_is_help=True)
card_app = typer.Typer(help="RFID cards of riders and staff.", no_args_is_help=True)
swap_app = typer.Typer(help="Swaps started by the operator (S02).", no_args_is_help=True)
# Top-level commands (topup, subscribe, refund, adjust, alerts): add this one without a name.
money_app = typer.Typer()


# -- errors and output --------------------------------------------------------------------------


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr, whatever the message holds and however narrow the terminal."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


@contextmanager
def clear_errors() -> Iterator[None]:
    """Turn the errors a user can cause into one line each."""
    try:
        yield
    except DomainError as error:
        fail(error.message)
    except LedgerError as error:
        fail(f"ledger refused: {error.message} ({error.code})")
    except sa.exc.OperationalError as error:
        fail(f"database unavailable: {_first_line(error.orig)}")
    except sa.exc.DBAPIError as error:
        fail(f"database refused the change: {_first_line(error.orig)}")
    except sa.exc.ArgumentError as error:
        fail(f"bad database URL: {error}")
    except OSError as error:
        fail(str(error))


def _first_line(error: object) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def with_db(database: str | None, action: Callable[[Database], T]) -> T:
    """Open (and migrate) the database, run ``action``, close it; errors become one line."""
    with clear_errors():
        db = Database.open(database)
        try:
            return action(db)
        finally:
            db.dispose()
    raise AssertionError("unreachable")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def say(text: str) -> None:
    """A line of plain output: never read as markup, never wrapped."""
    out.print(text, markup=False, highlight=False, soft_wrap=True)


def cell(value: object) -> str:
    return "" if value is None else escape(str(value))


def pct(value_bp: int) -> str:
    return bp_to_percent(value_bp)


def unit_name(unit: str, amount: int = 2) -> str:
    if unit == Unit.DELIVERIES.value:
        return "delivery" if abs(amount) == 1 else "deliveries"
    return unit


def units(amount: int, unit: str) -> str:
    return f"{amount:,} {unit_name(unit, amount)}"


def when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def station_url(station_id: str, host: str, port: int, tls: bool) -> str:
    return f"{'wss' if tls else 'ws'}://{host}:{port}/ocpp/{station_id}"


# -- pack models --------------------------------------------------------------------------------


@pack_model_app.command("add")
def pack_model_add(
    code: Annotated[str, typer.Argument(help="Model code, e.g. G2.")],
    nominal_wh: Annotated[int, typer.Option("--nominal-wh", help="Nominal energy in Wh.")],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a pack model."""
    model = with_db(database, lambda db: catalog.add_pack_model(db, code, nominal_wh))
    if as_json:
        print_json({"code": model.code, "nominal_wh": model.nominal_wh})
    else:
        say(f"pack model {model.code} added: {model.nominal_wh:,} Wh nominal")


@pack_model_app.command("list")
def pack_model_list(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """List the pack models."""
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
    for bad_row in result:
        warn(f"{file} line {bad_row.line}: {bad_row.message}")
    fail(f"{len(result)} bad rows in {file}; nothing was imported")


@pack_app.command("list")
def pack_list(
    station: Annotated[str | None, typer.Option("--station", help="Only this station's packs.")] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List packs and where each one is."""

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
    pack = with_db(database, lambda db: catalog.restock(db, station, slot, serial, soc=soc, soh=soh))
    show_pack(pack, "restocked", as_json)


def _move(serial: str, status: PackStatus, verb: str, database: str | None, as_json: bool) -> None:
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


# -- stations -----------------------------------------------------------------------------------


def _show_credentials(station: Station, password: str, url: str, as_json: bool, *, added: bool) -> None:
    if as_json:
        data: dict[str, Any] = {"station": station.id}
        if added:
            data |= {
                "slot_count": station.slot_count,
                "charged_soc": pct(station.charged_soc_bp),
                "min_soh": pct(station.min_soh_bp),
            }
        print_json(data | {"url": url, "username": station.id, "password": password})
        return
    if added:
        say(
            f"station {station.id} added: {station.slot_count} slots, charged at SoC >= "
            f"{pct(station.charged_soc_bp)} %, packs below SoH {pct(station.min_soh_bp)} % held back"
        )
    else:
        say(f"station {station.id} has a new password; the old one no longer admits it")
    say(f"OCPP URL:  {url}")
    say(f"username:  {station.id}")
    say(f"password:  {password}")
    say("The password is shown only this once: configure the station with it now.")


@station_app.command("add")
def station_add(
    station_id: Annotated[str, typer.Argument(metavar="STATION", help="Station id, e.g. ST1.")],
    slots: Annotated[int, typer.Option("--slots", help="Number of slots (2 or more).")],
    charged_soc: Annotated[
        str, typer.Option("--charged-soc", help="SoC % from which a pack is handed out.")
    ] = "90",
    min_soh: Annotated[str, typer.Option("--min-soh", help="Packs below this SoH % stay.")] = "70",
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    tls: TlsOption = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a station and print its OCPP Basic-auth password, once."""

    def action(db: Database) -> tuple[Station, str]:
        station = catalog.add_station(db, station_id, slots, charged_soc=charged_soc, min_soh=min_soh)
        return station, stations.set_password(db, station.id)

    station, password = with_db(database, action)
    url = station_url(station.id, host, port, tls)
    _show_credentials(station, password, url, as_json, added=True)


@station_app.command("password")
def station_password(
    station_id: Annotated[str, typer.Argument(metavar="STATION", help="Station id.")],
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    tls: TlsOption = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give a station a new password (rotate) and print it, once."""

    def action(db: Database) -> tuple[Station, str]:
        line = views.station(db, station_id)
        return line.station, stations.set_password(db, station_id)

    station, password = with_db(database, action)
    _show_credentials(station, password, station_url(station.id, host, port, tls), as_json, added=False)


def _set_station_enabled(station_id: str, enabled: bool, database: str | None, as_json: bool) -> None:
    with_db(database, lambda db: stations.set_enabled(db, station_id, enabled))
    if as_json:
        print_json({"station_id": station_id, "enabled": enabled})
    else:
        say(f"station {station_id} is {'in service' if enabled else 'disabled'}")


@station_app.command("disable")
def station_disable(
    station_id: Annotated[str, typer.Argument(metavar="STATION", help="Station id.")],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take a station out of service: its connections are refused (403), its swaps too."""
    _set_station_enabled(station_id, False, database, as_json)


@station_app.command("enable")
def station_enable(
    station_id: Annotated[str, typer.Argument(metavar="STATION", help="Station id.")],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Put a disabled station back in service."""
    _set_station_enabled(station_id, True, database, as_json)


def station_json(line: views.StationLine) -> dict[str, Any]:
    s = line.station
    return {
        "station": s.id,
        "enabled": s.enabled,
        "slot_count": s.slot_count,
        "charged_soc": pct(s.charged_soc_bp),
        "min_soh": pct(s.min_soh_bp),
        "packs": line.packs,
        "charged": line.charged,
        "reserved": line.reserved,
        "unavailable_slots": line.unavailable_slots,
        "password_set": line.password_set,
        "vendor": line.vendor,
        "model": line.model,
        "firmware": line.firmware,
        "booted_at": when(line.booted_at),
        "last_seen_at": when(line.last_seen_at),
    }


@station_app.command("list")
def station_list(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """List the stations with their stock."""
    lines = with_db(database, views.stations)
    if as_json:
        print_json([station_json(line) for line in lines])
        return
    table = Table("station", "slots", "packs", "charged", "reserved", "password", "last seen")
    for line in lines:
        table.add_row(
            cell(line.station.id) + ("" if line.station.enabled else " (disabled)"),
            str(line.station.slot_count),
            str(line.packs),
            str(line.charged),
            str(line.reserved),
            "set" if line.password_set else "[red]none[/]",
            cell(when(line.last_seen_at)) or "never",
        )
    out.print(table)


@station_app.command("show")
def station_show(
    station_id: Annotated[str, typer.Argument(metavar="STATION", help="Station id.")],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """A station's slots: the pack in each, its SoC, SoH and state, and reservations."""

    def action(db: Database) -> tuple[views.StationLine, queries.StationView]:
        return views.station(db, station_id), queries.station_view(db, station_id)

    line, view = with_db(database, action)
    slots = []
    for slot in view.slots:
        pack = view.packs.get(slot.pack_serial) if slot.pack_serial else None
        slots.append(
            {
                "slot": slot.slot_no,
                "state": slot.state.value,
                "pack": slot.pack_serial,
                "model": None if pack is None else pack.model_code,
                "soc": None if pack is None else pct(pack.soc_bp),
                "soh": None if pack is None else pct(pack.soh_bp),
                "ready": pack is not None and is_charged(pack, view.station),
                "reserved_swap_id": None if pack is None else pack.reserved_swap_id,
            }
        )
    if as_json:
        print_json(station_json(line) | {"slots": slots})
        return
    s = line.station
    say(
        f"station {s.id}: {s.slot_count} slots, {line.packs} packs, {line.charged} ready "
        f"(SoC >= {pct(s.charged_soc_bp)} %, SoH >= {pct(s.min_soh_bp)} %)"
        + ("" if s.enabled else ", DISABLED")
    )
    if line.booted_at is not None:
        say(
            f"{line.vendor or '?'} {line.model or '?'} firmware {line.firmware or '?'}; "
            f"booted {when(line.booted_at)}, last seen {when(line.last_seen_at)}"
        )
    table = Table("slot", "state", "pack", "model", "SoC %", "SoH %", "ready", "reserved")
    for row in slots:
        table.add_row(
            str(row["slot"]),
            cell(row["state"]),
            cell(row["pack"]),
            cell(row["model"]),
            cell(row["soc"]),
            cell(row["soh"]),
            "yes" if row["ready"] else "",
            "" if row["reserved_swap_id"] is None else f"swap {row['reserved_swap_id']}",
        )
    out.print(table)


# -- plans --------------------------------------------------------------------------------------

_PREPAID_UNIT = {
    PlanKind.PREPAID_ENERGY: Unit.ENERGY_WH,
    PlanKind.PREPAID_TIME: Unit.TIME_S,
    PlanKind.PREPAID_DELIVERIES: Unit.DELIVERIES,
}


def plan_json(plan: Plan, riders: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "plan": plan.id,
        "kind": plan.kind.value,
        "unit": plan.unit.value,
        "currency": plan.currency,
        "price_minor": plan.price_minor,
        "price": format_money(plan.price_minor, plan.currency),
        "price_units": plan.price_units,
        "granularity_s": plan.granularity_s,
        "time_hold_s": plan.time_hold_s,
        "fee_minor": plan.fee_minor,
        "fee": format_money(plan.fee_minor, plan.currency),
        "included_units": plan.included_units,
        "carry_over": plan.carry_over,
        "prorate_first_cycle": plan.prorate_first_cycle,
    }
    if riders is not None:
        data["riders"] = riders
    return data


def plan_terms(plan: Plan) -> str:
    price = f"{format_money(plan.price_minor, plan.currency)} per {units(plan.price_units, plan.unit)}"
    if not plan.is_subscription:
        return price
    overage = f"overage {price}" if plan.price_minor else "no overage"
    return (
        f"{format_money(plan.fee_minor, plan.currency)} a month for "
        f"{units(plan.included_units, plan.unit)}, {overage}"
    )


@plan_app.command("add")
def plan_add(
    plan_id: Annotated[str, typer.Argument(metavar="ID", help="Plan id.")],
    kind: Annotated[
        str,
        typer.Option("--kind", help="prepaid_energy, prepaid_time, prepaid_deliveries or subscription."),
    ],
    currency: Annotated[str, typer.Option("--currency", help="ISO 4217 code, e.g. KRW.")],
    price_minor: Annotated[
        int,
        typer.Option("--price-minor", help="Minor units buying --price-units (subscription: overage)."),
    ],
    price_units: Annotated[
        int, typer.Option("--price-units", help="Units (Wh, s or deliveries) that price buys.")
    ],
    unit: Annotated[
        str | None, typer.Option("--unit", help="Subscription unit: Wh, s or count.")
    ] = None,
    granularity_s: Annotated[int, typer.Option("--granularity-s", help="Time plans: step.")] = 60,
    time_hold_s: Annotated[
        int, typer.Option("--time-hold-s", help="Time plans: seconds held per pack out.")
    ] = DEFAULT_TIME_HOLD_S,
    fee_minor: Annotated[int, typer.Option("--fee-minor", help="Subscription: monthly fee.")] = 0,
    included_units: Annotated[
        int, typer.Option("--included-units", help="Subscription: units included per month.")
    ] = 0,
    carry_over: Annotated[
        bool, typer.Option("--carry-over/--no-carry-over", help="Subscription: carry unused units.")
    ] = True,
    prorate: Annotated[
        bool, typer.Option("--prorate/--no-prorate", help="Subscription: pro-rate the first cycle.")
    ] = True,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a plan."""

    def build() -> Plan:
        try:
            plan_kind = PlanKind(kind)
        except ValueError:
            choices = ", ".join(k.value for k in PlanKind)
            raise InvalidInput(f"unknown plan kind {kind!r}; choose one of {choices}") from None
        if plan_kind is PlanKind.SUBSCRIPTION:
            if unit is None:
                raise InvalidInput("a subscription plan needs --unit Wh, s or count")
            try:
                plan_unit = Unit(unit)
            except ValueError:
                raise InvalidInput(f"unknown unit {unit!r}; choose Wh, s or count") from None
        else:
            plan_unit = _PREPAID_UNIT[plan_kind]
            if unit is not None and unit != plan_unit.value:
                raise InvalidInput(f"a {plan_kind} plan counts in {plan_unit}, not {unit}")
        return Plan(
            id=plan_id,
            kind=plan_kind,
            unit=plan_unit,
            currency=currency,
            price_minor=price_minor,
            price_units=price_units,
            granularity_s=granularity_s,
            time_hold_s=time_hold_s,
            fee_minor=fee_minor,
            included_units=included_units,
            carry_over=carry_over,
            prorate_first_cycle=prorate,
        )

    plan = with_db(database, lambda db: catalog.add_plan(db, build()))
    if as_json:
        print_json(plan_json(plan))
    else:
        say(f"plan {plan.id} added ({plan.kind}): {plan_terms(plan)}")


@plan_app.command("list")
def plan_list(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """List the plans."""
    lines = with_db(database, views.plans)
    if as_json:
        print_json([plan_json(line.plan, line.riders) for line in lines])
        return
    table = Table("plan", "kind", "terms", "riders")
    for line in lines:
        plan = line.plan
        table.add_row(cell(plan.id), plan.kind.value, cell(plan_terms(plan)), str(line.riders))
    out.print(table)


# -- riders -------------------------------------------------------------------------------------

RiderArgument = Annotated[str, typer.Argument(metavar="RIDER", help="Rider id.")]


def _rider_result(rider_id: str, plan_id: str, status: str, vehicle_packs: int) -> dict[str, Any]:
    return {"rider": rider_id, "plan": plan_id, "status": status, "vehicle_packs": vehicle_packs}


@rider_app.command("add")
def rider_add(
    rider_id: RiderArgument,
    plan: Annotated[str, typer.Option("--plan", help="Plan id.")],
    vehicle_packs: Annotated[
        int, typer.Option("--vehicle-packs", help="Packs the vehicle takes (the most held).")
    ] = 1,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a rider on a plan."""
    rider = with_db(
        database, lambda db: catalog.add_rider(db, rider_id, plan, vehicle_packs=vehicle_packs)
    )
    if as_json:
        print_json(_rider_result(rider.id, rider.plan_id, rider.status.value, rider.vehicle_packs))
    else:
        say(f"rider {rider.id} added on plan {rider.plan_id} ({rider.vehicle_packs} pack vehicle)")


def _set_status(rider_id: str, status: RiderStatus, database: str | None, as_json: bool) -> None:
    rider = with_db(database, lambda db: catalog.set_rider_status(db, rider_id, status))
    if as_json:
        print_json(_rider_result(rider.id, rider.plan_id, rider.status.value, rider.vehicle_packs))
    else:
        say(f"rider {rider.id} is {rider.status.value}")


@rider_app.command("block")
def rider_block(
    rider_id: RiderArgument, database: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Block a rider: every swap is refused until unblocked."""
    _set_status(rider_id, RiderStatus.BLOCKED, database, as_json)


@rider_app.command("unblock")
def rider_unblock(
    rider_id: RiderArgument, database: DatabaseOption = None, as_json: JsonOption = False
) -> None:
    """Unblock a rider."""
    _set_status(rider_id, RiderStatus.ACTIVE, database, as_json)


@rider_app.command("list")
def rider_list(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """List riders with their allowance."""
    lines = with_db(database, views.riders)
    if as_json:
        print_json(
            [
                _rider_result(r.rider.id, r.rider.plan_id, r.rider.status.value, r.rider.vehicle_packs)
                | {
                    "unit": r.unit,
                    "available_units": r.available_units,
                    "held_units": r.held_units,
                    "posted_units": r.posted_units,
                    "packs_held": r.packs_held,
                }
                for r in lines
            ]
        )
        return
    table = Table("rider", "plan", "status", "available", "held", "packs")
    for r in lines:
        table.add_row(
            cell(r.rider.id),
            cell(r.rider.plan_id),
            r.rider.status.value,
            units(r.available_units, r.unit),
            units(r.held_units, r.unit),
            f"{r.packs_held}/{r.rider.vehicle_packs}",
        )
    out.print(table)


def balance_json(b: queries.RiderBalance) -> dict[str, Any]:
    held_value = views.held_value_minor(b.prepaid_minor, b.posted_units, b.held_units)
    return {
        "rider": b.rider_id,
        "plan": b.plan_id,
        "status": b.status,
        "unit": b.unit,
        "currency": b.currency,
        "posted_units": b.posted_units,
        "available_units": b.available_units,
        "available_value_minor": b.available_value_minor,
        "available_value": format_money(b.available_value_minor, b.currency),
        "held_units": b.held_units,
        "held_value_minor": held_value,
        "held_value": format_money(held_value, b.currency),
        "prepaid_minor": b.prepaid_minor,
        "prepaid": format_money(b.prepaid_minor, b.currency),
        "overdrawn_units": b.overdrawn_units,
        "receivable_minor": b.receivable_minor,
        "receivable": format_money(b.receivable_minor, b.currency),
        "packs_held": list(b.packs_held),
    }


def say_balance(b: queries.RiderBalance) -> None:
    data = balance_json(b)
    say(f"  available  {units(b.available_units, b.unit)}  (worth {data['available_value']})")
    say(f"  held       {units(b.held_units, b.unit)}  (worth {data['held_value']}) by packs out")
    say(f"  prepaid    {data['prepaid']}")
    if b.overdrawn_units or b.receivable_minor:
        say(f"  overdrawn  {units(b.overdrawn_units, b.unit)}; owed {data['receivable']}")


@rider_app.command("show")
def rider_show(
    rider_id: RiderArgument,
    swaps: Annotated[int, typer.Option("--swaps", help="How many recent swaps.")] = 10,
    transfers: Annotated[int, typer.Option("--transfers", help="How many recent transfers.")] = 10,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """A rider's plan, status, allowance (and its money value), packs held, swaps and transfers."""

    def action(
        db: Database,
    ) -> tuple[
        queries.RiderBalance,
        Plan,
        views.SubscriptionLine | None,
        list[queries.SwapRecord],
        list[views.TransferLine],
    ]:
        if swaps < 0 or transfers < 0:
            raise InvalidInput("--swaps and --transfers must not be negative")
        balance = queries.rider_balance(db, rider_id)
        return (
            balance,
            views.plan(db, balance.plan_id),
            views.subscription(db, rider_id),
            queries.recent_swaps(db, rider_id, limit=swaps),
            views.recent_transfers(db, rider_id, limit=transfers),
        )

    balance, plan, sub, swap_rows, transfer_rows = with_db(database, action)
    sub_json = (
        None
        if sub is None
        else {
            "cycle_no": sub.cycle_no,
            "cycle_start": when(sub.cycle_start),
            "cycle_end": when(sub.cycle_end),
            "carried_in_units": sub.carried_in_units,
            "consumed_units": sub.consumed_units,
        }
    )
    swaps_json = [
        {
            "swap_id": s.id,
            "station": s.station_id,
            "request_id": s.request_id,
            "state": s.state,
            "reason": s.reason,
            "at": when(s.created_at),
        }
        for s in swap_rows
    ]
    transfers_json = [
        {
            "id": x.id,
            "at": when(x.created_at),
            "code": x.code.value,
            "kind": x.kind,
            "ledger": x.ledger,
            "amount": x.amount,
            "debit": x.debit,
            "credit": x.credit,
            "actor": x.actor,
            "memo": x.memo,
            "key": x.key,
        }
        for x in transfer_rows
    ]
    if as_json:
        print_json(
            balance_json(balance)
            | {
                "kind": plan.kind.value,
                "terms": plan_terms(plan),
                "subscription": sub_json,
                "swaps": swaps_json,
                "transfers": transfers_json,
            }
        )
        return
    say(f"rider {balance.rider_id}: {balance.status}, plan {plan.id} ({plan_terms(plan)})")
    say_balance(balance)
    say(f"  packs      {', '.join(balance.packs_held) or 'none'}")
    if sub is not None:
        say(f"  cycle      {sub.cycle_no}, until {when(sub.cycle_end)}")
    if swap_rows:
        table = Table("swap", "at", "station", "state", "reason", title="recent swaps")
        for s in swap_rows:
            at = cell(when(s.created_at))
            table.add_row(str(s.id), at, cell(s.station_id), s.state, cell(s.reason))
        out.print(table)
    if transfer_rows:
        table = Table("id", "at", "code", "amount", "from", "to", "memo", title="recent transfers")
        for x in transfer_rows:
            table.add_row(
                str(x.id),
                cell(when(x.created_at)),
                f"{x.code.value} ({x.kind})",
                cell(_amount(x.amount, x.ledger)),
                cell(x.debit),
                cell(x.credit),
                cell(x.memo),
            )
        out.print(table)


def _amount(amount: int, ledger: str) -> str:
    if ledger in {u.value for u in Unit}:
        return units(amount, ledger)
    return format_money(amount, ledger)


# -- cards --------------------------------------------------------------------------------------

CARD_TYPES = (TokenType.RFID, TokenType.RFID_15693)


@card_app.command("add")
def card_add(
    token: Annotated[str, typer.Argument(help="The card's id as the station reads it.")],
    rider: Annotated[str | None, typer.Option("--rider", help="The rider the card belongs to.")] = None,
    operator: Annotated[
        bool, typer.Option("--operator", help="A staff card: restocks and withdraws, no billing.")
    ] = False,
    token_type: Annotated[
        str, typer.Option("--type", help="ISO14443 or ISO15693.")
    ] = TokenType.RFID.value,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register an RFID card for a rider (--rider) or as a staff card (--operator)."""

    def action(db: Database) -> TokenType:
        kind = next((t for t in CARD_TYPES if t.value == token_type), None)
        if kind is None:
            raise InvalidInput(f"unknown card type {token_type!r}; choose ISO14443 or ISO15693")
        if (rider is None) == (not operator):
            raise InvalidInput("give either --rider RIDER or --operator")
        catalog.add_token(db, kind, token, rider_id=rider, operator=operator)
        return kind

    kind = with_db(database, action)
    if as_json:
        print_json({"token": token, "type": kind.value, "rider": rider, "operator": operator})
    else:
        owner = "a staff card" if operator else f"rider {rider}'s card"
        say(f"card {kind.value} {token} registered as {owner}")


# -- money --------------------------------------------------------------------------------------


def sandbox_reference() -> str:
    return f"sandbox-{uuid.uuid4().hex}"


RefOption = Annotated[
    str | None,
    typer.Option("--ref", help="Payment reference (default: a new sandbox reference)."),
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept on the transfers).")]
ActorOption = Annotated[str, typer.Option("--actor", help="Who decided it.")]
KeyOption = Annotated[str, typer.Option("--key", help="Idempotency key: a repeat changes nothing.")]


@money_app.command("topup", context_settings=NUMBERS)
def topup(
    rider_id: RiderArgument,
    amount_minor: Annotated[int, typer.Argument(metavar="AMOUNT_MINOR", help="Minor units paid.")],
    ref: RefOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Staff top-up: money taken outside swapd (cash, bank transfer) becomes allowance on the
    rider's plan; no payment provider is involved."""
    reference = ref or sandbox_reference()

    def action(db: Database) -> tuple[payments.TopUp, queries.RiderBalance]:
        result = payments.top_up(db, rider_id, amount_minor, reference, actor="cli")
        return result, queries.rider_balance(db, rider_id)

    result, balance = with_db(database, action)
    if as_json:
        print_json(
            {
                "rider": rider_id,
                "payment_ref": reference,
                "amount_minor": result.amount_minor,
                "amount": format_money(result.amount_minor, result.currency),
                "units": result.units,
                "unit": result.unit,
                "repeated": result.repeated,
                "balance": balance_json(balance),
            }
        )
        return
    again = " (this reference was applied before: nothing changed)" if result.repeated else ""
    say(
        f"top-up {reference}: {format_money(result.amount_minor, result.currency)} credited "
        f"{units(result.units, result.unit)} to rider {rider_id}{again}"
    )
    say_balance(balance)


@money_app.command("subscribe")
def subscribe(
    rider_id: RiderArgument,
    ref: RefOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start the rider's subscription: the (pro-rated) first cycle's fee buys its allowance."""
    reference = ref or sandbox_reference()

    def action(db: Database) -> tuple[payments.TopUp, queries.RiderBalance]:
        result = payments.subscribe(db, rider_id, reference, actor="cli")
        return result, queries.rider_balance(db, rider_id)

    result, balance = with_db(database, action)
    if as_json:
        print_json(
            {
                "rider": rider_id,
                "payment_ref": reference,
                "fee_minor": result.amount_minor,
                "fee": format_money(result.amount_minor, result.currency),
                "units": result.units,
                "unit": result.unit,
                "repeated": result.repeated,
                "balance": balance_json(balance),
            }
        )
        return
    say(
        f"rider {rider_id} subscribed: {format_money(result.amount_minor, result.currency)} "
        f"for {units(result.units, result.unit)} this cycle"
    )
    say_balance(balance)


@money_app.command("refund", context_settings=NUMBERS)
def refund(
    rider_id: RiderArgument,
    amount_minor: Annotated[int, typer.Argument(metavar="AMOUNT", help="Minor units to pay back.")],
    reason: ReasonOption,
    actor: ActorOption,
    key: KeyOption,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pay prepaid money back; the allowance it bought leaves with it."""

    def action(db: Database) -> tuple[payments.Refund, queries.RiderBalance]:
        result = payments.refund(db, rider_id, amount_minor, reason=reason, actor=actor, key=key)
        return result, queries.rider_balance(db, rider_id)

    result, balance = with_db(database, action)
    if as_json:
        print_json(
            {
                "rider": rider_id,
                "key": key,
                "amount_minor": result.amount_minor,
                "amount": format_money(result.amount_minor, balance.currency),
                "units": result.units,
                "unit": balance.unit,
                "repeated": result.repeated,
                "balance": balance_json(balance),
            }
        )
        return
    say(
        f"refunded {format_money(result.amount_minor, balance.currency)} to rider {rider_id}; "
        f"{units(result.units, balance.unit)} of allowance left with it"
        + (" (repeat: nothing changed)" if result.repeated else "")
    )
    say_balance(balance)


@money_app.command("adjust", context_settings=NUMBERS)
def adjust(
    rider_id: RiderArgument,
    units_delta: Annotated[
        int, typer.Argument(metavar="UNITS", help="Units to add (negative: to take away).")
    ],
    reason: ReasonOption,
    actor: ActorOption,
    key: KeyOption,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Correct a rider's allowance by hand, with who and why."""

    def action(db: Database) -> tuple[payments.Adjustment, queries.RiderBalance]:
        result = payments.adjust(db, rider_id, units_delta, reason=reason, actor=actor, key=key)
        return result, queries.rider_balance(db, rider_id)

    result, balance = with_db(database, action)
    if as_json:
        print_json(
            {
                "rider": rider_id,
                "key": key,
                "units": result.units,
                "unit": result.unit,
                "repeated": result.repeated,
                "balance": balance_json(balance),
            }
        )
        return
    say(
        f"adjusted rider {rider_id} by {result.units:+,} {unit_name(result.unit, result.units)}"
        + (" (repeat: nothing changed)" if result.repeated else "")
    )
    say_balance(balance)


@money_app.command("alerts")
def alerts(
    limit: Annotated[int, typer.Option("--limit", help="How many, newest first.")] = 50,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Alerts: foreign packs, packs held by someone else, metering anomalies..."""

    def action(db: Database) -> list[dict[str, object]]:
        if limit < 1:
            raise InvalidInput(f"--limit must be 1 or more, got {limit}")
        return queries.alerts(db, limit=limit)

    rows = with_db(database, action)
    items = [
        {
            "id": r["id"],
            "at": when(r["created_at"]) if isinstance(r["created_at"], datetime) else r["created_at"],
            "kind": r["kind"],
            "station": r["station_id"],
            "pack": r["pack_serial"],
            "rider": r["rider_id"],
            "detail": r["detail"],
        }
        for r in rows
    ]
    if as_json:
        print_json(items)
        return
    if not items:
        say("no alerts")
        return
    columns = ("id", "at", "kind", "station", "pack", "rider", "detail")
    table = Table(*columns)
    for item in items:
        table.add_row(*(cell(item[k]) for k in columns))
    out.print(table)


# -- swaps --------------------------------------------------------------------------------------


@swap_app.command("request")
def swap_request(
    station: Annotated[str, typer.Option("--station", help="The station the rider stands at.")],
    rider: Annotated[str, typer.Option("--rider", help="The rider.")],
    timeout_s: Annotated[
        float, typer.Option("--timeout-s", help="Seconds to wait for the station's answer.")
    ] = 30,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start a swap for a rider (S02). Needs `swapd serve` on the same database, with the station
    connected to it. Exit 1 when the swap is refused."""

    def action(db: Database) -> app_swaps.AppSwap:
        if not 0 < timeout_s <= 600:
            raise InvalidInput(f"--timeout-s must be more than 0 and at most 600, got {timeout_s}")
        return app_swaps.request_swap(db, station, rider, timeout_s=timeout_s)

    result = with_db(database, action)
    if as_json:
        print_json(
            {
                "accepted": result.accepted,
                "reason": result.reason,
                "text": result.text,
                "station": station,
                "rider": rider,
                "request_id": result.request_id,
                "swap_id": result.swap_id,
                "slots": list(result.offered_slots),
            }
        )
    elif result.accepted:
        slots = ", ".join(str(s) for s in result.offered_slots)
        say(f"accepted: station {station} releases slot {slots} to {rider} (swap {result.swap_id})")
    else:
        say(f"refused: {result.reason}: {result.text}")
        if result.request_id is not None:
            err.print(
                f"hint: is `swapd serve` running on this database, with station {station} connected?",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    if not result.accepted:
        raise typer.Exit(1)

"""``swapd pack-model`` and ``swapd pack``: pack models, and packs registered, imported from CSV,
listed, moved and issued."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
from swapd.domain.errors import InvalidInput
from swapd.domain.packs import Pack, PackStatus

if TYPE_CHECKING:
    from swapd.store.database import Database

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
    from swapd.readmodels import packs

    lines = with_db(database, packs.pack_models)
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


def show_pack(pack: Pack, verb: str, as_json: bool) -> None:
    if as_json:
        from swapd.readmodels.packs import pack_view

        print_json(pack_view(pack))
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


PROGRESS_MIN_ROWS = 200
# A file on the operator's own machine may hold a whole fleet; an upload through the API is
# bounded lower (back_office.MAX_IMPORT_ROWS).
MAX_FILE_ROWS = 1_000_000


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

    from swapd.services import pack_import

    def read() -> pack_import.Parsed:
        try:
            text = file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput(f"{file} is not UTF-8 text") from None
        try:
            return pack_import.parse(text, max_rows=MAX_FILE_ROWS)
        except InvalidInput as error:
            raise InvalidInput(f"{file}: {error.message}") from None

    def action(db: Database) -> pack_import.ImportReport:
        parsed = read()
        total = len(parsed.rows)
        if total < PROGRESS_MIN_ROWS or not err.is_terminal:
            return pack_import.import_rows(db, "cli", parsed)
        with Progress(
            TextColumn("checking and importing packs"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task("import", total=total)
            return pack_import.import_rows(
                db,
                "cli",
                parsed,
                advance=lambda: progress.advance(task),
                restart=lambda: progress.reset(task, total=total),
            )

    report = with_db(database, action)
    if report.imported:
        if as_json:
            print_json({"file": str(file), "imported": report.imported})
        else:
            say(f"imported {report.imported:,} packs from {file}")
        return
    rejected = report.rejected
    if as_json:  # the rows are in the JSON on stdout
        print_json(
            {
                "file": str(file),
                "imported": 0,
                "bad_rows": [{"line": line.line, "error": line.error} for line in rejected],
            }
        )
    else:
        for line in rejected:
            warn(f"{file} line {line.line}: {line.error}")
    fail(f"{len(rejected)} bad rows in {file}; nothing was imported", "bad_rows")


@pack_app.command("list")
def pack_list(
    station: Annotated[str | None, typer.Option("--station", help="Only this station's packs.")] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List packs and where each one is."""
    from swapd.readmodels.packs import all_packs, pack_view
    from swapd.readmodels.stations import station_view

    def action(db: Database) -> list[Pack]:
        if station is None:
            return all_packs(db)
        view = station_view(db, station)
        return sorted(view.packs.values(), key=lambda p: p.slot_no or 0)

    packs = with_db(database, action)
    if as_json:
        print_json([pack_view(p) for p in packs])
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

"""Right-sizing and the fleet policy on the command line: ``swapd station pack-policy`` (a station's
floor and weights), ``swapd station right-sizing`` (what it saved, per station and day),
``swapd pack spread`` (wear across the fleet) and ``swapd rider right-size`` (a rider's consent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from swapd.cli.common import (
    DatabaseOption,
    JsonOption,
    fail,
    out,
    pct,
    print_json,
    run,
    say,
    with_db,
)
from swapd.domain.quantities import percent_to_bp

if TYPE_CHECKING:
    from swapd.services.pack_policy import StationPackSettings

StationArg = Annotated[str, typer.Argument(metavar="STATION", help="Station id.")]
Weight = Annotated[int | None, typer.Option(help="0..100")]


def _describe(settings: StationPackSettings) -> str:
    p = settings.policy
    floor = settings.right_size_floor_bp
    sizing = "off" if floor is None else f"down to {pct(floor)} % SoC"
    choice = (
        f"band {pct(p.soc_band_bp)} %, rest {p.rest_weight}, cycles {p.cycles_weight}, "
        f"SoH {p.soh_weight} (near retirement: within {pct(p.retirement_margin_bp)} %)"
        if p.fleet_aware
        else "fullest pack first"
    )
    return f"station {settings.station_id}: right-sizing {sizing}; pack choice {choice}"


def station_pack_policy(
    station_id: StationArg,
    floor: Annotated[
        str | None,
        typer.Option(help="Right-size down to this SoC, in % (e.g. 30); 'off' turns it off."),
    ] = None,
    preset: Annotated[str | None, typer.Option(help="off (fullest first) or balanced.")] = None,
    band: Annotated[str | None, typer.Option(help="SoC band, in %: packs within it compete.")] = None,
    rest_weight: Weight = None,
    cycles_weight: Weight = None,
    soh_weight: Weight = None,
    retirement_margin: Annotated[
        str | None, typer.Option(help="SoH within this many % of the station's minimum: worn.")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")] = "set from the CLI",
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show, or set, how a station picks the pack it offers: the right-size floor for riders
    whose allowance cannot hold a full pack, and the fleet policy's weights."""
    from swapd.services import pack_policy

    # Percentages are parsed where their errors become one line, as the database's are.
    edit = run(
        lambda: pack_policy.PackSettingsEdit(
            set_floor=floor is not None,
            floor_bp=None if floor in (None, "off") else percent_to_bp(floor, "floor"),
            preset=preset,
            soc_band_bp=None if band is None else percent_to_bp(band, "band"),
            rest_weight=rest_weight,
            cycles_weight=cycles_weight,
            soh_weight=soh_weight,
            retirement_margin_bp=(
                None if retirement_margin is None else percent_to_bp(retirement_margin, "margin")
            ),
        )
    )
    changing = edit.set_floor or edit.preset is not None or bool(edit.weights())
    settings = with_db(
        database,
        lambda db: pack_policy.edit_station_settings(db, "cli", station_id, edit, reason)
        if changing
        else pack_policy.station_settings(db, station_id),
    )
    if as_json:
        print_json(settings.to_json())
    else:
        say(_describe(settings))


def station_right_sizing(
    station_id: Annotated[str | None, typer.Option("--station", help="One station only.")] = None,
    days: Annotated[int, typer.Option(min=1, max=92, help="The last N days (UTC).")] = 30,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Per station and day: swaps right-sizing saved, questions asked and declined, and the
    credit refusals left."""
    from swapd.readmodels import right_sizing

    until = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    since = until - timedelta(days=days)
    lines = with_db(
        database, lambda db: right_sizing.station_days(db, since, until, station_id=station_id)
    )
    if as_json:
        print_json([line.to_json() for line in lines])
        return
    table = Table("station", "day", "saved swaps", "asked", "declined", "credit refusals")
    for line in lines:
        table.add_row(
            line.station_id,
            line.day.isoformat(),
            f"{line.saved_swaps:,}",
            f"{line.asked:,}",
            f"{line.declined:,}",
            f"{line.no_credit_refusals:,}",
        )
    out.print(table)


def pack_spread(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Wear across the fleet: cycles (hand-overs) min, max and spread; SoH percentiles."""
    from swapd.readmodels import right_sizing

    spread = with_db(database, right_sizing.fleet_spread)
    if as_json:
        print_json(spread.to_json())
        return
    say(
        f"{spread.packs:,} packs: cycles {spread.cycles_min:,}-{spread.cycles_max:,} "
        f"(spread {spread.cycles_spread:,}, mean {spread.cycles_mean:.1f}, "
        f"stdev {spread.cycles_stdev:.1f}); SoH p10 {pct(spread.soh_p10_bp)} %, "
        f"p50 {pct(spread.soh_p50_bp)} %, p90 {pct(spread.soh_p90_bp)} %"
    )


def rider_right_size(
    rider_id: Annotated[str, typer.Argument(metavar="RIDER", help="Rider id.")],
    consent: Annotated[
        str | None, typer.Argument(help="always, ask or never; leave out to show it.")
    ] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show, or set, whether a rider takes a right-sized pack (one with less charge that the
    allowance covers) when a full one is beyond it: always, ask (the default) or never."""
    from swapd.services import pack_policy

    if consent is not None and consent not in ("always", "ask", "never"):
        fail(f"consent must be always, ask or never, got {consent!r}")
    chosen = with_db(
        database,
        lambda db: pack_policy.rider_consent(db, rider_id)
        if consent is None
        else pack_policy.set_rider_consent(db, rider_id, consent),
    )
    if as_json:
        print_json({"rider_id": rider_id, "right_size_consent": chosen.value})
    else:
        say(f"rider {rider_id}: right-sized packs {chosen.value}")

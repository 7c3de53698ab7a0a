"""``swapd station``: stations, their slots, credentials and what they hold."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from swapd.cli.common import (
    DatabaseOption,
    JsonOption,
    cell,
    out,
    pct,
    print_json,
    say,
    when,
    with_db,
)
from swapd.domain.decision import is_charged
from swapd.domain.errors import InvalidInput
from swapd.domain.stations import Station

if TYPE_CHECKING:
    from swapd.readmodels.stations import StationInfo, StationView
    from swapd.store.database import Database

station_app = typer.Typer(help="Stations: slots, credentials, what they hold.", no_args_is_help=True)

HostOption = Annotated[
    str, typer.Option("--host", help="Host name or address the stations reach `swapd serve` at.")
]
PortOption = Annotated[int, typer.Option("--port", help="Port of `swapd serve`.")]
TlsOption = Annotated[bool, typer.Option("--tls", help="Stations connect with TLS (wss://).")]


def station_url(station_id: str, host: str, port: int, tls: bool) -> str:
    return f"{'wss' if tls else 'ws'}://{host}:{port}/ocpp/{station_id}"


# -- coordinates: WGS84 decimal degrees as text <-> whole millionths of a degree -----------------

MICRODEG_PER_DEG = 1_000_000
MAX_DECIMALS = 6
_DEGREES = re.compile(r"([+-]?)([0-9]+)(?:\.([0-9]+))?")


def parse_degrees(text: str, option: str, limit_deg: int) -> int:
    """``text`` (decimal degrees, e.g. "-33.868820") in millionths of a degree, exactly: no
    float on the way, so what the operator typed is what is stored."""
    match = _DEGREES.fullmatch(text.strip())
    if match is None:
        raise InvalidInput(f"{option} must be decimal degrees such as 37.5665, got {text!r}")
    sign, whole, decimals = match[1], match[2], match[3] or ""
    if len(decimals) > MAX_DECIMALS:
        raise InvalidInput(
            f"{option} takes at most {MAX_DECIMALS} decimals (a millionth of a degree), got {text}"
        )
    microdeg = int(whole) * MICRODEG_PER_DEG + int(decimals.ljust(MAX_DECIMALS, "0"))
    if microdeg > limit_deg * MICRODEG_PER_DEG:
        raise InvalidInput(f"{option} must be between -{limit_deg} and {limit_deg}, got {text}")
    return -microdeg if sign == "-" else microdeg


def coordinates(lat: str | None, lon: str | None) -> tuple[int | None, int | None]:
    if (lat is None) != (lon is None):
        raise InvalidInput("give both --lat and --lon, or neither")
    if lat is None or lon is None:
        return None, None
    return parse_degrees(lat, "--lat", 90), parse_degrees(lon, "--lon", 180)


def degrees(microdeg: int | None) -> str | None:
    """Millionths of a degree as decimal degrees, exactly (trailing zeros dropped)."""
    if microdeg is None:
        return None
    whole, fraction = divmod(abs(microdeg), MICRODEG_PER_DEG)
    decimals = f"{fraction:06d}".rstrip("0") or "0"
    return f"{'-' if microdeg < 0 else ''}{whole}.{decimals}"


def place_json(info: StationInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "lat": degrees(info.lat_microdeg),
        "lon": degrees(info.lon_microdeg),
        "lat_microdeg": info.lat_microdeg,
        "lon_microdeg": info.lon_microdeg,
    }


def place_text(info: StationInfo) -> str:
    """ "Main St depot at 37.5665, 126.978" (or what of it is known)."""
    where = (
        ""
        if info.lat_microdeg is None
        else f"{degrees(info.lat_microdeg)}, {degrees(info.lon_microdeg)}"
    )
    if info.name and where:
        return f"{info.name} at {where}"
    return info.name or where


def _show_credentials(
    station: Station,
    password: str,
    url: str,
    as_json: bool,
    *,
    added: StationInfo | None = None,
) -> None:
    """``added``: the new station's line, for a station just added (else a new password)."""
    if as_json:
        data: dict[str, Any] = {"station": station.id}
        if added is not None:
            data |= place_json(added) | {
                "slot_count": station.slot_count,
                "charged_soc": pct(station.charged_soc_bp),
                "min_soh": pct(station.min_soh_bp),
            }
        print_json(data | {"url": url, "username": station.id, "password": password})
        return
    if added is not None:
        place = place_text(added)
        say(
            f"station {station.id} added{f' ({place})' if place else ''}: "
            f"{station.slot_count} slots, charged at SoC >= {pct(station.charged_soc_bp)} %, "
            f"packs below SoH {pct(station.min_soh_bp)} % held back"
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
    name: Annotated[str | None, typer.Option("--name", help="What riders see it called.")] = None,
    lat: Annotated[
        str | None, typer.Option("--lat", help="Latitude, decimal degrees (WGS84), e.g. 37.5665.")
    ] = None,
    lon: Annotated[
        str | None, typer.Option("--lon", help="Longitude, decimal degrees, e.g. 126.978.")
    ] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a station and print its OCPP Basic-auth password, once. With --lat and --lon riders
    find it among the stations near them."""
    from swapd.readmodels import stations
    from swapd.services import back_office

    def action(db: Database) -> tuple[StationInfo, str]:
        lat_microdeg, lon_microdeg = coordinates(lat, lon)
        password = back_office.create_station(
            db,
            "cli",
            station_id,
            slots,
            charged_soc=charged_soc,
            min_soh=min_soh,
            name=name,
            lat_microdeg=lat_microdeg,
            lon_microdeg=lon_microdeg,
        )
        return stations.station(db, station_id), password

    info, password = with_db(database, action)
    station = info.line.station
    url = station_url(station.id, host, port, tls)
    _show_credentials(station, password, url, as_json, added=info)


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
    from swapd.readmodels.stations import station_line
    from swapd.services import stations

    def action(db: Database) -> tuple[Station, str]:
        line = station_line(db, station_id)
        return line.station, stations.set_password(db, station_id)

    station, password = with_db(database, action)
    _show_credentials(station, password, station_url(station.id, host, port, tls), as_json)


def _set_station_enabled(station_id: str, enabled: bool, database: str | None, as_json: bool) -> None:
    from swapd.services import stations

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


@station_app.command("list")
def station_list(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """List the stations with their stock."""
    from swapd.readmodels import stations

    infos = with_db(database, stations.stations)
    if as_json:
        print_json([stations.station_line_view(info) for info in infos])
        return
    table = Table("station", "place", "slots", "packs", "charged", "reserved", "password", "last seen")
    for info in infos:
        line = info.line
        table.add_row(
            cell(line.station.id) + ("" if line.station.enabled else " (disabled)"),
            cell(place_text(info)),
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
    from swapd.readmodels import stations

    def action(db: Database) -> tuple[StationInfo, StationView]:
        return stations.station(db, station_id), stations.station_view(db, station_id)

    info, view = with_db(database, action)
    line = info.line
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
        print_json(stations.station_line_view(info) | {"slots": slots})
        return
    s = line.station
    place = f" ({place_text(info)})" if place_text(info) else ""
    say(
        f"station {s.id}{place}: {s.slot_count} slots, {line.packs} packs, {line.charged} ready "
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


@station_app.command("local-list")
def station_local_list(
    station_id: Annotated[str, typer.Argument(metavar="STATION", help="Station id.")],
    full: Annotated[
        bool, typer.Option("--full", help="Send the whole list, not only what changed.")
    ] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send a station its local authorization list, for swaps while it cannot reach swapd.

    The differences since the list it last accepted (all of it the first time, or with --full),
    in as many SendLocalList messages as it takes. From then on `swapd serve` keeps the list
    current. The station must be connected to a running `swapd serve`."""
    from dataclasses import asdict

    from swapd.services import local_lists

    result = with_db(
        database, lambda db: local_lists.push(db, station_id, full=full, requested_by="cli")
    )
    if as_json:
        print_json(asdict(result))
        return
    if not result.messages:
        say(f"{station_id}'s list is current: version {result.version}, {result.entries:,} entries")
        return
    say(
        f"{station_id}: {result.update_type} update, {result.sent_entries:,} entries in "
        f"{result.messages} message(s); list version {result.version}, {result.entries:,} entries"
    )

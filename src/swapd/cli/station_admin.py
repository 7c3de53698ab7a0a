"""``swapd station reset|availability|trigger|variables|report|firmware|logs|unlock|message|
commands|inventory``: managing a station over OCPP 2.1 from the command line.

Each command goes through the server process that holds the station's socket (the command
queue in the database), so ``swapd serve`` must be running. A station that is not connected
is refused at once, unless ``--queue`` gives the time to wait for it to connect.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from swapd.cli.common import DatabaseOption, JsonOption, cell, fail, out, print_json, with_db

if TYPE_CHECKING:
    from swapd.services.station_management import CommandRecord
    from swapd.store.database import Database

StationArg = Annotated[str, typer.Argument(metavar="STATION", help="Station id.")]
QueueOption = Annotated[
    str | None,
    typer.Option(
        "--queue",
        metavar="DURATION",
        help="If the station is not connected, queue the command this long (90s, 10m, 2h, 1d) "
        "instead of refusing it.",
    ),
]
SlotOption = Annotated[
    int | None, typer.Option("--slot", help="Slot number (default: the whole station).")
]
BY = "cli"

variables_app = typer.Typer(help="Read or change a station's OCPP variables.", no_args_is_help=True)


def _queue_s(queue: str | None) -> float:
    if queue is None:
        return 0.0
    from swapd.domain.errors import InvalidInput
    from swapd.services.station_management import parse_duration_s

    try:
        return parse_duration_s(queue)
    except InvalidInput as error:
        fail(f"--queue: {error.message}")


def _show(record: CommandRecord, as_json: bool) -> None:
    from swapd.services.station_management import command_view

    if as_json:
        print_json(command_view(record))
        return
    what = f"{record.station_id} {record.action} (command {record.id})"
    if record.state == "pending" and record.queued:
        out.print(f"{what}: queued until {record.expires_at:%Y-%m-%d %H:%M} UTC", highlight=False)
        return
    if record.state == "answered":
        status = record.answer_status
        out.print(f"{what}: {status or 'answered'}", highlight=False)
        detail = {k: v for k, v in (record.response or {}).items() if k != "status"}
        if detail:
            out.print(json.dumps(detail, ensure_ascii=False, indent=2), highlight=False)
        if status not in (None, "Accepted", "Scheduled", "Unlocked"):
            raise typer.Exit(1)
        return
    fail(f"{what}: {record.state}: {record.error or 'no answer'}", record.state)


def _run(database: str | None, as_json: bool, action: Any) -> None:
    record = with_db(database, action)
    _show(record, as_json)


def station_reset(
    station_id: StationArg,
    hard: Annotated[
        bool, typer.Option("--hard", help="At once, even mid-swap (else when idle).")
    ] = False,
    queue: QueueOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reset a station: when no swap is under way, or at once with --hard."""
    from swapd.services import station_management as manage

    queue_s = _queue_s(queue)
    _run(
        database,
        as_json,
        lambda db: manage.reset(db, station_id, hard=hard, requested_by=BY, queue_s=queue_s),
    )


def station_availability(
    station_id: StationArg,
    status: Annotated[
        str, typer.Argument(metavar="operative|inoperative", help="The new availability.")
    ],
    slot: SlotOption = None,
    queue: QueueOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take a slot (or the station) out of service, or back in. A slot out of service is never
    offered, from the moment this runs."""
    from swapd.services import station_management as manage

    if status not in ("operative", "inoperative"):
        fail(f"availability is operative or inoperative, not {status!r}")
    queue_s = _queue_s(queue)

    def action(db: Database) -> CommandRecord:
        return manage.change_availability(
            db,
            station_id,
            operative=status == "operative",
            slot_no=slot,
            requested_by=BY,
            queue_s=queue_s,
        )

    _run(database, as_json, action)


def station_trigger(
    station_id: StationArg,
    what: Annotated[
        str,
        typer.Argument(
            metavar="status|boot|heartbeat|meter|firmware|log", help="The message to ask for."
        ),
    ],
    slot: SlotOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ask the station to send a message now (TriggerMessage)."""
    from swapd.services import station_management as manage

    _run(
        database, as_json, lambda db: manage.trigger(db, station_id, what, requested_by=BY, slot_no=slot)
    )


@variables_app.command("get")
def variables_get(
    station_id: StationArg,
    names: Annotated[
        list[str], typer.Argument(metavar="COMPONENT.VARIABLE...", help="Variables to read.")
    ],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Read variables (GetVariables), e.g. OCPPCommCtrlr.HeartbeatInterval."""
    from swapd.services import station_management as manage

    def action(db: Database) -> CommandRecord:
        parsed = [manage.parse_variable(n) for n in names]
        return manage.get_variables(db, station_id, [(c, v) for c, v, _ in parsed], requested_by=BY)

    record = with_db(database, action)
    if as_json or record.response is None:
        _show(record, as_json)
        return
    table = Table("component", "variable", "status", "value")
    for result in record.response.get("getVariableResult", []):
        table.add_row(
            cell(result["component"]["name"]),
            cell(result["variable"]["name"]),
            cell(result.get("attributeStatus", "")),
            cell(str(result.get("attributeValue", ""))),
        )
    out.print(table)


@variables_app.command("set")
def variables_set(
    station_id: StationArg,
    values: Annotated[
        list[str], typer.Argument(metavar="COMPONENT.VARIABLE=VALUE...", help="Variables to change.")
    ],
    queue: QueueOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change variables (SetVariables), e.g. OCPPCommCtrlr.HeartbeatInterval=120."""
    from swapd.domain.errors import InvalidInput
    from swapd.services import station_management as manage

    queue_s = _queue_s(queue)

    def action(db: Database) -> CommandRecord:
        triples = []
        for text in values:
            component, variable, value = manage.parse_variable(text)
            if value is None:
                raise InvalidInput(f"give a value: {text}=...")
            triples.append((component, variable, value))
        return manage.set_variables(db, station_id, triples, requested_by=BY, queue_s=queue_s)

    record = with_db(database, action)
    if as_json or record.response is None:
        _show(record, as_json)
        return
    table = Table("component", "variable", "status")
    for result in record.response.get("setVariableResult", []):
        table.add_row(
            cell(result["component"]["name"]),
            cell(result["variable"]["name"]),
            cell(result["attributeStatus"]),
        )
    out.print(table)


def station_report(
    station_id: StationArg,
    kind: Annotated[str, typer.Option("--kind", help="full, config or summary.")] = "full",
    queue: QueueOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Ask for a base report (GetBaseReport); the station's NotifyReport becomes its inventory
    (swapd station inventory)."""
    from swapd.services import station_management as manage

    queue_s = _queue_s(queue)
    _run(
        database,
        as_json,
        lambda db: manage.base_report(db, station_id, kind=kind, requested_by=BY, queue_s=queue_s),
    )


def station_firmware(
    station_id: StationArg,
    url: Annotated[str, typer.Option("--url", help="Where the station downloads the firmware.")],
    at: Annotated[
        str | None,
        typer.Option("--at", help="Download from this time on (ISO 8601 with zone; default now)."),
    ] = None,
    retries: Annotated[int | None, typer.Option("--retries", min=0, max=100)] = None,
    queue: QueueOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Update a station's firmware (UpdateFirmware); its progress shows in `swapd station commands`."""
    from swapd.services import station_management as manage

    retrieve_at = _parse_at(at)
    queue_s = _queue_s(queue)
    _run(
        database,
        as_json,
        lambda db: manage.update_firmware(
            db,
            station_id,
            url=url,
            retrieve_at=retrieve_at,
            retries=retries,
            requested_by=BY,
            queue_s=queue_s,
        ),
    )


def station_logs(
    station_id: StationArg,
    url: Annotated[str, typer.Option("--url", help="Where the station uploads its log.")],
    security: Annotated[
        bool, typer.Option("--security", help="The security log (else diagnostics).")
    ] = False,
    queue: QueueOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fetch a station's log (GetLog): it uploads to --url; see `swapd station commands`."""
    from swapd.services import station_management as manage

    queue_s = _queue_s(queue)
    _run(
        database,
        as_json,
        lambda db: manage.get_log(
            db, station_id, url=url, security=security, requested_by=BY, queue_s=queue_s
        ),
    )


def station_unlock(
    station_id: StationArg,
    slot: Annotated[int, typer.Option("--slot", help="The stuck slot.")],
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Unlock a stuck slot (UnlockConnector)."""
    from swapd.services import station_management as manage

    _run(database, as_json, lambda db: manage.unlock(db, station_id, slot, requested_by=BY))


def station_message(
    station_id: StationArg,
    text: Annotated[str, typer.Argument(help="The notice (up to 512 characters).")],
    minutes: Annotated[
        int | None, typer.Option("--minutes", help="Show it this long (default: until replaced).")
    ] = None,
    queue: QueueOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a notice on the station's screen (SetDisplayMessage)."""
    from swapd.services import station_management as manage

    queue_s = _queue_s(queue)
    _run(
        database,
        as_json,
        lambda db: manage.display_message(
            db,
            station_id,
            text,
            minutes=minutes,
            requested_by=BY,
            now=datetime.now(UTC),
            queue_s=queue_s,
        ),
    )


def station_commands(
    station_id: StationArg,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 20,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """The commands sent to a station, newest first, with answers and later statuses."""
    from swapd.services import station_management as manage

    records = with_db(database, lambda db: manage.commands_of(db, station_id, limit=limit))
    if as_json:
        print_json([manage.command_view(r) for r in records])
        return
    table = Table("id", "sent", "action", "by", "state", "answer", "status")
    for r in records:
        table.add_row(
            str(r.id),
            f"{r.created_at:%Y-%m-%d %H:%M:%S}",
            cell(r.action),
            cell(r.requested_by or ""),
            cell(r.state + (" (queued)" if r.queued and r.state == "pending" else "")),
            cell(r.answer_status or (r.error or "")),
            cell(r.status or ""),
        )
    out.print(table)


def station_inventory(
    station_id: StationArg,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """The station's variables from its last base report (swapd station report)."""
    from swapd.services import station_management as manage

    rows = with_db(database, lambda db: manage.inventory(db, station_id))
    if as_json:
        print_json([manage.variable_view(v) for v in rows])
        return
    if not rows:
        out.print(
            f"no inventory for {station_id} yet: ask for one with `swapd station report {station_id}`"
        )
        return
    table = Table("component", "evse", "variable", "type", "value", "mutability")
    for v in rows:
        table.add_row(
            cell(v.component),
            "" if v.evse_id is None else str(v.evse_id),
            cell(v.variable),
            cell(v.attribute_type),
            cell(v.value or ""),
            cell(v.mutability or ""),
        )
    out.print(table)


def _parse_at(at: str | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(at)
    except ValueError:
        fail(f"--at is an ISO 8601 time like 2026-12-24T03:00Z, not {at!r}")
    if parsed.tzinfo is None:
        fail("--at needs a time zone (Z or +09:00)")
    return parsed


def register(station_app: typer.Typer) -> None:
    """Add the management commands to ``swapd station``."""
    station_app.command("reset")(station_reset)
    station_app.command("availability")(station_availability)
    station_app.command("trigger")(station_trigger)
    station_app.add_typer(variables_app, name="variables")
    station_app.command("report")(station_report)
    station_app.command("inventory")(station_inventory)
    station_app.command("firmware")(station_firmware)
    station_app.command("logs")(station_logs)
    station_app.command("unlock")(station_unlock)
    station_app.command("message")(station_message)
    station_app.command("commands")(station_commands)

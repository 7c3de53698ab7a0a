"""Managing stations over OCPP 2.1: the requests an operator sends (reset, availability, trigger,
variables, base report, firmware, logs, unlock, display message, local list version), each
recorded with who asked, the station's answer and the status notifications that follow.

Each use case builds its request in the wire's casing and hands it to the command queue
(swapd.services.station_commands), which checks it against the schema and refuses it at once
when the station is not connected, unless the operator queues it (``queue_s`` > 0): then it is
sent when the station connects, or expires. A request sent now is waited for up to ``wait_s``;
a queued one returns at once, pending. Nothing here waits without a bound.

Notifications a station sends later (FirmwareStatusNotification, LogStatusNotification,
NotifyReport) are matched to the command by their requestId; the latest status is kept on the
command, the firmware status on the station too, and a base report becomes the station's
inventory (``station_variables``), replaced by the next one.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from swapd.domain.errors import InvalidInput, NotFound
from swapd.services import station_commands as commands
from swapd.store import schema as t
from swapd.store.database import Database, Transactional, Tx

DEFAULT_WAIT_S = 30.0
MAX_VARIABLES = 50  # per GetVariables/SetVariables request: stations commonly take 50 or more
MAX_MESSAGE_CHARS = 512  # SetDisplayMessage: the schema's bound on a message's content
MAX_MESSAGE_MINUTES = 7 * 24 * 60
MAX_URL_CHARS = 2000  # UpdateFirmware location / GetLog remoteLocation: the schemas' bound is 2000
MAX_NOTIFICATIONS_LISTED = 200
_REQUEST_ID_SPAN = 2**31 - 2  # requestId is an OCPP integer: 1 .. 2^31 - 1

TRIGGERS = {
    "status": "StatusNotification",
    "boot": "BootNotification",
    "heartbeat": "Heartbeat",
    "meter": "MeterValues",
    "firmware": "FirmwareStatusNotification",
    "log": "LogStatusNotification",
}
REPORTS = {"full": "FullInventory", "config": "ConfigurationInventory", "summary": "SummaryInventory"}
# The commands a station reports on later, and the notification that carries the report.
_FOLLOWED_BY = {
    "UpdateFirmware": "FirmwareStatusNotification",
    "GetLog": "LogStatusNotification",
    "GetBaseReport": "NotifyReport",
}
_COMMAND_OF = {notification: command for command, notification in _FOLLOWED_BY.items()}


@dataclass(frozen=True, slots=True)
class CommandRecord:
    id: int
    station_id: str
    action: str
    payload: dict[str, Any]
    state: str
    response: dict[str, Any] | None
    error: str | None
    requested_by: str | None
    queued: bool
    request_id: int | None
    status: str | None
    created_at: datetime
    expires_at: datetime
    updated_at: datetime

    @property
    def answer_status(self) -> str | None:
        """The station's answer in one word (``status`` of most responses), if it answered."""
        if self.response is None:
            return None
        status = self.response.get("status")
        return status if isinstance(status, str) else None


@dataclass(frozen=True, slots=True)
class Variable:
    key: str
    component: str
    variable: str
    evse_id: int | None
    attribute_type: str
    value: str | None
    mutability: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    action: str
    request_id: int | None
    status: str | None
    payload: dict[str, Any]
    received_at: datetime


def _new_request_id() -> int:
    return 1 + secrets.randbelow(_REQUEST_ID_SPAN)


# -- sending ---------------------------------------------------------------------------------------


def send(
    db: Database,
    station_id: str,
    action: str,
    payload: dict[str, Any],
    *,
    requested_by: str | None,
    queue_s: float = 0.0,
    wait_s: float = DEFAULT_WAIT_S,
    request_id: int | None = None,
) -> CommandRecord:
    """Queue the request and, unless it waits for the station to connect, wait for the answer."""
    command_id = commands.enqueue(
        db,
        station_id,
        action,
        payload,
        timeout_s=wait_s,
        queue_s=queue_s,
        requested_by=requested_by,
        request_id=request_id,
    )
    return _answer(db, command_id, wait_s)


def _answer(db: Database, command_id: int, wait_s: float) -> CommandRecord:
    record = command(db, command_id)
    if not record.queued:
        commands.wait_for(db, command_id, timeout_s=wait_s)
        record = command(db, command_id)
    return record


def reset(
    db: Database, station_id: str, *, hard: bool, requested_by: str | None, queue_s: float = 0.0
) -> CommandRecord:
    """Reset: at once (``hard``), or when no swap is under way (OnIdle)."""
    payload = {"type": "Immediate" if hard else "OnIdle"}
    return send(db, station_id, "Reset", payload, requested_by=requested_by, queue_s=queue_s)


def change_availability(
    db: Database,
    station_id: str,
    *,
    operative: bool,
    slot_no: int | None,
    requested_by: str | None,
    queue_s: float = 0.0,
) -> CommandRecord:
    """Take a slot (or the whole station) out of service, or back in. swapd stops offering the
    slot's packs as soon as the command is queued, before the station answers: the operator's
    word is the intent, and a pack must not be offered from a slot being taken out meanwhile.
    A command refused (the station away and nothing queued) changes nothing."""
    payload: dict[str, Any] = {"operationalStatus": "Operative" if operative else "Inoperative"}
    if slot_no is not None:
        payload["evse"] = {"id": slot_no}
    _check_slot(db, station_id, slot_no)
    command_id = commands.enqueue(
        db,
        station_id,
        "ChangeAvailability",
        payload,
        timeout_s=DEFAULT_WAIT_S,
        queue_s=queue_s,
        requested_by=requested_by,
    )
    # Only once the command is taken (a refused one changes nothing), and before it is sent.
    set_operative(db, station_id, slot_no, operative)
    return _answer(db, command_id, DEFAULT_WAIT_S)


def trigger(
    db: Database, station_id: str, what: str, *, requested_by: str | None, slot_no: int | None = None
) -> CommandRecord:
    requested = TRIGGERS.get(what)
    if requested is None:
        raise InvalidInput(f"trigger one of {', '.join(TRIGGERS)}, not {what!r}")
    payload: dict[str, Any] = {"requestedMessage": requested}
    if slot_no is not None:
        _check_slot(db, station_id, slot_no)
        payload["evse"] = {"id": slot_no}
    return send(db, station_id, "TriggerMessage", payload, requested_by=requested_by)


def parse_variable(text: str) -> tuple[str, str, str | None]:
    """``Component.Variable`` or ``Component.Variable=value`` (the value may hold anything)."""
    name, sep, value = text.partition("=")
    component, dot, variable = name.partition(".")
    if not dot or not component or not variable:
        raise InvalidInput(f"name a variable as Component.Variable, not {name!r}")
    return component.strip(), variable.strip(), (value if sep else None)


def get_variables(
    db: Database, station_id: str, names: Sequence[tuple[str, str]], *, requested_by: str | None
) -> CommandRecord:
    _check_count(names)
    data = [{"component": {"name": c}, "variable": {"name": v}} for c, v in names]
    return send(db, station_id, "GetVariables", {"getVariableData": data}, requested_by=requested_by)


def set_variables(
    db: Database,
    station_id: str,
    values: Sequence[tuple[str, str, str]],
    *,
    requested_by: str | None,
    queue_s: float = 0.0,
) -> CommandRecord:
    _check_count(values)
    data = [
        {"attributeValue": value, "component": {"name": c}, "variable": {"name": v}}
        for c, v, value in values
    ]
    return send(
        db,
        station_id,
        "SetVariables",
        {"setVariableData": data},
        requested_by=requested_by,
        queue_s=queue_s,
    )


def base_report(
    db: Database, station_id: str, *, kind: str = "full", requested_by: str | None, queue_s: float = 0.0
) -> CommandRecord:
    """GetBaseReport; the station then sends NotifyReport parts, stored as its inventory."""
    base = REPORTS.get(kind)
    if base is None:
        raise InvalidInput(f"report one of {', '.join(REPORTS)}, not {kind!r}")
    request_id = _new_request_id()
    payload = {"requestId": request_id, "reportBase": base}
    return send(
        db,
        station_id,
        "GetBaseReport",
        payload,
        requested_by=requested_by,
        queue_s=queue_s,
        request_id=request_id,
    )


def update_firmware(
    db: Database,
    station_id: str,
    *,
    url: str,
    retrieve_at: datetime,
    requested_by: str | None,
    retries: int | None = None,
    queue_s: float = 0.0,
) -> CommandRecord:
    """UpdateFirmware: the station downloads ``url`` from ``retrieve_at`` on; its progress
    arrives as FirmwareStatusNotification, tracked on the command and on the station."""
    _check_url(url)
    if retrieve_at.tzinfo is None:
        raise InvalidInput("the retrieve time needs a time zone")
    request_id = _new_request_id()
    firmware = {"location": url, "retrieveDateTime": _iso(retrieve_at)}
    payload: dict[str, Any] = {"requestId": request_id, "firmware": firmware}
    if retries is not None:
        payload["retries"] = retries
    return send(
        db,
        station_id,
        "UpdateFirmware",
        payload,
        requested_by=requested_by,
        queue_s=queue_s,
        request_id=request_id,
    )


def get_log(
    db: Database,
    station_id: str,
    *,
    url: str,
    security: bool = False,
    requested_by: str | None,
    queue_s: float = 0.0,
) -> CommandRecord:
    """GetLog: the station uploads its diagnostics (or security) log to ``url``; its progress
    arrives as LogStatusNotification."""
    _check_url(url)
    request_id = _new_request_id()
    payload = {
        "logType": "SecurityLog" if security else "DiagnosticsLog",
        "requestId": request_id,
        "log": {"remoteLocation": url},
    }
    return send(
        db,
        station_id,
        "GetLog",
        payload,
        requested_by=requested_by,
        queue_s=queue_s,
        request_id=request_id,
    )


def unlock(db: Database, station_id: str, slot_no: int, *, requested_by: str | None) -> CommandRecord:
    """UnlockConnector for a stuck slot (a slot has one latch: connector 1)."""
    _check_slot(db, station_id, slot_no)
    payload = {"evseId": slot_no, "connectorId": 1}
    return send(db, station_id, "UnlockConnector", payload, requested_by=requested_by)


def display_message(
    db: Database,
    station_id: str,
    text: str,
    *,
    minutes: int | None,
    requested_by: str | None,
    now: datetime,
    queue_s: float = 0.0,
) -> CommandRecord:
    """SetDisplayMessage: a notice on the station's screen, for ``minutes`` (or until replaced)."""
    text = text.strip()
    if not text or len(text) > MAX_MESSAGE_CHARS:
        raise InvalidInput(f"a message has 1..{MAX_MESSAGE_CHARS} characters")
    message: dict[str, Any] = {
        "id": 1 + secrets.randbelow(_REQUEST_ID_SPAN),
        "priority": "NormalCycle",
        "message": {"format": "UTF8", "content": text},
    }
    if minutes is not None:
        if not 1 <= minutes <= MAX_MESSAGE_MINUTES:
            raise InvalidInput(f"minutes must be 1..{MAX_MESSAGE_MINUTES}")
        message["startDateTime"] = _iso(now)
        message["endDateTime"] = _iso(now + timedelta(minutes=minutes))
    return send(
        db,
        station_id,
        "SetDisplayMessage",
        {"message": message},
        requested_by=requested_by,
        queue_s=queue_s,
    )


def local_list_version(db: Database, station_id: str, *, requested_by: str | None) -> CommandRecord:
    return send(db, station_id, "GetLocalListVersion", {}, requested_by=requested_by)


# -- what stations report ------------------------------------------------------------------------


def record_notification(db: Database, station_id: str, action: str, payload: dict[str, Any]) -> None:
    """A FirmwareStatusNotification, LogStatusNotification or NotifyReport part (wire casing)."""
    if action not in _COMMAND_OF:
        raise InvalidInput(f"{action} is not a notification swapd records")
    request_id = payload.get("requestId")
    request_id = request_id if isinstance(request_id, int) else None
    status: str | None
    if action == "NotifyReport":
        status = "Receiving" if payload.get("tbc") else "Complete"
    else:
        status = str(payload.get("status", ""))[:40] or None

    def work(tx: Tx) -> None:
        if tx.repo.station(station_id) is None:
            raise NotFound(f"unknown station {station_id}")
        tx.repo.execute(
            sa.insert(t.station_notifications).values(
                station_id=station_id,
                action=action,
                request_id=request_id,
                status=status,
                payload=payload,
                received_at=tx.now,
            )
        )
        if action == "FirmwareStatusNotification":
            tx.repo.execute(
                sa.update(t.stations)
                .where(t.stations.c.id == station_id)
                .values(firmware_status=status, firmware_status_at=tx.now)
            )
        if action == "NotifyReport" and request_id is not None:
            _store_report(tx, station_id, request_id, payload)
        if request_id is not None:
            c = t.station_commands.c
            latest = (
                sa.select(sa.func.max(c.id))
                .where(
                    c.station_id == station_id,
                    c.request_id == request_id,
                    c.action == _COMMAND_OF[action],
                )
                .scalar_subquery()
            )
            tx.repo.execute(
                sa.update(t.station_commands)
                .where(c.id == latest)
                .values(status=status, status_at=tx.now)
            )

    db.write(work)


def _store_report(tx: Tx, station_id: str, request_id: int, payload: dict[str, Any]) -> None:
    """One NotifyReport part into the inventory. The first part (seqNo 0) of a report clears
    the rows of earlier reports: the inventory is always one report's, never a mix."""
    v = t.station_variables
    if payload.get("seqNo") == 0:
        tx.repo.execute(sa.delete(v).where(v.c.station_id == station_id))
    for item in payload.get("reportData") or []:
        component = item.get("component") or {}
        variable = item.get("variable") or {}
        evse = component.get("evse") or {}
        characteristics = item.get("variableCharacteristics") or {}
        for attribute in item.get("variableAttribute") or []:
            kind = str(attribute.get("type", "Actual"))
            key = _variable_key(component, variable, evse, kind)
            row = {
                "component": str(component.get("name", ""))[:50],
                "variable": str(variable.get("name", ""))[:50],
                "evse_id": evse.get("id") if isinstance(evse.get("id"), int) else None,
                "attribute_type": kind[:10],
                "value": None if attribute.get("value") is None else str(attribute["value"])[:2500],
                "mutability": attribute.get("mutability"),
                "report_request_id": request_id,
                "updated_at": tx.now,
            }
            if characteristics.get("unit") and row["value"] is not None:
                row["value"] = f"{row['value']} {characteristics['unit']}"[:2500]
            tx.repo.execute(sa.delete(v).where(v.c.station_id == station_id, v.c.key == key))
            tx.repo.execute(sa.insert(v).values(station_id=station_id, key=key, **row))


def _variable_key(
    component: dict[str, Any], variable: dict[str, Any], evse: dict[str, Any], kind: str
) -> str:
    name = str(component.get("name", ""))
    if component.get("instance"):
        name += f"[{component['instance']}]"
    if "id" in evse:
        name += f"@{evse['id']}" + (f".{evse['connectorId']}" if "connectorId" in evse else "")
    name += "/" + str(variable.get("name", ""))
    if variable.get("instance"):
        name += f"[{variable['instance']}]"
    return f"{name}#{kind}"[:250]


# -- reads ---------------------------------------------------------------------------------------


def _record(row: Any) -> CommandRecord:
    return CommandRecord(
        id=int(row.id),
        station_id=row.station_id,
        action=row.action,
        payload=row.payload,
        state=row.state,
        response=row.response,
        error=row.error,
        requested_by=row.requested_by,
        queued=bool(row.queued),
        request_id=row.request_id,
        status=row.status,
        created_at=row.created_at,
        expires_at=row.expires_at,
        updated_at=row.updated_at,
    )


def command(db: Transactional, command_id: int) -> CommandRecord:
    def work(tx: Tx) -> CommandRecord:
        row = tx.repo.execute(
            sa.select(t.station_commands).where(t.station_commands.c.id == command_id)
        ).first()
        if row is None:
            raise NotFound(f"unknown command {command_id}")
        return _record(row)

    return db.read(work)


def commands_of(db: Transactional, station_id: str, *, limit: int = 50) -> list[CommandRecord]:
    """The station's latest commands, newest first."""
    c = t.station_commands.c

    def work(tx: Tx) -> list[CommandRecord]:
        if tx.repo.station(station_id) is None:
            raise NotFound(f"unknown station {station_id}")
        rows = tx.repo.execute(
            sa.select(t.station_commands)
            .where(c.station_id == station_id)
            .order_by(c.id.desc())
            .limit(min(max(limit, 1), 500))
        )
        return [_record(r) for r in rows]

    return db.read(work)


def inventory(db: Transactional, station_id: str) -> list[Variable]:
    v = t.station_variables.c

    def work(tx: Tx) -> list[Variable]:
        if tx.repo.station(station_id) is None:
            raise NotFound(f"unknown station {station_id}")
        rows = tx.repo.execute(
            sa.select(t.station_variables).where(v.station_id == station_id).order_by(v.key)
        )
        return [
            Variable(
                r.key,
                r.component,
                r.variable,
                r.evse_id,
                r.attribute_type,
                r.value,
                r.mutability,
                r.updated_at,
            )
            for r in rows
        ]

    return db.read(work)


def notifications_of(db: Transactional, station_id: str, *, limit: int = 50) -> list[Notification]:
    n = t.station_notifications.c

    def work(tx: Tx) -> list[Notification]:
        rows = tx.repo.execute(
            sa.select(t.station_notifications)
            .where(n.station_id == station_id)
            .order_by(n.id.desc())
            .limit(min(max(limit, 1), MAX_NOTIFICATIONS_LISTED))
        )
        return [
            Notification(int(r.id), r.action, r.request_id, r.status, r.payload, r.received_at)
            for r in rows
        ]

    return db.read(work)


def out_of_service_slots(db: Transactional, station_id: str) -> list[int]:
    """The slots the operator took out of service (ChangeAvailability Inoperative)."""
    s = t.slots.c

    def work(tx: Tx) -> list[int]:
        rows = tx.repo.execute(
            sa.select(s.slot_no)
            .where(s.station_id == station_id, s.operative.is_(False))
            .order_by(s.slot_no)
        )
        return [int(r.slot_no) for r in rows]

    return db.read(work)


# -- helpers -------------------------------------------------------------------------------------


def set_operative(db: Transactional, station_id: str, slot_no: int | None, operative: bool) -> None:
    s = t.slots.c

    def work(tx: Tx) -> None:
        where = [s.station_id == station_id]
        if slot_no is not None:
            where.append(s.slot_no == slot_no)
        tx.repo.execute(sa.update(t.slots).where(*where).values(operative=operative))

    db.write(work)


def _check_slot(db: Transactional, station_id: str, slot_no: int | None) -> None:
    def work(tx: Tx) -> None:
        station = tx.repo.station(station_id)
        if station is None:
            raise NotFound(f"unknown station {station_id}")
        if slot_no is not None:
            station.check_slot(slot_no)

    db.read(work)


def _check_count(items: Sequence[object]) -> None:
    if not 1 <= len(items) <= MAX_VARIABLES:
        raise InvalidInput(f"name 1..{MAX_VARIABLES} variables, not {len(items)}")


def _check_url(url: str) -> None:
    if not url.startswith(("http://", "https://", "ftp://", "ftps://")) or len(url) > MAX_URL_CHARS:
        raise InvalidInput(f"give an http(s) or ftp(s) URL of at most {MAX_URL_CHARS} characters")


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")


def command_view(record: CommandRecord) -> dict[str, Any]:
    """One command as the API, the CLI's --json and the console show it."""
    return {
        "id": record.id,
        "station_id": record.station_id,
        "action": record.action,
        "request": record.payload,
        "state": record.state,
        "answer": record.response,
        "answer_status": record.answer_status,
        "error": record.error,
        "requested_by": record.requested_by,
        "queued": record.queued,
        "request_id": record.request_id,
        "status": record.status,
        "created_at": _iso(record.created_at),
        "expires_at": _iso(record.expires_at),
        "updated_at": _iso(record.updated_at),
    }


def variable_view(v: Variable) -> dict[str, Any]:
    """One inventory variable as the API and the CLI's --json show it."""
    return {
        "key": v.key,
        "component": v.component,
        "variable": v.variable,
        "evse_id": v.evse_id,
        "type": v.attribute_type,
        "value": v.value,
        "mutability": v.mutability,
        "updated_at": _iso(v.updated_at),
    }


def parse_duration_s(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``2h`` or ``1d`` as seconds (the CLI's --queue)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    factor = units.get(text[-1:], None)
    number = text[:-1] if factor else text
    try:
        value = float(number) * (factor or 1)
    except ValueError:
        raise InvalidInput(f"give a duration like 90s, 10m, 2h or 1d, not {text!r}") from None
    if not 0 < value <= commands.MAX_QUEUE_S:
        raise InvalidInput(f"a queue time is between 1 s and {commands.MAX_QUEUE_S // 86400} days")
    return value

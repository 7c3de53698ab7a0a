"""Managing a station over OCPP 2.1 through the API: one route takes every command (reset,
availability, trigger, variables, base report, firmware, logs, unlock, display message, local
list version), others read the station's command history, inventory and notifications.

A command to a station that is not connected is 409 ``station_offline`` at once, unless the
body gives ``queue_s``: then it is 202 and waits for the station (``GET .../commands/{id}``
shows what became of it). A command sent now waits for its answer up to
``station_management.DEFAULT_WAIT_S``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from swapd.api.deps import Db, Operator, ReadDb, Staff
from swapd.api.errors import responses
from swapd.api.operator_common import PREFIX
from swapd.domain.errors import Forbidden, NotFound
from swapd.domain.stations import MAX_SLOTS
from swapd.services import station_commands as commands
from swapd.services import station_management as manage
from swapd.services.identity import Role

router = APIRouter(prefix=f"{PREFIX}/stations", tags=["operator: station management"])

Slot = Annotated[int, Field(ge=1, le=MAX_SLOTS)]
VariableName = Annotated[str, Field(min_length=3, max_length=101, pattern=r"^[^.=]+\.[^.=]+$")]


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid")
    queue_s: float = Field(
        0,
        ge=0,
        le=commands.MAX_QUEUE_S,
        description="If the station is not connected, wait this long for it (0: refuse at once)",
    )


class Reset(_Base):
    command: Literal["reset"]
    hard: bool = Field(False, description="At once, even mid-swap (else when idle)")


class Availability(_Base):
    command: Literal["availability"]
    operative: bool
    slot: Slot | None = Field(None, description="A slot, or the whole station")


class Trigger(_Base):
    command: Literal["trigger"]
    message: Literal["status", "boot", "heartbeat", "meter", "firmware", "log"]
    slot: Slot | None = None


class GetVariables(_Base):
    command: Literal["get_variables"]
    variables: list[VariableName] = Field(min_length=1, max_length=manage.MAX_VARIABLES)


class SetVariables(_Base):
    command: Literal["set_variables"]
    values: dict[VariableName, Annotated[str, Field(max_length=1000)]] = Field(
        min_length=1, max_length=manage.MAX_VARIABLES
    )


class Report(_Base):
    command: Literal["report"]
    kind: Literal["full", "config", "summary"] = "full"


class Firmware(_Base):
    command: Literal["firmware"]
    url: str = Field(min_length=8, max_length=manage.MAX_URL_CHARS)
    retrieve_at: datetime | None = Field(None, description="Download from this time on (default now)")
    retries: int | None = Field(None, ge=0, le=100)


class Logs(_Base):
    command: Literal["logs"]
    url: str = Field(min_length=8, max_length=manage.MAX_URL_CHARS)
    security: bool = False


class Unlock(_Base):
    command: Literal["unlock"]
    slot: Slot


class DisplayMessage(_Base):
    command: Literal["display_message"]
    text: str = Field(min_length=1, max_length=manage.MAX_MESSAGE_CHARS)
    minutes: int | None = Field(None, ge=1, le=manage.MAX_MESSAGE_MINUTES)


class LocalListVersion(_Base):
    command: Literal["local_list_version"]


StationCommand = Annotated[
    Reset
    | Availability
    | Trigger
    | GetVariables
    | SetVariables
    | Report
    | Firmware
    | Logs
    | Unlock
    | DisplayMessage
    | LocalListVersion,
    Field(discriminator="command"),
]
# Firmware and configuration change what the station is: admins only.
_ADMIN_ONLY = frozenset({"firmware", "set_variables"})


class CommandOut(BaseModel):
    id: int
    station_id: str
    action: str = Field(description="The OCPP action sent")
    request: dict[str, Any] = Field(description="The request as sent, in OCPP's wire casing")
    state: Literal["pending", "sent", "answered", "failed", "expired", "undelivered"]
    answer: dict[str, Any] | None = Field(description="The station's answer as it came")
    answer_status: str | None
    error: str | None
    requested_by: str | None
    queued: bool
    request_id: int | None = Field(description="Correlates the station's later notifications")
    status: str | None = Field(description="The latest status the station reported on it")
    created_at: datetime
    expires_at: datetime
    updated_at: datetime


class VariableOut(BaseModel):
    key: str
    component: str
    variable: str
    evse_id: int | None
    type: str
    value: str | None
    mutability: str | None
    updated_at: datetime


class NotificationOut(BaseModel):
    id: int
    action: str
    request_id: int | None
    status: str | None
    payload: dict[str, Any]
    received_at: datetime


def _out(record: manage.CommandRecord) -> CommandOut:
    return CommandOut.model_validate(manage.command_view(record))


def _send(db: Db, station_id: str, body: Any, actor: str) -> manage.CommandRecord:
    q = {"requested_by": actor, "queue_s": body.queue_s}
    if isinstance(body, Reset):
        return manage.reset(db, station_id, hard=body.hard, **q)
    if isinstance(body, Availability):
        return manage.change_availability(
            db, station_id, operative=body.operative, slot_no=body.slot, **q
        )
    if isinstance(body, GetVariables):
        names = [manage.parse_variable(n)[:2] for n in body.variables]
        return manage.get_variables(db, station_id, names, requested_by=actor)
    if isinstance(body, SetVariables):
        values = [(*manage.parse_variable(n)[:2], value) for n, value in body.values.items()]
        return manage.set_variables(db, station_id, values, **q)
    if isinstance(body, Report):
        return manage.base_report(db, station_id, kind=body.kind, **q)
    if isinstance(body, Firmware):
        at = body.retrieve_at or datetime.now(UTC)
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        return manage.update_firmware(
            db, station_id, url=body.url, retrieve_at=at, retries=body.retries, **q
        )
    if isinstance(body, Logs):
        return manage.get_log(db, station_id, url=body.url, security=body.security, **q)
    if isinstance(body, DisplayMessage):
        return manage.display_message(
            db, station_id, body.text, minutes=body.minutes, now=datetime.now(UTC), **q
        )
    if isinstance(body, Trigger):
        return manage.trigger(db, station_id, body.message, requested_by=actor, slot_no=body.slot)
    if isinstance(body, Unlock):
        return manage.unlock(db, station_id, body.slot, requested_by=actor)
    return manage.local_list_version(db, station_id, requested_by=actor)


@router.post(
    "/{station_id}/commands",
    responses={**responses(401, 403, 404, 409, 422), 202: {"model": CommandOut}},
    summary="Send a station an OCPP command; its answer, or 202 when queued for a station away",
)
def send_command(
    station_id: str, body: StationCommand, caller: Operator, db: Db, response: Response
) -> CommandOut:
    if body.command in _ADMIN_ONLY and caller.role is not Role.ADMIN:
        raise Forbidden(f"{body.command} is for admins")
    record = _send(db, station_id, body, caller.actor)
    if record.queued and record.state == commands.CommandState.PENDING:
        response.status_code = status.HTTP_202_ACCEPTED
    return _out(record)


@router.get(
    "/{station_id}/commands",
    responses=responses(401, 403, 404),
    summary="The commands sent to a station, newest first",
)
def list_commands(
    station_id: str, _caller: Staff, db: Db, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[CommandOut]:
    return [_out(r) for r in manage.commands_of(db, station_id, limit=limit)]


@router.get(
    "/{station_id}/commands/{command_id}",
    responses=responses(401, 403, 404),
    summary="One command: its answer and the latest status the station reported",
)
def get_command(station_id: str, command_id: int, _caller: Staff, db: Db) -> CommandOut:
    record = manage.command(db, command_id) if 0 < command_id < 2**63 else None
    if record is None or record.station_id != station_id:
        raise NotFound(f"no command {command_id} for station {station_id}")
    return _out(record)


@router.get(
    "/{station_id}/inventory",
    responses=responses(401, 403, 404),
    summary="The station's variables from its last base report",
)
def get_inventory(station_id: str, _caller: Staff, db: Db) -> list[VariableOut]:
    return [
        VariableOut.model_validate(manage.variable_view(v)) for v in manage.inventory(db, station_id)
    ]


# The replica (ReadDb): what stations reported, a history; commands themselves are polled on the primary.
@router.get(
    "/{station_id}/notifications",
    responses=responses(401, 403, 404),
    summary="What the station reported on commands: firmware, log and report notifications",
)
def list_notifications(
    station_id: str, _caller: Staff, db: ReadDb, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[NotificationOut]:
    manage.commands_of(db, station_id, limit=1)  # 404 for an unknown station
    return [
        NotificationOut(
            id=n.id,
            action=n.action,
            request_id=n.request_id,
            status=n.status,
            payload=n.payload,
            received_at=n.received_at,
        )
        for n in manage.notifications_of(db, station_id, limit=limit)
    ]

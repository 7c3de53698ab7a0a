"""One connected station: an ``ocpp`` ChargePoint with one handler per action it may send.

The handlers translate wire payloads into service calls and back; the services run in worker
threads because they block on the database. Everything a station repeats is idempotent in the
services, so a retransmit after a reconnect gets the first answer again.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, Protocol, TypeVar

import ocpp.messages
import structlog
from ocpp import v21, v201
from ocpp.exceptions import (
    GenericError,
    OCPPError,
    PropertyConstraintViolationError,
)
from ocpp.messages import Call, CallError, MessageType
from ocpp.routing import on
from ocpp.v21.enums import Action as Action21
from ocpp.v201.enums import Action as Action201

from swapd.domain.decision import RefusalReason
from swapd.domain.errors import Conflict, DomainError, InvalidInput, NotFound
from swapd.domain.lifecycle import PackOutcomeKind
from swapd.domain.quantities import bp_to_percent, format_money
from swapd.domain.riders import IdToken, TokenType
from swapd.domain.stations import SlotState
from swapd.gateway import replays
from swapd.gateway.casing import to_snake, to_wire
from swapd.gateway.codes import REASON_CODE, status_for
from swapd.gateway.metrics import GatewayMetrics
from swapd.gateway.replies import STATION_ACTIONS_21, STATION_ACTIONS_201, minimal_reply
from swapd.gateway.validation import IDENTIFIER, schema_fault
from swapd.services import certificates, messages
from swapd.services.station_requests import check_request, response_fault
from swapd.services.swaps import AuthorizeResult, BatteryReading
from swapd.store.database import Database

log = structlog.get_logger(__name__)
T = TypeVar("T")

MAX_MESSAGE_BYTES = 64 * 1024  # far above any swap message; larger frames are refused
# OCPP-J 2.0.1/2.1 part 4: a message id is at most 36 characters (room for a UUID). A CALL with
# a longer one is refused with RpcFrameworkError, the code for a CALL that is not a valid RPC
# request, under the id OCPP-J gives a CALLERROR whose CALL's id cannot be used: "-1". Echoing
# the id back would make our CALLERROR break the same rule, and reflect up to MAX_MESSAGE_BYTES
# of the sender's text.
MAX_MESSAGE_ID_CHARS = 36
UNUSABLE_MESSAGE_ID = "-1"
HEARTBEAT_INTERVAL_S = 300
# The ocpp package validates each payload in a worker thread by default: two thread hops per
# message for a check of a few hundred microseconds. Stations' CALLs are validated by us (see
# SwapHandlers); what ocpp still validates, the commands we send and their answers, it does
# inline: the same answers without the hops.
ocpp.messages.ASYNC_VALIDATION = False

_SLOT_STATES = {
    "Available": SlotState.AVAILABLE,
    "Occupied": SlotState.OCCUPIED,
    "Reserved": SlotState.OCCUPIED,
    "Unavailable": SlotState.UNAVAILABLE,
    "Faulted": SlotState.UNAVAILABLE,
}
_RFID_TYPES = {"ISO14443": TokenType.RFID, "ISO15693": TokenType.RFID_15693}


class Connection(Protocol):
    async def recv(self) -> str: ...
    async def send(self, message: str) -> None: ...
    async def close(self, code: int, reason: str) -> None: ...


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _percent(value: Any, field: str) -> Decimal:
    """BMS readings may carry any number of decimals; the ledger keeps two (basis points)."""
    try:
        return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    except ArithmeticError:
        raise PropertyConstraintViolationError(description=f"{field} is not a number") from None


def _timestamp(value: Any) -> datetime | None:
    """A sample's measurement time (validation has checked the date-time format already)."""
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at.astimezone(UTC) if at.tzinfo is not None else None


def _get(data: dict[str, Any], *names: str) -> Any:
    """A key of a nested payload object; the ocpp package snake-cases keys inconsistently."""
    for name in names:
        if name in data:
            return data[name]
    return None


def token_from_wire(station_id: str, id_token: dict[str, Any]) -> IdToken:
    value = str(id_token.get("id_token", ""))
    kind = str(id_token.get("type", ""))
    if not IDENTIFIER.fullmatch(value):
        raise PropertyConstraintViolationError(
            description=f"idToken {value[:60]!r} has characters outside OCPP's identifierString set"
        )
    if kind == "BatterySerial":
        return IdToken(TokenType.BATTERY_SERIAL, value)
    if kind == "Central":
        # The station's own Central token is the operator's; any other is a swap we started.
        return IdToken(TokenType.OPERATOR if value == station_id else TokenType.APP, value)
    if kind == "NoAuthorization":
        return IdToken(TokenType.NO_AUTHORIZATION, value)
    return IdToken(_RFID_TYPES.get(kind, TokenType.RFID), value)


def readings_from_wire(battery_data: list[dict[str, Any]]) -> list[BatteryReading]:
    readings = []
    for item in battery_data:
        readings.append(
            BatteryReading.parse(
                _get(item, "evse_id"),
                _get(item, "serial_number"),
                _percent(_get(item, "soc", "so_c"), "soC"),
                _percent(_get(item, "soh", "so_h"), "soH"),
            )
        )
    return readings


def personal_message(content: str) -> dict[str, Any]:
    return {"format": "UTF8", "content": content[:512]}


def _mapped(function: Callable[..., T], *args: Any) -> T:
    """Call ``function`` here, with domain errors mapped to CALLERRORs as ``run`` maps them."""
    try:
        return function(*args)
    except InvalidInput as error:
        raise PropertyConstraintViolationError(description=error.message) from None
    except DomainError as error:
        raise GenericError(description=error.message) from None


class SwapHandlers:
    """The handlers, shared by the OCPP 2.1 and 2.0.1 sessions.

    ``skip_schema_validation``: ``_Routing.route_message`` has checked the payload against its
    schema already (``validation.schema_fault``); ``ocpp`` would check it again, and our reply.
    The replies are built here to their schemas, and the test stations (``ocpp`` clients)
    validate every reply they receive."""

    id: str
    db: Database
    metrics: GatewayMetrics
    booted: bool
    # The operator's CA directory (swapd.pki) that signs SignCertificate's CSRs; set by the
    # gateway for each session, None when the server has none.
    ca_dir: Path | None = None
    _call_result: Any
    _ocpp_version: str

    async def run(self, command: messages.Command[T]) -> T:
        """Hand a command to the use cases off the event loop (``Database.call`` of
        ``messages.handle``); map domain errors to CALLERRORs."""
        try:
            return await self.db.call(messages.handle, self.db, command)
        except InvalidInput as error:
            raise PropertyConstraintViolationError(description=error.message) from None
        except (Conflict, NotFound) as error:
            raise GenericError(description=error.message) from None
        except DomainError as error:
            raise GenericError(description=error.message) from None

    @on("BootNotification", skip_schema_validation=True)
    async def on_boot_notification(self, charging_station: dict[str, Any], reason: str, **_: Any) -> Any:
        await self.run(
            messages.RecordBoot(
                self.id,
                vendor=str(charging_station.get("vendor_name", "")),
                model=str(charging_station.get("model", "")),
                firmware=charging_station.get("firmware_version"),
            )
        )
        self.booted = True
        log.info("station_booted", station=self.id, reason=reason)
        return self._call_result.BootNotification(
            current_time=_now_iso(), interval=HEARTBEAT_INTERVAL_S, status="Accepted"
        )

    @on("Heartbeat", skip_schema_validation=True)
    async def on_heartbeat(self, **_: Any) -> Any:
        await self.run(messages.Seen(self.id))
        return self._call_result.Heartbeat(current_time=_now_iso())

    @on("StatusNotification", skip_schema_validation=True)
    async def on_status_notification(self, connector_status: str, evse_id: int, **_: Any) -> Any:
        await self._slot_state(evse_id, connector_status)
        return self._call_result.StatusNotification()

    @on("NotifyEvent", skip_schema_validation=True)
    async def on_notify_event(self, event_data: list[dict[str, Any]], **_: Any) -> Any:
        for event in event_data:
            component = event.get("component", {})
            variable = event.get("variable", {})
            evse = component.get("evse") or {}
            if (
                component.get("name") in ("Connector", "EVSE")
                and variable.get("name") == "AvailabilityState"
                and "id" in evse
            ):
                await self._slot_state(int(evse["id"]), str(event.get("actual_value", "")))
        return self._call_result.NotifyEvent()

    async def _slot_state(self, evse_id: int, status: str) -> None:
        state = _SLOT_STATES.get(status)
        if state is None or evse_id == 0:
            return  # evse 0 is the station itself
        await self.run(messages.SetSlotState(self.id, evse_id, state))

    @on("Authorize", skip_schema_validation=True)
    async def on_authorize(self, id_token: dict[str, Any], **_: Any) -> Any:
        started = time.perf_counter()
        token = token_from_wire(self.id, id_token)
        if token.type is TokenType.APP:
            # Riders' app tokens are ours to send, not for stations to present.
            result = AuthorizeResult(False, RefusalReason.UNKNOWN_TOKEN.value, "Unknown token")
        elif token.type is TokenType.NO_AUTHORIZATION:
            result = AuthorizeResult(False, RefusalReason.UNKNOWN_TOKEN.value, "No token")
        else:
            result = await self.run(messages.Authorize(self.id, token))
        self.metrics.decision_seconds.observe(time.perf_counter() - started)
        info: dict[str, Any] = {"status": status_for(result.reason)}
        if result.accepted and result.offered:
            info["evse_id"] = result.offered_slots
            info["personal_message"] = personal_message(self._balance_text(result))
        elif not result.accepted:
            assert result.reason is not None
            self.metrics.refusals.labels(result.reason).inc()
            code = REASON_CODE.get(RefusalReason(result.reason))
            prefix = f"{code}: " if code else ""
            info["personal_message"] = personal_message(prefix + result.text)
        return self._call_result.Authorize(id_token_info=info)

    @staticmethod
    def _balance_text(result: AuthorizeResult) -> str:
        # The balance after this offer's holds comes with the decision, from its transaction.
        assert result.currency is not None
        slots = ", ".join(str(s) for s in result.offered_slots)
        socs = ", ".join(bp_to_percent(o.soc_bp) + "%" for o in result.offered)
        money = format_money(result.available_value_minor, result.currency)
        # A right-sized pack says so: the rider knows why it is not full.
        lead = "Right-sized for your allowance: take" if result.right_sized else "Take"
        return f"{lead} slot {slots} ({socs}). Left: {result.available_units:,} {result.unit} ({money})"

    @on("BatterySwap", skip_schema_validation=True)
    async def on_battery_swap(
        self,
        battery_data: list[dict[str, Any]],
        event_type: str,
        id_token: dict[str, Any],
        request_id: int,
        custom_data: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        token = token_from_wire(self.id, id_token)
        # With NoAuthorization the packs alone identify the rider.
        token_arg = None if token.type is TokenType.NO_AUTHORIZATION else token
        readings = tuple(_mapped(readings_from_wire, battery_data))  # pure: no thread needed
        request = str(request_id)
        # A swap served offline and replayed now carries the time it happened (gateway/replays.py).
        at = replays.offline_time(custom_data)
        if event_type == "BatteryIn":
            await self.run(messages.BatteryIn(self.id, request, readings, token_arg, at))
        elif event_type == "BatteryOut":
            result = await self.run(messages.BatteryOut(self.id, request, readings, token_arg, at))
            if not result.repeated and any(
                p.outcome == PackOutcomeKind.HANDED_OVER for p in result.packs
            ):
                self.metrics.swaps.inc()
        else:
            await self.run(messages.BatteryOutTimeout(self.id, request, readings, token_arg))
        return self._call_result.BatterySwap()

    @on("TransactionEvent", skip_schema_validation=True)
    async def on_transaction_event(
        self,
        meter_value: list[dict[str, Any]] | None = None,
        evse: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        if evse and meter_value:
            await self._soc_updates(int(evse.get("id", 0)), meter_value)
        # Charging inside the station runs on the station's own token: always accepted.
        return self._call_result.TransactionEvent(id_token_info={"status": "Accepted"})

    @on("MeterValues", skip_schema_validation=True)
    async def on_meter_values(self, evse_id: int, meter_value: list[dict[str, Any]], **_: Any) -> Any:
        await self._soc_updates(evse_id, meter_value)
        return self._call_result.MeterValues()

    async def _soc_updates(self, evse_id: int, meter_value: list[dict[str, Any]]) -> None:
        if evse_id <= 0:
            return
        latest, measured_at = None, None
        for sample in meter_value:
            for value in sample.get("sampled_value", []):
                if value.get("measurand") == "SoC":
                    latest, measured_at = value.get("value"), _timestamp(sample.get("timestamp"))
        if latest is None:
            return
        soc = _percent(latest, "SoC")
        try:
            await self.run(messages.ReportSoc(self.id, evse_id, soc, measured_at))
        except GenericError:
            # A SoC for a slot we believe empty: the swap events are the truth for occupancy.
            log.info("soc_for_empty_slot", station=self.id, evse_id=evse_id)

    @on("SecurityEventNotification", skip_schema_validation=True)
    async def on_security_event(self, type: str, timestamp: str, **kwargs: Any) -> Any:
        log.warning(
            "station_security_event",
            station=self.id,
            security_event=type,
            at=timestamp,
            info=kwargs.get("tech_info"),
        )
        return self._call_result.SecurityEventNotification()

    @on("FirmwareStatusNotification", skip_schema_validation=True)
    async def on_firmware_status_notification(self, **fields: Any) -> Any:
        await self._notification("FirmwareStatusNotification", fields)
        return self._call_result.FirmwareStatusNotification()

    @on("LogStatusNotification", skip_schema_validation=True)
    async def on_log_status_notification(self, **fields: Any) -> Any:
        await self._notification("LogStatusNotification", fields)
        return self._call_result.LogStatusNotification()

    @on("NotifyReport", skip_schema_validation=True)
    async def on_notify_report(self, **fields: Any) -> Any:
        await self._notification("NotifyReport", fields)
        return self._call_result.NotifyReport()

    async def _notification(self, action: str, fields: dict[str, Any]) -> None:
        """What follows a command of ours (its progress, a report part), recorded in the wire's
        casing as the station sent it (the keys go back through the same conversion)."""
        await self.run(messages.RecordNotification(self.id, action, to_wire(fields)))

    @on("SignCertificate", skip_schema_validation=True)
    async def on_sign_certificate(
        self, csr: str, certificate_type: str | None = None, request_id: int | None = None, **_: Any
    ) -> Any:
        """Security profile 3: the station asks the operator's CA for its certificate. Accepted
        when the CSR is the station's own (swapd.pki.check_csr); the signed certificate follows
        as a CertificateSigned command. Rejected with an OCPP reasonCode and why, else."""
        outcome = await asyncio.to_thread(
            certificates.sign_request,
            self.db,
            self.ca_dir,
            self.id,
            csr,
            certificate_type=certificate_type,
            request_id=request_id,
        )
        if outcome.accepted:
            return self._call_result.SignCertificate(status="Accepted")
        log.warning("station_csr_rejected", station=self.id, reason=outcome.reason_code)
        info = {"reason_code": outcome.reason_code, "additional_info": (outcome.detail or "")[:1024]}
        return self._call_result.SignCertificate(status="Rejected", status_info=info)

    @on("DataTransfer", skip_schema_validation=True)
    async def on_data_transfer(self, vendor_id: str, **_: Any) -> Any:
        log.info("data_transfer", station=self.id, vendor_id=vendor_id)
        return self._call_result.DataTransfer(status="UnknownVendorId")


class StationCallError(Exception):
    """The station answered a request of ours with a CALLERROR."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}"[:300])
        self.code = code


class _Routing:
    """What both sessions add to ocpp's ChargePoint: framing checks, boot gating, a reply for
    every action, and CALLERRORs counted."""

    id: str
    db: Database
    booted: bool
    metrics: GatewayMetrics
    # This socket's connection as recorded in stations.connection_id, set by the gateway once
    # written; None before (see swapd.gateway.presence).
    connection_id: str | None = None
    route_map: dict[str, Any]
    _ocpp_version: str
    _connection: Connection
    _station_actions: frozenset[str]
    _all_actions: frozenset[str]
    # ocpp's ChargePoint provides these: the socket's send, one-call-at-a-time lock, answers.
    _send: Callable[[str], Awaitable[None]]
    _call_lock: asyncio.Lock
    _response_timeout: int
    _get_specific_response: Callable[[str, int], Awaitable[Any]]

    def __init__(
        self,
        station_id: str,
        connection: Connection,
        db: Database,
        metrics: GatewayMetrics,
        *,
        booted: bool,
    ) -> None:
        super().__init__(station_id, connection, response_timeout=30)  # type: ignore[call-arg]
        self.db = db
        self.metrics = metrics
        self.booted = booted

    async def route_message(self, raw_msg: str) -> None:
        # UTF-8 takes at most 4 bytes a character: most frames need no encoding to be measured.
        if len(raw_msg) * 4 > MAX_MESSAGE_BYTES and len(raw_msg.encode()) > MAX_MESSAGE_BYTES:
            await self._refuse(raw_msg, "FormatViolation", f"message exceeds {MAX_MESSAGE_BYTES} bytes")
            return
        try:
            message = json.loads(raw_msg)
        except ValueError:
            # Not JSON at all: there is no message id to answer, so the socket goes.
            await self._connection.close(1007, "not an OCPP-J message")
            return
        if not isinstance(message, list) or len(message) < 3 or not isinstance(message[1], str):
            await self._connection.close(1007, "not an OCPP-J message")
            return
        kind, unique_id = message[0], message[1]
        if kind in (MessageType.CallResult, MessageType.CallError):
            if len(unique_id) > MAX_MESSAGE_ID_CHARS:
                # Not an answer to any CALL of ours (ours are UUIDs), and never answered itself.
                log.warning("ocpp_reply_dropped", station=self.id, message_id=unique_id[:40] + "...")
                return
            await self._route(raw_msg)
            return
        if len(unique_id) > MAX_MESSAGE_ID_CHARS:
            description = f"message id longer than {MAX_MESSAGE_ID_CHARS} characters"
            await self._error(UNUSABLE_MESSAGE_ID, "RpcFrameworkError", description)
            return
        if kind == MessageType.Call:
            fault = self._call_fault(message)
            if fault is not None:
                code, description, label = fault
                await self._error(unique_id, code, description, action=label)
                return
            handlers = self.route_map.get(message[2])
            if handlers is None or "_on_action" not in handlers:
                await self._reply_minimal(message)
                return
            await self._handle(message, handlers)
            return
        await self._error(unique_id, "MessageTypeNotSupported", f"message type {kind!r} is unknown")

    def _call_fault(self, message: list[Any]) -> tuple[str, str, str | None] | None:
        """Why a CALL is refused before its handler (code, description, action label for the
        log), or None. Not a coroutine, and None on success: a CALL that passes allocates
        nothing here."""
        if len(message) != 4 or not isinstance(message[2], str) or not isinstance(message[3], dict):
            return "FormatViolation", "a CALL is [2, id, action, {payload}]", None
        action: str = message[2]
        self.metrics.messages.labels(action).inc()
        if not self.booted and action != "BootNotification":
            return "SecurityError", "BootNotification must be accepted first", action
        if action not in self._station_actions:
            # OCPP-J: NotSupported for an action of the protocol a CSMS does not take,
            # NotImplemented for a name the protocol does not have.
            if action in self._all_actions:
                return "NotSupported", f"{action} is not sent to a CSMS", action
            return "NotImplemented", f"unknown action {action!r}", action[:60]
        fault = schema_fault(self._ocpp_version, action, message[3])
        if fault is not None:
            return fault[0], fault[1], action
        return None

    async def send_request(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a request built in the wire's casing, checked against the schema of this
        station's OCPP version first; return the station's answer as it came. One request at a
        time per station (OCPP-J), as ``ocpp``'s own ``call`` does, on its lock and response
        queue. A CALLERROR raises StationCallError; an answer that breaks its schema is returned
        all the same (the station did answer), and logged."""
        check_request(action, payload, self._ocpp_version)
        call = Call(unique_id=str(uuid.uuid4()), action=action, payload=payload)
        async with self._call_lock:
            await self._send(call.to_json())
            response = await self._get_specific_response(call.unique_id, self._response_timeout)
        if response.message_type_id == MessageType.CallError:
            raise StationCallError(str(response.error_code), str(response.error_description))
        answer: dict[str, Any] = response.payload
        fault = response_fault(action, answer, self._ocpp_version)
        if fault is not None:
            log.warning("station_answer_off_schema", station=self.id, action=action, fault=fault)
        return answer

    async def _route(self, raw_msg: str) -> None:
        await super().route_message(raw_msg)  # type: ignore[misc]

    async def _handle(self, message: list[Any], handlers: dict[str, Any]) -> None:
        """A checked CALL to its ``@on`` handler: what ocpp's ``_handle_call`` does, on the
        message already parsed and checked above, with key conversions cached (casing.py). A
        handler's OCPPError becomes its CALLERROR; anything else an InternalError. Our handlers
        take no ``call_unique_id`` and have no ``@after`` hook (test_casing holds that), the two
        things of ocpp's routing this leaves out.

        A handler's OCPPError is a refusal it meant (a bad value, a pack in the wrong place):
        one warning line, as for every CALLERROR. Anything else is a fault of ours, logged
        with its traceback."""
        unique_id, action, payload = message[1], message[2], message[3]
        call = Call(unique_id=unique_id, action=action, payload=payload)
        handler = handlers["_on_action"]
        try:
            response = handler(**to_snake(payload))
            if inspect.isawaitable(response):
                response = await response
        except OCPPError as error:
            await self._error(unique_id, error.code, error.description, error.details, action)
            return
        except Exception:
            log.exception("ocpp_handler_failed", station=self.id, action=action, message_id=unique_id)
            reply = call.create_call_error(None)  # InternalError, with nothing of ours in it
            assert isinstance(reply, CallError)
            self.metrics.call_errors.labels(reply.error_code).inc()
            await self._send(reply.to_json())
            return
        await self._send(call.create_call_result(to_wire(response)).to_json())

    async def _reply_minimal(self, message: list[Any]) -> None:
        """Actions we only acknowledge (FirmwareStatusNotification, NotifyReport, ...): the
        payload was checked against its schema already; the reply is built to its schema."""
        call = Call(unique_id=message[1], action=message[2], payload=message[3])
        reply = call.create_call_result(minimal_reply(self._ocpp_version, message[2]))
        await self._send(reply.to_json())

    async def _refuse(self, raw_msg: str, code: str, description: str) -> None:
        unique_id = None
        head = raw_msg[:200]
        try:
            parts = head.split(",", 2)
            unique_id = json.loads(parts[1]) if len(parts) > 1 else None
        except ValueError:
            unique_id = None
        if isinstance(unique_id, str):
            if len(unique_id) > MAX_MESSAGE_ID_CHARS:
                unique_id = UNUSABLE_MESSAGE_ID
            await self._error(unique_id, code, description)
        else:
            await self._connection.close(1009, description)

    async def _error(
        self,
        unique_id: str,
        code: str,
        description: str,
        details: dict[str, Any] | None = None,
        action: str | None = None,
    ) -> None:
        """Send a CALLERROR, counted and logged as one warning line: a refusal the protocol
        expects (a station's mistake), not a fault of the server's."""
        self.metrics.call_errors.labels(code).inc()
        log.warning(
            "ocpp_call_refused",
            station=self.id,
            message_id=unique_id,
            action=action,
            code=code,
            description=description[:200],
        )
        await self._send(CallError(unique_id, code, description, details or {}).to_json())


class Station21(_Routing, SwapHandlers, v21.ChargePoint):
    _station_actions = STATION_ACTIONS_21
    _all_actions = frozenset(a.value for a in Action21)


class Station201(_Routing, SwapHandlers, v201.ChargePoint):
    _station_actions = STATION_ACTIONS_201
    _all_actions = frozenset(a.value for a in Action201)

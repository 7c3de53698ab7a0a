"""Managing stations over real WebSockets: every command swapd sends reaches an OCPP 2.1 station
that checks it against the official schemas (as stations written by others do), the station's
answer is recorded, the notifications that follow are tracked, and a station that is not
connected gets the command refused at once or queued, as the operator asks."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft4Validator
from ocpp.routing import on
from ocpp.v21 import call, call_result

from swapd.domain.errors import InvalidInput, StationOffline
from swapd.domain.riders import TokenType
from swapd.services import catalog
from swapd.services import station_commands as commands
from swapd.services import station_management as manage
from swapd.services.payments import top_up
from swapd.store.database import Database, ManualClock
from tests.gateway.conftest import Connected, LiveServer, StationClient, boot, connect, network

pytestmark = pytest.mark.anyio
WAIT_S = 10.0


@cache
def _request_schema(action: str) -> Draft4Validator:
    text = (
        resources.files("ocpp")
        .joinpath("v21", "schemas", f"{action}Request.json")
        .read_text("utf-8-sig")
    )
    return Draft4Validator(json.loads(text))


class ManagedStation(StationClient):
    """A station that takes every management command, checks each raw request against its
    schema with jsonschema (independently of the ``ocpp`` package, which checks too), and
    reports on firmware, logs and base reports the way OCPP 2.1 stations do."""

    def __init__(self, station_id: str, connection: Any) -> None:
        super().__init__(station_id, connection)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.schema_errors: list[str] = []
        self.follow_ups: list[asyncio.Task[None]] = []

    async def route_message(self, raw_msg: str) -> None:
        message = json.loads(raw_msg)
        if message[0] == 2:  # a CALL from the server
            action, payload = message[2], message[3]
            self.received.append((action, payload))
            errors = [e.message for e in _request_schema(action).iter_errors(payload)]
            self.schema_errors.extend(f"{action}: {e}" for e in errors)
        await super().route_message(raw_msg)

    def _later(self, work: Any) -> None:
        self.follow_ups.append(asyncio.create_task(work))

    @on("Reset")  # type: ignore[misc]
    async def on_reset(self, type: str, **_: Any) -> Any:
        return call_result.Reset(status="Accepted" if type == "OnIdle" else "Scheduled")

    @on("ChangeAvailability")  # type: ignore[misc]
    async def on_change_availability(self, operational_status: str, **_: Any) -> Any:
        return call_result.ChangeAvailability(status="Accepted")

    @on("TriggerMessage")  # type: ignore[misc]
    async def on_trigger_message(self, requested_message: str, **_: Any) -> Any:
        if requested_message == "Heartbeat":
            self._later(self.call(call.Heartbeat()))
        return call_result.TriggerMessage(status="Accepted")

    @on("GetVariables")  # type: ignore[misc]
    async def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        results = [
            {
                "attributeStatus": "Accepted",
                "attributeValue": "300",
                "component": {"name": d["component"]["name"]},
                "variable": {"name": d["variable"]["name"]},
            }
            for d in get_variable_data
        ]
        return call_result.GetVariables(get_variable_result=results)

    @on("SetVariables")  # type: ignore[misc]
    async def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        results = [
            {
                "attributeStatus": "RebootRequired",
                "component": {"name": d["component"]["name"]},
                "variable": {"name": d["variable"]["name"]},
            }
            for d in set_variable_data
        ]
        return call_result.SetVariables(set_variable_result=results)

    @on("GetBaseReport")  # type: ignore[misc]
    async def on_get_base_report(self, request_id: int, report_base: str, **_: Any) -> Any:
        self._later(self._report(request_id))
        return call_result.GetBaseReport(status="Accepted")

    async def _report(self, request_id: int) -> None:
        now = datetime.now(UTC).isoformat()
        parts = [
            [
                {
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                    "variableAttribute": [{"type": "Actual", "value": "300", "mutability": "ReadWrite"}],
                    "variableCharacteristics": {
                        "dataType": "integer",
                        "supportsMonitoring": False,
                        "unit": "s",
                    },
                }
            ],
            [
                {
                    "component": {"name": "EVSE", "evse": {"id": 3}},
                    "variable": {"name": "AvailabilityState"},
                    "variableAttribute": [
                        {"type": "Actual", "value": "Available", "mutability": "ReadOnly"}
                    ],
                    "variableCharacteristics": {"dataType": "string", "supportsMonitoring": False},
                }
            ],
        ]
        for seq_no, data in enumerate(parts):
            await self.call(
                call.NotifyReport(
                    request_id=request_id,
                    generated_at=now,
                    seq_no=seq_no,
                    tbc=seq_no < len(parts) - 1,
                    report_data=data,
                )
            )

    @on("UpdateFirmware")  # type: ignore[misc]
    async def on_update_firmware(self, request_id: int, firmware: dict[str, Any], **_: Any) -> Any:
        self._later(self._firmware(request_id))
        return call_result.UpdateFirmware(status="Accepted")

    async def _firmware(self, request_id: int) -> None:
        for status in ("Downloading", "Downloaded", "Installing", "Installed"):
            await self.call(call.FirmwareStatusNotification(status=status, request_id=request_id))

    @on("GetLog")  # type: ignore[misc]
    async def on_get_log(self, log_type: str, request_id: int, log: dict[str, Any], **_: Any) -> Any:
        self._later(self._log(request_id))
        return call_result.GetLog(status="Accepted", filename="diag-ST1.zip")

    async def _log(self, request_id: int) -> None:
        for status in ("Uploading", "Uploaded"):
            await self.call(call.LogStatusNotification(status=status, request_id=request_id))

    @on("UnlockConnector")  # type: ignore[misc]
    async def on_unlock_connector(self, evse_id: int, connector_id: int, **_: Any) -> Any:
        return call_result.UnlockConnector(status="Unlocked")

    @on("SetDisplayMessage")  # type: ignore[misc]
    async def on_set_display_message(self, message: dict[str, Any], **_: Any) -> Any:
        return call_result.SetDisplayMessage(status="Accepted")

    @on("GetLocalListVersion")  # type: ignore[misc]
    async def on_get_local_list_version(self, **_: Any) -> Any:
        return call_result.GetLocalListVersion(version_number=0)


async def _connect(server: LiveServer, station_id: str, password: str) -> Connected:
    """A ManagedStation connected and booted."""
    connected = await connect(server, station_id, password, client=ManagedStation)
    assert (await boot(connected)).status == "Accepted"
    return connected


async def _until(check: Any, timeout_s: float = WAIT_S) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await asyncio.to_thread(check):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the condition did not hold in time")
        await asyncio.sleep(0.05)


async def test_every_command_reaches_the_station_valid_and_its_answer_is_recorded(
    db: Database, live_server: LiveServer
) -> None:
    passwords = network(db)
    st1 = await _connect(live_server, "ST1", passwords["ST1"])
    station: ManagedStation = st1.station  # type: ignore[assignment]
    by = "ops@example.com"
    now = datetime.now(UTC)

    sent = {
        "Reset": await asyncio.to_thread(manage.reset, db, "ST1", hard=True, requested_by=by),
        "ChangeAvailability": await asyncio.to_thread(
            lambda: manage.change_availability(db, "ST1", operative=False, slot_no=2, requested_by=by)
        ),
        "TriggerMessage": await asyncio.to_thread(
            manage.trigger, db, "ST1", "heartbeat", requested_by=by
        ),
        "GetVariables": await asyncio.to_thread(
            lambda: manage.get_variables(
                db, "ST1", [("OCPPCommCtrlr", "HeartbeatInterval")], requested_by=by
            )
        ),
        "SetVariables": await asyncio.to_thread(
            lambda: manage.set_variables(
                db, "ST1", [("OCPPCommCtrlr", "HeartbeatInterval", "120")], requested_by=by
            )
        ),
        "UnlockConnector": await asyncio.to_thread(manage.unlock, db, "ST1", 4, requested_by=by),
        "SetDisplayMessage": await asyncio.to_thread(
            lambda: manage.display_message(
                db, "ST1", "Maintenance at 22:00 · 점검 안내", minutes=90, requested_by=by, now=now
            )
        ),
        "GetLocalListVersion": await asyncio.to_thread(
            manage.local_list_version, db, "ST1", requested_by=by
        ),
    }
    assert station.schema_errors == []
    assert [action for action, _ in station.received] == list(sent)
    for action, record in sent.items():
        assert record.state == commands.CommandState.ANSWERED, (action, record.error)
        assert record.action == action and record.requested_by == by
    assert sent["Reset"].payload == {"type": "Immediate"}
    assert sent["Reset"].answer_status == "Scheduled"
    assert sent["ChangeAvailability"].payload == {"operationalStatus": "Inoperative", "evse": {"id": 2}}
    assert sent["GetVariables"].response == {
        "getVariableResult": [
            {
                "attributeStatus": "Accepted",
                "attributeValue": "300",
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
            }
        ]
    }
    assert sent["SetVariables"].response["setVariableResult"][0]["attributeStatus"] == "RebootRequired"  # type: ignore[index]
    assert sent["UnlockConnector"].answer_status == "Unlocked"
    message = sent["SetDisplayMessage"].payload["message"]
    assert message["message"]["content"] == "Maintenance at 22:00 · 점검 안내"
    assert sent["GetLocalListVersion"].response == {"versionNumber": 0}
    # Newest first, all of them, each with its answer.
    listed = await asyncio.to_thread(manage.commands_of, db, "ST1")
    assert [r.action for r in listed] == list(reversed(sent))
    base = live_server.url.replace("ws://", "http://", 1)
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"{base}/metrics")).text
    assert 'swapd_station_commands_total{action="Reset",outcome="answered"} 1.0' in metrics
    await st1.close()


async def test_firmware_logs_and_base_report_are_followed_by_their_notifications(
    db: Database, live_server: LiveServer
) -> None:
    passwords = network(db)
    st1 = await _connect(live_server, "ST1", passwords["ST1"])
    station: ManagedStation = st1.station  # type: ignore[assignment]
    at = datetime.now(UTC) + timedelta(minutes=5)

    firmware = await asyncio.to_thread(
        lambda: manage.update_firmware(
            db, "ST1", url="https://fw.example/st-2.4.bin", retrieve_at=at, requested_by="a"
        )
    )
    logs = await asyncio.to_thread(
        lambda: manage.get_log(db, "ST1", url="https://logs.example/upload", requested_by="a")
    )
    report = await asyncio.to_thread(lambda: manage.base_report(db, "ST1", requested_by="a"))
    assert station.schema_errors == []
    assert firmware.answer_status == logs.answer_status == report.answer_status == "Accepted"
    assert firmware.payload["firmware"]["retrieveDateTime"] == at.isoformat(timespec="seconds").replace(
        "+00:00", "Z"
    )
    assert logs.response == {"status": "Accepted", "filename": "diag-ST1.zip"}

    def settled() -> bool:
        return (
            manage.command(db, firmware.id).status == "Installed"
            and manage.command(db, logs.id).status == "Uploaded"
            and manage.command(db, report.id).status == "Complete"
        )

    await _until(settled)
    await asyncio.gather(*station.follow_ups)
    notes = await asyncio.to_thread(manage.notifications_of, db, "ST1")
    firmware_notes = [n.status for n in reversed(notes) if n.action == "FirmwareStatusNotification"]
    assert firmware_notes == ["Downloading", "Downloaded", "Installing", "Installed"]
    assert all(
        n.request_id == firmware.request_id for n in notes if n.action == "FirmwareStatusNotification"
    )
    inventory = {v.key: v for v in await asyncio.to_thread(manage.inventory, db, "ST1")}
    assert inventory["OCPPCommCtrlr/HeartbeatInterval#Actual"].value == "300 s"
    assert inventory["OCPPCommCtrlr/HeartbeatInterval#Actual"].mutability == "ReadWrite"
    assert inventory["EVSE@3/AvailabilityState#Actual"].evse_id == 3

    # A second report replaces the inventory instead of adding to it.
    again = await asyncio.to_thread(lambda: manage.base_report(db, "ST1", requested_by="a"))
    await _until(lambda: manage.command(db, again.id).status == "Complete")
    rows = await asyncio.to_thread(manage.inventory, db, "ST1")
    assert len(rows) == 2 and {r.updated_at >= inventory[r.key].updated_at for r in rows} == {True}
    await st1.close()


async def test_a_station_not_connected_is_refused_at_once_or_gets_the_command_when_it_connects(
    db: Database, live_server: LiveServer
) -> None:
    passwords = network(db)
    started = asyncio.get_running_loop().time()
    with pytest.raises(StationOffline):
        await asyncio.to_thread(manage.reset, db, "ST1", hard=False, requested_by="ops")
    assert asyncio.get_running_loop().time() - started < 2.0  # refused at once, nothing waited

    queued = await asyncio.to_thread(
        lambda: manage.reset(db, "ST1", hard=False, requested_by="ops", queue_s=600)
    )
    assert queued.queued and queued.state == commands.CommandState.PENDING
    assert queued.expires_at - queued.created_at == timedelta(seconds=600)

    st1 = await _connect(live_server, "ST1", passwords["ST1"])
    station: ManagedStation = st1.station  # type: ignore[assignment]
    await _until(lambda: manage.command(db, queued.id).state == commands.CommandState.ANSWERED)
    assert station.received == [("Reset", {"type": "OnIdle"})]
    assert manage.command(db, queued.id).answer_status == "Accepted"
    await st1.close()


async def test_a_queued_command_expires_if_the_station_never_comes(
    db: Database, clock: ManualClock
) -> None:
    network(db)
    record = manage.reset(db, "ST2", hard=True, requested_by="ops", queue_s=60)
    clock.set(clock.now() + timedelta(seconds=59))
    assert commands.expire_queued(db) == 0
    clock.set(clock.now() + timedelta(seconds=1))
    assert commands.expire_queued(db) == 1
    assert manage.command(db, record.id).state == commands.CommandState.EXPIRED
    assert commands.expire_queued(db) == 0  # once


async def test_a_slot_taken_out_of_service_is_never_offered(
    db: Database, live_server: LiveServer
) -> None:
    passwords = network(db)
    catalog.register_pack(db, "B-1", "G2", soc=100, soh=100, station_id="ST1", slot_no=1)
    catalog.register_pack(db, "B-2", "G2", soc=90, soh=100, station_id="ST1", slot_no=2)
    catalog.add_rider(db, "R1", "energy")
    catalog.add_token(db, TokenType.RFID, "CARD-R1", rider_id="R1")
    top_up(db, "R1", 5_000, "pay-1")
    st1 = await _connect(live_server, "ST1", passwords["ST1"])
    card = {"idToken": "CARD-R1", "type": "ISO14443"}

    await asyncio.to_thread(
        lambda: manage.change_availability(db, "ST1", operative=False, slot_no=1, requested_by="ops")
    )
    info = (await st1.station.call(call.Authorize(id_token=card))).id_token_info
    assert info["status"] == "Accepted" and info["evse_id"] == [2]  # the fuller pack sits in slot 1
    assert manage.out_of_service_slots(db, "ST1") == [1]

    await asyncio.to_thread(
        lambda: manage.change_availability(db, "ST1", operative=False, slot_no=2, requested_by="ops")
    )
    # The offer of slot 2 is still open for this rider; a new rider finds nothing to take.
    catalog.add_rider(db, "R2", "energy")
    catalog.add_token(db, TokenType.RFID, "CARD-R2", rider_id="R2")
    top_up(db, "R2", 5_000, "pay-2")
    refused = (
        await st1.station.call(call.Authorize(id_token={"idToken": "CARD-R2", "type": "ISO14443"}))
    ).id_token_info
    assert refused["status"] != "Accepted"

    await asyncio.to_thread(
        lambda: manage.change_availability(db, "ST1", operative=True, slot_no=1, requested_by="ops")
    )
    again = (
        await st1.station.call(call.Authorize(id_token={"idToken": "CARD-R2", "type": "ISO14443"}))
    ).id_token_info
    assert again["status"] == "Accepted" and again["evse_id"] == [1]
    await st1.close()


async def test_bad_requests_are_refused_before_anything_is_queued(db: Database) -> None:
    network(db)
    with pytest.raises(InvalidInput, match="trigger one of"):
        manage.trigger(db, "ST1", "reboot", requested_by="ops")
    with pytest.raises(InvalidInput, match="slot 13 does not exist"):
        manage.unlock(db, "ST1", 13, requested_by="ops")
    with pytest.raises(InvalidInput, match="URL"):
        manage.get_log(db, "ST1", url="file:///etc/passwd", requested_by="ops")
    with pytest.raises(InvalidInput, match=r"1\.\.512 characters"):
        manage.display_message(
            db, "ST1", "x" * 513, minutes=None, requested_by="ops", now=datetime.now(UTC)
        )
    with pytest.raises(InvalidInput, match=r"1\.\.50 variables"):
        manage.get_variables(db, "ST1", [("C", f"V{i}") for i in range(51)], requested_by="ops")
    # The schema itself: a component name over its 50 characters never reaches the queue.
    with pytest.raises(InvalidInput, match="GetVariablesRequest"):
        manage.get_variables(db, "ST1", [("C" * 51, "V")], requested_by="ops")
    assert manage.commands_of(db, "ST1") == []


async def _swapd(db: Database, *args: str) -> tuple[int, str, str]:
    swapd = shutil.which("swapd") or str(Path(sys.executable).parent / "swapd")
    url = db.engine.url.render_as_string(hide_password=False)
    process = await asyncio.create_subprocess_exec(
        swapd, *args, "--database", url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_cli_manages_a_connected_station_and_queues_for_one_that_is_not(
    db: Database, live_server: LiveServer
) -> None:
    """`swapd station ...` runs in its own process; the server process holds the socket."""
    passwords = network(db)
    st1 = await _connect(live_server, "ST1", passwords["ST1"])
    station: ManagedStation = st1.station  # type: ignore[assignment]

    code, out, err = await _swapd(
        db, "station", "availability", "ST1", "inoperative", "--slot", "3", "--json"
    )
    assert code == 0, err
    answer = json.loads(out)
    assert (answer["action"], answer["state"], answer["answer_status"]) == (
        "ChangeAvailability",
        "answered",
        "Accepted",
    )
    assert answer["request"] == {"operationalStatus": "Inoperative", "evse": {"id": 3}}
    assert manage.out_of_service_slots(db, "ST1") == [3]

    code, out, err = await _swapd(
        db, "station", "variables", "get", "ST1", "OCPPCommCtrlr.HeartbeatInterval"
    )
    assert code == 0, err
    assert "HeartbeatInterval" in out and "300" in out

    code, out, err = await _swapd(db, "station", "reset", "ST2")
    assert code == 2 and "ST2 is not connected" in err and "Traceback" not in err
    code, out, err = await _swapd(db, "station", "reset", "ST2", "--queue", "10m", "--json")
    assert code == 0, err
    assert json.loads(out)["queued"] is True and json.loads(out)["state"] == "pending"
    code, out, err = await _swapd(db, "station", "reset", "ST2", "--queue", "ten minutes")
    assert code == 2 and "--queue" in err

    code, out, err = await _swapd(db, "station", "commands", "ST1", "--json")
    assert code == 0, err
    assert [c["action"] for c in json.loads(out)] == ["GetVariables", "ChangeAvailability"]
    assert [a for a, _ in station.received] == ["ChangeAvailability", "GetVariables"]
    await st1.close()


async def test_a_refused_availability_change_leaves_the_slot_in_service(db: Database) -> None:
    """Found by schemathesis: the slot was taken out before the command was refused."""
    network(db)
    with pytest.raises(StationOffline):
        manage.change_availability(db, "ST1", operative=False, slot_no=1, requested_by="ops")
    assert manage.out_of_service_slots(db, "ST1") == []
    manage.change_availability(db, "ST1", operative=False, slot_no=1, requested_by="ops", queue_s=60)
    assert manage.out_of_service_slots(db, "ST1") == [1]  # queued: the operator's intent holds


async def test_a_queued_command_waits_for_the_station_s_first_boot(
    db: Database, live_server: LiveServer
) -> None:
    """OCPP: no request to a station before its BootNotification is accepted."""
    passwords = network(db)
    queued = manage.reset(db, "ST1", hard=False, requested_by="ops", queue_s=600)
    connected = await connect(live_server, "ST1", passwords["ST1"], client=ManagedStation)
    station: ManagedStation = connected.station  # type: ignore[assignment]
    await asyncio.sleep(1.0)  # four of the dispatcher's polls
    assert station.received == []
    assert manage.command(db, queued.id).state == commands.CommandState.PENDING
    assert (await boot(connected)).status == "Accepted"
    await _until(lambda: manage.command(db, queued.id).state == commands.CommandState.ANSWERED)
    assert [a for a, _ in station.received] == ["Reset"]
    await connected.close()

"""The console's station management: the buttons and forms of a station's page (reset, ask for
its status or a base report, take a slot out of service or back in, unlock it, show a notice on
its screen) and the list of commands sent to it with their answers.

A form posts to ``/stations/{id}/manage`` (swapd.web.console); the command goes through the
command queue like the CLI's and the API's (swapd.services.station_management), waits for the
station's answer, and the page comes back with the command highlighted, or with the error.
Admins and operators only; support staff see the list.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from swapd import i18n
from swapd.domain.errors import Forbidden, InvalidInput
from swapd.services import local_lists
from swapd.services import station_management as manage
from swapd.services.identity import Principal, Role
from swapd.store.database import Database

QUEUE_S = 24 * 3600.0  # the console's "queue if away": a day
COMMANDS_LISTED = 10
STATE_TEXT = {
    "pending": "Pending",
    "sent": "Sent",
    "answered": "Answered",
    "failed": "Failed",
    "expired": "Expired",
    "undelivered": "Not delivered",
}


def list_line(db: Database, station_id: str) -> dict[str, Any]:
    """The station's local authorization list as last accepted (version 0: never sent)."""
    held = local_lists.station_list(db, station_id)
    return {"version": held.version, "entries": len(held.entries), "error": held.last_error}


INVENTORY_SHOWN = 200


def inventory_lines(db: Database, station_id: str) -> list[manage.Variable]:
    """The station's inventory from its last base report, as many rows as a page shows."""
    return manage.inventory(db, station_id)[:INVENTORY_SHOWN]


def push_list(db: Database, user: Principal, station_id: str, full: bool) -> str:
    result = local_lists.push(db, station_id, full=full, requested_by=user.actor)
    return (
        f"{result.update_type or 'no'} update, list version {result.version}, {result.entries:,} entries"
    )


def can_manage(user: Principal) -> bool:
    return user.role in (Role.ADMIN, Role.OPERATOR)


def command_lines(db: Database, station_id: str, t: i18n.Translator) -> list[dict[str, Any]]:
    lines = []
    for r in manage.commands_of(db, station_id, limit=COMMANDS_LISTED):
        state = t.gettext(STATE_TEXT.get(r.state, r.state))
        if r.queued and r.state == "pending":
            state += " · " + t.gettext("queued")
        lines.append(
            {
                "id": r.id,
                "at": t.when(r.created_at),
                "action": r.action,
                "by": r.requested_by or "",
                "state": r.state,
                "state_text": state,
                "answer": r.answer_status or (r.error or ""),
                "status": r.status or "",
            }
        )
    return lines


def run(db: Database, user: Principal, station_id: str, form: dict[str, str]) -> manage.CommandRecord:
    """The command a form names, with its fields read and bounded by the use cases."""
    command = form.get("command", "")
    by = user.actor
    queue_s = QUEUE_S if form.get("queue") == "1" else 0.0
    if command in ("reset", "reset_hard"):
        return manage.reset(
            db, station_id, hard=command == "reset_hard", requested_by=by, queue_s=queue_s
        )
    if command == "trigger_status":
        return manage.trigger(db, station_id, "status", requested_by=by)
    if command == "report":
        return manage.base_report(db, station_id, requested_by=by, queue_s=queue_s)
    if command in ("inoperative", "operative", "unlock"):
        slot = _slot(form.get("slot", ""))
        if command == "unlock":
            return manage.unlock(db, station_id, slot, requested_by=by)
        return manage.change_availability(
            db,
            station_id,
            operative=command == "operative",
            slot_no=slot,
            requested_by=by,
            queue_s=queue_s,
        )
    if command == "firmware":
        if user.role is not Role.ADMIN:
            raise Forbidden("firmware updates are for admins")
        return manage.update_firmware(
            db, station_id, url=form.get("url", "").strip(), retrieve_at=datetime.now(UTC),
            requested_by=by, queue_s=queue_s,
        )  # fmt: skip
    if command == "logs":
        return manage.get_log(
            db, station_id, url=form.get("url", "").strip(), requested_by=by, queue_s=queue_s
        )
    if command == "message":
        minutes_text = form.get("minutes", "").strip()
        minutes = _int(minutes_text, "minutes") if minutes_text else None
        return manage.display_message(
            db,
            station_id,
            form.get("text", ""),
            minutes=minutes,
            requested_by=by,
            now=datetime.now(UTC),
            queue_s=queue_s,
        )
    raise InvalidInput("choose a command")


def _int(text: str, what: str) -> int:
    if not text.isdigit() or len(text) > 6:
        raise InvalidInput(f"{what} must be a whole number")
    return int(text)


def _slot(text: str) -> int:
    return _int(text.strip(), "slot")

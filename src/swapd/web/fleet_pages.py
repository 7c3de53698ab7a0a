"""The console's packs and alerts: where every pack is, how the fleet's health is spread, one
pack's history with its out-of-service actions (operators, with a reason), the alerts, and what
right-sizing and the fleet policy did (swaps saved per station and day, the wear spread)."""

from __future__ import annotations

from datetime import UTC, timedelta

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from swapd.domain.errors import DomainError, NotFound
from swapd.domain.packs import PackStatus
from swapd.readmodels import alerts, packs, right_sizing
from swapd.services import back_office
from swapd.services.identity import Role
from swapd.web import session
from swapd.web.render import database, read_database, render

router = APIRouter(include_in_schema=False)
LIST_LIMIT = 200
RIGHT_SIZING_DAYS = 30  # the page's window, UTC days ending today

PACK_STATUS_TEXT = {
    "in_stock": "In the depot",
    "in_slot": "In a slot",
    "with_rider": "With a rider",
    "quarantined": "Quarantined",
    "retired": "Retired",
}
# What an operator may do with a pack that is not with a rider: the form's value -> the status.
OUT_OF_SERVICE = {
    "withdraw": PackStatus.IN_STOCK,
    "quarantine": PackStatus.QUARANTINED,
    "retire": PackStatus.RETIRED,
}


@router.get("/packs")
def packs_page(request: Request, status: str = "", station: str = "") -> HTMLResponse:
    db = database(request)
    user = session.staff(db, request)
    # The replica: the fleet list and its health summary; one pack's page reads the primary.
    reads = read_database(request)
    wanted = status if status in PACK_STATUS_TEXT else None
    station_id = station.strip()[:40] or None
    listed = packs.packs(reads, status=wanted, station_id=station_id, limit=LIST_LIMIT)
    summary = packs.fleet_summary(reads)
    busiest = max((count for _, count in summary.soh_bins), default=0)
    return render(
        request,
        "packs.html",
        user=user,
        packs=listed,
        summary=summary,
        busiest=busiest,
        statuses=PACK_STATUS_TEXT,
        chosen=wanted or "",
        station=station_id or "",
    )


@router.get("/packs/{serial}")
def pack_page(request: Request, serial: str, error: str | None = None) -> HTMLResponse:
    db = database(request)
    user = session.staff(db, request)
    try:
        history = packs.pack_history(db, serial, limit=50)
    except NotFound:
        return render(request, "not_found.html", status=404, user=user, what=serial)
    return render(
        request,
        "pack.html",
        status=400 if error else 200,
        user=user,
        h=history,
        statuses=PACK_STATUS_TEXT,
        can_act=user.role in (Role.ADMIN, Role.OPERATOR)
        and history.pack.status not in (PackStatus.WITH_RIDER, PackStatus.RETIRED),
        error=error,
        done=request.query_params.get("done") == "1",
    )


@router.post("/packs/{serial}/out-of-service")
async def out_of_service(request: Request, serial: str) -> Response:
    session.check_same_origin(request)
    db = database(request)
    user = await run_in_threadpool(session.staff, db, request)
    if user.role not in (Role.ADMIN, Role.OPERATOR):
        return render(request, "forbidden.html", status=403, user=user)
    form = session.parse_form(await request.body())
    target = OUT_OF_SERVICE.get(form.get("action", ""))
    try:
        if target is None:
            raise DomainError("choose withdraw, quarantine or retire")
        await run_in_threadpool(
            back_office.take_out_of_service, db, user.actor, serial, target, form.get("reason", "")
        )
    except DomainError as error:
        return await run_in_threadpool(pack_page, request, serial, error.message)
    return RedirectResponse(f"/packs/{serial}?done=1", status_code=303)


@router.get("/alerts")
def alerts_page(request: Request, kind: str = "") -> HTMLResponse:
    db = database(request)
    user = session.staff(db, request)
    # The replica: alerts are a report of what happened.
    reads = read_database(request)
    wanted = kind.strip()[:32] or None
    rows = alerts.alerts(reads, kind=wanted, limit=LIST_LIMIT)
    return render(request, "alerts.html", user=user, alerts=rows, kind=wanted or "")


@router.get("/right-sizing")
def right_sizing_page(request: Request) -> HTMLResponse:
    db = database(request)
    user = session.staff(db, request)
    # The replica: counts of what happened, a report.
    reads = read_database(request)
    today = db.clock.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since = today - timedelta(days=RIGHT_SIZING_DAYS - 1)
    days = right_sizing.station_days(reads, since, today + timedelta(days=1))
    totals = {
        "saved": sum(d.saved_swaps for d in days),
        "asked": sum(d.asked for d in days),
        "declined": sum(d.declined for d in days),
        "refused": sum(d.no_credit_refusals for d in days),
    }
    return render(
        request,
        "right_sizing.html",
        user=user,
        days=list(reversed(days)),  # newest first
        since=since,
        spread=right_sizing.fleet_spread(reads),
        totals=totals,
    )

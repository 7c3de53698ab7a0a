"""The console's pages: sign-in, the overview, stations and one station's live slot grid.

Each page reads through the read models (``swapd.readmodels``) in a worker thread (the routes are
plain functions, which Starlette runs off the event loop) and renders a template of
``templates/`` in the request's language (``swapd.web.i18n``).
"""

from __future__ import annotations

import io
import math
from typing import Any
from urllib.parse import quote, urlencode

import segno
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from swapd import i18n
from swapd.api.deps import client_address
from swapd.domain.errors import DomainError, NotFound
from swapd.domain.stations import SlotState
from swapd.payments import config as payment_config
from swapd.readmodels import alerts as alert_model
from swapd.readmodels import overview as overview_model
from swapd.readmodels import stations as station_model
from swapd.readmodels import swaps as swap_model
from swapd.services.identity import Role
from swapd.web import (
    admin_pages,
    fleet_pages,
    live,
    rider_app,
    riders_pages,
    session,
    station_manage,
    swaps_pages,
)
from swapd.web.render import HERE, database, read_database, render, translator

router = APIRouter(include_in_schema=False)
# The console's own files (the API's /docs serves Swagger UI's under /static).
STATIC_PATH = "/console/static"

# How long one stream of a station's slots lasts; the browser's EventSource then reconnects.
LIVE_STREAM_S = 600.0


# -- sign-in ----------------------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return render(request, "login.html", next=session.local_path(next), error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    session.check_same_origin(request)
    form = session.parse_form(await request.body())
    target = session.local_path(form.get("next"))
    try:
        token = await run_in_threadpool(
            session.sign_in,
            database(request),
            form.get("email", ""),
            form.get("password", ""),
            client_address(request),
        )
    except DomainError as error:
        return render(request, "login.html", status=401, next=target, error=error.message)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        session.COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    session.check_same_origin(request)
    session.sign_out(database(request), request)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(session.COOKIE, path="/")
    return response


@router.get("/lang/{language}")
def switch_language(request: Request, language: str, next: str = "/") -> Response:
    response = RedirectResponse(session.local_path(next), status_code=303)
    if language in i18n.LANGUAGES:
        response.set_cookie(i18n.COOKIE, language, samesite="lax", path="/", max_age=365 * 86_400)
    return response


# -- pages ------------------------------------------------------------------------------------------


@router.get("/")
def overview_page(request: Request) -> HTMLResponse:
    db = database(request)
    user = session.staff(db, request)
    # The replica: counts and charts for people; nothing is decided on them.
    reads = read_database(request)
    summary = overview_model.overview(reads, reads.clock.now())
    return render(request, "overview.html", user=user, o=summary)


@router.get("/stations")
def stations_page(request: Request, q: str = "") -> HTMLResponse:
    db = database(request)
    user = session.staff(db, request)
    # The replica: the fleet list and its map.
    reads = read_database(request)
    infos = station_model.stations(reads)
    query = q.strip().lower()[:100]
    if query:
        infos = [
            i for i in infos if query in i.line.station.id.lower() or query in (i.name or "").lower()
        ]
    return render(
        request, "stations.html", user=user, stations=infos, q=q[:100], points=map_points(infos)
    )


@router.get("/stations/{station_id}")
def station_page(request: Request, station_id: str, error: str | None = None) -> HTMLResponse:
    db = database(request)
    user = session.staff(db, request)
    # The replica: the station, its slots, recent swaps and alerts, as the live pages show them.
    # The commands, firmware, local list and inventory read the primary: this page is where a
    # management form lands, and it must show the command just queued.
    reads = read_database(request)
    try:
        info = station_model.station(reads, station_id)
        view = station_model.slot_view(reads, station_id)
    except NotFound:
        return render(request, "not_found.html", status=404, user=user, what=station_id)
    t = translator(request)
    cells = [slot_cell(line, t) for line in view.slots]
    recent = [
        swaps_pages.feed_line(r, t) for r in swap_model.swaps(reads, station_id=station_id, limit=10)
    ]
    events = alert_model.alerts(reads, station_id=station_id, limit=10)
    highlighted = request.query_params.get("command", "")
    return render(
        request,
        "station.html",
        status=400 if error else 200,
        user=user,
        info=info,
        view=view,
        cells=cells,
        recent=recent,
        events=events,
        app_link=app_link(request, station_id),
        can_manage=station_manage.can_manage(user),
        commands=station_manage.command_lines(db, station_id, t),
        highlighted=int(highlighted) if highlighted.isdigit() and len(highlighted) < 19 else None,
        firmware=station_model.firmware_status(db, station_id),
        local_list=station_manage.list_line(db, station_id),
        inventory=station_manage.inventory_lines(db, station_id),
        is_admin=user.role is Role.ADMIN,
        error=error,
    )


@router.post("/stations/{station_id}/manage")
async def manage_station(request: Request, station_id: str) -> Response:
    """A management form of the station's page: run its command (station_manage.run), then
    back to the page with the command highlighted, or the page with the error."""
    session.check_same_origin(request)
    db = database(request)
    user = await run_in_threadpool(session.staff, db, request)
    if not station_manage.can_manage(user):
        return render(request, "forbidden.html", status=403, user=user)
    form = session.parse_form(await request.body())
    try:
        if form.get("command") in ("local_list", "local_list_full"):
            full = form["command"] == "local_list_full"
            await run_in_threadpool(station_manage.push_list, db, user, station_id, full)
            return RedirectResponse(f"/stations/{quote(station_id)}#local-list", status_code=303)
        record = await run_in_threadpool(station_manage.run, db, user, station_id, form)
    except DomainError as error:
        return await run_in_threadpool(station_page, request, station_id, error.message)
    target = f"/stations/{quote(station_id)}?command={record.id}#commands"
    return RedirectResponse(target, status_code=303)


@router.get("/stations/{station_id}/qr.svg")
def station_qr(request: Request, station_id: str) -> Response:
    """The code to print on the station: a phone's camera opens the rider app on it, with the
    station filled in (``/app?station=ID``, on the public address, SWAPD_PUBLIC_URL)."""
    db = database(request)
    session.staff(db, request)
    try:
        station_model.station_line(db, station_id)
    except NotFound:
        return Response("unknown station", status_code=404, media_type="text/plain")
    return Response(qr_svg(app_link(request, station_id), station_id), media_type="image/svg+xml")


def app_link(request: Request, station_id: str) -> str:
    site = payment_config.site_url(str(request.base_url))
    return f"{site}/app?{urlencode({'station': station_id})}"


def qr_svg(data: str, title: str) -> bytes:
    buffer = io.BytesIO()
    code = segno.make(data, error="m")
    code.save(buffer, kind="svg", scale=6, border=2, xmldecl=False, title=title)
    return buffer.getvalue()


@router.get("/stations/{station_id}/live")
async def station_live(request: Request, station_id: str) -> Response:
    db = database(request)
    await run_in_threadpool(session.staff, db, request)
    # The replica: a picture of the slots each second; a second behind is the next frame.
    reads = read_database(request)
    t = translator(request)
    previous: list[dict[str, Any]] = []

    async def step() -> list[str] | None:
        nonlocal previous
        try:
            view = await run_in_threadpool(station_model.slot_view, reads, station_id)
        except NotFound:
            return [live.event("gone", {})]
        cells = [slot_cell(line, t) for line in view.slots]
        if cells == previous:
            return []
        previous = cells
        return [live.event("slots", cells)]

    return live.stream(request, step, lasting_s=LIVE_STREAM_S)


# -- the map ----------------------------------------------------------------------------------------

MAP_WIDTH, MAP_HEIGHT, MAP_PAD = 600.0, 360.0, 24.0


def map_points(infos: list[station_model.StationInfo]) -> list[dict[str, Any]]:
    """Stations with coordinates as points on a plain map (no tiles, nothing from outside):
    longitude and latitude scaled into the drawing, north up, with the aspect of the area kept
    (longitude shrunk by the cosine of the middle latitude)."""
    placed = [i for i in infos if i.lat_microdeg is not None and i.lon_microdeg is not None]
    if not placed:
        return []
    lats = [i.lat_microdeg or 0 for i in placed]
    lons = [i.lon_microdeg or 0 for i in placed]
    shrink = math.cos(math.radians((max(lats) + min(lats)) / 2 / 1_000_000))
    span_x = max((max(lons) - min(lons)) * shrink, 1.0)
    span_y = max(max(lats) - min(lats), 1.0)
    scale = min((MAP_WIDTH - 2 * MAP_PAD) / span_x, (MAP_HEIGHT - 2 * MAP_PAD) / span_y)
    points = []
    for info, lat, lon in zip(placed, lats, lons, strict=True):
        line = info.line
        points.append(
            {
                "id": line.station.id,
                "name": info.name or line.station.id,
                "x": round(MAP_PAD + (lon - min(lons)) * shrink * scale, 1),
                "y": round(MAP_HEIGHT - MAP_PAD - (lat - min(lats)) * scale, 1),
                "charged": line.charged,
                "level": "none" if line.charged == 0 else ("low" if line.charged < 3 else "ok"),
            }
        )
    return points


# -- the slot grid ------------------------------------------------------------------------------------

STATUS_TEXT = {
    "empty": "Empty",
    "ready": "Ready",
    "charging": "Charging",
    "reserved": "Reserved",
    "out_of_service": "Out of service",
}


def slot_status(line: station_model.SlotLine) -> str:
    """What an operator sees in a slot: out of service, empty, reserved for a rider, charged and
    ready to hand out, or charging."""
    if line.state is SlotState.UNAVAILABLE:
        return "out_of_service"
    if line.pack_serial is None:
        return "empty"
    if line.reserved_swap_id is not None:
        return "reserved"
    return "ready" if line.charged else "charging"


def slot_cell(line: station_model.SlotLine, t: i18n.Translator) -> dict[str, Any]:
    status = slot_status(line)
    return {
        "slot_no": line.slot_no,
        "status": status,
        "status_text": t.gettext(STATUS_TEXT[status]),
        "pack_serial": line.pack_serial or "",
        "soc": t.percent_bp(line.soc_bp),
        "soh": t.percent_bp(line.soh_bp),
    }


# -- mounting ---------------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Mount the console on ``app`` (whose ``state.db`` the API has set)."""

    @app.exception_handler(session.SignInRequired)
    async def _sign_in(request: Request, _error: session.SignInRequired) -> Response:
        target = session.local_path(request.url.path)
        if request.url.path.endswith("/live"):
            return Response(status_code=401)
        return RedirectResponse(f"/login?next={target}", status_code=303)

    @app.exception_handler(rider_app.RiderSignInRequired)
    async def _rider_sign_in(_request: Request, _error: rider_app.RiderSignInRequired) -> Response:
        return RedirectResponse("/app", status_code=303)

    @app.exception_handler(session.CrossSite)
    async def _cross_site(_request: Request, _error: session.CrossSite) -> Response:
        return Response("cross-site request refused", status_code=403, media_type="text/plain")

    app.mount(STATIC_PATH, StaticFiles(directory=HERE / "static"), name="console-static")
    app.include_router(router)
    app.include_router(swaps_pages.router)
    app.include_router(riders_pages.router)
    app.include_router(fleet_pages.router)
    app.include_router(rider_app.router)
    app.include_router(admin_pages.router)

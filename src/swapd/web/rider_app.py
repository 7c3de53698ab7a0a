"""The rider web app at ``/app``: phone first, installable (a web manifest and a service worker).

A rider signs up or signs in (the session token in an HttpOnly cookie, SameSite=Lax so that it
comes back with the rider from the payment page), sees the balance in the plan's unit and in
money, tops up through the configured payment provider, starts a swap by the station's id (the
QR code on the station holds it), follows it live, and keeps a receipt of every swap. Every POST
must come from this origin.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from swapd.api.deps import client_address
from swapd.api.payments import configured_provider
from swapd.documents.receipt import receipt_pdf
from swapd.documents.statement import statement_pdf
from swapd.domain.errors import DomainError, InvalidInput, Unauthenticated
from swapd.domain.quantities import parse_money
from swapd.payments import config as payment_config
from swapd.readmodels import money, plans, riders, swap_history
from swapd.readmodels import stations as station_model
from swapd.services import app_swaps, cards, checkout, identity, pack_policy, statements
from swapd.services.identity import Principal, Role
from swapd.store.database import Database
from swapd.web import live, session
from swapd.web.downloads import months_of, pdf_response
from swapd.web.render import HERE, database, render, translator
from swapd.web.swaps_pages import STATE_TEXT

router = APIRouter(include_in_schema=False)
COOKIE = "swapd_rider"
STATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,39}")
TOP_UP_CHOICES_MAJOR = (5_000, 10_000, 30_000)  # KRW; other currencies type an amount
HISTORY_LIMIT = 20
PROGRESS_STREAM_S = 300.0


class RiderSignInRequired(Exception):
    """No rider session: the app answers with its welcome page."""


def rider(db: Database, request: Request) -> Principal:
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 200:
        raise RiderSignInRequired()
    try:
        principal = identity.authenticate(db, token)
    except Unauthenticated:
        raise RiderSignInRequired() from None
    if principal.role is not Role.RIDER or principal.rider_id is None:
        raise RiderSignInRequired()
    return principal


def _signed_in(request: Request, token: str, target: str = "/app") -> Response:
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="lax", secure=request.url.scheme == "https", path="/app"
    )
    return response


def _station_asked(request: Request) -> str:
    """The station of a scanned code (``/app?station=ID``), if it looks like a station id."""
    station = request.query_params.get("station", "")
    return station if STATION_ID.fullmatch(station) else ""


def _welcome(request: Request, status: int = 200, error: str | None = None) -> HTMLResponse:
    listed = plans.listed_plans(database(request))
    station = _station_asked(request)
    after = f"/app?station={station}" if station else "/app"
    context = {"plans": listed, "error": error, "station": station, "after": after}
    return render(request, "app/welcome.html", status=status, app=True, **context)


# -- signing up and in ----------------------------------------------------------------------------


@router.post("/app/signup")
async def sign_up(request: Request) -> Response:
    session.check_same_origin(request)
    db = database(request)
    form = session.parse_form(await request.body())
    email, password = form.get("email", ""), form.get("password", "")
    try:
        await run_in_threadpool(identity.sign_up_rider, db, email, password, form.get("plan", ""))
        issued = await run_in_threadpool(
            identity.login, db, email, password, client=client_address(request)
        )
    except DomainError as error:
        return await run_in_threadpool(_welcome, request, 400, error.message)
    return _signed_in(request, issued.token, session.local_path(form.get("next")))


@router.post("/app/login")
async def log_in(request: Request) -> Response:
    session.check_same_origin(request)
    db = database(request)
    form = session.parse_form(await request.body())
    try:
        issued = await run_in_threadpool(
            identity.login,
            db,
            form.get("email", ""),
            form.get("password", ""),
            client=client_address(request),
        )
    except DomainError as error:
        return await run_in_threadpool(_welcome, request, 401, error.message)
    if issued.user.role is not Role.RIDER:
        await run_in_threadpool(identity.revoke, db, issued.id)
        return await run_in_threadpool(_welcome, request, 401, "staff sign in at the console (/)")
    return _signed_in(request, issued.token, session.local_path(form.get("next")))


@router.post("/app/logout")
def log_out(request: Request) -> Response:
    session.check_same_origin(request)
    db = database(request)
    with contextlib.suppress(RiderSignInRequired):
        identity.revoke(db, rider(db, request).token_id)
    response = RedirectResponse("/app", status_code=303)
    response.delete_cookie(COOKIE, path="/app")
    return response


# -- home, top-up, swap ---------------------------------------------------------------------------


@router.get("/app")
def home(request: Request, error: str | None = None) -> HTMLResponse:
    return home_page(request, error)


def home_page(
    request: Request,
    error: str | None = None,
    ask: app_swaps.AppSwap | None = None,
    ask_station: str = "",
) -> HTMLResponse:
    """The rider's home; ``ask``: a right-sized offer at ``ask_station`` waiting for a yes."""
    db = database(request)
    try:
        who = rider(db, request)
    except RiderSignInRequired:
        return _welcome(request)
    assert who.rider_id is not None
    view = money.balance_view(db, who.rider_id)
    return render(
        request,
        "app/home.html",
        status=400 if error else 200,
        app=True,
        who=who,
        b=view.balance,
        choices=TOP_UP_CHOICES_MAJOR if view.balance.currency == "KRW" else (),
        form_key=secrets.token_urlsafe(12),
        station=_station_asked(request),
        error=error,
        ask=ask,
        ask_station=ask_station,
        consent=pack_policy.rider_consent(db, who.rider_id).value,
        payments_ready=configured_provider(request) is not None,
    )


@router.post("/app/topup")
async def top_up(request: Request) -> Response:
    session.check_same_origin(request)
    db = database(request)
    who = await run_in_threadpool(rider, db, request)
    assert who.rider_id is not None
    form = session.parse_form(await request.body())
    provider = configured_provider(request)
    site = payment_config.site_url(str(request.base_url))
    try:
        if provider is None:
            raise DomainError(payment_config.NOT_CONFIGURED)
        key = form.get("key", "")
        if not 8 <= len(key) <= 40:
            raise InvalidInput("this form has expired: open the app again")
        currency = (await run_in_threadpool(money.rider_balance, db, who.rider_id)).currency
        started = await run_in_threadpool(
            lambda: checkout.start_top_up(
                db,
                provider,
                who.rider_id or "",
                parse_money(form.get("amount", ""), currency),
                key=f"app:{who.user_id}:{key}",
                site_url=site,
                return_url=f"{site}/app",
            )
        )
    except DomainError as error:
        return await run_in_threadpool(home, request, error.message)
    if started.checkout_url is None:  # the provider credited at once: nothing to pay at
        return RedirectResponse("/app", status_code=303)
    return RedirectResponse(started.checkout_url, status_code=303)


@router.post("/app/swap")
async def start_swap(request: Request) -> Response:
    session.check_same_origin(request)
    db = database(request)
    who = await run_in_threadpool(rider, db, request)
    form = session.parse_form(await request.body())
    station_id = form.get("station", "").strip()[:40]
    accept = form.get("accept_right_sized") == "1"
    try:
        if not station_id:
            raise InvalidInput("type the station's id, or scan its QR code")
        started = await run_in_threadpool(
            lambda: app_swaps.request_swap(
                db, station_id, who.rider_id or "", timeout_s=20, accept_right_sized=accept
            )
        )
    except DomainError as error:
        return await run_in_threadpool(home, request, error.message)
    if started.asks:  # a right-sized pack, kept for the rider's yes for a few minutes
        return await run_in_threadpool(lambda: home_page(request, None, started, station_id))
    if not started.accepted or started.swap_id is None:
        return await run_in_threadpool(home, request, started.text)
    return RedirectResponse(f"/app/swaps/{started.swap_id}", status_code=303)


@router.post("/app/right-size")
async def set_right_size(request: Request) -> Response:
    """The rider's standing answer to right-sized packs: always, ask or never."""
    session.check_same_origin(request)
    db = database(request)
    who = await run_in_threadpool(rider, db, request)
    form = session.parse_form(await request.body())
    try:
        consent = form.get("consent", "")
        await run_in_threadpool(pack_policy.set_rider_consent, db, who.rider_id or "", consent)
    except DomainError as error:
        return await run_in_threadpool(home, request, error.message)
    return RedirectResponse("/app", status_code=303)


# -- history, receipts, progress ------------------------------------------------------------------


def _line(db: Database, rider_id: str, swap_id: int) -> swap_history.RiderSwapLine | None:
    """The rider's own swap (another rider's swap id answers nothing)."""
    lines = swap_history.rider_swaps(db, rider_id, limit=1, before=swap_id + 1)
    return lines[0] if lines and lines[0].id == swap_id else None


@router.get("/app/swaps/{swap_id}.pdf")
def receipt_download(request: Request, swap_id: int) -> Response:
    db = database(request)
    who = rider(db, request)
    assert who.rider_id is not None
    line = _line(db, who.rider_id, swap_id) if 0 < swap_id < 2**62 else None
    if line is None:
        return Response("no such receipt", status_code=404, media_type="text/plain")
    balance = money.rider_balance(db, who.rider_id)
    language = translator(request).language
    return pdf_response(receipt_pdf(line, balance, language), f"swapd-receipt-{swap_id}.pdf")


@router.get("/app/statements")
def statements_page(request: Request) -> HTMLResponse:
    db = database(request)
    try:
        who = rider(db, request)
    except RiderSignInRequired:
        return _welcome(request)
    assert who.rider_id is not None
    return render(request, "app/statements.html", app=True, who=who, months=months_of(db, who.rider_id))


@router.get("/app/statements/{month}.pdf")
def statement_download(request: Request, month: str) -> Response:
    db = database(request)
    who = rider(db, request)
    assert who.rider_id is not None
    try:
        found = statements.statement(db, who.rider_id, statements.Month.parse(month))
    except DomainError as error:
        return Response(error.message, status_code=404, media_type="text/plain")
    language = translator(request).language
    return pdf_response(statement_pdf(found, language), f"swapd-statement-{month}.pdf")


@router.get("/app/swaps")
def history(request: Request) -> HTMLResponse:
    db = database(request)
    try:
        who = rider(db, request)
    except RiderSignInRequired:
        return _welcome(request)
    assert who.rider_id is not None
    lines = swap_history.rider_swaps(db, who.rider_id, limit=HISTORY_LIMIT)
    return render(request, "app/history.html", app=True, who=who, lines=lines, states=STATE_TEXT)


@router.get("/app/swaps/{swap_id}")
def receipt(request: Request, swap_id: int) -> HTMLResponse:
    db = database(request)
    try:
        who = rider(db, request)
    except RiderSignInRequired:
        return _welcome(request)
    assert who.rider_id is not None
    line = _line(db, who.rider_id, swap_id) if 0 < swap_id < 2**62 else None
    if line is None:
        return render(request, "not_found.html", status=404, app=True, what=str(swap_id))
    b = money.rider_balance(db, who.rider_id)
    return render(request, "app/receipt.html", app=True, who=who, s=line, b=b)


@router.get("/app/swaps/{swap_id}/live")
async def progress(request: Request, swap_id: int) -> Response:
    db = database(request)
    try:
        who = await run_in_threadpool(rider, db, request)
    except RiderSignInRequired:
        return Response(status_code=401)
    last: list[str | None] = ["unsent"]

    async def step() -> list[str] | None:
        if last[0] not in ("unsent", None, "offered"):
            return None  # the swap is over: the page shows the receipt now
        line = await run_in_threadpool(_line, db, who.rider_id or "", swap_id)
        state = None if line is None else line.state
        if state == last[0]:
            return []
        last[0] = state
        return [live.event("state", {"state": state})]

    return live.stream(request, step, lasting_s=PROGRESS_STREAM_S)


# -- stations and cards ---------------------------------------------------------------------------

NEARBY_RADIUS_M = 5_000
STATION_LIMIT = 20


def _coordinate(text: str, limit: float) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return round(value * 1_000_000) if -limit <= value <= limit else None


@router.get("/app/stations")
def stations_page(request: Request, lat: str = "", lon: str = "") -> HTMLResponse:
    """Stations with charged packs: the nearest ones when the phone told us where it is (the
    browser asks the rider first), else the best stocked."""
    db = database(request)
    try:
        who = rider(db, request)
    except RiderSignInRequired:
        return _welcome(request)
    lat_microdeg, lon_microdeg = _coordinate(lat[:20], 90.0), _coordinate(lon[:20], 180.0)
    if lat_microdeg is not None and lon_microdeg is not None:
        near = station_model.nearby(db, lat_microdeg, lon_microdeg, NEARBY_RADIUS_M, limit=STATION_LIMIT)
        lines: list[tuple[str, str | None, int, int | None]] = [
            (n.id, n.name, n.charged_packs, n.distance_m) for n in near
        ]
    else:
        infos = sorted(station_model.stations(db), key=lambda i: (-i.line.charged, i.line.station.id))
        lines = [
            (i.line.station.id, i.name, i.line.charged, None)
            for i in infos[:STATION_LIMIT]
            if i.line.station.enabled
        ]
    located = lat_microdeg is not None and lon_microdeg is not None
    return render(request, "app/stations.html", app=True, who=who, lines=lines, located=located)


@router.get("/app/cards")
def cards_page(request: Request, error: str | None = None) -> HTMLResponse:
    db = database(request)
    try:
        who = rider(db, request)
    except RiderSignInRequired:
        return _welcome(request)
    assert who.rider_id is not None
    held = riders.cards(db, who.rider_id)
    return render(
        request,
        "app/cards.html",
        status=400 if error else 200,
        app=True,
        who=who,
        cards=held,
        error=error,
    )


@router.post("/app/cards")
async def add_card(request: Request) -> Response:
    session.check_same_origin(request)
    db = database(request)
    who = await run_in_threadpool(rider, db, request)
    form = session.parse_form(await request.body())
    try:
        await run_in_threadpool(cards.add_card, db, who.rider_id or "", form.get("uid", "").strip())
    except DomainError as error:
        return await run_in_threadpool(cards_page, request, error.message)
    return RedirectResponse("/app/cards", status_code=303)


# -- installing -----------------------------------------------------------------------------------


@router.get("/app/manifest.webmanifest")
def manifest() -> Response:
    body = {
        "name": "swapd",
        "short_name": "swapd",
        "start_url": "/app",
        "scope": "/app",
        "display": "standalone",
        "background_color": "#f5f7fa",
        "theme_color": "#1d2430",
        "icons": [{"src": "/console/static/icon.svg", "sizes": "any", "type": "image/svg+xml"}],
    }
    return Response(json.dumps(body), media_type="application/manifest+json")


@router.get("/app/sw.js")
def service_worker() -> FileResponse:
    # Served from /app so that its scope is the app; the file itself ships in static/.
    return FileResponse(HERE / "static" / "sw.js", media_type="text/javascript")

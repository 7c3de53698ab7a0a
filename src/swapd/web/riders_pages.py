"""The console's riders: search, one rider's balance (in the plan's unit and in money), swaps and
ledger history, and the audited actions: block and unblock (operators), refund and adjust
(admins), each with a reason. A refund or an adjustment carries an idempotency key made when
the form was drawn, so a form sent twice (a double click, a reload) applies once."""

from __future__ import annotations

import secrets

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from swapd.documents.statement import statement_pdf
from swapd.domain.errors import DomainError, InvalidInput, NotFound
from swapd.domain.quantities import parse_money
from swapd.domain.riders import RiderStatus
from swapd.readmodels import money, riders, swaps
from swapd.services import back_office, statements
from swapd.services.identity import Principal, Role
from swapd.store.database import Database
from swapd.web import session
from swapd.web.downloads import months_of, pdf_response
from swapd.web.render import database, read_database, render, translator
from swapd.web.swaps_pages import STATE_TEXT

router = APIRouter(include_in_schema=False)
SEARCH_LIMIT = 50
DONE_TEXT = {
    "blocked": "The rider is blocked.",
    "unblocked": "The rider is unblocked.",
    "refunded": "The refund is done.",
    "adjusted": "The allowance is adjusted.",
}
STATUS_TEXT = {"active": "Active", "blocked": "Blocked"}


@router.get("/riders")
def riders_page(request: Request, q: str = "") -> HTMLResponse:
    db = database(request)
    user = session.staff(db, request)
    # The replica: the search list; a rider's own page (money actions) reads the primary.
    reads = read_database(request)
    query = q.strip()[:100]
    found: dict[str, riders.RiderRow] = {}
    if query:
        for row in riders.riders(reads, rider_id=query, limit=SEARCH_LIMIT):
            found[row.id] = row
        for row in riders.riders(reads, email=query, limit=SEARCH_LIMIT):
            found[row.id] = row
    else:
        found = {row.id: row for row in riders.riders(reads, limit=SEARCH_LIMIT)}
    rows = list(found.values())
    return render(request, "riders.html", user=user, riders=rows, q=query, statuses=STATUS_TEXT)


def _rider_page(
    request: Request, rider_id: str, user: Principal, error: str | None = None
) -> HTMLResponse:
    db = database(request)
    try:
        row = riders.rider(db, rider_id)
    except NotFound:
        return render(request, "not_found.html", status=404, user=user, what=rider_id)
    view = money.balance_view(db, rider_id)
    done = request.query_params.get("done")
    return render(
        request,
        "rider.html",
        status=400 if error else 200,
        user=user,
        rider=row,
        b=view.balance,
        held_value_minor=view.held_value_minor,
        swaps=swaps.recent_swaps(db, rider_id, limit=20),
        transfers=money.recent_transfers(db, rider_id, limit=20),
        months=months_of(db, rider_id),
        cards=riders.cards(db, rider_id),
        can_block=user.role in (Role.ADMIN, Role.OPERATOR),
        can_refund=user.role is Role.ADMIN,
        form_key=secrets.token_urlsafe(12),
        done_text=DONE_TEXT.get(done or ""),
        states=STATE_TEXT,
        statuses=STATUS_TEXT,
        error=error,
    )


@router.get("/riders/{rider_id}/statements/{month}.pdf")
def statement_download(request: Request, rider_id: str, month: str) -> Response:
    db = database(request)
    session.staff(db, request)
    # The replica: a statement is a report of a month's transfers, never a balance to act on.
    reads = read_database(request)
    try:
        found = statements.statement(reads, rider_id, statements.Month.parse(month))
    except DomainError as error:
        return Response(error.message, status_code=404, media_type="text/plain")
    body = statement_pdf(found, translator(request).language)
    return pdf_response(body, f"swapd-statement-{rider_id}-{month}.pdf")


@router.get("/riders/{rider_id}")
def rider_page(request: Request, rider_id: str) -> HTMLResponse:
    user = session.staff(database(request), request)
    return _rider_page(request, rider_id, user)


def _whole(text: str) -> int:
    try:
        return int(text.strip().replace(",", ""))
    except ValueError:
        raise InvalidInput(f"not a whole number: {text[:40]!r}") from None


async def _action(request: Request, rider_id: str, roles: tuple[Role, ...], done: str) -> Response:
    session.check_same_origin(request)
    db = database(request)
    user = await run_in_threadpool(session.staff, db, request)
    if user.role not in roles:
        return render(request, "forbidden.html", status=403, user=user)
    form = session.parse_form(await request.body())
    try:
        await run_in_threadpool(_apply, db, user, rider_id, done, form)
    except DomainError as error:
        return await run_in_threadpool(_rider_page, request, rider_id, user, error.message)
    return RedirectResponse(f"/riders/{rider_id}?done={done}", status_code=303)


def _apply(db: Database, user: Principal, rider_id: str, done: str, form: dict[str, str]) -> None:
    reason = form.get("reason", "")
    if done in ("blocked", "unblocked"):
        status = RiderStatus.BLOCKED if done == "blocked" else RiderStatus.ACTIVE
        back_office.set_rider_status(db, user.actor, rider_id, status, reason)
        return
    key = form.get("key", "")
    if not 8 <= len(key) <= 40:
        raise InvalidInput("this form has expired: open the rider's page again")
    if done == "refunded":
        currency = money.rider_balance(db, rider_id).currency
        amount = parse_money(form.get("amount", ""), currency)
        back_office.refund(db, user.actor, rider_id, amount, reason=reason, key=f"console:{key}")
    else:
        back_office.adjust(
            db, user.actor, rider_id, _whole(form.get("units", "")), reason=reason, key=f"console:{key}"
        )


@router.post("/riders/{rider_id}/block")
async def block(request: Request, rider_id: str) -> Response:
    return await _action(request, rider_id, (Role.ADMIN, Role.OPERATOR), "blocked")


@router.post("/riders/{rider_id}/unblock")
async def unblock(request: Request, rider_id: str) -> Response:
    return await _action(request, rider_id, (Role.ADMIN, Role.OPERATOR), "unblocked")


@router.post("/riders/{rider_id}/refund")
async def refund(request: Request, rider_id: str) -> Response:
    return await _action(request, rider_id, (Role.ADMIN,), "refunded")


@router.post("/riders/{rider_id}/adjust")
async def adjust(request: Request, rider_id: str) -> Response:
    return await _action(request, rider_id, (Role.ADMIN,), "adjusted")

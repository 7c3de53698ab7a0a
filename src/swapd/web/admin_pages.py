"""The console's plans (read-only: their terms and how many riders are on each) and, for admins,
the staff and rider accounts with their API keys."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from swapd.domain.errors import DomainError
from swapd.readmodels import plans
from swapd.services import audit, identity
from swapd.services.identity import Principal, Role, TokenKind
from swapd.store.database import Database
from swapd.web import session
from swapd.web.render import database, read_database, render

router = APIRouter(include_in_schema=False)
USERS_SHOWN = 500


@router.get("/plans")
def plans_page(request: Request) -> HTMLResponse:
    db = database(request)
    user = session.staff(db, request)
    # The replica: the list of plans with their rider counts.
    reads = read_database(request)
    return render(request, "plans.html", user=user, plans=plans.plans(reads))


@router.get("/users")
def users_page(request: Request, error: str | None = None, new_key: str | None = None) -> HTMLResponse:
    db = database(request)
    user = session.staff(db, request)
    if user.role is not Role.ADMIN:
        return render(request, "forbidden.html", status=403, user=user)
    accounts = identity.users(db)[:USERS_SHOWN]
    staff = [a for a in accounts if a.role is not Role.RIDER]
    keys = {
        a.id: [k for k in identity.tokens_of(db, a.id) if k.kind is TokenKind.API_KEY] for a in staff
    }
    riders = len(accounts) - len(staff)
    context = {"staff": staff, "keys": keys, "riders": riders, "error": error, "new_key": new_key}
    return render(request, "users.html", status=400 if error else 200, user=user, **context)


STAFF_ROLES = {role.value: role for role in (Role.ADMIN, Role.OPERATOR, Role.SUPPORT)}


async def _admin_form(request: Request) -> tuple[Principal, dict[str, str]] | Response:
    """The signed-in admin and the form, or the answer that refuses the request."""
    session.check_same_origin(request)
    user = await run_in_threadpool(session.staff, database(request), request)
    if user.role is not Role.ADMIN:
        return render(request, "forbidden.html", status=403, user=user)
    return user, session.parse_form(await request.body())


def _audit(
    db: Database, actor: str, action: str, target: str, reason: str, detail: dict[str, str]
) -> None:
    db.write(lambda tx: audit.record(tx, actor, action, target, reason, detail))


@router.post("/users")
async def add_staff(request: Request) -> Response:
    checked = await _admin_form(request)
    if isinstance(checked, Response):
        return checked
    user, form = checked
    role = STAFF_ROLES.get(form.get("role", ""))
    db = database(request)
    try:
        if role is None:
            raise DomainError("choose admin, operator or support")
        added = await run_in_threadpool(
            identity.add_staff, db, form.get("email", ""), form.get("password", ""), role
        )
        detail = {"role": added.role.value}
        await run_in_threadpool(_audit, db, user.actor, "user.add", added.id, "staff account", detail)
    except DomainError as error:
        return await run_in_threadpool(users_page, request, error.message)
    return RedirectResponse("/users", status_code=303)


@router.post("/users/{user_id}/keys")
async def create_key(request: Request, user_id: str) -> Response:
    checked = await _admin_form(request)
    if isinstance(checked, Response):
        return checked
    user, form = checked
    db = database(request)
    try:
        issued = await run_in_threadpool(identity.create_api_key, db, user_id, form.get("name", ""))
        detail = {"token_id": issued.id}
        await run_in_threadpool(_audit, db, user.actor, "api_key.create", user_id, issued.name, detail)
    except DomainError as error:
        return await run_in_threadpool(users_page, request, error.message)
    # Shown once, on this answer only: the key is stored hashed.
    return await run_in_threadpool(users_page, request, None, issued.token)


@router.post("/users/{user_id}/keys/{token_id}/revoke")
async def revoke_key(request: Request, user_id: str, token_id: str) -> Response:
    checked = await _admin_form(request)
    if isinstance(checked, Response):
        return checked
    user, _form = checked
    db = database(request)
    user_id, token_id = user_id[:64], token_id[:64]
    await run_in_threadpool(identity.revoke, db, token_id, owner_id=user_id)
    detail = {"token_id": token_id}
    await run_in_threadpool(_audit, db, user.actor, "api_key.revoke", user_id, "revoked", detail)
    return RedirectResponse("/users", status_code=303)

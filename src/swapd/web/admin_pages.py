"""The console's plans (read-only: their terms and how many riders are on each) and, for admins,
the staff and rider accounts with their API keys."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from starlette.requests import Request

from swapd.readmodels import plans
from swapd.services import identity
from swapd.services.identity import Role, TokenKind
from swapd.web import session
from swapd.web.render import database, render

router = APIRouter(include_in_schema=False)
USERS_SHOWN = 500


@router.get("/plans")
def plans_page(request: Request) -> HTMLResponse:
    db = database(request)
    user = session.staff(db, request)
    return render(request, "plans.html", user=user, plans=plans.plans(db))


@router.get("/users")
def users_page(request: Request) -> HTMLResponse:
    db = database(request)
    user = session.staff(db, request)
    if user.role is not Role.ADMIN:
        return render(request, "forbidden.html", status=403, user=user)
    accounts = identity.users(db)[:USERS_SHOWN]
    staff = [a for a in accounts if a.role is not Role.RIDER]
    keys = {
        a.id: [k for k in identity.tokens_of(db, a.id) if k.kind is TokenKind.API_KEY] for a in staff
    }
    return render(
        request, "users.html", user=user, staff=staff, keys=keys, riders=len(accounts) - len(staff)
    )

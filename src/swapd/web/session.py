"""Staff sign-in for the console: the session token of ``identity.login`` in a cookie.

The cookie is HttpOnly (no script reads it) and SameSite=Strict (no other site's page sends it,
so a form elsewhere cannot post to the console as the operator); Secure when the request came
over HTTPS. Every POST must also come from this origin (``Origin``, or ``Sec-Fetch-Site``), a
second guard against cross-site requests. Riders sign in to the rider app, not here: a rider's
token is revoked at once and the sign-in refused.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request

from swapd.domain.errors import DomainError, Unauthenticated
from swapd.services import identity
from swapd.services.identity import STAFF_ROLES, Principal
from swapd.store.database import Database

COOKIE = "swapd_console"
MAX_FORM_BYTES = 4_096  # a sign-in or an action form; anything longer is not ours


class SignInRequired(Exception):
    """The request has no valid staff session: the console answers with the sign-in page."""


class CrossSite(Exception):
    """A POST from another origin: refused before it does anything."""


def staff(db: Database, request: Request) -> Principal:
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 200:
        raise SignInRequired()
    try:
        principal = identity.authenticate(db, token)
    except Unauthenticated:
        raise SignInRequired() from None
    if principal.role not in STAFF_ROLES:
        raise SignInRequired()
    return principal


def sign_in(db: Database, email: str, password: str, client: str) -> str:
    """A staff session token for right credentials; DomainError (Unauthenticated, RateLimited)
    otherwise, with the same message for a rider as for a wrong password."""
    issued = identity.login(db, email, password, client=client)
    if issued.user.role not in STAFF_ROLES:
        identity.revoke(db, issued.id)
        raise Unauthenticated("wrong email or password")
    return issued.token


def sign_out(db: Database, request: Request) -> None:
    try:
        principal = staff(db, request)
    except SignInRequired:
        return
    identity.revoke(db, principal.token_id)


def check_same_origin(request: Request) -> None:
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise CrossSite()
    origin = request.headers.get("origin")
    if origin not in (None, "null") and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise CrossSite()


def parse_form(body: bytes) -> dict[str, str]:
    """An application/x-www-form-urlencoded body, each field once (the first value)."""
    if len(body) > MAX_FORM_BYTES:
        raise DomainError("form too large")
    try:
        fields = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=20)
    except ValueError:
        raise DomainError("too many form fields") from None
    return {name: values[0] for name, values in fields.items() if values}


def local_path(target: str | None) -> str:
    """Where to go after signing in or switching language: a path on this site, never elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target[:500]

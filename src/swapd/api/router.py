"""The /api/v1 application: every route module mounted, error answers installed, and the HTTP
guards around everything the app serves (body limit, request ids, security headers, /docs)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from swapd.api import (
    auth,
    docs,
    errors,
    headers,
    limits,
    operator_packs,
    operator_routes,
    payments,
    plans_public,
    rider,
    stations_public,
)
from swapd.payments.provider import MAX_WEBHOOK_BYTES
from swapd.store.database import Database

PREFIX = "/api/v1"

# Route modules, in the order their tags appear in the OpenAPI document.
ROUTERS: list[APIRouter] = [
    auth.router,
    plans_public.router,
    stations_public.router,
    rider.router,
    payments.router,
    operator_routes.router,
]

# Routes that read their body themselves, with limits of their own: the body limit is theirs
# there, whatever SWAPD_MAX_BODY_BYTES says (a provider's webhook must not be cut short).
ROUTE_BODY_LIMITS: dict[str, int] = {
    f"{PREFIX}/payments/webhooks/": MAX_WEBHOOK_BYTES,
    f"{PREFIX}/ops/packs/import": operator_packs.MAX_IMPORT_BYTES,
}


def install(app: FastAPI, db: Database, *, read_db: Database | None = None) -> None:
    """``read_db``: the reads that may lag (``deps.ReadDb``); the primary when None."""
    app.state.db = db
    app.state.read_db = db if read_db is None else read_db
    errors.install(app)
    for router in ROUTERS:
        # 422 is documented everywhere as ErrorBody: malformed input gets that shape too.
        app.include_router(router, prefix=PREFIX, responses=errors.responses(422))
    docs.install(app)
    # Each middleware added wraps those added before it, so from the outside in: security
    # headers (on every answer, the 413 included; the 500 brings its own), request ids, then
    # the body limit.
    app.add_middleware(
        limits.BodyLimit,
        default_bytes=limits.max_body_bytes_from_env(),
        route_limits=ROUTE_BODY_LIMITS,
    )
    app.add_middleware(errors.RequestIds)
    app.add_middleware(headers.SecurityHeaders, no_store_prefix=f"{PREFIX}/")

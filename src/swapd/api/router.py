"""The /api/v1 application: every route module mounted, error answers installed."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from swapd.api import auth, errors, operator_routes, payments, plans_public, rider, stations_public
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


def install(app: FastAPI, db: Database) -> None:
    app.state.db = db
    errors.install(app)
    for router in ROUTERS:
        # 422 is documented everywhere as ErrorBody: malformed input gets that shape too.
        app.include_router(router, prefix=PREFIX, responses=errors.responses(422))

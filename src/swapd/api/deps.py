"""What routes depend on: the database, the caller and their role, and Idempotency-Key handling.

Routes are plain ``def`` functions: FastAPI runs them in its thread pool, where the synchronous
services and their database transactions belong.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Annotated, Any

import structlog
from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from swapd.domain.errors import Forbidden, Unauthenticated
from swapd.services import idempotency, identity
from swapd.services.identity import Principal, Role
from swapd.store.database import Database

log = structlog.get_logger(__name__)

_bearer = HTTPBearer(
    auto_error=False,
    description="A session token from POST /api/v1/auth/login, or an API key (Bearer swk_...).",
)


def get_db(request: Request) -> Database:
    db = request.app.state.db
    assert isinstance(db, Database)
    return db


def get_read_db(request: Request) -> Database:
    """Where the reads that may lag go: the read replica when one is configured
    (swapd.store.replica), else the primary. Only for a route whose answer nobody bases money
    on and nobody reads right after writing it (lists, reports, exports); each such route says
    why. Authentication (``principal``) always reads the primary: a session made a moment ago
    must not be refused because the replica has not replayed it yet."""
    db = request.app.state.read_db
    assert isinstance(db, Database)
    return db


Db = Annotated[Database, Depends(get_db)]
# Reads that may lag (see get_read_db). A replica's Database refuses writes and its transactions
# are READ ONLY, so a write wired to it fails at once instead of writing elsewhere.
ReadDb = Annotated[Database, Depends(get_read_db)]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def principal(
    db: Db,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise Unauthenticated("sign in: send Authorization: Bearer <token>")
    try:
        return identity.authenticate(db, credentials.credentials)
    except Unauthenticated as error:
        # An operator tracing a token-guessing client needs its address; the token is never
        # logged (a wrong one may be a typo of a right one).
        log.warning(
            "bearer_auth_failed",
            client=client_address(request),
            path=request.url.path,
            reason=error.message,
        )
        raise


def allow(*roles: Role) -> Callable[..., Principal]:
    def check(request: Request, caller: Annotated[Principal, Depends(principal)]) -> Principal:
        if caller.role not in roles:
            log.warning(
                "role_refused",
                client=client_address(request),
                user=caller.user_id,
                role=caller.role.value,
                path=request.url.path,
            )
            allowed = ", ".join(r.value for r in roles)
            raise Forbidden(f"this needs the role {allowed}; you are {caller.role.value}")
        return caller

    return check


Caller = Annotated[Principal, Depends(principal)]
# Read access for all staff; write access for those who run the network; money and users: admin.
Staff = Annotated[Principal, Depends(allow(Role.ADMIN, Role.OPERATOR, Role.SUPPORT))]
Operator = Annotated[Principal, Depends(allow(Role.ADMIN, Role.OPERATOR))]
Admin = Annotated[Principal, Depends(allow(Role.ADMIN))]


def _rider(caller: Annotated[Principal, Depends(allow(Role.RIDER))]) -> Principal:
    assert caller.rider_id is not None
    return caller


Rider = Annotated[Principal, Depends(_rider)]

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=idempotency.MAX_KEY_CHARS,
        description="Required where money moves: repeats with the same key return the first answer.",
    ),
]


def service_key(caller: Principal, idempotency_key: str) -> str:
    """The idempotency key a service gets for this request: the caller and a digest of their
    Idempotency-Key, so that two concurrent first attempts are one operation underneath too.
    A digest because the header may be 200 characters and ledger references hold 120."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    return f"api:{caller.user_id}:{digest}"


def once(
    db: Database,
    caller: Principal,
    key: str,
    request: Request,
    body: BaseModel | None,
    work: Callable[[], tuple[int, Any]],
) -> JSONResponse:
    """Run ``work`` once per (caller, Idempotency-Key); repeats get the stored answer."""
    payload = None if body is None else body.model_dump(mode="json")
    request_sha256 = idempotency.fingerprint(request.method, request.url.path, payload)

    def run() -> idempotency.Answer:
        status, result = work()
        return idempotency.Answer(status, jsonable_encoder(result))

    answer = idempotency.run_once(db, caller.user_id, key, request_sha256, run)
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
    return JSONResponse(answer.body, status_code=answer.status_code, headers=headers)

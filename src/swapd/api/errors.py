"""Domain errors as HTTP answers: a status, a stable code and a reason a person can act on.

Also the answer to the unexpected: an exception no handler knows is a 500 ``internal_error``
whose detail names only the request id, logged once with its traceback and that id. Starlette's
ServerErrorMiddleware, outside every other middleware, calls ``unexpected`` and then re-raises the
exception for the server (and for test clients); uvicorn would log it a second time, without the
request id, so its log line is dropped for the exceptions ``unexpected`` logged.
"""

from __future__ import annotations

import logging
import secrets

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from swapd.api.headers import SECURITY_HEADERS
from swapd.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InsufficientAllowance,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from swapd.ledger.model import LedgerError
from swapd.payments.provider import PaymentsNotConfigured, ProviderUnavailable

log = structlog.get_logger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"

_STATUS: list[tuple[type[DomainError], int]] = [
    (InvalidInput, 422),
    (NotFound, 404),
    (Conflict, 409),
    (InsufficientAllowance, 409),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (RateLimited, 429),
    # The server cannot take payments now (none configured, or the provider is down): the
    # request was fine and may be sent again later, so a 5xx the client may retry, not a 400.
    (PaymentsNotConfigured, 503),
    (ProviderUnavailable, 503),
]


class FieldError(BaseModel):
    """One field a request got wrong: where (``loc``, as FastAPI names it) and what."""

    loc: list[str | int]
    msg: str


class ErrorBody(BaseModel):
    """Every refusal: ``code`` is stable for programs, ``detail`` is for people, and ``errors``
    lists the fields at fault when the request itself was malformed."""

    code: str
    detail: str
    errors: list[FieldError] | None = None


def status_of(error: DomainError) -> int:
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 400


def error_response(error: DomainError) -> JSONResponse:
    headers: dict[str, str] = {}
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="swapd"'
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after_s)
    body = ErrorBody(code=error.code, detail=error.message)
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status_of(error), headers=headers
    )


def install(app: FastAPI) -> None:
    async def domain(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, DomainError)
        return error_response(error)

    async def ledger(_request: Request, error: Exception) -> JSONResponse:
        # The ledger refuses what would break its invariants (overdraw, reused key with other
        # values): the request conflicts with the state, nothing was written.
        return JSONResponse(ErrorBody(code="conflict", detail=str(error)).model_dump(), status_code=409)

    async def malformed(_request: Request, error: Exception) -> JSONResponse:
        # One shape for every refusal: FastAPI's own validation answers become ErrorBody too.
        assert isinstance(error, RequestValidationError)
        fields = [
            FieldError(loc=[p for p in e.get("loc", ()) if isinstance(p, str | int)], msg=str(e["msg"]))
            for e in error.errors()
        ]
        detail = "; ".join(f"{'.'.join(map(str, f.loc))}: {f.msg}" for f in fields)[:1000]
        body = ErrorBody(code="invalid_input", detail=detail or "invalid request", errors=fields)
        return JSONResponse(body.model_dump(), status_code=422)

    async def http(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        status = error.status_code
        # A body that is not JSON at all is malformed input like any other: 422, documented.
        if status == 400:
            status = 422
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: "body_too_large",
            422: "invalid_input",
        }.get(status, "http_error")
        body = ErrorBody(code=code, detail=str(error.detail))
        return JSONResponse(
            body.model_dump(exclude_none=True), status_code=status, headers=error.headers
        )

    app.add_exception_handler(DomainError, domain)
    app.add_exception_handler(LedgerError, ledger)
    app.add_exception_handler(RequestValidationError, malformed)
    app.add_exception_handler(HTTPException, http)
    app.add_exception_handler(Exception, unexpected)
    server_log = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, AlreadyLogged) for f in server_log.filters):
        server_log.addFilter(AlreadyLogged())


def internal_error(request_id: str) -> JSONResponse:
    """The 500: nothing about the failure itself, only the id that finds it in the logs. It
    carries the security headers itself: ServerErrorMiddleware sends it past every middleware."""
    body = ErrorBody(
        code="internal_error",
        detail=f"an unexpected error; quote request id {request_id} when reporting it",
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=500,
        headers={**SECURITY_HEADERS, "Cache-Control": "no-store", REQUEST_ID_HEADER: request_id},
    )


def request_id_of(scope: Scope) -> str | None:
    state = scope.get("state")
    found = state.get("request_id") if isinstance(state, dict) else None
    return found if isinstance(found, str) else None


async def unexpected(request: Request, error: Exception) -> JSONResponse:
    request_id = request_id_of(request.scope) or secrets.token_hex(8)
    if not getattr(error, _LOGGED, False):
        log.error(
            "unexpected_error",
            request_id=request_id,
            method=request.method,
            path=request.url.path,
            exc_info=error,
        )
        setattr(error, _LOGGED, True)
    return internal_error(request_id)


SERVER_LOGGER = "uvicorn.error"  # where uvicorn logs "Exception in ASGI application"
_LOGGED = "_swapd_logged"


class AlreadyLogged(logging.Filter):
    """Drops the server's log record of an exception ``unexpected`` has logged already."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not getattr(error, _LOGGED, False)


class RequestIds:
    """Pure ASGI middleware: gives each HTTP request an id, sent back as ``X-Request-Id`` and
    bound as ``request_id`` in every log line written while the request runs. ``unexpected``
    names it in the 500 and in its log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])  # optional in ASGI
                MutableHeaders(scope=message).setdefault(REQUEST_ID_HEADER, request_id)
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, send_with_id)


# For route declarations: the refusals a route documents in OpenAPI.
def responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    return {status: {"model": ErrorBody} for status in statuses}

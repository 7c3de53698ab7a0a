"""Domain errors as HTTP answers: a status, a stable code and a reason a person can act on."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

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

_STATUS: list[tuple[type[DomainError], int]] = [
    (InvalidInput, 422),
    (NotFound, 404),
    (Conflict, 409),
    (InsufficientAllowance, 409),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (RateLimited, 429),
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
        code = {404: "not_found", 405: "method_not_allowed", 422: "invalid_input"}.get(
            status, "http_error"
        )
        body = ErrorBody(code=code, detail=str(error.detail))
        return JSONResponse(
            body.model_dump(exclude_none=True), status_code=status, headers=error.headers
        )

    app.add_exception_handler(DomainError, domain)
    app.add_exception_handler(LedgerError, ledger)
    app.add_exception_handler(RequestValidationError, malformed)
    app.add_exception_handler(HTTPException, http)


# For route declarations: the refusals a route documents in OpenAPI.
def responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    return {status: {"model": ErrorBody} for status in statuses}

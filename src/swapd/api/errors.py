"""Domain errors as HTTP answers: a status, a stable code and a reason a person can act on."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

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


class ErrorBody(BaseModel):
    """Every refusal: ``code`` is stable for programs, ``detail`` is for people."""

    code: str
    detail: str


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
    return JSONResponse(body.model_dump(), status_code=status_of(error), headers=headers)


def install(app: FastAPI) -> None:
    async def domain(_request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, DomainError)
        return error_response(error)

    async def ledger(_request: Request, error: Exception) -> JSONResponse:
        # The ledger refuses what would break its invariants (overdraw, reused key with other
        # values): the request conflicts with the state, nothing was written.
        return JSONResponse(ErrorBody(code="conflict", detail=str(error)).model_dump(), status_code=409)

    app.add_exception_handler(DomainError, domain)
    app.add_exception_handler(LedgerError, ledger)


# For route declarations: the refusals a route documents in OpenAPI.
def responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    return {status: {"model": ErrorBody} for status in statuses}

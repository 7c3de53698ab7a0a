"""Domain errors. Each carries a stable machine code so adapters (CLI, OCPP, HTTP) can map it."""

from __future__ import annotations


class Retry(Exception):
    """A transaction lost a race it can only win by starting over: whatever runs the unit of work
    (``Database.write``) retries it from the beginning. Not a refusal: nobody sees it."""


class DomainError(Exception):
    """A request the domain refuses. Nothing has been written when one is raised."""

    code = "invalid"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(DomainError):
    code = "invalid_input"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    """The request contradicts the current state (occupied slot, pack already held, ...)."""

    code = "conflict"


class InsufficientAllowance(DomainError):
    code = "insufficient_allowance"


class Unauthenticated(DomainError):
    """No valid credential: a missing, wrong, expired or revoked token or password."""

    code = "unauthenticated"


class Forbidden(DomainError):
    """A valid credential whose role does not allow the request."""

    code = "forbidden"


class RateLimited(DomainError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StationOffline(Conflict):
    """The station is not connected to any server process, so a command to it cannot be
    delivered: nothing was sent, and whatever an attempt reserved has been released."""

    code = "station_offline"

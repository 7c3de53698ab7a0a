"""Domain errors. Each carries a stable machine code so adapters (CLI, OCPP, HTTP) can map it."""

from __future__ import annotations


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

"""Call groups: service calls that share one transaction. Defined apart from the Database that runs
them and the writer process that runs them for it, which both use this without using each other.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Protocol

# SQLite group commit: at most this many service calls share one transaction (one fsync).
MAX_GROUP = 64


class Work(Protocol):
    """A blocking service call as a call group runs it: ``function`` run in ``context``, and
    its outcome."""

    @property
    def function(self) -> Callable[[], object]: ...
    @property
    def context(self) -> contextvars.Context: ...

    result: object
    error: BaseException | None


class CallRunner(Protocol):
    """What runs a group of calls as one transaction (a Database)."""

    def run_calls(self, calls: list[Work]) -> None: ...

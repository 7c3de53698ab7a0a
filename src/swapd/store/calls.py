"""Call groups: service calls that share one transaction. Defined apart from the Database that runs
them and the writer process that runs them for it, which both use this without using each other.

Calls that cross to a writer process are named in a calls table: a module's ``CALLS`` mapping of
handler names to functions, declared by the entrypoint that sends them (the store imports it by
name, so that it never depends on the layers above it). Both processes import the same module,
so a name means the same function on both sides.
"""

from __future__ import annotations

import contextvars
import importlib
from collections.abc import Callable, Mapping
from typing import Protocol

# SQLite group commit: at most this many service calls share one transaction (one fsync).
MAX_GROUP = 64

CallTable = Mapping[str, Callable[..., object]]


class Work(Protocol):
    """A blocking service call as a call group runs it: ``function`` run in ``context``, and
    its outcome."""

    @property
    def function(self) -> Callable[[], object]: ...
    @property
    def context(self) -> contextvars.Context: ...

    result: object
    error: BaseException | None


class Request(Work, Protocol):
    """A call bound for the writer process: ``name`` is its function's name in the calls table,
    and ``function`` a ``functools.partial`` of that function with the call's arguments."""

    @property
    def name(self) -> str: ...


class CallRunner(Protocol):
    """What runs a group of calls as one transaction (a Database)."""

    def run_calls(self, calls: list[Work]) -> None: ...


def load_calls(module: str) -> CallTable:
    """The calls table ``CALLS`` of the module named ``module``, checked: names are strings and
    no function is under two names (the gateway finds a call's name by its function)."""
    table = getattr(importlib.import_module(module), "CALLS", None)
    if not isinstance(table, Mapping):
        raise TypeError(f"{module} has no calls table: a mapping named CALLS")
    functions: set[int] = set()
    for name, function in table.items():
        if not isinstance(name, str) or not callable(function):
            raise TypeError(f"{module}.CALLS maps {name!r} to {function!r}: need a name and a function")
        if id(function) in functions:
            raise ValueError(f"{module}.CALLS names {function!r} twice")
        functions.add(id(function))
    return table

"""The closed wire format between the gateway and its writer process (see swapd.store.writer).

A request frame is one pickle of a group's calls, each (handler name, args, kwargs, log
context); its answer frame one pickle of their outcomes in the same order, each (ok, result or
error), or a string alone: the request frame was refused whole, and why.

Both sides read a frame with ``loads``, which builds no class but those ``_resolve`` admits:
the plain types pickle names (``set``, ``datetime``, ``Decimal``, ...), builtin exceptions,
the dataclasses and enums of swapd.domain and swapd.services (the arguments and results of the
service calls), their errors (``DomainError``), ``ThisDatabase`` and ``WireRefused``. No
function, no module outside those, nothing whose unpickling runs code of its own choosing.
Anything else raises ``WireRefused`` naming the class. Pickle names each class once a frame,
so the check costs a dict lookup per class a frame holds, not per value.
"""

from __future__ import annotations

import builtins
import dataclasses
import enum
import importlib
import io
import pickle
from collections.abc import Sequence
from typing import Any

from swapd.domain.errors import DomainError
from swapd.store.calls import Request, Work

PROTOCOL = pickle.HIGHEST_PROTOCOL

_PLAIN = {
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("builtins", "complex"),
    ("datetime", "date"),
    ("datetime", "datetime"),
    ("datetime", "time"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
    ("decimal", "Decimal"),
}
# Only modules under these are imported to look a class up: swapd's own, importable at no risk.
_OURS = ("swapd.domain.", "swapd.services.")


class ThisDatabase:
    """Stands for the caller's ``Database`` in a call's arguments: the writer puts its own in
    its place. (A class, so that pickle sends it by name.)"""


class WireRefused(Exception):
    """A frame named a class outside the wire format, or a call outside the calls table."""


_OWN: dict[str, type] = {"ThisDatabase": ThisDatabase, "WireRefused": WireRefused}
_admitted: dict[tuple[str, str], type] = {}


def _resolve(module: str, name: str) -> type:
    found: object = None
    if (module, name) in _PLAIN:
        found = getattr(importlib.import_module(module), name)
    elif module == "builtins":
        candidate = getattr(builtins, name, None)
        if isinstance(candidate, type) and issubclass(candidate, Exception):
            found = candidate
    elif module == __name__ and name in _OWN:
        found = _OWN[name]
    elif module.startswith(_OURS) and "." not in name:
        candidate = getattr(importlib.import_module(module), name, None)
        if isinstance(candidate, type) and (
            dataclasses.is_dataclass(candidate)
            or issubclass(candidate, enum.Enum)
            or issubclass(candidate, DomainError)
        ):
            found = candidate
    if not isinstance(found, type):
        raise WireRefused(f"{module}.{name} is outside the writer's wire format")
    return found


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str, /) -> Any:
        key = (module, name)
        found = _admitted.get(key)
        if found is None:
            found = _admitted[key] = _resolve(module, name)
        return found


def loads(payload: bytes) -> Any:
    """A frame's content; ``WireRefused`` when it names a class outside the format."""
    return _Unpickler(io.BytesIO(payload)).load()


def dumps(value: object) -> bytes:
    return pickle.dumps(value, protocol=PROTOCOL)


def encode_call(call: Request, log_context: dict[str, Any], db: object) -> tuple[Any, ...]:
    """A call as (name, args, kwargs, log context), ``db`` replaced by ``ThisDatabase``."""
    bound: Any = call.function  # a functools.partial (see Request)
    args = tuple(ThisDatabase if arg is db else arg for arg in bound.args)
    kwargs = {key: ThisDatabase if value is db else value for key, value in bound.keywords.items()}
    return (call.name, args, kwargs, log_context)


def encode_outcomes(calls: Sequence[Work]) -> bytes:
    """A group's outcomes in one pickle (one call of the pickler, not one a call). It is read
    back here as the gateway will read it: an outcome that will not pickle, or that the gateway
    would refuse, makes its own call fail (with its text), not the group."""
    outcomes = [(True, call.result) if call.error is None else (False, call.error) for call in calls]
    try:
        payload = dumps(outcomes)
        loads(payload)
    except Exception:
        return dumps([_outcome(call.result, call.error) for call in calls])
    return payload


def _outcome(result: object, error: BaseException | None) -> tuple[bool, object]:
    if error is None:
        try:
            loads(dumps(result))
            return (True, result)
        except Exception as failure:
            error = RuntimeError(f"the writer could not send a call's result back: {failure!r}")
    try:
        # An exception whose __init__ does not take its args pickles but fails to unpickle.
        loads(dumps(error))
        return (False, error)
    except Exception:
        return (False, RuntimeError(f"{type(error).__name__}: {error}"))

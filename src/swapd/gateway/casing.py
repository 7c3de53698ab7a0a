"""Payload keys between the wire's camelCase and the handlers' snake_case, and reply dataclasses
to wire dicts, the way the ``ocpp`` package does it, but with each key converted once.

``ocpp`` converts every key of every message with two regular expressions (and every reply key
with a dozen ``str.replace``): on the swap path that was a tenth of the server's CPU. A network's
stations send a few dozen distinct keys, so the answers are kept; the conversion itself is the
package's own (``camel_to_snake_case`` / ``snake_to_camel_case`` on a one-key dict), so both paths
name every field alike. The caches are bounded: keys beyond the bound are converted each time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case

MAX_CACHED_KEYS = 4096  # a station can send arbitrary keys inside customData; don't grow forever

_SNAKE: dict[str, str] = {}
_CAMEL: dict[str, str] = {}
_FIELDS: dict[type, tuple[tuple[str, str], ...]] = {}


def _converted(cache: dict[str, str], convert: Callable[[Any], Any], key: str) -> str:
    """``key`` as ``convert`` (one of ocpp's converters) renames it, remembered in ``cache``."""
    converted = cache.get(key)
    if converted is None:
        converted = next(iter(convert({key: None})))
        if len(cache) < MAX_CACHED_KEYS:
            cache[key] = converted
    return converted


def _snake_key(key: str) -> str:
    return _converted(_SNAKE, camel_to_snake_case, key)


def _camel_key(key: str) -> str:
    return _converted(_CAMEL, snake_to_camel_case, key)


def to_snake(data: Any) -> Any:
    """Every dict key inside ``data`` in snake_case (lists walked, values kept)."""
    if isinstance(data, dict):
        return {_snake_key(key): to_snake(value) for key, value in data.items()}
    if isinstance(data, list):
        return [to_snake(value) for value in data]
    return data


def _fields(cls: type) -> tuple[tuple[str, str], ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = tuple((f.name, _camel_key(f.name)) for f in dataclasses.fields(cls))
        _FIELDS[cls] = names
    return names


def to_wire(value: Any) -> Any:
    """A reply (dataclass, dict, list or scalar) as the wire payload: None fields dropped, keys in
    camelCase, the same result as ocpp's serialize_as_dict + remove_nones + snake_to_camel_case."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        wire: dict[str, Any] = {}
        for name, camel in _fields(type(value)):
            field_value = getattr(value, name)
            if field_value is not None:
                wire[camel] = to_wire(field_value)
        return wire
    if isinstance(value, dict):
        return {_camel_key(key): to_wire(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [to_wire(item) for item in value if item is not None]
    return value

"""The writer process's calls table (swapd.store.calls): the gateway sends it commands only.

Every use case the gateway runs goes through the command bus (``swapd.services.messages``): the
one function the gateway passes to ``Database.call`` is ``messages.handle``, with a command
dataclass as its argument. While a writer process runs, ``Database.call`` refuses any other
function with a TypeError, and the writer, which imports this module too, runs nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from swapd.services import messages

CALLS: Mapping[str, Callable[..., object]] = MappingProxyType({"handle": messages.handle})

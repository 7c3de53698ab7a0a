"""A module's structlog logger that imports structlog on its first message.

The store is imported by every ``swapd`` command, most of which never log; importing structlog
(and through its console renderer, rich's traceback and pygments) costs each of them some 20 ms.
Configuration stays in swapd.logs; a message sent through this logger is processed exactly as one
sent through ``structlog.get_logger(name)``.
"""

from __future__ import annotations

from typing import Any


class LazyLogger:
    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, method: str) -> Any:
        if self._logger is None:
            import structlog

            self._logger = structlog.get_logger(self._name)
        return getattr(self._logger, method)


def get_logger(name: str) -> Any:
    return LazyLogger(name)

"""Structured logs: JSON lines for machines (the default when not on a terminal), readable lines
for people at a terminal."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(*, json_logs: bool | None = None, level: str = "INFO") -> None:
    if json_logs is None:
        json_logs = not sys.stderr.isatty()
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    # The ocpp package logs every frame at INFO: far too much at hundreds of swaps a second.
    logging.getLogger("ocpp").setLevel(logging.WARNING)

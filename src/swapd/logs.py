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
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        # One write a record (PrintLogger's print() wrote the newline apart): the workers of
        # `swapd serve --workers N` share one stderr, and a pipe keeps a write of up to
        # PIPE_BUF (4 KiB) whole, so their records never share a line.
        logger_factory=structlog.WriteLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries (uvicorn, alembic, ocpp) log through the standard library: render their records
    # the same way, so one log stream has one format.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The ocpp package logs every frame at INFO: far too much at hundreds of swaps a second.
    logging.getLogger("ocpp").setLevel(logging.WARNING)

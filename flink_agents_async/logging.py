"""Logging setup. The library only *uses* structlog; it never configures logging on import.

Every line the runtime logs is bound with what it is about (key, run, action, event type). Call
``configure_logging()`` from an application that wants a ready setup: human-readable console
output by default, one JSON object per line with ``json=True``.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

__all__ = ["configure_logging", "get_logger"]

LOGGER_NAME = "flink_agents_async"


def get_logger(**bound: object) -> structlog.typing.FilteringBoundLogger:
    """The library's structlog logger, bound with ``bound``."""
    return structlog.get_logger(LOGGER_NAME).bind(**bound)


def configure_logging(
    *, json: bool = False, level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Configure structlog for an application: console lines, or JSON lines with ``json=True``.

    This changes structlog's global configuration, so it is for applications, never for
    libraries; flink-agents-async itself never calls it.
    """
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if json else structlog.dev.set_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )

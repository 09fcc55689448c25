"""Logging setup. The library only *uses* structlog; it never configures logging on import.

Every line the runtime logs is bound with what it is about (key, run, action, event type). Call
``configure_logging()`` from an application that wants a ready setup: human-readable console
output by default, one JSON object per line with ``json=True``.

A library stays quiet by default: until the application configures structlog (directly or with
``configure_logging()``), the runtime's records go through the standard library's ``logging``
under the ``flink_agents_async`` logger, whose unconfigured default shows warnings and up on
stderr and nothing below. Structlog's own default would print every level to stdout.
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any, TextIO

import structlog

__all__ = ["LibraryLogger", "configure_logging", "get_logger", "library_logger"]

LOGGER_NAME = "flink_agents_async"


class LibraryLogger:
    """The runtime's logger: structlog's configured logger once the application configured
    structlog, the standard library's ``logging`` before that (see the module doc). Decided
    per record, so configuring logging after import takes effect."""

    __slots__ = ("_bound", "_name")

    def __init__(self, name: str, bound: dict[str, Any] | None = None) -> None:
        self._name = name
        self._bound = bound or {}

    def bind(self, **values: Any) -> LibraryLogger:
        return LibraryLogger(self._name, {**self._bound, **values})

    def _target(self) -> Any:
        if structlog.is_configured():
            target: Any = structlog.get_logger(self._name)
        else:
            target = _through_stdlib(self._name)
        return target.bind(**self._bound) if self._bound else target

    def debug(self, event: str, **values: Any) -> None:
        self._target().debug(event, **values)

    def info(self, event: str, **values: Any) -> None:
        self._target().info(event, **values)

    def warning(self, event: str, **values: Any) -> None:
        self._target().warning(event, **values)

    def error(self, event: str, **values: Any) -> None:
        self._target().error(event, **values)

    def exception(self, event: str, **values: Any) -> None:
        self._target().exception(event, **values)


def library_logger(name: str = LOGGER_NAME) -> LibraryLogger:
    """The logger a module of this library (or of the bridge) logs through."""
    return LibraryLogger(name)


def _render(logger: Any, method: str, event_dict: Any) -> str:
    event = event_dict.pop("event", "")
    fields = " ".join(f"{name}={value!r}" for name, value in event_dict.items())
    return f"{event} {fields}" if fields else str(event)


@functools.cache
def _through_stdlib(name: str) -> Any:
    """A structlog logger that hands one rendered line per record to ``logging``'s ``name``
    (records below the logger's level are dropped before rendering)."""
    return structlog.wrap_logger(
        logging.getLogger(name),
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            structlog.processors.format_exc_info,
            _render,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
    )


def get_logger(**bound: object) -> LibraryLogger:
    """The library's logger, bound with ``bound``."""
    return library_logger().bind(**bound)


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

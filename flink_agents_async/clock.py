"""Clocks: where the runtime reads wall time (short-term memory TTL stamps).

The runtime takes a ``Clock`` so that tests control time instead of sleeping for it: pass a
``MockClock`` to ``get_execution_environment(clock=...)`` and ``advance()`` it, and a value
expires exactly when the test says (Trio's ``MockClock`` is the model).
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "MockClock", "SystemClock"]


class Clock(Protocol):
    """A source of wall time in seconds since the epoch."""

    def time(self) -> float: ...


class SystemClock:
    """The machine's wall clock (``time.time``)."""

    def time(self) -> float:
        return time.time()


SYSTEM_CLOCK = SystemClock()


class MockClock:
    """A clock that moves only when told to: ``advance(seconds)``."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (not backwards: wall stamps only grow)."""
        if seconds < 0:
            raise ValueError(f"a clock only moves forward; got advance({seconds})")
        self._now += seconds

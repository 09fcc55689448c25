"""Clocks: where the runtime reads wall time and waits for it (short-term memory TTL stamps,
passivation of idle keys).

The runtime takes a ``Clock`` so that tests control time instead of sleeping for it: pass a
``MockClock`` to ``get_execution_environment(clock=...)`` and ``advance()`` it, and a value
expires, or an idle key is passivated, exactly when the test says (Trio's ``MockClock`` is the
model).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "MockClock", "SystemClock"]


class Clock(Protocol):
    """A source of wall time in seconds since the epoch."""

    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` have passed on this clock."""
        ...


class SystemClock:
    """The machine's wall clock (``time.time``)."""

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


class MockClock:
    """A clock that moves only when told to: ``advance(seconds)``."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []  # a heap by deadline
        self._order = itertools.count()  # ties wake in the order they slept

    def time(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Return once ``advance()`` has moved the clock ``seconds`` on (yield once at 0)."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        waiter = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), waiter))
        await waiter

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (not backwards: wall stamps only grow)."""
        if seconds < 0:
            raise ValueError(f"a clock only moves forward; got advance({seconds})")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, waiter = heapq.heappop(self._sleepers)
            if not waiter.done():  # a cancelled sleeper is gone already
                waiter.set_result(None)

"""Output streams: ``outputs()`` of a batch builder and of a long-lived runtime.

Every committed output goes to each open stream. A stream buffers at most ``max_buffered``
outputs for its reader, and what happens when it is full is its ``overflow`` policy:

* ``"wait"``: the runtime takes no new input until the reader catches up (backpressure; runs
  already going still add their outputs, so the buffer may pass the bound by that much);
* ``"drop-oldest"``: the oldest buffered output is dropped and counted in ``dropped`` (with
  one warning per stream), so that a slow reader never holds up the runtime.

A stream is closed, and stops receiving, when its iteration ends, when ``aclose()`` is called
or its ``async with`` block is left, and when the stream is garbage-collected (an ``async for``
left with ``break``): the hub holds streams weakly, so an abandoned stream costs nothing.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Callable, Hashable
from types import TracebackType
from typing import Any

from ..logging import library_logger

__all__ = ["OVERFLOW_POLICIES", "OutputHub", "OutputStream"]

logger = library_logger()

OVERFLOW_POLICIES = ("wait", "drop-oldest")


class OutputStream:
    """One reader's stream of ``(key, output)`` pairs; see the module doc."""

    def __init__(self, hub: OutputHub, max_buffered: int, overflow: str) -> None:
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(
                f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, got {overflow!r}"
            )
        if max_buffered < 1:
            raise ValueError(f"max_buffered must be at least 1, got {max_buffered}")
        self.max_buffered = max_buffered
        self.overflow = overflow
        self.dropped = 0
        self._hub = hub
        self._items: deque[tuple[Hashable, Any]] = deque()
        self._ended = False
        self._waiter: asyncio.Future[None] | None = None

    @property
    def full(self) -> bool:
        return len(self._items) >= self.max_buffered

    @property
    def buffered(self) -> int:
        return len(self._items)

    # -- the runtime's side -----------------------------------------------------------------

    def put(self, item: tuple[Hashable, Any]) -> None:
        if self._ended:
            return
        if self.overflow == "drop-oldest" and self.full:
            self._items.popleft()
            self.dropped += 1
            if self.dropped == 1:
                logger.warning(
                    "an outputs() reader is too slow: its oldest outputs are dropped "
                    "(max_buffered reached; see the stream's `dropped`)",
                    max_buffered=self.max_buffered,
                )
        self._items.append(item)
        self._wake()

    def end(self) -> None:
        """No more outputs will come: the reader stops after the buffered ones."""
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the reader's side ------------------------------------------------------------------

    def __aiter__(self) -> OutputStream:
        return self

    async def __anext__(self) -> tuple[Hashable, Any]:
        while not self._items:
            if self._ended:
                self._hub.unsubscribe(self)
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if self.overflow == "wait" and len(self._items) == self.max_buffered - 1:
            self._hub.room_made()  # it was full: producers may go on
        return item

    async def aclose(self) -> None:
        """Stop receiving outputs; what is buffered is dropped."""
        self._ended = True
        self._items.clear()
        self._hub.unsubscribe(self)

    async def __aenter__(self) -> OutputStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class OutputHub:
    """The one output broadcast of a runtime: its open streams, held weakly."""

    def __init__(self, on_room: Callable[[], None] | None = None) -> None:
        self._streams: weakref.WeakSet[OutputStream] = weakref.WeakSet()
        self._room_waiters: list[asyncio.Future[None]] = []
        self._closed = False
        self._on_room = on_room  # a stream that made producers wait has room again
        # Outputs published while no stream is open, kept for the first one (see ``hold``).
        self._held: list[tuple[Hashable, Any]] | None = None
        self._holding = False

    def hold(self) -> None:
        """Keep what is published while no stream is open, for the first stream to come, until
        ``stop_holding()``: outputs of inputs resumed after a restart may commit before the
        application opened its stream."""
        self._held = []
        self._holding = True

    def stop_holding(self) -> None:
        """Keep nothing more (what is held still goes to the first stream)."""
        self._holding = False

    def subscribe(self, max_buffered: int, overflow: str) -> OutputStream:
        stream = OutputStream(self, max_buffered, overflow)
        held, self._held = self._held, None
        self._holding = False
        for item in held or ():
            stream.put(item)
        if self._closed:
            stream.end()
        else:
            self._streams.add(stream)
        return stream

    def unsubscribe(self, stream: OutputStream) -> None:
        self._streams.discard(stream)
        if stream.overflow == "wait":
            self.room_made()

    @property
    def subscribers(self) -> int:
        return len(self._streams)

    def publish(self, key: Hashable, output: Any) -> None:
        if not self._streams:  # nobody reads yet
            if self._holding:
                assert self._held is not None
                self._held.append((key, output))
            return
        for stream in list(self._streams):
            stream.put((key, output))

    def close(self) -> None:
        """The runtime is done: every stream ends after what it buffered."""
        self._closed = True
        for stream in list(self._streams):
            stream.end()
        self.room_made()

    # -- backpressure -----------------------------------------------------------------------

    def has_room(self) -> bool:
        """Whether no ``wait`` stream is full."""
        return not any(stream.overflow == "wait" and stream.full for stream in self._streams)

    async def wait_for_room(self) -> None:
        while not self._closed and not self.has_room():
            waiter = asyncio.get_running_loop().create_future()
            self._room_waiters.append(waiter)
            await waiter

    def room_made(self) -> None:
        waiters, self._room_waiters = self._room_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self._on_room is not None:
            self._on_room()

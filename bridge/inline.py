"""Work done on a parked event loop by the thread that owns it: the bridge's inline run.

When no input is in flight, the Flink thread owns the subtask's event loop (see
``host.LoopHost``) and runs a record's input right there. Two things for that have no public
asyncio API: making the loop the running loop around a plain call (actions may ask for it),
and asking whether a loop turn would do anything. The public way, a loop turn per call
(``call_soon`` then ``run_forever`` until a ``stop``), is correct but costs about 23 us on
CPython 3.11 against 6 us for setting the running loop, while a whole record through the bridge
takes about 50 us: a third of the bridge's throughput.

So the two internals (``asyncio.events._set_running_loop`` and the loop's ``_ready`` queue)
are used here and nowhere else. A loop without them (not CPython's asyncio), or
``inline=False``, takes the public way; ``tests/flink/test_loop_host.py`` runs its cases both
ways and expects the same results.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Sized
from typing import Any

# None on another asyncio: then only the public way is taken.
_set_running_loop: Callable[[asyncio.AbstractEventLoop | None], None] | None = getattr(
    asyncio.events, "_set_running_loop", None
)

__all__ = ["MAX_INLINE_TURNS", "ParkedLoop"]

MAX_INLINE_TURNS = 64
"""Loop turns given after one inline call at most: a run that keeps yielding must not hold up
the Flink thread (the loop thread takes it over)."""


class ParkedLoop:
    """Runs work on ``loop`` from the thread that owns it while nobody runs the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, inline: bool = True) -> None:
        self.loop = loop
        ready = getattr(loop, "_ready", None)
        # CPython's loops keep the callbacks due on the next turn in this deque.
        self._ready: Sized | None = (
            ready if inline and _set_running_loop is not None and ready is not None else None
        )

    @property
    def inline(self) -> bool:
        """Whether work runs without a loop turn (the fast way)."""
        return self._ready is not None

    def call(
        self,
        context: contextvars.Context,
        work: Callable[..., None],
        *args: Any,
        busy: Callable[[], bool],
    ) -> None:
        """Do ``work(*args)`` in ``context`` as a callback of the loop would run (with the
        loop running), then turn the loop while its new callbacks need it, at most
        ``MAX_INLINE_TURNS`` times. ``busy`` says whether work is still in flight (what the
        public way has to go by)."""
        if self._ready is None:
            self.loop.call_soon(work, *args, context=context)
            self._turn()
            self._turn_while(busy)
            return
        assert _set_running_loop is not None
        _set_running_loop(self.loop)
        try:
            context.run(work, *args)
        finally:
            # The owning thread runs no loop of its own, so there is none to put back.
            _set_running_loop(None)
        ready = self._ready
        for _ in range(MAX_INLINE_TURNS):
            if not len(ready):  # a sync run leaves no callbacks: no turn at all
                return
            self._turn()

    def _turn_while(self, pending: Callable[[], bool]) -> None:
        for _ in range(MAX_INLINE_TURNS):
            if not pending():
                return
            self._turn()

    def _turn(self) -> None:
        loop = self.loop
        loop.call_soon(loop.stop)  # one turn: run_forever stops after it
        loop.run_forever()

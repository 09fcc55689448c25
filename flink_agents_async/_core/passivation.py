"""Passivation: idle actors leave memory; their state waits in the journal store.

An actor that has been idle (no run, nothing queued) for ``idle_timeout`` seconds on the
runtime's clock is written to the store as a snapshot of its memory and dropped from the actor
system; the next input for its key brings it back. Which keys are due is ``IdleKeys``' business,
the eviction policy every host shares.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import TYPE_CHECKING

from ..clock import Clock
from ..errors import JournalWriteError
from ..journal import JournalEncodeError
from ..logging import library_logger
from .idle_keys import IdleKeys

if TYPE_CHECKING:
    from .actor import Actor
    from .system import ActorSystem

__all__ = ["Passivation"]

logger = library_logger()

_MIN_SWEEP_PAUSE = 0.01


class Passivation:
    """Evicts idle actors of one actor system and reloads them on demand."""

    def __init__(self, system: ActorSystem, idle_timeout: float, clock: Clock) -> None:
        self.system = system
        self.clock = clock
        self.passivated: set[Hashable] = set()
        self._idle: IdleKeys[None] = IdleKeys(idle_timeout=idle_timeout)
        self._loading: dict[Hashable, asyncio.Future[Actor]] = {}
        self._wakeup = asyncio.Event()

    @property
    def idle_timeout(self) -> float:
        timeout = self._idle.idle_timeout
        assert timeout is not None
        return timeout

    def idle(self, actor: Actor) -> None:
        """``actor`` has nothing to do from now on."""
        self._idle.went_idle(actor.key, None, self.clock.time())
        if len(self._idle) == 1:
            self._wakeup.set()

    async def activate(self, key: Hashable) -> Actor:
        """The actor of ``key``, brought back from the store if it was passivated."""
        system = self.system
        loading = self._loading.get(key)
        if loading is not None:
            return await asyncio.shield(loading)
        actor = system.actors.get(key)
        if actor is not None:
            return actor
        if key not in self.passivated:
            return system.actor(key)
        future: asyncio.Future[Actor] = system.loop.create_future()
        self._loading[key] = future
        try:
            restored = await system.journal.restore(system.journal.encode_key(key))
            actor = system.actors.get(key)  # created meanwhile? keep that one
            if actor is None:
                actor = system.bring_back(key, restored)
            self.passivated.discard(key)
            future.set_result(actor)
            return actor
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # the waiters (if any) get it; nobody else must
            raise
        finally:
            del self._loading[key]

    def sweep(self) -> float | None:
        """Passivate every actor idle for the timeout or longer; returns the seconds until the
        next one is due (None: no actor is idle)."""
        now = self.clock.time()
        for key, _ in self._idle.expired(now):
            actor = self.system.actors.get(key)
            if actor is not None and actor.idle:  # busy again: it re-enters when idle next
                self.evict(actor)
        return self._idle.next_due(now)

    def evict(self, actor: Actor, *, save: bool = True) -> None:
        """Drop an idle actor from memory; ``save=False`` when the store already holds its
        whole state (a key recovered from a snapshot and nothing since). An actor whose state
        cannot be saved stays in memory."""
        if save:
            try:
                self.system.journal.passivate(actor.journaled, actor.runs_started)
            except JournalEncodeError as error:  # too big for one record: keep it here
                logger.warning(
                    "an idle key stays in memory: its state cannot be saved",
                    key=actor.key, error=str(error),
                )  # fmt: skip
                return
            except JournalWriteError as error:
                self.system.journal_failed(error)
                return
        del self.system.actors[actor.key]
        self._idle.woke(actor.key)
        self.passivated.add(actor.key)

    async def run(self) -> None:
        """Sweep whenever an actor is due, until cancelled."""
        while True:
            pause = self.sweep()
            if pause is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self.clock.sleep(max(pause, _MIN_SWEEP_PAUSE))

"""Passivation: idle actors leave memory; their state waits in the journal store.

An actor that has been idle (no run, nothing queued) for ``idle_timeout`` seconds is written to
the store as a snapshot of its memory and dropped from the actor system; the next input for its
key brings it back. Idle actors are kept in an ordered dict by the time they went idle, so a
sweep only looks at the ones that expired. Memory then grows with the number of active keys,
not with every key ever seen.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Hashable
from typing import TYPE_CHECKING

from ..errors import JournalWriteError
from ..journal import JournalEncodeError
from ..logging import library_logger

if TYPE_CHECKING:
    from .actor import Actor
    from .system import ActorSystem

__all__ = ["Passivation"]

logger = library_logger()

_MIN_SWEEP_PAUSE = 0.01


class Passivation:
    """Evicts idle actors of one actor system and reloads them on demand."""

    def __init__(self, system: ActorSystem, idle_timeout: float) -> None:
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, got {idle_timeout}")
        self.system = system
        self.idle_timeout = idle_timeout
        self.passivated: set[Hashable] = set()
        self._idle_since: OrderedDict[Hashable, float] = OrderedDict()
        self._loading: dict[Hashable, asyncio.Future[Actor]] = {}
        self._wakeup = asyncio.Event()

    def idle(self, actor: Actor) -> None:
        """``actor`` has nothing to do from now on."""
        self._idle_since[actor.key] = self.system.loop.time()
        self._idle_since.move_to_end(actor.key)
        if len(self._idle_since) == 1:
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

    def sweep(self) -> float:
        """Passivate every actor idle for longer than the timeout; returns the seconds until
        the next one is due."""
        system = self.system
        now = system.loop.time()
        idle_since = self._idle_since
        while idle_since:
            key, since = next(iter(idle_since.items()))
            due = since + self.idle_timeout
            if due > now:
                return due - now
            del idle_since[key]
            actor = system.actors.get(key)
            if actor is None or not actor.idle:
                continue  # busy again: it re-enters when it goes idle next
            self.evict(actor)
        return self.idle_timeout

    def evict(self, actor: Actor, *, save: bool = True) -> None:
        """Drop an idle actor from memory; ``save=False`` when the store already holds its
        whole state (a key recovered from a snapshot and nothing since). An actor whose state
        cannot be saved stays in memory."""
        if save:
            try:
                self.system.journal.passivate(actor)
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
        self._idle_since.pop(actor.key, None)
        self.passivated.add(actor.key)

    async def run(self) -> None:
        """Sweep whenever an actor is due, until cancelled."""
        while True:
            pause = self.sweep()
            if not self._idle_since:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await asyncio.sleep(max(pause, _MIN_SWEEP_PAUSE))

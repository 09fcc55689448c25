"""One runtime's life on one event loop, the same for every host: open, recover, feed, drain,
close.

``async with RuntimeLifecycle(...) as runtime`` makes the actor system, opens the journal and
restores every key it knows (``runtime.recovered`` says what it held: inputs to resume, outputs
and failures of earlier runs), and starts the idle-key sweeper when keys are passivated. The
host then feeds ``runtime.system`` while ``runtime.accepting``. Leaving the block stops intake,
lets unfinished inputs finish for up to ``drain_timeout`` seconds (None: until they have; 0: not
at all), cancels the rest (they stay journaled and run at the next start), stops the sweeper,
closes the journal and the resources, and ends every output stream. A journal that failed is
raised when the block itself ended without an error.

Every committed output goes to the one broadcast, ``runtime.outputs``, and to the host's own
``output`` hook (``HostHooks``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..clock import SYSTEM_CLOCK, Clock
from ..config import Configuration
from ..errors import JournalWriteError
from ..journal import Journal, RecoveredJournal
from ..logging import library_logger
from .host_hooks import NO_HOOKS, HostHooks
from .outputs import OutputHub
from .settings import RuntimeSettings
from .system import ActorSystem

if TYPE_CHECKING:
    from ..agent import AgentPlan

__all__ = ["RuntimeLifecycle"]

logger = library_logger()


class RuntimeLifecycle:
    """Owns an actor system from open to close; see the module doc. Entered once."""

    def __init__(
        self,
        plan: AgentPlan,
        config: Configuration,
        journal: Journal,
        *,
        mode: str,
        clock: Clock = SYSTEM_CLOCK,
        hooks: HostHooks = NO_HOOKS,
        outputs: OutputHub | None = None,
        broadcast: bool = True,
        idle_timeout: float | None = None,
        drain_timeout: float | None = 0.0,
        settings: RuntimeSettings | None = None,
    ) -> None:
        """``mode`` names the host in the journal (a journal refuses another mode's runs);
        ``hooks`` are the host's callbacks; ``outputs`` the broadcast to publish to (a new one
        when None), ``broadcast=False`` for a host whose outputs leave only through its own
        ``output`` hook or settle path (the Flink bridge's collector); ``idle_timeout``
        passivates idle keys; ``drain_timeout`` bounds the wait for unfinished inputs at
        close (checked by the host, as its own option); ``settings`` read from ``config`` when
        the system opens, unless the host read them already."""
        self._plan = plan
        self._config = config
        self._journal = journal
        self._mode = mode
        self._clock = clock
        self._hooks = hooks
        self._idle_timeout = idle_timeout
        self._settings = settings
        self.drain_timeout = drain_timeout
        self.outputs = outputs if outputs is not None else OutputHub()
        self._broadcasting = broadcast
        self._system: ActorSystem | None = None
        self._recovered: RecoveredJournal | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._intake_stopped: list[Callable[[], None]] = []
        self.accepting = False
        self.closed = False

    # -- what the host reads ----------------------------------------------------------------

    @property
    def system(self) -> ActorSystem:
        """The running actor system (after the block was entered)."""
        if self._system is None:
            raise RuntimeError("the runtime is not open: use it inside `async with`")
        return self._system

    @property
    def opened(self) -> bool:
        return self._system is not None

    @property
    def recovered(self) -> RecoveredJournal:
        """What the journal held when the runtime opened."""
        if self._recovered is None:
            raise RuntimeError("the runtime is not open: use it inside `async with`")
        return self._recovered

    def on_intake_stopped(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once intake stops (the block ends, or the journal failed)."""
        self._intake_stopped.append(callback)

    # -- open -------------------------------------------------------------------------------

    async def __aenter__(self) -> RuntimeLifecycle:
        if self._system is not None:
            raise RuntimeError("a runtime is entered once: make a new one")
        hooks = HostHooks(
            output=self._broadcast if self._broadcasting else self._hooks.output,
            input_finished=self._hooks.input_finished,
            journal_broken=self._journal_broken,
        )
        system = self._system = ActorSystem(
            self._plan, self._config, self._journal, self._clock, hooks, self._idle_timeout,
            self._settings,
        )  # fmt: skip
        try:
            self._recovered = await system.open(self._mode)
        except BaseException:
            await system.aclose()
            self.closed = True
            raise
        if system.passivation is not None:
            self._sweeper = asyncio.create_task(system.passivation.run())
        self.accepting = True
        return self

    def _broadcast(self, seq: int, key: Hashable, output: Any) -> None:
        self.outputs.publish(key, output)
        if self._hooks.output is not None:
            self._hooks.output(seq, key, output)

    def _journal_broken(self, error: JournalWriteError) -> None:
        self.stop_intake()
        if self._hooks.journal_broken is not None:
            self._hooks.journal_broken(error)

    # -- drain and close --------------------------------------------------------------------

    def stop_intake(self) -> None:
        """Take no more inputs from here on."""
        self.accepting = False
        callbacks, self._intake_stopped = self._intake_stopped, []
        for callback in callbacks:
            callback()

    async def drain(self, within: float | None = None) -> bool:
        """Wait until every dispatched input has finished, at most ``within`` seconds (None:
        as long as that takes); False when the time ran out first."""
        system = self.system
        if not system.unfinished:
            return True
        if within is None:
            await system.join()
            return True
        if within == 0:
            return False
        try:
            await asyncio.wait_for(asyncio.shield(system.join()), within)
        except TimeoutError:
            return False
        return True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose(raise_broken=exc_type is None)

    async def aclose(self, *, raise_broken: bool = True) -> None:
        """Stop intake, drain, cancel what is left, and close (what leaving the block does)."""
        self.stop_intake()
        system = self.system
        if self.closed:
            return
        try:
            if not await self.drain(self.drain_timeout) and self.drain_timeout:
                logger.warning(
                    "drain timed out; unfinished inputs stay journaled for the next start",
                    unfinished=system.unfinished,
                )
        finally:
            try:
                await self._stop_sweeper()
            finally:
                try:
                    await system.aclose()
                finally:
                    self.closed = True
                    self.outputs.close()
        if raise_broken and system.broken is not None:
            raise system.broken_error()  # the host learns that its runtime stopped

    async def _stop_sweeper(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)

"""The actor system: every key's actor, and what all actors of one runtime share.

It owns the plan, the configuration, the resources, the metrics, the thread pool limit for sync
durable functions, the output sinks and the record of failed runs. Hosts (``execute()`` for
batches, the long-lived service runtime, the Flink bridge) feed it inputs with ``dispatch`` and
wait with ``join``; it never starts a task of its own, so it leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

import anyio

from ..clock import SYSTEM_CLOCK, Clock
from ..config import Configuration, ErrorHandlingStrategy, report_options_without_effect
from ..durable import CallRecorder
from ..errors import (
    ActionFailedError,
    JournalWriteError,
    KeyHaltedError,
    RuntimeClosedError,
)
from ..events import OutputEvent
from ..journal import Journal, RecoveredJournal
from ..journal.commit import RunCommit, StoredKey
from ..journal.store import DONE
from ..logging import library_logger
from ..memory import MemoryStore, MemoryType
from ..metrics import BuiltinMetrics
from ..resources import ResourceCache, ResourceType, configured_arguments
from ..vector_store_memory import LongTermMemoryProvider
from .actor import Actor, InputItem, Settled
from .host_hooks import NO_HOOKS, HostHooks
from .passivation import Passivation
from .settings import RuntimeSettings

if TYPE_CHECKING:
    from ..agent import ActionSpec, AgentPlan
    from .run import Run


__all__ = ["ActorSystem"]

logger = library_logger()


class ActorSystem:
    """All actors of one applied agent in one runtime. Create it inside the running loop."""

    def __init__(
        self,
        plan: AgentPlan,
        config: Configuration,
        journal: Journal,
        clock: Clock = SYSTEM_CLOCK,
        hooks: HostHooks = NO_HOOKS,
        idle_timeout: float | None = None,
        settings: RuntimeSettings | None = None,
    ) -> None:
        """``idle_timeout``: seconds after which an idle key's actor is passivated (see
        ``Passivation``; None keeps every actor in memory). ``settings``: read from
        ``config`` when not given."""
        self.plan = plan
        self.config = config
        self.journal = journal
        report_options_without_effect(config)
        self.loop = asyncio.get_running_loop()
        # Runs finish in loop callbacks; those (and the sync actions of the next run they start)
        # execute in the context the runtime was created in, like runs started by the feeder.
        self.callback_context = contextvars.copy_context()
        self.metrics = BuiltinMetrics([spec.name for spec in plan.actions])
        self.resources = ResourceCache(
            dict(plan.resources), self.metrics.agent, configured_arguments(config)
        )
        self.settings = settings if settings is not None else RuntimeSettings.from_config(config)
        # Each run's ``ctx.long_term_memory`` (made when a run first asks for it).
        self.long_term = LongTermMemoryProvider.from_config(config, self.resources)
        self.thread_limiter = anyio.CapacityLimiter(self.settings.async_threads)
        journal.thread_limiter = self.thread_limiter
        self.actors: dict[Hashable, Actor] = {}
        self.clock: Callable[[], float] = clock.time
        self.hooks = hooks
        # Where idle actors go, and how missing keys come back.
        self.passivation = (
            Passivation(self, idle_timeout, clock) if idle_timeout is not None else None
        )
        # The journal could no longer be written (a full disk, say): the runtime stops, and
        # tells its host (which stops taking inputs).
        self.broken: JournalWriteError | None = None
        self.queued = 0  # inputs waiting in mailboxes
        self.running = 0  # runs in flight
        self.failures: list[ActionFailedError] = []
        self.closing = False
        # Inputs dispatched and not yet finished (queued or running). Read-only for hosts.
        self.unfinished = 0
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._warned_types: set[str] = set()
        self._warned_returns: set[str] = set()

    # -- feeding ----------------------------------------------------------------------------

    def actor(self, key: Hashable) -> Actor:
        actor = self.actors.get(key)
        if actor is None:
            actor = self.actors[key] = Actor(key, self)
        return actor

    def new_memory(
        self, memory: MemoryStore | None = None, stamps: dict[str, float] | None = None
    ) -> MemoryStore:
        """A key's short-term memory (``memory`` if given), with the configured TTL."""
        if memory is None:
            memory = MemoryStore(MemoryType.SHORT_TERM)
        ttl = self.settings.memory_ttl
        if ttl is not None:
            memory.expire_after(
                ttl, refresh_on_read=self.settings.ttl_refreshed_on_read, clock=self.clock,
                stamps=stamps,
            )  # fmt: skip
        return memory

    async def open(self, mode: str) -> RecoveredJournal:
        """Open the journal and restore every key it knows to its last committed state; connect
        the MCP servers (off the loop, so that runs find their tools without waiting)."""
        await self.resources.warm_up(ResourceType.MCP_SERVER)
        recovered = await self.journal.open(
            self.loop, {"agent": self.plan.agent_name, "mode": mode}
        )
        for key, state in recovered.keys.items():
            actor = self.bring_back(key, StoredKey(state.memory, state.stamps, state.runs))
            self.journal.adopt(state, actor.memory)
        return recovered

    def bring_back(self, key: Hashable, kept: StoredKey | None) -> Actor:
        """The actor of ``key`` rebuilt from what a store kept of it: its committed memory,
        the memory's TTL stamps and its run count (None: nothing committed yet)."""
        if kept is None:
            return self.actor(key)  # memory is made when first used
        memory, stamps, runs = kept
        actor = self.actors[key] = Actor(key, self, self.new_memory(memory, stamps))
        actor.runs_started = runs
        return actor

    async def dispatch(
        self,
        key: Hashable,
        value: Any,
        seq: int,
        on_settled: Settled | None = None,
        calls: dict[int, bytes] | None = None,
        *,
        wait_for_room: bool = True,
    ) -> None:
        """Deliver one (accepted) input to its key's mailbox, waiting while that mailbox is full
        (unless the caller reserved the room: ``wait_for_room=False``).

        ``on_settled(seq, outputs, error)`` is called once the run ended (``settles(future)``
        makes one that resolves a future); ``calls`` are the durable calls journaled for this
        input before a crash."""
        actor = self.actors.get(key)
        if actor is None:
            actor = (
                self.actor(key)
                if self.passivation is None
                else (await self.passivation.activate(key))
            )
        while wait_for_room and not self.settings.admission.key_has_room(actor.waiting):
            waiter = self.loop.create_future()
            if actor.space_waiters is None:
                actor.space_waiters = deque()
            actor.space_waiters.append(waiter)
            await waiter
        self.unfinished += 1
        actor.deliver(InputItem(value, seq, calls, on_settled))

    def deliver(
        self,
        key: Hashable,
        value: Any,
        seq: int,
        on_settled: Settled,
        calls: dict[int, bytes] | None = None,
    ) -> None:
        """Deliver one input without waiting: for hosts that keep later inputs of a key
        themselves (the Flink bridge buffers them in keyed state), so a mailbox never fills.

        ``on_settled(seq, outputs, error)`` is called once the run ended; a run that never awaits
        ends (and calls it) before this returns."""
        actor = self.actor(key)
        self.unfinished += 1
        actor.deliver(InputItem(value, seq, calls, on_settled))

    def forget(self, key: Hashable) -> None:
        """Drop the idle actor of ``key``; its committed state lives in the host's store."""
        actor = self.actors.get(key)
        if actor is not None and actor.idle:
            del self.actors[key]

    async def join(self) -> None:
        """Wait until every dispatched input has finished (committed or failed)."""
        while self.unfinished:
            waiter = self.loop.create_future()
            self._idle_waiters.append(waiter)
            await waiter

    async def aclose(self) -> None:
        """Cancel runs still going, wait for them to stop, and close the resources."""
        self.closing = True
        try:
            for actor in list(self.actors.values()):
                self._drop_queued(actor)
                if actor.current is not None:
                    actor.current.cancel()
            # Cancelled tasks stop on the next loop turns; a sync durable function in a thread
            # runs to its end. Shielded, so that a second cancel cannot leave runs orphaned.
            await asyncio.shield(self.join())
        finally:
            try:
                await asyncio.shield(self.journal.close())
            finally:
                for error in await self.resources.aclose():
                    logger.warning("resource close failed", error=repr(error))

    def _drop_queued(self, actor: Actor, reason: Callable[[], BaseException] | None = None) -> None:
        """Settle the inputs waiting in ``actor``'s mailbox (they stay journaled)."""
        if reason is None:
            reason = _closed_before_running
        while actor.mailbox:
            item = actor.mailbox.popleft()
            self.queued -= 1
            self._settle(item, error=reason())
        for waiter in actor.space_waiters or ():
            if not waiter.done():
                waiter.set_exception(RuntimeClosedError("the runtime is closing"))

    # -- a journal that broke ---------------------------------------------------------------

    def journal_failed(self, error: BaseException) -> None:
        """The journal could not take a write: stop. Runs going are cancelled and every input
        waiting in a mailbox or for its run gets the error; all of them stay journaled as far
        as the journal got, and run at the next start."""
        if self.broken is not None:
            return
        if not isinstance(error, JournalWriteError):
            failure = JournalWriteError(
                f"the journal {self.journal.store.describe()} failed: "
                f"{type(error).__name__}: {error}"
            )
            failure.__cause__ = error
            error = failure
        self.broken = error
        logger.error(
            "the journal failed, so the runtime stops; inputs accepted so far stay journaled "
            "and run at the next start",
            error=str(error),
        )
        if self.hooks.journal_broken is not None:
            self.hooks.journal_broken(error)
        for actor in list(self.actors.values()):
            self._drop_queued(actor, self.broken_error)
            if actor.current is not None:
                actor.current.cancel(self.broken_error())

    def broken_error(self) -> JournalWriteError:
        """An error for one waiter of a runtime whose journal failed."""
        assert self.broken is not None
        error = JournalWriteError(str(self.broken))
        error.__cause__ = self.broken.__cause__
        return error

    def hold_back(self, actor: Actor, item: InputItem) -> None:
        """Settle an input that must not run now (its key is halted, or the journal failed);
        the journal keeps it for the next start."""
        halted = actor.halted
        if halted is None:
            self._settle(item, error=self.broken_error())
            return
        error = KeyHaltedError(
            f"key {actor.key!r} is halted: run {halted.run} could not be replayed "
            f"({type(halted.cause).__name__}); this input stays journaled and runs, in order, "
            "at the next start once that is fixed"
        )
        error.__cause__ = halted
        self._settle(item, error=error)

    # -- callbacks from actors --------------------------------------------------------------

    def recorder_for(self, run: Run) -> CallRecorder:
        return self.journal.recorder(run.item.seq, run.key, run.number, run.item.calls)

    def commit_run(self, actor: Actor, run: Run) -> None:
        """Commit a successful run: memory and outputs become durable together; the outputs are
        released once they are. A run the journal cannot record (an output it cannot encode, a
        record too big) fails instead, with its key as before; a journal that cannot be written
        stops the runtime."""
        if self.broken is not None:
            run.failure = ActionFailedError(
                run.key, run.number, "<commit>", "<journal>", self.broken_error()
            )
            return
        journal = self.journal
        commit = RunCommit(
            run.item.seq, actor.key, actor.key_bytes, actor.memory, run.number, run.outputs,
            run.calls_recorded,
        )  # fmt: skip
        try:
            encoded = journal.encode_commit(commit)
        except Exception as error:  # nothing is committed yet: the run fails, the key stays
            run.failure = ActionFailedError(
                run.key, run.number, "<commit>", OutputEvent.EVENT_TYPE, error
            )
            return
        actor.commit_memory()
        try:
            ack = journal.commit(commit, encoded)
        except Exception as error:
            self.journal_failed(error)
            self._settle(run.item, error=self.broken_error())
            return
        if ack is DONE:
            self._release(run, None)
        else:  # in commit order, even when a later commit is durable first
            ack.then(lambda error: self._release(run, error))

    def _release(self, run: Run, error: BaseException | None) -> None:
        if error is not None:  # the journal broke: the run's effects are not durable
            self.journal_failed(error)
            self._settle(run.item, error=self.broken_error())
            return
        outputs = run.outputs
        sink = self.hooks.output
        if sink is not None:
            key, seq = run.key, run.item.seq
            for output in outputs:
                sink(seq, key, output)
        self._settle(run.item, result=outputs)

    def _settle(
        self, item: InputItem, result: Any = None, error: BaseException | None = None
    ) -> None:
        if item.on_settled is not None:
            item.on_settled(item.seq, result, error)
        self._input_finished()

    def run_failed(self, run: Run) -> None:
        """A run failed for good (after any retries)."""
        if run.replay_problem is not None:
            self._halt(run, run.replay_problem)
            return
        failure = run.failure
        assert failure is not None
        if self.closing:
            # Cancelled by shutdown: the input stays accepted, its journaled calls kept, so the
            # next start runs it again.
            self._settle(run.item, error=RuntimeClosedError("the runtime closed during this run"))
            return
        if self.broken is None and self.journal.failure is not None:
            self.journal_failed(self.journal.failure)  # what the run failed on, most likely
        if self.broken is not None:  # nothing can be recorded: the next start runs it again
            self._settle(run.item, error=self.broken_error())
            return
        failure.input_index = run.item.seq
        fields = {
            "key": run.key, "run": run.number, "action": failure.action,
            "event_type": failure.event_type, "error": repr(failure.cause),
        }  # fmt: skip
        if self.settings.error_strategy is ErrorHandlingStrategy.IGNORE:
            logger.warning("run failed and was skipped (error-handling-strategy: ignore)", **fields)
        else:
            logger.error("run failed", **fields)
            self.failures.append(failure)
        try:
            self.journal.fail(run.item.seq, run.actor.key_bytes, failure, run.calls_recorded)
        except Exception as error:  # not recorded as failed: the next start runs it again
            self.journal_failed(error)
            self._settle(run.item, error=self.broken_error())
            return
        self._settle(run.item, error=failure)

    def _halt(self, run: Run, failure: ActionFailedError) -> None:
        """A journaled call of ``run`` cannot be replayed here: keep its input and calls for a
        fixed restart (no failure record), and stop the key so that its later inputs do not
        run ahead of it. Never retried, never ignored."""
        run.actor.halted = failure
        failure.input_index = run.item.seq
        logger.error(
            "a journaled call cannot be replayed; the input is kept and the key halted until "
            "the next start",
            key=run.key, run=run.number, action=failure.action, error=repr(failure.cause),
        )  # fmt: skip
        self.failures.append(failure)
        self._settle(run.item, error=failure)

    def retrying(self, run: Run) -> None:
        """A failed run is about to be tried again: it replays the calls this attempt (and
        the journal before it) completed with a value, like a crash recovery would."""
        if run.has_recorder:
            run.item.calls = run.recorder.kept_for_retry()

    def should_retry(self, run: Run) -> bool:
        return (
            not self.closing
            and self.broken is None
            and run.replay_problem is None
            and self.settings.error_strategy is ErrorHandlingStrategy.RETRY
            and run.attempt <= self.settings.max_retries
        )

    def warn_returned_value(self, spec: ActionSpec, value: Any) -> None:
        """An action returned something other than None: the runtime ignores it (warned once
        per action), since an output is an ``OutputEvent``."""
        if spec.name not in self._warned_returns:
            self._warned_returns.add(spec.name)
            logger.warning(
                "an action returned a value, which is ignored; emit outputs with "
                "ctx.send_event(OutputEvent(output=...)) (warned once per action)",
                action=spec.name,
                value_type=type(value).__name__,
            )

    def warn_unrouted(self, run: Run, event_type: str) -> None:
        if event_type not in self._warned_types:
            self._warned_types.add(event_type)
            logger.warning(
                "no action listens to this event type; events of it are dropped "
                "(warned once per type)",
                key=run.key,
                run=run.number,
                event_type=event_type,
            )

    def _input_finished(self) -> None:
        self.unfinished -= 1
        if self.hooks.input_finished is not None:
            self.hooks.input_finished()
        if not self.unfinished:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    # -- introspection ----------------------------------------------------------------------

    def metrics_snapshot(self) -> dict[str, Any]:
        return self.metrics.snapshot()


def _closed_before_running() -> RuntimeClosedError:
    return RuntimeClosedError("the runtime closed before this input ran")

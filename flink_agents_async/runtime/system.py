"""The actor system: every key's actor, and what all actors of one runtime share.

It owns the plan, the configuration, the resources, the metrics, the thread pool limit for sync
durable functions, the output sinks and the record of failed runs. Hosts (``execute()`` for
batches, the long-lived service runtime, the Flink bridge) feed it inputs with ``dispatch`` and
wait with ``join``; it never starts a task of its own, so it leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from ..config import AgentExecutionOptions, Configuration, ShortTermMemoryOptions, at_least
from ..durable import CallRecorder
from ..errors import ActionFailedError, ConfigurationError, JournalError, RuntimeClosedError
from ..events import OutputEvent
from ..journal import Journal, JournalEncodeError, RecoveredJournal
from ..journal.store import DONE
from ..memory import MemoryStore, MemoryType
from ..metrics import BuiltinMetrics
from ..resources import ResourceCache
from .actor import Actor, InputItem, Settled
from .run import retrieve_exception

if TYPE_CHECKING:
    from ..agent import AgentPlan
    from .run import Run


__all__ = ["ActorSystem", "OutputSink"]

OutputSink = Callable[[Hashable, Any], None]

_STRATEGIES = ("fail", "retry", "ignore")

logger = structlog.get_logger("flink_agents_async")


def _error_strategy(config: Configuration) -> str:
    strategy = str(config.get(AgentExecutionOptions.ERROR_HANDLING_STRATEGY)).lower()
    if strategy not in _STRATEGIES:
        raise ConfigurationError(
            f"configuration key {AgentExecutionOptions.ERROR_HANDLING_STRATEGY.key!r} is "
            f"{strategy!r}; use one of {', '.join(_STRATEGIES)}"
        )
    return strategy


def _memory_ttl(config: Configuration) -> tuple[float | None, bool]:
    milliseconds = config.get(ShortTermMemoryOptions.STATE_TTL_MS) or 0
    update = str(config.get(ShortTermMemoryOptions.STATE_TTL_UPDATE_TYPE)).upper()
    if update not in ("ON_CREATE_AND_WRITE", "ON_READ_AND_WRITE"):
        raise ConfigurationError(
            f"configuration key {ShortTermMemoryOptions.STATE_TTL_UPDATE_TYPE.key!r} is "
            f"{update!r}; use ON_CREATE_AND_WRITE or ON_READ_AND_WRITE"
        )
    if milliseconds < 0:
        raise ConfigurationError(
            f"configuration key {ShortTermMemoryOptions.STATE_TTL_MS.key!r} must be 0 (off) or "
            f"a positive number of milliseconds, got {milliseconds}"
        )
    return (milliseconds / 1000 if milliseconds else None), update == "ON_READ_AND_WRITE"


class ActorSystem:
    """All actors of one applied agent in one runtime. Create it inside the running loop."""

    def __init__(self, plan: AgentPlan, config: Configuration, journal: Journal) -> None:
        self.plan = plan
        self.config = config
        self.journal = journal
        self.loop = asyncio.get_running_loop()
        # Runs finish in loop callbacks; those (and the sync actions of the next run they start)
        # execute in the context the runtime was created in, like runs started by the feeder.
        self.callback_context = contextvars.copy_context()
        self.metrics = BuiltinMetrics([spec.name for spec in plan.actions])
        self.resources = ResourceCache(dict(plan.resources), self.metrics.agent)
        self.thread_limiter = anyio.CapacityLimiter(
            at_least(config, AgentExecutionOptions.NUM_ASYNC_THREADS, 1)
        )
        journal.thread_limiter = self.thread_limiter
        self.mailbox_capacity = at_least(config, AgentExecutionOptions.MAILBOX_CAPACITY, 1)
        self.max_events_per_run = at_least(config, AgentExecutionOptions.MAX_EVENTS_PER_RUN, 1)
        self.error_strategy = _error_strategy(config)
        self.max_retries = max(0, config.get(AgentExecutionOptions.MAX_RETRIES) or 0)
        self.actors: dict[Hashable, Actor] = {}
        self.clock: Callable[[], float] = time.time
        self._ttl_seconds, self._ttl_on_read = _memory_ttl(config)
        # Service hooks (None for batch jobs): where idle actors go, and how missing keys come
        # back (see runtime.passivation).
        self.passivation: Any = None
        self.on_finished: Callable[[], None] | None = None  # an input finished (service mode)
        self.queued = 0  # inputs waiting in mailboxes
        self.running = 0  # runs in flight
        self.sinks: list[OutputSink] = []
        self.failures: list[ActionFailedError] = []
        self.closing = False
        # Inputs dispatched and not yet finished (queued or running). Read-only for hosts.
        self.unfinished = 0
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._warned_types: set[str] = set()

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
        memory = memory or MemoryStore(MemoryType.SHORT_TERM)
        if self._ttl_seconds is not None:
            memory.expire_after(
                self._ttl_seconds, refresh_on_read=self._ttl_on_read, clock=self.clock,
                stamps=stamps,
            )  # fmt: skip
        return memory

    async def open(self, mode: str) -> RecoveredJournal:
        """Open the journal and restore every key it knows to its last committed state."""
        recovered = await self.journal.open(
            self.loop, {"agent": self.plan.agent_name, "mode": mode}
        )
        for key, state in recovered.keys.items():
            actor = self.bring_back(key, (state.memory, state.stamps, state.runs))
            self.journal.adopt(state, actor)
        return recovered

    def bring_back(
        self, key: Hashable, kept: tuple[MemoryStore, dict[str, float], int] | None
    ) -> Actor:
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
        ticket: asyncio.Future[Any] | None = None,
        calls: dict[int, Any] | None = None,
        *,
        wait_for_room: bool = True,
    ) -> None:
        """Deliver one (accepted) input to its key's mailbox, waiting while that mailbox is full
        (unless the caller reserved the room: ``wait_for_room=False``).

        ``calls`` are the durable calls journaled for this input before a crash."""
        actor = self.actors.get(key)
        if actor is None:
            actor = (
                self.actor(key)
                if self.passivation is None
                else (await self.passivation.activate(key))
            )
        while wait_for_room and not actor.has_room(self.mailbox_capacity):
            waiter = self.loop.create_future()
            if actor.space_waiters is None:
                actor.space_waiters = deque()
            actor.space_waiters.append(waiter)
            await waiter
        self.unfinished += 1
        actor.deliver(InputItem(value, seq, ticket, calls))

    def deliver(
        self,
        key: Hashable,
        value: Any,
        seq: int,
        on_settled: Settled,
        calls: dict[int, Any] | None = None,
    ) -> None:
        """Deliver one input without waiting: for hosts that keep later inputs of a key
        themselves (the Flink bridge buffers them in keyed state), so a mailbox never fills.

        ``on_settled(seq, outputs, error)`` is called once the run ended; a run that never awaits
        ends (and calls it) before this returns."""
        actor = self.actor(key)
        self.unfinished += 1
        actor.deliver(InputItem(value, seq, None, calls, on_settled))

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
                for error in self.resources.close():
                    logger.warning("resource close failed", error=repr(error))

    def _drop_queued(self, actor: Actor) -> None:
        while actor.mailbox:
            item = actor.mailbox.popleft()
            self.queued -= 1
            self._settle(item, error=RuntimeClosedError("the runtime closed before this input ran"))
        for waiter in actor.space_waiters or ():
            if not waiter.done():
                waiter.set_exception(RuntimeClosedError("the runtime is closing"))

    # -- callbacks from actors --------------------------------------------------------------

    def recorder_for(self, run: Run) -> CallRecorder:
        return self.journal.recorder(run.item.seq, run.key, run.number, run.item.calls)

    def commit_run(self, actor: Actor, run: Run) -> None:
        """Commit a successful run: memory and outputs become durable together; the outputs are
        released once they are. An output the journal cannot hold fails the run instead."""
        try:
            outputs = self.journal.encode_outputs(run.outputs, run.key, run.number)
        except JournalEncodeError as error:
            run.failure = ActionFailedError(
                run.key, run.number, "<commit>", OutputEvent.EVENT_TYPE, error
            )
            return
        delta = actor.commit_memory()
        ack = self.journal.commit(run.item.seq, actor, run.number, delta, outputs, run.next_slot)
        if ack is DONE:
            self._release(run, None)
        else:  # in commit order, even when a later commit is durable first
            ack.then(lambda error: self._release(run, error))

    def _release(self, run: Run, error: BaseException | None) -> None:
        if error is not None:  # the journal broke: the run's effects are not durable
            failure = ActionFailedError(
                run.key, run.number, "<commit>", "<journal>", JournalError(str(error))
            )
            self.failures.append(failure)
            self._settle(run.item, error=failure)
            return
        outputs = run.outputs
        if self.sinks:
            key = run.key
            for output in outputs:
                for sink in self.sinks:
                    sink(key, output)
        self._settle(run.item, result=outputs)

    def _settle(
        self, item: InputItem, result: Any = None, error: BaseException | None = None
    ) -> None:
        ticket = item.ticket
        if ticket is not None and not ticket.done():
            if error is None:
                ticket.set_result(result)
            else:
                ticket.set_exception(error)
                ticket.add_done_callback(retrieve_exception)
        if item.on_settled is not None:
            item.on_settled(item.seq, result, error)
        self._input_finished()

    def run_failed(self, run: Run) -> None:
        """A run failed for good (after any retries)."""
        failure = run.failure
        assert failure is not None
        if self.closing:
            # Cancelled by shutdown: the input stays accepted, its journaled calls kept, so the
            # next start runs it again.
            self._settle(run.item, error=RuntimeClosedError("the runtime closed during this run"))
            return
        fields = {
            "key": run.key, "run": run.number, "action": failure.action,
            "event_type": failure.event_type, "error": repr(failure.cause),
        }  # fmt: skip
        if self.error_strategy == "ignore":
            logger.warning("run failed and was skipped (error-handling-strategy: ignore)", **fields)
        else:
            logger.error("run failed", **fields)
            self.failures.append(failure)
        self.journal.fail(run.item.seq, run.actor.key_bytes, failure, run.next_slot)
        self._settle(run.item, error=failure)

    def retrying(self, run: Run) -> None:
        """A failed run is about to be tried again: forget the calls it journaled."""
        self.journal.discard_calls(run.item.seq)

    def should_retry(self, run: Run) -> bool:
        return (
            not self.closing and self.error_strategy == "retry" and run.attempt <= self.max_retries
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
        if self.on_finished is not None:
            self.on_finished()
        if not self.unfinished:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    # -- introspection ----------------------------------------------------------------------

    def metrics_snapshot(self) -> dict[str, Any]:
        return self.metrics.snapshot()

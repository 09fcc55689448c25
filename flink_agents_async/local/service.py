"""The long-lived runtime: ``async with env.serve(agent) as runtime`` inside an application.

The application feeds inputs as they arrive (``send`` / ``submit``) and reads results per input
or as a stream (``outputs()``). The runtime lives in the caller's event loop and starts no
threads of its own besides the journal writer and the pool for sync durable functions; its only
task (the passivation sweeper) is owned by the ``async with`` block.

* **Accepted means journaled.** ``submit`` returns once the input is in the journal (per the
  durability mode). After a crash, a new ``serve()`` on the same journal finishes every accepted
  input and delivers those outputs to ``outputs()``; outputs committed before the crash are not
  delivered again.
* **Backpressure.** Each key's mailbox is bounded (``mailbox_capacity``) and so is the number of
  unfinished inputs overall (``max_pending``): ``submit`` waits for room, or raises
  ``RuntimeBusyError`` with ``nowait=True``. With ``busy_policy="reject"`` an input for a key
  that is still busy is refused at once instead of queued.
* **Draining.** Leaving the block stops intake (``RuntimeClosedError``), lets in-flight inputs
  finish within ``drain_timeout``, flushes the journal and closes resources. Inputs cut off by
  the timeout or by cancellation stay journaled and run at the next start.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from dataclasses import replace
from types import TracebackType
from typing import Any

from ..agent import AgentPlan
from ..clock import SYSTEM_CLOCK, Clock
from ..config import Configuration
from ..errors import JournalWriteError, RuntimeBusyError, RuntimeClosedError
from ..host_api import (
    ActorSystem,
    Admission,
    HostHooks,
    Journal,
    OutputHub,
    OutputStream,
    RuntimeLifecycle,
    settles,
)
from ..keys import check_key
from ..logging import library_logger
from ..serve_settings import DEFAULT_SERVE_SETTINGS, ServeSettings

__all__ = ["RunHandle", "ServiceRuntime"]

logger = library_logger()


class RunHandle:
    """An accepted input. Await it for its run's outputs (a list), or its error."""

    __slots__ = ("_future", "key", "seq")

    def __init__(self, key: Hashable, seq: int, future: asyncio.Future[list[Any]]) -> None:
        self.key = key
        self.seq = seq
        self._future = future

    def __await__(self) -> Any:
        return asyncio.shield(self._future).__await__()

    def done(self) -> bool:
        return self._future.done()

    def result(self) -> list[Any]:
        """The outputs of a finished run (raises its error, or ``InvalidStateError``)."""
        return self._future.result()

    def __repr__(self) -> str:
        state = "done" if self._future.done() else "pending"
        return f"<RunHandle key={self.key!r} seq={self.seq} {state}>"


class ServiceRuntime:
    """A running actor system fed by the application. Made by ``env.serve(agent)``."""

    def __init__(
        self,
        plan: AgentPlan,
        config: Configuration,
        journal: Journal,
        settings: ServeSettings = DEFAULT_SERVE_SETTINGS,
        *,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._journal = journal
        self._max_pending = settings.max_pending
        self._admission: Admission | None = None
        self._busy_policy = settings.busy_policy
        self._next_seq = 0
        self._room_waiters: deque[asyncio.Future[None]] = deque()
        self._reserved: dict[Hashable, int] = {}
        self._reserved_total = 0
        self._outputs = OutputHub(on_room=self._room_freed)
        self._runtime = RuntimeLifecycle(
            plan,
            config,
            journal,
            mode="service",
            clock=clock,
            hooks=HostHooks(input_finished=self._room_freed),
            outputs=self._outputs,
            idle_timeout=settings.idle_timeout,
            drain_timeout=settings.drain_timeout,
        )
        self._runtime.on_intake_stopped(self._stop_intake)
        self._resuming = 0  # inputs accepted before a restart, not yet finished

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> ServiceRuntime:
        runtime = self._runtime
        if runtime.opened:
            raise RuntimeError("a runtime is entered once: call env.serve(agent) again")
        await runtime.__aenter__()
        try:
            await self._resume(runtime)
        except BaseException:
            await runtime.aclose(raise_broken=False)
            raise
        return self

    async def _resume(self, runtime: RuntimeLifecycle) -> None:
        """Passivate recovered keys with nothing to resume (a restart does not pull every key
        ever seen into memory), and run again the inputs accepted before a crash."""
        system, recovered = runtime.system, runtime.recovered
        self._admission = replace(system.settings.admission, max_pending=self._max_pending)
        passivation = system.passivation
        if passivation is not None:
            resuming = {entry.key for entry in recovered.pending}
            for key, state in recovered.keys.items():
                if key not in resuming:
                    passivation.evict(system.actors[key], save=state.unfolded)
        self._next_seq = recovered.next_seq
        if recovered.pending:
            # their outputs can commit before anybody iterates outputs(): the first stream
            # gets them
            self._outputs.hold()
            self._resuming = len(recovered.pending)
            logger.info("resuming inputs accepted before a restart", count=self._resuming)
        for entry in recovered.pending:
            ticket: asyncio.Future[list[Any]] = system.loop.create_future()
            ticket.add_done_callback(self._resumed_input_finished)
            await system.dispatch(entry.key, _value_of(self._journal, entry), entry.record.seq,
                                  settles(ticket), entry.calls)  # fmt: skip

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._runtime.__aexit__(exc_type, exc, traceback)

    def _stop_intake(self) -> None:
        """No more inputs are taken (the block ends, or the journal failed): waiting submits
        are refused."""
        waiters, self._room_waiters = self._room_waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(RuntimeClosedError("the runtime is shutting down"))

    # -- feeding ----------------------------------------------------------------------------

    async def submit(self, key: Hashable, value: Any, *, nowait: bool = False) -> RunHandle:
        """Accept one input for ``key`` and return a handle to await its outputs.

        Returns once the input is journaled. Waits while the runtime or the key's mailbox is
        full, or raises ``RuntimeBusyError`` at once with ``nowait=True``. Once accepted, an
        input runs (now, or at the next start if this one closes first).
        """
        system = self._require_running()
        check_key(key, f"the input sent for key {key!r:.200}")
        if self._busy_policy == "reject" and self._key_busy(system, key):
            raise RuntimeBusyError(f"key {key!r} is busy (busy_policy='reject')")
        await self._wait_for_room(system, key, nowait)
        # The room is ours from here: reserved until the input is in the key's mailbox, so
        # that submits waiting on the journal cannot all slip past the limits together.
        self._reserved_total += 1
        self._reserved[key] = self._reserved.get(key, 0) + 1
        try:
            journal = self._journal
            item = journal.codec.encode([key, value], "the input sent for key {!r}", key)
            seq = self._next_seq
            self._next_seq += 1
            ack = journal.accept(seq, journal.encode_key(key), item)
        except JournalWriteError as error:
            self._release(key)
            system.journal_failed(error)
            raise
        except BaseException:
            self._release(key)
            raise
        ticket: asyncio.Future[list[Any]] = system.loop.create_future()
        if ack.done:  # nothing to wait for: hand it over without leaving this task
            await self._admit(system, key, value, seq, ticket, ack)
        else:
            # Journaled means it will run: even if our caller is cancelled while the journal
            # acknowledges, the input goes to its mailbox now, in order, not at the next start.
            await asyncio.shield(self._admit(system, key, value, seq, ticket, ack))
        return RunHandle(key, seq, ticket)

    async def _admit(
        self,
        system: ActorSystem,
        key: Hashable,
        value: Any,
        seq: int,
        ticket: asyncio.Future[list[Any]],
        ack: Any,
    ) -> None:
        try:
            if not ack.done:
                try:
                    await ack
                except JournalWriteError as error:
                    system.journal_failed(error)
                    raise
            await system.dispatch(key, value, seq, settles(ticket), wait_for_room=False)
        finally:
            self._release(key)

    def _release(self, key: Hashable) -> None:
        self._reserved_total -= 1
        remaining = self._reserved[key] - 1
        if remaining:
            self._reserved[key] = remaining
        else:
            del self._reserved[key]

    async def send(self, key: Hashable, value: Any, *, nowait: bool = False) -> list[Any]:
        """Run one input for ``key`` and return its outputs (or raise its run's error)."""
        handle = await self.submit(key, value, nowait=nowait)
        return await handle

    def _key_busy(self, system: ActorSystem, key: Hashable) -> bool:
        actor = system.actors.get(key)
        return key in self._reserved or (actor is not None and not actor.idle)

    def _room_for(self, system: ActorSystem, key: Hashable) -> str | None:
        """Why there is no room for another input of ``key`` (None: there is)."""
        actor = system.actors.get(key)
        queued = actor.waiting if actor is not None else 0
        busy = actor is not None and not actor.idle
        # inputs that will wait in the mailbox: those queued and reserved, but for the one
        # that runs at once on an idle key
        waiting = queued + self._reserved.get(key, 0) - (0 if busy else 1)
        assert self._admission is not None
        reason = self._admission.why_full(
            key, unfinished=system.unfinished + self._reserved_total, waiting=waiting
        )
        if reason is not None:
            return reason
        if not self._outputs.has_room():
            return "an outputs() reader with overflow='wait' has a full buffer"
        return None

    async def _wait_for_room(self, system: ActorSystem, key: Hashable, nowait: bool) -> None:
        while (reason := self._room_for(system, key)) is not None:
            if nowait:
                raise RuntimeBusyError(f"the runtime is busy: {reason}")
            waiter = system.loop.create_future()
            self._room_waiters.append(waiter)
            await waiter
            self._require_running()

    def _room_freed(self) -> None:
        # Everybody waiting looks again: room may have opened for some keys and not others.
        waiters, self._room_waiters = self._room_waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _require_running(self) -> ActorSystem:
        runtime = self._runtime
        if not runtime.opened:
            raise RuntimeClosedError(
                "the runtime does not accept inputs: use it inside `async with env.serve(...)`"
            )
        system = runtime.system
        if system.broken is not None:
            raise system.broken_error()
        if not runtime.accepting:
            raise RuntimeClosedError(
                "the runtime does not accept inputs: use it inside `async with env.serve(...)`"
                " (it is shutting down)"
            )
        return system

    # -- reading ----------------------------------------------------------------------------

    def _resumed_input_finished(self, ticket: asyncio.Future[list[Any]]) -> None:
        self._resuming -= 1
        if not self._resuming:
            self._outputs.stop_holding()
        if not ticket.cancelled():
            ticket.exception()  # a failed resumed run is reported like any other

    def outputs(self, *, max_buffered: int = 10_000, overflow: str = "drop-oldest") -> OutputStream:
        """Every output committed from this call on, as ``(key, output)``, until the runtime
        closes (at once, if it is closed already).

        At most ``max_buffered`` outputs wait for the reader. When that many do,
        ``overflow="drop-oldest"`` (the default) drops the oldest and counts them in the
        stream's ``dropped`` (each run's outputs still reach its handle), so that a slow
        reader never holds the runtime up; ``"wait"`` makes ``submit`` wait for the reader
        instead. The stream stops with ``aclose()``, at the end of ``async with``, or when
        it is dropped (``break``). The first stream also gets the outputs of inputs resumed
        after a restart that committed before it was made."""
        stream = self._outputs.subscribe(max_buffered, overflow)
        if not self._runtime.opened or self._runtime.closed:
            stream.end()
        return stream

    def stats(self) -> dict[str, int]:
        """Keys active (in memory) and passivated, queued inputs, runs in flight, unfinished
        (accepted, not yet committed or failed) inputs, open ``outputs()`` streams."""
        if not self._runtime.opened:
            return {}
        system = self._runtime.system
        passivation = system.passivation
        return {
            "keys_active": len(system.actors),
            "keys_passivated": len(passivation.passivated) if passivation is not None else 0,
            "queued_inputs": system.queued,
            "inflight_runs": system.running,
            "unfinished_inputs": system.unfinished,
            "output_streams": self._outputs.subscribers,
        }

    def metrics(self) -> dict[str, Any]:
        """A snapshot of the agent's metrics (see ``env.metrics()``)."""
        runtime = self._runtime
        return runtime.system.metrics_snapshot() if runtime.opened else {}


def _value_of(journal: Journal, entry: Any) -> Any:
    """The value of a journaled input (its item is ``[key, value]``)."""
    return journal.codec.decode(entry.record.item, "the journaled input {}", entry.record.seq)[1]

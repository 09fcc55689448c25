"""The asyncio half of one Flink subtask: the core's ``RuntimeLifecycle`` on an event loop that
the Flink thread drives while no input is in flight (``inline``) and a loop thread of its own
drives while runs are, and the journal store (``OutboxStore``) that hands each key's writes back
to the Flink thread through the key's outbox. See ARCHITECTURE.md ("Who drives the event loop").
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from functools import partial
from typing import Any

import structlog

from flink_agents_async.agent import AgentPlan
from flink_agents_async.config import Configuration
from flink_agents_async.host_api import (
    DONE,
    Ack,
    ActorSystem,
    CallOp,
    HostHooks,
    JournalStore,
    Op,
    RuntimeLifecycle,
    RuntimeSettings,
    SnapshotOp,
    StoredJournal,
    journal_from_config,
)
from flink_agents_async.logging import library_logger

from .inline import ParkedLoop
from .outbox import CallWritten, Outbox, RunDone, SnapshotWritten

__all__ = ["LoopHost", "Outbox", "OutboxStore"]

logger = library_logger("flink_agents_async.bridge")


class OutboxStore(JournalStore):
    """A journal store that routes every write to the outbox of the key it belongs to.

    Nothing is kept here: Flink keyed state is the store, and checkpoints make it durable. So
    an ack is done at once, and ``load`` finds nothing (keys are restored one by one, from
    their keyed state, when Flink first calls for them).
    """

    durable = False
    snapshot_commits = True  # keyed state holds each key's snapshot, rewritten by every commit

    def __init__(self) -> None:
        self._by_seq: dict[int, Outbox] = {}  # inputs in flight
        self._by_key: dict[bytes, Outbox] = {}  # actors on the loop

    def route_key(self, key_bytes: bytes, outbox: Outbox) -> None:
        """The key's commits (its snapshots) go to ``outbox`` while its actor is loaded."""
        self._by_key[key_bytes] = outbox

    def unroute_key(self, key_bytes: bytes) -> None:
        self._by_key.pop(key_bytes, None)

    def route(self, seq: int, outbox: Outbox) -> None:
        """The durable calls of input ``seq`` go to ``outbox`` until ``unroute(seq)``."""
        self._by_seq[seq] = outbox

    def unroute(self, seq: int) -> Outbox:
        return self._by_seq.pop(seq)

    def load(self) -> StoredJournal:
        return StoredJournal()

    def read_snapshot(self, key: bytes) -> bytes | None:
        return None  # keys are never passivated by the journal in the bridge

    def write(self, ops: Sequence[Op]) -> Ack:
        for op in ops:
            if isinstance(op, SnapshotOp):  # every commit writes one
                outbox = self._by_key.get(op.key)
                if outbox is not None:
                    outbox.append(SnapshotWritten(op.record.pack()))
            elif isinstance(op, CallOp):
                self._by_seq[op.seq].append(CallWritten(op.slot, op.record.pack()))
            # InputOp: the Flink side keeps inputs itself. FailOp: the run's RunDone carries
            # it. MetaOp: keyed state belongs to one job already.
        return DONE

    def describe(self) -> str:
        return "Flink keyed state"


class LoopHost:
    """The event loop of one subtask, its loop thread, and the actor system running on it.

    Every method is for the Flink thread (``close`` also for a later attempt's thread)."""

    def __init__(
        self,
        plan: AgentPlan,
        config: Configuration,
        log_context: dict[str, Any],
        *,
        settings: RuntimeSettings | None = None,
        inline: bool = True,
    ) -> None:
        """``settings``: ``config``'s, as the client read them (read here when None);
        ``inline=False`` takes a loop turn for work done while the loop is parked, instead of
        the faster inline call (see ``bridge.inline``)."""
        self.store = OutboxStore()
        self.loop = asyncio.new_event_loop()
        self._parked = ParkedLoop(self.loop, inline=inline)
        # Guards who drives the loop (``_running``: the loop thread) and the inbox.
        self._turn = threading.Condition(threading.Lock())
        self._running = False
        self._stop_asked = False
        self._closed = False
        self._inbox: deque[Callable[[], None]] = deque()  # work for the loop thread, in order
        self._wake_scheduled = False
        # The Flink thread waits on this at the end of a bounded input, for one key's outbox;
        # the loop notifies it only when that outbox gets something (not on every run).
        self.changed = threading.Condition()
        self._awaited: Outbox | None = None
        self.runtime = RuntimeLifecycle(
            plan,
            config,
            journal_from_config(config, self.store, keep_inputs=False),
            mode="flink",
            hooks=HostHooks(input_finished=self._park_if_idle),
            broadcast=False,  # outputs go to Flink's collector with each run's RunDone
            drain_timeout=0,  # inputs in flight stay in keyed state for the next attempt
            settings=settings,
        )
        try:
            self.system: ActorSystem = self.loop.run_until_complete(self._open(log_context))
        except BaseException:
            self.loop.close()
            raise
        self._thread = threading.Thread(
            target=self._drive, name="flink-agents-async-loop", daemon=True
        )
        self._thread.start()

    async def _open(self, log_context: dict[str, Any]) -> ActorSystem:
        # Bound here, so that every log line of this subtask's runs carries them (the actor
        # system runs its callbacks, and this host its inline work, in the context it was
        # created in).
        structlog.contextvars.bind_contextvars(**log_context)
        await self.runtime.__aenter__()
        return self.runtime.system

    # -- Flink thread side ------------------------------------------------------------------

    @property
    def parked(self) -> bool:
        """Whether the Flink thread owns the loop (so ``start`` runs the input right away).
        Only the Flink thread sets it to False, so a True answer cannot go stale for it."""
        return not self._running

    def start(
        self,
        key: Hashable,
        seq: int,
        value: Any,
        calls: dict[int, bytes] | None,
        snapshot: bytes | None,
        load: bool,
        outbox: Outbox,
    ) -> None:
        """Run ``value`` as input ``seq`` of ``key``. With ``load``, first bring the actor back
        from ``snapshot`` (None: the key has no committed state yet)."""
        if self._running:  # checked again under the lock by ``_send``
            self._send(partial(self._start, key, seq, value, calls, snapshot, load, outbox))
        else:  # the common case, without making a callable first
            self._run_here(self._start, key, seq, value, calls, snapshot, load, outbox)

    def forget(self, key: Hashable) -> None:
        """``key`` is idle and leaves memory (its state is in keyed state)."""
        self._send(partial(self._forget, key))

    def hand_off(self) -> None:
        """The Flink call is ending: if inputs are in flight, the loop thread drives the loop
        until they are done."""
        if self._running or not self.system.unfinished:
            return
        with self._turn:
            self._running = True
            self._turn.notify_all()

    def wait_for(self, outbox: Outbox, timeout: float) -> None:
        """Block the Flink thread until ``outbox`` has something (or ``timeout`` passed)."""
        self.hand_off()
        with self.changed:
            self._awaited = outbox
            try:
                if not outbox:
                    self.changed.wait(timeout)
            finally:
                self._awaited = None

    def close(self, timeout: float = 30.0) -> None:
        """Cancel runs still going (their inputs stay in keyed state) and stop the thread."""
        if self._closed:
            return
        self._take()
        try:
            self.loop.run_until_complete(
                asyncio.wait_for(self.runtime.aclose(raise_broken=False), timeout)
            )
        except Exception as error:
            logger.warning("closing the actor system failed", error=repr(error))
        finally:
            with self._turn:
                self._closed = True
                self._turn.notify_all()
            self._thread.join(timeout=10)
            self.loop.close()

    def _send(self, work: Callable[[], None]) -> None:
        """Have ``work`` done on the loop: right here while the loop is parked, else by the
        loop thread, after the work sent before it."""
        # A parked answer holds without the lock (see ``parked``); a running one is checked
        # again under it, as the loop thread may be parking.
        if not self.parked:
            with self._turn:
                if self._running:
                    self._inbox.append(work)
                    if not self._wake_scheduled:
                        self._wake_scheduled = True
                        self.loop.call_soon_threadsafe(
                            self._drain, context=self.system.callback_context
                        )
                    return
        self._run_here(work)

    def _run_here(self, work: Callable[..., None], *args: Any) -> None:
        """Do ``work(*args)`` on this thread as a callback of the parked loop would run, in the
        system's context, then give the loop the turns its new callbacks need."""
        self._parked.call(self.system.callback_context, work, *args, busy=self._busy)

    def _busy(self) -> bool:
        return bool(self.system.unfinished)

    def _take(self) -> None:
        """Park the loop (for closing): stop the loop thread's run and wait until it has."""
        with self._turn:
            if not self._running:
                return
            self._stop_asked = True
            self.loop.call_soon_threadsafe(self._stop_if_on_loop_thread)
            while self._running:
                self._turn.wait()

    # -- loop thread ------------------------------------------------------------------------

    def _drive(self) -> None:
        loop = self.loop
        while True:
            with self._turn:
                while not self._running:
                    if self._closed:
                        return
                    self._turn.wait()
            while True:
                loop.run_forever()
                with self._turn:
                    if self._stop_asked or not (self._inbox or self.system.unfinished):
                        self._stop_asked = False
                        self._running = False
                        self._turn.notify_all()
                        break

    def _drain(self) -> None:
        with self._turn:
            self._wake_scheduled = False
            work, self._inbox = self._inbox, deque()
        for item in work:
            item()
        self._park_if_idle()

    def _park_if_idle(self) -> None:
        # Only the loop thread stops its own run; ``_drive`` checks the inbox under the lock.
        if self._running and not self.system.unfinished and self._on_loop_thread():
            self.loop.stop()

    def _stop_if_on_loop_thread(self) -> None:
        # Not on the loop thread: it parked already and whoever runs the loop now must go on.
        if self._on_loop_thread():
            self.loop.stop()

    def _on_loop_thread(self) -> bool:
        return threading.get_ident() == self._thread.ident

    # -- on the loop (either thread) ----------------------------------------------------------

    def _start(
        self,
        key: Hashable,
        seq: int,
        value: Any,
        calls: dict[int, bytes] | None,
        snapshot: bytes | None,
        load: bool,
        outbox: Outbox,
    ) -> None:
        if load:
            try:
                self._restore(key, snapshot)
            except Exception as error:
                outbox.append(RunDone(None, error))
                if self._awaited is outbox:
                    self._notify()
                return
            self.store.route_key(self.system.actors[key].key_bytes, outbox)
        self.store.route(seq, outbox)
        self.system.deliver(key, value, seq, self._finished, calls)

    def _restore(self, key: Hashable, snapshot: bytes | None) -> None:
        journal = self.system.journal
        kept = (
            None if snapshot is None else journal.decode_snapshot(journal.encode_key(key), snapshot)
        )
        self.system.bring_back(key, kept)

    def _forget(self, key: Hashable) -> None:
        actor = self.system.actors.get(key)
        if actor is not None and actor.idle:
            self.store.unroute_key(actor.key_bytes)
            self.system.forget(key)

    def _finished(self, seq: int, outputs: list[Any] | None, error: BaseException | None) -> None:
        outbox = self.store.unroute(seq)
        outbox.append(RunDone(None if error is not None else outputs, error))
        if self._awaited is outbox:
            self._notify()

    def _notify(self) -> None:
        """Wake the Flink thread waiting for the outbox that just got something."""
        with self.changed:
            self.changed.notify_all()

"""The asyncio half of one Flink subtask: the core ``ActorSystem`` on an event loop of its own
thread, and the journal store that hands each key's writes back to the Flink thread.

Flink lets keyed state be touched only on the task thread, inside ``process_element`` or
``on_timer`` of that very key, while runs need an event loop that keeps going between Flink
calls. So the two halves talk through queues and never share state:

* Flink thread -> loop: ``start`` (run this input of this key, with the key's committed snapshot
  and the durable calls recorded for it) and ``forget`` (the key went idle), batched through one
  inbox so a burst of records costs one loop wake-up.
* loop -> Flink thread: each key has an ``outbox`` (a deque) of the keyed-state writes its run
  produced, in order: durable call records, discards, the key's memory snapshot (written with
  every commit), and finally ``done`` with the run's outputs or its error. The Flink thread
  applies them the next time it is called for that key.

The loop side is the core unchanged: the same actors, runs, contexts, memory and ``Journal``;
only the ``JournalStore`` differs (``OutboxStore`` below).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Hashable
from functools import partial
from typing import Any

import structlog

from flink_agents_async.agent import AgentPlan
from flink_agents_async.config import Configuration, JournalOptions
from flink_agents_async.journal import Codec, Journal
from flink_agents_async.journal.store import DONE, Ack, JournalStore, Op, StoredJournal
from flink_agents_async.runtime.system import ActorSystem

__all__ = ["LoopHost", "OutboxStore"]

logger = structlog.get_logger("flink_agents_async.bridge")

Outbox = deque[tuple[Any, ...]]


class OutboxStore(JournalStore):
    """A journal store that routes every write to the outbox of the key it belongs to.

    Nothing is kept here: Flink keyed state is the store, and checkpoints make it durable. So
    an ack is done at once, and ``load`` finds nothing (keys are restored one by one, from
    their keyed state, when Flink first calls for them).
    """

    durable = False
    snapshot_commits = True  # keyed state holds each key's snapshot, rewritten by every commit

    def __init__(self) -> None:
        self._by_seq: dict[int, Outbox] = {}
        self._by_key: dict[bytes, Outbox] = {}

    def route(self, seq: int, key_bytes: bytes, outbox: Outbox) -> None:
        self._by_seq[seq] = outbox
        self._by_key[key_bytes] = outbox

    def unroute(self, seq: int, key_bytes: bytes) -> None:
        self._by_seq.pop(seq, None)
        self._by_key.pop(key_bytes, None)

    def load(self) -> StoredJournal:
        return StoredJournal()

    def read_snapshot(self, key: bytes) -> bytes | None:
        return None  # keys are never passivated by the journal in the bridge

    def write(self, ops: list[Op] | tuple[Op, ...]) -> Ack:  # type: ignore[override]
        for op in ops:
            kind = op[0]
            if kind == "call":
                self._by_seq[op[1]].append(("call", op[2], op[3].pack()))
            elif kind == "discard":
                self._by_seq[op[1]].append(("discard", op[2]))
            elif kind == "snapshot":
                outbox = self._by_key.get(op[1])
                if outbox is not None:
                    outbox.append(("snapshot", op[3].pack()))
            # "input": the Flink side keeps inputs itself. "fail": the run's "done" carries
            # it. "meta": keyed state belongs to one job already.
        return DONE

    def describe(self) -> str:
        return "Flink keyed state"


class LoopHost:
    """The event loop thread of one subtask and the actor system running on it."""

    def __init__(self, plan: AgentPlan, config: Configuration, log_context: dict[str, Any]):
        self.store = OutboxStore()
        self.loop = asyncio.new_event_loop()
        self._inbox: deque[Callable[[], None]] = deque()  # work for the loop, in order
        self._wake_scheduled = False
        # The Flink thread waits on this at the end of a bounded input, for one key's outbox;
        # the loop notifies it only when that outbox gets something (not on every run).
        self.changed = threading.Condition()
        self._awaited: Outbox | None = None
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="flink-agents-async-loop", daemon=True
        )
        self._thread.start()
        opening = asyncio.run_coroutine_threadsafe(self._open(plan, config, log_context), self.loop)
        try:
            self.system: ActorSystem = opening.result()
        except BaseException:
            self._stop_loop()
            raise

    async def _open(
        self, plan: AgentPlan, config: Configuration, log_context: dict[str, Any]
    ) -> ActorSystem:
        # Bound here, so that every log line of this subtask's runs carries them (the actor
        # system runs its callbacks in the context it was created in).
        structlog.contextvars.bind_contextvars(**log_context)
        journal = Journal(
            self.store,
            Codec(allow_pickle=bool(config.get(JournalOptions.ALLOW_PICKLE))),
            durability="none",
            divergence=str(config.get(JournalOptions.DIVERGENCE)),
            keep_inputs=False,
            recording=True,
        )
        system = ActorSystem(plan, config, journal)
        await system.open(mode="flink")
        return system

    # -- Flink thread side ------------------------------------------------------------------

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
        self._send(partial(self._start, key, seq, value, calls, snapshot, load, outbox))

    def forget(self, key: Hashable) -> None:
        """``key`` went idle: its actor may leave memory (its state is in keyed state)."""
        self._send(partial(self.system.forget, key))

    def wait_for(self, outbox: Outbox, timeout: float) -> None:
        """Block the Flink thread until ``outbox`` has something (or ``timeout`` passed)."""
        with self.changed:
            self._awaited = outbox
            try:
                if not outbox:
                    self.changed.wait(timeout)
            finally:
                self._awaited = None

    def _send(self, work: Callable[[], None]) -> None:
        self._inbox.append(work)
        if not self._wake_scheduled:
            self._wake_scheduled = True
            self.loop.call_soon_threadsafe(self._drain, context=self.system.callback_context)

    def close(self, timeout: float = 30.0) -> None:
        """Cancel runs still going (their inputs stay in keyed state) and stop the thread."""
        if not self._thread.is_alive():
            return
        closing = asyncio.run_coroutine_threadsafe(self.system.aclose(), self.loop)
        try:
            closing.result(timeout)
        except Exception as error:
            logger.warning("closing the actor system failed", error=repr(error))
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()

    # -- loop side --------------------------------------------------------------------------

    def _drain(self) -> None:
        self._wake_scheduled = False
        inbox = self._inbox
        while inbox:
            inbox.popleft()()

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
        system = self.system
        try:
            if load:
                self._restore(key, snapshot)
            key_bytes = system.actors[key].key_bytes
        except Exception as error:
            outbox.append(("done", None, error))
            self._notify(outbox)
            return
        self.store.route(seq, key_bytes, outbox)
        ticket = self.loop.create_future()
        ticket.add_done_callback(partial(self._finished, seq, key_bytes, outbox))
        system.deliver(key, value, seq, ticket, calls)

    def _restore(self, key: Hashable, snapshot: bytes | None) -> None:
        system = self.system
        if snapshot is None:
            system.actor(key)  # a new key: memory is made when first used
            return
        key_bytes = system.journal.encode_key(key)
        memory, stamps, runs = system.journal.decode_snapshot(key_bytes, snapshot)
        system.restore_actor(key, system.new_memory(memory, stamps), runs)

    def _finished(self, seq: int, key_bytes: bytes, outbox: Outbox, ticket: asyncio.Future) -> None:
        self.store.unroute(seq, key_bytes)
        error = ticket.exception()
        outbox.append(("done", None if error is not None else ticket.result(), error))
        self._notify(outbox)

    def _notify(self, outbox: Outbox) -> None:
        if self._awaited is outbox:
            with self.changed:
                self.changed.notify_all()

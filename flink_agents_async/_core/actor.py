"""An actor: one key's mailbox, memory and the run currently going.

An actor owns no task. Delivering an input to an idle actor starts its run right there; a run
that awaits finishes from a loop callback, and the actor then starts its next input from that
callback. So a key costs a few objects, not a coroutine, and a run that never awaits costs no
loop round trip at all. One run per key at a time, in mailbox (arrival) order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from ..errors import ActionFailedError
from ..journal.commit import KeyState
from ..memory import MemoryStore
from .run import Run

if TYPE_CHECKING:
    from .system import ActorSystem

__all__ = ["Actor", "InputItem", "Settled", "settles"]


Settled = Callable[[int, Any, "BaseException | None"], None]
"""Called once when an input's run ended: with its sequence number and its outputs, or its
error (one callable can serve every input)."""


def settles(future: asyncio.Future[Any]) -> Settled:
    """A ``Settled`` callback that resolves ``future`` with the run's outputs, or its error."""

    def settle(seq: int, outputs: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is None:
            future.set_result(outputs)
        else:
            future.set_exception(error)
            future.exception()  # whoever awaits it gets it; nobody else must be told

    return settle


class InputItem:
    """An input waiting in a mailbox: its value, its journal sequence number, the durable calls
    recorded for it before a crash (replayed by its run), and optionally the ``on_settled``
    callback that learns how its run ended (its one settle path)."""

    __slots__ = ("calls", "on_settled", "seq", "value")

    def __init__(
        self,
        value: Any,
        seq: int,
        calls: dict[int, bytes] | None = None,
        on_settled: Settled | None = None,
    ) -> None:
        self.value = value
        self.seq = seq
        self.calls = calls
        self.on_settled = on_settled


class Actor:
    """The per-key actor: a bounded mailbox and short-term memory, both made when first
    needed, so a key whose runs never queue or touch memory costs only this object."""

    __slots__ = (
        "current",
        "halted",
        "key",
        "key_bytes",
        "mailbox",
        "memory",
        "runs_started",
        "space_waiters",
        "starting",
        "system",
    )

    def __init__(self, key: Hashable, system: ActorSystem, short_term: MemoryStore | None = None):
        self.key = key
        self.system = system
        self.mailbox: deque[InputItem] | None = None
        self.space_waiters: deque[asyncio.Future[None]] | None = None
        self.current: Run | None = None
        self.runs_started = 0
        self.starting = False
        # The key's short-term memory if it has been made (see ``short_term``).
        self.memory: MemoryStore | None = short_term
        # Why the key stopped: an input that could not be replayed is kept for the next start,
        # and the key's later inputs wait behind it (they are refused until then).
        self.halted: ActionFailedError | None = None
        # The key as journal bytes, which every commit writes: encoded once, here (hosts accept
        # only inputs whose key the journal can encode).
        self.key_bytes = system.journal.encode_key(key)

    @property
    def short_term(self) -> MemoryStore:
        """The key's short-term memory (created on first use, inside the running run's
        transaction if a run is going)."""
        memory = self.memory
        if memory is None:
            memory = self.memory = self.system.new_memory()
            if self.current is not None:
                memory.begin()
        return memory

    @property
    def journaled(self) -> KeyState:
        """The key as the journal records it."""
        return KeyState(self.key, self.key_bytes, self.memory)

    @property
    def idle(self) -> bool:
        return self.current is None and not self.mailbox

    @property
    def waiting(self) -> int:
        """Inputs queued behind the running one."""
        return len(self.mailbox) if self.mailbox is not None else 0

    def deliver(self, item: InputItem) -> None:
        """Run ``item`` now if the actor is idle, else queue it (room was checked)."""
        if self.current is None and not self.mailbox:
            self._run_queue(item)
        else:
            if self.mailbox is None:
                self.mailbox = deque()
            self.mailbox.append(item)
            self.system.queued += 1

    def start_next(self) -> None:
        """Start queued inputs until one is left running (or the mailbox is empty)."""
        if not self.starting:
            self._run_queue(None)

    def _run_queue(self, first: InputItem | None) -> None:
        self.starting = True
        try:
            if first is not None:
                self._begin(first, attempt=1)
            while self.current is None and self.mailbox:
                item = self.mailbox.popleft()
                self.system.queued -= 1
                self._wake_producer()
                self._begin(item, attempt=1)
        finally:
            self.starting = False
        if self.current is None and not self.mailbox:
            passivation = self.system.passivation
            if passivation is not None:
                passivation.idle(self)

    def _wake_producer(self) -> None:
        waiters = self.space_waiters
        while waiters:  # None or empty: nobody waits
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _begin(self, item: InputItem, attempt: int) -> None:
        if self.halted is not None or self.system.broken is not None:
            self.system.hold_back(self, item)  # settled now; the journal keeps it
            return
        if attempt == 1:
            self.runs_started += 1
        run = Run(self.system, self, self.runs_started, item, attempt)
        self.current = run
        self.system.running += 1
        if self.memory is not None:
            self.memory.begin()
        run.start()

    def commit_memory(self) -> None:
        """Make the finished run's memory writes the key's state."""
        if self.memory is not None:
            self.memory.commit()

    def run_finished(self, run: Run) -> None:
        """``run`` (the current one) ended: commit it or handle its failure, then go on."""
        self.current = None
        system = self.system
        system.running -= 1
        if run.has_recorder:
            run.recorder.report_divergences()
        if run.failure is None and run.replay_problem is None:
            system.commit_run(self, run)
        if run.failure is not None or run.replay_problem is not None:
            if self.memory is not None:
                self.memory.rollback()
            if system.should_retry(run):
                system.retrying(run)
                self._begin(run.item, run.attempt + 1)
                return
            system.run_failed(run)
        if not self.starting:
            self.start_next()

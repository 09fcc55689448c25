"""An actor: one key's mailbox, memory and the run currently going.

An actor owns no task. Delivering an input to an idle actor starts its run right there; a run
that awaits finishes from a loop callback, and the actor then starts its next input from that
callback. So a key costs a few objects, not a coroutine, and a run that never awaits costs no
loop round trip at all. One run per key at a time, in mailbox (arrival) order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from ..memory import MemoryObject, MemoryStore, MemoryType
from .run import Run

if TYPE_CHECKING:
    from .system import ActorSystem

__all__ = ["Actor", "InputItem"]


class InputItem:
    """An input waiting in a mailbox: its value, its journal sequence number, the durable calls
    recorded for it before a crash (replayed by its run), and optionally a ticket that learns
    how its run ended."""

    __slots__ = ("calls", "seq", "ticket", "value")

    def __init__(
        self,
        value: Any,
        seq: int,
        ticket: asyncio.Future[Any] | None = None,
        calls: dict[int, bytes] | None = None,
    ) -> None:
        self.value = value
        self.seq = seq
        self.ticket = ticket
        self.calls = calls


class Actor:
    """The per-key actor: a bounded mailbox and short-term memory."""

    __slots__ = (
        "_key_bytes",
        "current",
        "key",
        "mailbox",
        "runs_started",
        "short_term",
        "short_term_view",
        "space_waiters",
        "starting",
        "system",
    )

    def __init__(self, key: Hashable, system: ActorSystem, short_term: MemoryStore | None = None):
        self.key = key
        self.system = system
        self.mailbox: deque[InputItem] = deque()
        self.space_waiters: deque[asyncio.Future[None]] | None = None  # made when needed
        self.short_term = short_term or MemoryStore(MemoryType.SHORT_TERM)
        self.short_term_view = MemoryObject(self.short_term)
        self.current: Run | None = None
        self.runs_started = 0
        self.starting = False
        self._key_bytes: bytes | None = None

    @property
    def key_bytes(self) -> bytes:
        """The key as journal bytes (encoded once)."""
        if self._key_bytes is None:
            self._key_bytes = self.system.journal.encode_key(self.key)
        return self._key_bytes

    @property
    def idle(self) -> bool:
        return self.current is None and not self.mailbox

    def start_next(self) -> None:
        """Start queued inputs until one is left running (or the mailbox is empty)."""
        if self.starting:
            return  # we are inside the loop below; it will pick the next input up
        self.starting = True
        try:
            while self.current is None and self.mailbox:
                item = self.mailbox.popleft()
                self._wake_producer()
                self._begin(item, attempt=1)
        finally:
            self.starting = False

    def _wake_producer(self) -> None:
        waiters = self.space_waiters
        while waiters:  # None or empty: nobody waits
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _begin(self, item: InputItem, attempt: int) -> None:
        if attempt == 1:
            self.runs_started += 1
        system = self.system
        run = Run(
            system,
            self,
            self.runs_started,
            item,
            attempt,
            self._finish,
        )
        self.current = run
        run.start()

    def _finish(self, run: Run) -> None:
        self.current = None
        system = self.system
        if run.failure is None:
            system.commit_run(self, run)
        if run.failure is not None:
            self.short_term.rollback()
            if system.should_retry(run):
                system.retrying(run)
                self._begin(run.item, run.attempt + 1)
                return
            system.run_failed(run)
        if not self.starting:
            self.start_next()

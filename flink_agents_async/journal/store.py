"""Journal stores: where records live. The seam between the runtime and a host's storage.

A store is deliberately small and host-agnostic:

* ``load()`` returns every stored row (``StoredJournal``), for recovery;
* ``write(ops)`` appends a group of write operations, applied atomically and in submission
  order, and returns an ``Ack`` that says when they are durable;
* ``read_snapshot(key)`` returns one key's snapshot, to bring a passivated key back;
* ``close()``.

Operations are small frozen records (``journal.ops``: ``CallOp``, ``CommitOp``...), each
naming a table change, so a store is a small interpreter of them: ``MemoryJournalStore``
applies them to dicts at once, ``SQLiteJournalStore`` hands them to a writer thread that
commits them in groups, and the Flink bridge applies them to keyed state.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..errors import JournalError, JournalWriteError
from .ops import CallOp, CommitOp, FailOp, InputOp, MetaOp, Op, SnapshotOp
from .records import InputStatus, OutputsRecord

__all__ = ["Ack", "Durability", "JournalStore", "MemoryJournalStore", "Op", "StoredJournal"]


class Durability(StrEnum):
    """When a write counts as done (``journal.durability``); members equal their strings."""

    SYNC = "sync"
    """Once the disk has it: every acknowledged call and input survives a power loss."""
    BATCH = "batch"
    """Once the operating system has it: survives a crash of the process, groups writes."""
    NONE = "none"
    """At once: for stores that keep nothing beyond the process."""


@dataclass
class StoredJournal:
    """Every row of a journal, as the store holds them (records still packed)."""

    meta: dict[str, bytes] = field(default_factory=dict)
    inputs: list[tuple[int, bytes, int, bytes]] = field(default_factory=list)  # seq, key, status
    calls: list[tuple[int, int, bytes]] = field(default_factory=list)  # seq, slot, record
    commits: list[tuple[int, int, bytes, bytes]] = field(default_factory=list)  # seq, no, key
    outputs: list[tuple[int, int, bytes, bytes]] = field(default_factory=list)  # seq, no, key
    failures: list[tuple[int, bytes, bytes]] = field(default_factory=list)  # seq, key, record
    snapshots: list[tuple[bytes, bytes]] = field(default_factory=list)  # key, record
    # What makes the journal unfit to resume from, found while reading it (for tools).
    problems: list[str] = field(default_factory=list)


class Ack:
    """Says when a group of writes is durable. ``done`` at once for stores without disk."""

    __slots__ = ("_number", "_tracker")

    def __init__(self, tracker: DurabilityTracker | None, number: int) -> None:
        self._tracker = tracker
        self._number = number

    @property
    def done(self) -> bool:
        return self._tracker is None or self._tracker.durable_through >= self._number

    def wait(self) -> None:
        """Block this thread until durable (raises ``JournalError`` if the store failed)."""
        if self._tracker is not None:
            self._tracker.wait_blocking(self._number)

    def then(self, callback: Callable[[BaseException | None], None]) -> None:
        """Call ``callback(error)`` on the event loop once durable (now, if it already is)."""
        if self._tracker is None:
            callback(None)
        else:
            self._tracker.when_durable(self._number, callback)

    def __await__(self) -> Any:
        if self._tracker is None:
            return None
        return self._tracker.wait_async(self._number).__await__()


DONE = Ack(None, 0)


class DurabilityTracker:
    """Numbers write groups and tells waiters (threads, coroutines, loop callbacks) when a
    writer thread has made them durable. One loop notification per committed group."""

    def __init__(self) -> None:
        self.durable_through = 0
        self.error: BaseException | None = None
        self._condition = threading.Condition()
        self._callbacks: deque[tuple[int, Callable[[BaseException | None], None]]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._notify_scheduled = False

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # writer thread side ------------------------------------------------------------------

    def mark_durable(self, number: int) -> None:
        with self._condition:
            self.durable_through = number
            self._condition.notify_all()
            self._schedule_notify()

    def mark_failed(self, error: BaseException) -> None:
        with self._condition:
            self.error = error
            self._condition.notify_all()
            self._schedule_notify()

    def _schedule_notify(self) -> None:
        if self._callbacks and self._loop is not None and not self._notify_scheduled:
            self._notify_scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._run_callbacks)
            except RuntimeError:  # loop closed: nobody is left to tell
                self._notify_scheduled = False

    # waiting side -------------------------------------------------------------------------

    def wait_blocking(self, number: int) -> None:
        with self._condition:
            while self.durable_through < number and self.error is None:
                self._condition.wait()
        if self.durable_through < number and self.error is not None:
            raise _write_error(self.error)

    def when_durable(self, number: int, callback: Callable[[BaseException | None], None]) -> None:
        """Call ``callback(error)`` on the loop once group ``number`` is durable, after the
        callbacks of earlier groups (release order is commit order)."""
        with self._condition:
            # Durable already, but earlier callbacks still wait for their loop notification
            # (scheduled when their group became durable): queue behind them, not ahead.
            if self.durable_through >= number and not self._callbacks:
                ready = True
            elif self.error is not None:
                callback(self.error)
                return
            else:
                ready = False
                self._callbacks.append((number, callback))
        if ready:
            callback(None)

    async def wait_async(self, number: int) -> None:
        if self.durable_through >= number:
            return
        future = asyncio.get_running_loop().create_future()

        def settle(error: BaseException | None) -> None:
            if future.done():
                return
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(_write_error(error))

        self.when_durable(number, settle)
        await future

    def _run_callbacks(self) -> None:
        with self._condition:
            self._notify_scheduled = False
            through, error = self.durable_through, self.error
            ready = []
            while self._callbacks and self._callbacks[0][0] <= through:
                ready.append(self._callbacks.popleft()[1])
            failed = []
            if error is not None:
                failed = [callback for _, callback in self._callbacks]
                self._callbacks.clear()
        for callback in ready:
            callback(None)
        for callback in failed:
            callback(error)


def _write_error(error: BaseException) -> JournalWriteError:
    """The error a waiter gets when the writes it waits for failed."""
    failure = JournalWriteError(str(error))
    failure.__cause__ = error
    return failure


class JournalStore(ABC):
    """Where journal records live; see the module docstring for the contract."""

    #: Whether records survive the process (resumable jobs need such a store).
    durable: bool = False

    #: Whether each commit is written as the key's whole snapshot rather than as a delta that
    #: compaction folds later: for stores that hold per-key state anyway (Flink keyed state).
    snapshot_commits: bool = False

    #: The largest record (in bytes) the store can hold, or None for no limit. The journal
    #: refuses a bigger one (that call or run fails) instead of breaking the store.
    max_record_bytes: int | None = None

    @property
    def failure(self) -> BaseException | None:
        """Why the store can no longer be written, or None while it can."""
        return None

    @abstractmethod
    def load(self) -> StoredJournal:
        """Every stored row, for recovery. Called once, before any write."""

    @abstractmethod
    def write(self, ops: Sequence[Op]) -> Ack:
        """Append a group of operations, applied atomically in submission order."""

    @abstractmethod
    def read_snapshot(self, key: bytes) -> bytes | None:
        """A key's packed ``SnapshotRecord`` as last written durably, or None. Used to reload a
        passivated key; may block (durable stores are called from a worker thread)."""

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:  # noqa: B027 - optional
        """The event loop that awaits acks (stores with a writer thread notify it)."""

    async def flush(self) -> None:  # noqa: B027 - optional
        """Wait until everything written so far is durable."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release the store (after ``flush``)."""

    def describe(self) -> str:
        return type(self).__name__


class MemoryJournalStore(JournalStore):
    """Keeps the journal's records in dicts: the same records and operations as on disk,
    nothing written anywhere (records are packed only when ``load`` hands them out). Reusing
    one instance in a new environment resumes from it, which is how tests simulate a crash
    within one process."""

    def __init__(self) -> None:
        self.meta: dict[str, bytes] = {}
        self.inputs: dict[int, tuple[bytes, InputStatus, Any]] = {}  # seq -> key, status, record
        self.calls: dict[int, dict[int, Any]] = {}  # seq -> slot -> record
        self.commits: dict[int, tuple[int, bytes, Any]] = {}  # seq -> commit_no, key, record
        self.commits_by_key: dict[bytes, list[int]] = {}  # key -> seqs, in commit order
        # seq -> commit_no, key, run, calls, outputs
        self.outputs: dict[int, tuple[int, bytes, int, int, bytes]] = {}
        self.failures: dict[int, tuple[bytes, Any]] = {}
        self.snapshots: dict[bytes, Any] = {}
        self.writes = 0

    def load(self) -> StoredJournal:
        return StoredJournal(
            meta=dict(self.meta),
            inputs=[
                (seq, key, status, record.pack())
                for seq, (key, status, record) in sorted(self.inputs.items())
            ],
            calls=[
                (seq, slot, record.pack())
                for seq, slots in sorted(self.calls.items())
                for slot, record in sorted(slots.items())
            ],
            commits=sorted(
                ((seq, no, key, record.pack()) for seq, (no, key, record) in self.commits.items()),
                key=_by_no,
            ),
            outputs=sorted(
                (
                    (seq, no, key, OutputsRecord(run, calls, data).pack())
                    for seq, (no, key, run, calls, data) in self.outputs.items()
                ),
                key=_by_no,
            ),
            failures=[
                (seq, key, record.pack()) for seq, (key, record) in sorted(self.failures.items())
            ],
            snapshots=[(key, record.pack()) for key, record in self.snapshots.items()],
        )

    def read_snapshot(self, key: bytes) -> bytes | None:
        record = self.snapshots.get(key)
        return None if record is None else record.pack()

    def write(self, ops: Sequence[Op]) -> Ack:
        for op in ops:
            if type(op) is CommitOp:  # the most frequent, spared the chain below
                self._apply_commit(op)
            else:
                self._apply(op)
        self.writes += len(ops)
        return DONE

    def _apply_commit(self, op: CommitOp) -> None:
        seq, key, record = op.seq, op.key, op.record
        if seq in self.commits or seq in self.outputs:
            raise JournalError(f"input {seq} was already committed")
        self.commits[seq] = (op.commit_no, key, record)
        by_key = self.commits_by_key.get(key)
        if by_key is None:
            self.commits_by_key[key] = [seq]
        else:
            by_key.append(seq)
        self.outputs[seq] = (op.commit_no, key, record.run, record.calls, op.outputs)
        self._set_status(seq, InputStatus.COMMITTED)

    def _apply(self, op: Op) -> None:
        if isinstance(op, CallOp):
            slots = self.calls.get(op.seq)
            if slots is None:
                slots = self.calls[op.seq] = {}
            slots[op.slot] = op.record
        elif isinstance(op, InputOp):
            self.inputs[op.seq] = (op.key, op.status, op.record)
        elif isinstance(op, CommitOp):
            self._apply_commit(op)
        elif isinstance(op, FailOp):
            self.failures[op.seq] = (op.key, op.record)
            self.calls.pop(op.seq, None)
            self._set_status(op.seq, InputStatus.FAILED)
        elif isinstance(op, SnapshotOp):
            self._apply_snapshot(op)
        elif isinstance(op, MetaOp):
            self.meta[op.name] = op.value
        else:
            raise JournalError(f"unknown journal operation {op!r:.80}")

    def _apply_snapshot(self, op: SnapshotOp) -> None:
        key, commit_no, keep_inputs = op.key, op.commit_no, op.keep_inputs
        self.snapshots[key] = op.record
        seqs = self.commits_by_key.get(key, [])
        folded = [seq for seq in seqs if self.commits[seq][0] <= commit_no]
        self.commits_by_key[key] = seqs[len(folded) :]
        for seq in folded:
            del self.commits[seq]
            self.calls.pop(seq, None)
            if not keep_inputs:
                self.inputs.pop(seq, None)
                self.outputs.pop(seq, None)

    def _set_status(self, seq: int, status: InputStatus) -> None:
        row = self.inputs.get(seq)
        if row is not None:
            self.inputs[seq] = (row[0], status, row[2])


def _by_no(row: tuple[Any, ...]) -> int:
    return row[1]

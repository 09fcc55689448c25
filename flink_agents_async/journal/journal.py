"""``Journal``: what the runtime asks of the journal, on top of any ``JournalStore``.

It writes inputs, calls, commits, failures and compaction snapshots, rebuilds every key's state
at start (``open``, by ``recovery``), and hands each run a ``RunRecorder`` (``replay``) for its
durable calls. Every host uses it unchanged; only the store differs.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import anyio
import anyio.to_thread

from ..errors import (
    ActionFailedError,
    JournalError,
    JournalWriteError,
)
from ..logging import library_logger
from ..memory import MemoryStore
from .codec import Codec, JournalEncodeError
from .commit import EncodedCommit, KeyState, RunCommit, StoredKey
from .memory_format import memory_from, memory_state
from .ops import CallOp, CommitOp, FailOp, InputOp, MetaOp, Op, SnapshotOp
from .records import (
    CallRecord,
    CommitRecord,
    FailureRecord,
    InputRecord,
    InputStatus,
    SnapshotRecord,
)
from .recovery import RecoveredJournal, RecoveredKey, recover
from .replay import RunRecorder
from .store import DONE, Ack, Durability, JournalStore

__all__ = ["DIVERGENCE_MODES", "Journal"]

logger = library_logger()

DIVERGENCE_MODES = ("warn", "strict")


class Journal:
    """The runtime side of a journal store. One per runtime (actor system)."""

    def __init__(
        self,
        store: JournalStore,
        codec: Codec,
        *,
        durability: Durability | str = Durability.BATCH,
        divergence: str = "warn",
        compaction_interval: int = 1000,
        keep_inputs: bool = True,
        recording: bool = True,
    ) -> None:
        """``keep_inputs``: keep committed inputs and their outputs after compaction (what makes
        a batch job resumable). ``recording=False``: write nothing that only a recovery would
        read, for a private in-memory journal nobody can resume from; values are still encoded,
        so whatever a journal refuses is refused the same way."""
        if divergence not in DIVERGENCE_MODES:
            raise JournalError(
                f"durable.divergence is {divergence!r}; use one of {', '.join(DIVERGENCE_MODES)}"
            )
        self.store = store
        self.codec = codec
        self.durability = Durability(durability)
        self.strict = divergence == "strict"
        self.compaction_interval = max(1, compaction_interval)
        self.keep_inputs = keep_inputs
        self.recording = recording
        # The runtime's pool for blocking work (set by the actor system), so that reading the
        # store takes no threads beyond the ones durable functions share.
        self.thread_limiter: anyio.CapacityLimiter | None = None
        self.next_commit_no = 1
        self._commits_since_compaction = 0
        # key bytes -> (its last commit_no, that run's number, the key), since last compaction
        self._dirty: dict[bytes, tuple[int, int, KeyState | RunCommit]] = {}
        # snapshots of passivated keys not yet durable, by key bytes
        self._parked: dict[bytes, SnapshotRecord] = {}

    # -- opening ----------------------------------------------------------------------------

    async def open(self, loop: Any, job: dict[str, str]) -> RecoveredJournal:
        """Load the store and rebuild every key's state. ``job`` ({"agent": ..., "mode": ...})
        must match what the journal was written for."""
        self.store.bind_loop(loop)
        if self.store.durable:
            stored = await anyio.to_thread.run_sync(self.store.load, limiter=self.thread_limiter)
        else:
            stored = self.store.load()
        self._check_job(stored.meta, job)
        try:
            recovered = recover(stored, self.codec)
            self.next_commit_no = recovered.next_commit_no
            return recovered
        except JournalError as error:
            raise JournalError(f"{self.store.describe()}: {error}") from error

    def _check_job(self, meta: dict[str, bytes], job: dict[str, str]) -> None:
        for name, expected in job.items():
            found = meta.get(name)
            if found is None:
                self._write([MetaOp(name, expected.encode())])
            elif found.decode() != expected:
                raise JournalError(
                    f"{self.store.describe()} belongs to a job with {name} {found.decode()!r}, "
                    f"not {expected!r}; use another journal directory for this job"
                )

    # -- writing ----------------------------------------------------------------------------

    def adopt(self, state: RecoveredKey, memory: MemoryStore | None) -> None:
        """Track a recovered key whose commits are not folded yet, so compaction folds them
        (``memory``: the store the key's actor now holds)."""
        if state.unfolded:
            key = KeyState(state.key, state.key_bytes, memory)
            self._dirty[state.key_bytes] = (state.last_commit_no, state.last_commit_run, key)

    def encode_key(self, key: Hashable) -> bytes:
        return self.codec.encode(key, "key {!r}", key)

    def encode_item(self, given_key: Hashable | None, value: Any, index: int) -> bytes:
        """The codec bytes that identify input item ``index`` (its key as given, its value)."""
        return self.codec.encode([given_key, value], "input item {}", index)

    def accept(self, seq: int, key_bytes: bytes, item: bytes) -> Ack:
        if not self.recording:
            return DONE
        self._check_size(len(key_bytes) + len(item), "input {}", seq)
        record = InputRecord(seq, key_bytes, item)
        return self._write([InputOp(seq, key_bytes, InputStatus.ACCEPTED, record)])

    def recorder(
        self, seq: int, key: Hashable, run: int, calls: dict[int, bytes] | None
    ) -> RunRecorder:
        return RunRecorder(self, seq, key, run, calls or {})

    def _write(self, ops: list[Op]) -> Ack:
        """Hand ``ops`` to the store; a store that fails in any way fails as
        ``JournalWriteError`` (the runtime then stops)."""
        try:
            return self.store.write(ops)
        except JournalError:
            raise
        except Exception as error:
            raise JournalWriteError(
                f"the journal {self.store.describe()} could not be written: "
                f"{type(error).__name__}: {error}"
            ) from error

    @property
    def failure(self) -> BaseException | None:
        """Why the store can no longer be written, or None while it can."""
        return self.store.failure

    def _check_size(self, size: int, what: str, *what_args: Any) -> None:
        """Refuse a record the store cannot hold: that call or run fails, the journal stays
        writable for everything else."""
        limit = self.store.max_record_bytes
        if limit is not None and size > limit:
            raise JournalEncodeError(
                f"{what.format(*what_args)} takes {size:,} bytes in the journal, more than the "
                f"{limit:,} one record may hold (journal.max-record-bytes)"
            )

    @property
    def keeps_outputs(self) -> bool:
        """Whether commits record the run's outputs: only a recording journal whose store
        commits deltas does (a resumed batch job re-emits them from there). A journal that
        records nothing, or a store of per-key snapshots (Flink keyed state, whose outputs go
        downstream through Flink's own serializers), never needs an output to be encodable."""
        return self.recording and not self.store.snapshot_commits

    def encode_commit(self, commit: RunCommit) -> EncodedCommit:
        """The memory and outputs ``commit`` records, encoded before the memory commits: a run
        the journal cannot record is failed with its key as it was (raises
        ``JournalEncodeError``: an output it cannot encode, a record too big)."""
        if not self.recording:  # memory holds plain data only: nothing it holds is refused
            return _NOTHING_ENCODED
        key, run, memory = commit.key, commit.run, commit.memory
        outputs = b""
        if self.keeps_outputs:
            outputs = self.codec.encode(commit.outputs, "an output of run {} of key {!r}", run, key)
        if self.store.snapshot_commits:
            encoded = self.codec.encode(
                memory_state(memory, pending=True), "the memory of key {!r}", key
            )
        else:
            delta = memory.pending_delta() if memory is not None else [{}, {}, [], {}]
            encoded = self.codec.encode(delta, "a memory delta")
        self._check_size(
            len(encoded) + len(outputs) + len(commit.key_bytes),
            "run {} of key {!r} (its memory and outputs)",
            run,
            key,
        )
        return encoded, outputs

    def commit(self, commit: RunCommit, encoded: EncodedCommit) -> Ack:
        """Make ``commit`` durable (its memory and outputs together, as ``encode_commit``
        made them); the ack says when it is."""
        commit_no = self.next_commit_no
        self.next_commit_no += 1
        if not self.recording:
            return DONE
        key_bytes, run = commit.key_bytes, commit.run
        memory, outputs = encoded
        if self.store.snapshot_commits:
            snapshot = SnapshotRecord(key_bytes, commit_no, run, memory)
            return self._write([SnapshotOp(key_bytes, commit_no, snapshot, self.keep_inputs)])
        seq = commit.seq
        record = CommitRecord(seq, commit_no, key_bytes, run, memory, commit.calls)
        ack = self._write([CommitOp(seq, commit_no, key_bytes, record, outputs)])
        self._dirty[key_bytes] = (commit_no, run, commit)
        self._commits_since_compaction += 1
        if self._commits_since_compaction >= self.compaction_interval:
            self.compact()
        return ack

    def fail(self, seq: int, key_bytes: bytes, failure: ActionFailedError, calls: int = 0) -> Ack:
        if not self.recording:
            return DONE
        cause = failure.cause
        record = FailureRecord(
            seq,
            failure.run,
            failure.action,
            failure.event_type,
            f"{type(cause).__module__}.{type(cause).__qualname__}",
            _message_of(cause)[:_MAX_FAILURE_MESSAGE],
            calls,
        )
        return self._write([FailOp(seq, key_bytes, record)])

    def write_call(self, seq: int, record: CallRecord) -> Ack:
        if not self.recording:
            return DONE
        return self._write([CallOp(seq, record.slot, record)])

    def compact(self) -> None:
        """Fold every key committed since the last compaction into a snapshot of its memory.

        Each key's snapshot and the removal of the commits it folds are one operation, applied
        atomically after that key's commits, so an interrupted compaction exposes nothing old.
        """
        self._commits_since_compaction = 0
        dirty, self._dirty = self._dirty, {}
        if not self.recording:
            return
        ops: list[Op] = []
        for key_bytes, (commit_no, run, key) in dirty.items():
            try:
                record = self._snapshot_record(key, commit_no, run)
            except JournalEncodeError as error:  # its commits stay as they are: still correct
                logger.warning(
                    "a key's memory is too big to fold into a snapshot; its commits are kept",
                    key=key.key, error=str(error),
                )  # fmt: skip
                continue
            ops.append(SnapshotOp(key_bytes, commit_no, record, self.keep_inputs))
        if ops:
            self._write(ops)

    def _snapshot_record(
        self, key: KeyState | RunCommit, commit_no: int, run: int
    ) -> SnapshotRecord:
        encoded = self.codec.encode(memory_state(key.memory), "the memory of key {!r}", key.key)
        self._check_size(len(encoded) + len(key.key_bytes), "the memory of key {!r}", key.key)
        return SnapshotRecord(key.key_bytes, commit_no, run, encoded)

    # -- passivation ------------------------------------------------------------------------

    def passivate(self, key: KeyState, runs: int) -> None:
        """Write an idle key's whole state (its memory, ``runs`` started) as a snapshot, so
        its actor can leave memory. The snapshot is kept here until it is durable, so a reload
        never reads an older one."""
        key_bytes = key.key_bytes
        self._dirty.pop(key_bytes, None)
        record = self._snapshot_record(key, self.next_commit_no - 1, runs)
        self._parked[key_bytes] = record
        ack = self._write([SnapshotOp(key_bytes, record.commit_no, record, self.keep_inputs)])

        def durable(error: BaseException | None) -> None:
            if error is None and self._parked.get(key_bytes) is record:
                del self._parked[key_bytes]

        ack.then(durable)

    async def restore(self, key_bytes: bytes) -> StoredKey | None:
        """A passivated key's memory, TTL stamps and run count, or None if it has none."""
        record = self._parked.get(key_bytes)
        if record is None:
            if self.store.durable:
                data = await anyio.to_thread.run_sync(
                    self.store.read_snapshot, key_bytes, limiter=self.thread_limiter
                )
            else:
                data = self.store.read_snapshot(key_bytes)
            return None if data is None else self.decode_snapshot(key_bytes, data)
        return self._kept(record)

    def decode_snapshot(self, key_bytes: bytes, data: bytes) -> StoredKey:
        """A key's memory, TTL stamps and run count from a packed ``SnapshotRecord`` (read
        from the store, or kept by the host itself: the Flink bridge keeps it in keyed state)."""
        return self._kept(SnapshotRecord.unpack(key_bytes, data))

    def _kept(self, record: SnapshotRecord) -> StoredKey:
        memory, stamps = memory_from(self.codec, record.memory)
        return StoredKey(memory, stamps, record.runs)

    async def close(self) -> None:
        """Compact, wait until everything is durable, and release the store (only release it
        when it failed: nothing more can be written)."""
        try:
            if self.store.failure is None:
                self.compact()
                await self.store.flush()
        finally:
            if self.store.durable:
                await anyio.to_thread.run_sync(self.store.close, limiter=self.thread_limiter)
            else:
                self.store.close()


_MAX_FAILURE_MESSAGE = 10_000


def _message_of(error: BaseException) -> str:
    try:
        return str(error)
    except Exception:
        return f"<unprintable {type(error).__name__}>"


_NOTHING_ENCODED: EncodedCommit = (b"", b"")

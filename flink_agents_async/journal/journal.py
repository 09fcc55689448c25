"""``Journal``: what the runtime asks of the journal, on top of any ``JournalStore``.

It encodes and decodes records, rebuilds every key's state at start (``open``), hands each run a
``RunRecorder`` that replays its recorded durable calls, and writes inputs, calls, commits,
failures and compaction snapshots. Every host uses it unchanged; only the store differs.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread

from ..durable import RECONCILE, DurableCall, Outcome, Reconcile
from ..errors import (
    ActionFailedError,
    JournalError,
    JournalWriteError,
    NonDeterminismError,
    ReplayedError,
)
from ..logging import library_logger
from ..memory import MemoryStore, MemoryType
from .codec import Codec, JournalEncodeError, find_class, rebuild_exception
from .commit import EncodedCommit, KeyState, RunCommit, StoredKey
from .ops import CallOp, CommitOp, FailOp, InputOp, MetaOp, Op, SnapshotOp
from .records import (
    COMPLETED,
    INPUT_ACCEPTED,
    PENDING,
    CallRecord,
    CommitRecord,
    FailureRecord,
    InputRecord,
    InputStatus,
    OutputsRecord,
    SnapshotRecord,
)
from .store import DONE, Ack, JournalStore

__all__ = ["DIVERGENCE_MODES", "Journal", "RecoveredInput", "RecoveredJournal", "RunRecorder"]

logger = library_logger()

DIVERGENCE_MODES = ("warn", "strict")


@dataclass
class RecoveredKey:
    """A key's committed state, rebuilt from its snapshot and later commits."""

    key: Hashable
    key_bytes: bytes
    memory: MemoryStore
    runs: int = 0
    last_commit_no: int = 0
    last_commit_run: int = 0
    unfolded: bool = False  # has commits not yet folded into a snapshot
    stamps: dict[str, float] = field(default_factory=dict)  # TTL refresh times of values


@dataclass
class RecoveredInput:
    """An accepted input: its record and, while uncommitted, its recorded durable calls."""

    record: InputRecord
    key: Hashable
    # slot -> packed CallRecord; unpacked when its run replays it (bytes cost the collector
    # nothing, which matters with hundreds of thousands of recovered calls)
    calls: dict[int, bytes] = field(default_factory=dict)


@dataclass
class RecoveredJournal:
    """Everything a runtime needs to resume from a journal."""

    keys: dict[Hashable, RecoveredKey] = field(default_factory=dict)
    inputs: dict[int, RecoveredInput] = field(default_factory=dict)
    # (input seq, key, output) of committed runs, in commit order
    outputs: list[tuple[int, Hashable, Any]] = field(default_factory=list)
    failures: list[ActionFailedError] = field(default_factory=list)
    next_seq: int = 0

    @property
    def pending(self) -> list[RecoveredInput]:
        """Accepted but uncommitted inputs, in their original order."""
        return [entry for seq, entry in sorted(self.inputs.items())
                if entry.record.status == INPUT_ACCEPTED]  # fmt: skip


class Journal:
    """The runtime side of a journal store. One per runtime (actor system)."""

    def __init__(
        self,
        store: JournalStore,
        codec: Codec,
        *,
        durability: str = "batch",
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
        self.durability = durability
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
        self._dirty: dict[bytes, tuple[int, int, KeyState]] = {}
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
            return self._recover(stored)
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

    def _recover(self, stored: Any) -> RecoveredJournal:
        decode = self.codec.decode
        recovered = RecoveredJournal()
        keys = recovered.keys

        def key_state(key_bytes: bytes) -> RecoveredKey:
            key = decode(key_bytes, "a journaled key")
            state = keys.get(key)
            if state is None:
                state = keys[key] = RecoveredKey(key, key_bytes, MemoryStore(MemoryType.SHORT_TERM))
            return state

        for key_bytes, data in stored.snapshots:
            snapshot = SnapshotRecord.unpack(key_bytes, data)
            state = key_state(key_bytes)
            state.memory, state.stamps = self._memory_from(snapshot.memory)
            state.runs = snapshot.runs
            state.last_commit_no = snapshot.commit_no
        for seq, commit_no, key_bytes, data in stored.commits:
            commit = CommitRecord.unpack(seq, commit_no, key_bytes, data)
            state = key_state(key_bytes)
            if commit_no <= state.last_commit_no:
                continue  # folded into the snapshot already
            values, objects, deleted, stamps = decode(
                commit.delta, "the memory delta of input {}", seq
            )
            state.memory.apply_delta(values, objects, deleted)
            for path in deleted:
                state.stamps.pop(path, None)
            state.stamps.update(stamps)
            state.runs = max(state.runs, commit.run)
            state.last_commit_no = commit_no
            state.last_commit_run = commit.run
            state.unfolded = True
        for seq, commit_no, key_bytes, data in stored.outputs:
            key = key_state(key_bytes).key
            record = OutputsRecord.unpack(data, seq)
            for output in decode(record.outputs, "the outputs of input {}", seq):
                recovered.outputs.append((seq, key, output))
            self.next_commit_no = max(self.next_commit_no, commit_no + 1)
        for key_bytes, _ in stored.snapshots:
            state = key_state(key_bytes)
            self.next_commit_no = max(self.next_commit_no, state.last_commit_no + 1)
        self.next_commit_no = max(
            [self.next_commit_no] + [no + 1 for _, no, _, _ in stored.commits]
        )
        for seq, key_bytes, data in stored.failures:
            failure = FailureRecord.unpack(seq, data)
            state = key_state(key_bytes)
            state.runs = max(state.runs, failure.run)
            recovered.failures.append(self._replayed_failure(state.key, failure))
        for seq, key_bytes, status, data in stored.inputs:
            input_record = InputRecord.unpack(seq, status, data)
            recovered.inputs[seq] = RecoveredInput(input_record, key_state(key_bytes).key)
            recovered.next_seq = max(recovered.next_seq, seq + 1)
        for seq, slot, data in stored.calls:
            entry = recovered.inputs.get(seq)
            if entry is not None and entry.record.status == INPUT_ACCEPTED:
                entry.calls[slot] = data
        return recovered

    @staticmethod
    def _replayed_failure(key: Hashable, failure: FailureRecord) -> ActionFailedError:
        cause = _recorded_error(failure.error_type, failure.message)
        return ActionFailedError(
            key, failure.run, failure.action, failure.event_type, cause, input_index=failure.seq
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
        key, run = commit.key, commit.run
        outputs = b""
        if self.keeps_outputs:
            outputs = self.codec.encode(
                commit.outputs, "an output of run {} of key {!r}", run, key.key
            )
        memory = key.memory
        if self.store.snapshot_commits:
            encoded = self.codec.encode(
                _memory_state(memory, pending=True), "the memory of key {!r}", key.key
            )
        else:
            delta = memory.pending_delta() if memory is not None else [{}, {}, [], {}]
            encoded = self.codec.encode(delta, "a memory delta")
        self._check_size(
            len(encoded) + len(outputs) + len(key.key_bytes),
            "run {} of key {!r} (its memory and outputs)",
            run,
            key.key,
        )
        return EncodedCommit(encoded, outputs)

    def commit(self, commit: RunCommit, encoded: EncodedCommit) -> Ack:
        """Make ``commit`` durable (its memory and outputs together, as ``encode_commit``
        made them); the ack says when it is."""
        commit_no = self.next_commit_no
        self.next_commit_no += 1
        if not self.recording:
            return DONE
        key_bytes, run = commit.key.key_bytes, commit.run
        if self.store.snapshot_commits:
            snapshot = SnapshotRecord(key_bytes, commit_no, run, encoded.memory)
            return self._write([SnapshotOp(key_bytes, commit_no, snapshot, self.keep_inputs)])
        seq = commit.seq
        record = CommitRecord(seq, commit_no, key_bytes, run, encoded.memory, commit.calls)
        ack = self._write([CommitOp(seq, commit_no, key_bytes, record, encoded.outputs)])
        self._dirty[key_bytes] = (commit_no, run, commit.key)
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

    def _snapshot_record(self, key: KeyState, commit_no: int, run: int) -> SnapshotRecord:
        encoded = self.codec.encode(_memory_state(key.memory), "the memory of key {!r}", key.key)
        self._check_size(len(encoded) + len(key.key_bytes), "the memory of key {!r}", key.key)
        return SnapshotRecord(key.key_bytes, commit_no, run, encoded)

    def _memory_from(self, encoded: bytes) -> tuple[MemoryStore, dict[str, float]]:
        values, objects, stamps = self.codec.decode(encoded, "a memory snapshot")
        return MemoryStore.from_snapshot(MemoryType.SHORT_TERM, values, objects), stamps

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
        memory, stamps = self._memory_from(record.memory)
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


_NOTHING_ENCODED = EncodedCommit(b"", b"")


def _memory_state(memory: MemoryStore | None, *, pending: bool = False) -> list[Any]:
    """A key's memory as a snapshot records it: [values, objects, TTL stamps]."""
    if memory is None:
        return [{}, {}, {}]
    values, objects = memory.snapshot(pending=pending)
    return [values, objects, memory.stamps(pending=pending)]


class RunRecorder:
    """The journal's side of one run's durable calls: replays recorded calls, writes new ones,
    and keeps what this attempt recorded so that a retry replays it too.

    A call is matched to a record by its position (its slot: the order of the run's calls)
    and, when that record is another call's, by its function and arguments: concurrent
    requests (chat requests fanned out, each going through tool rounds) make their later
    calls in whatever order answers arrive, and a call that was journaled must be replayed
    whichever position it comes at. Each record is replayed once. A call that matches no
    record runs; if the record at its position is unreplayed and different, that is a
    divergence (a warning, or ``NonDeterminismError`` in strict mode).

    New records never overwrite unreplayed ones: they go to storage slots after the recorded
    ones (``call.record_slot``). Without records, storage slots are positions.
    """

    __slots__ = (
        "_by_content",
        "consumed",
        "divergences",
        "journal",
        "key",
        "next_record_slot",
        "recorded",
        "run",
        "seq",
        "written",
    )

    def __init__(
        self, journal: Journal, seq: int, key: Hashable, run: int, recorded: dict[int, bytes]
    ) -> None:
        self.journal = journal
        self.seq = seq
        self.key = key
        self.run = run
        self.recorded = recorded  # storage slot -> packed CallRecord
        self.consumed: set[int] = set()  # records replayed (or taken over) by this attempt
        self._by_content: dict[tuple[str, bytes], list[int]] | None = None  # made when needed
        self.next_record_slot = max(recorded) + 1 if recorded else 0
        self.written: dict[int, CallRecord] = {}  # what this attempt recorded, by storage slot
        # Positions where a call met another call's unreplayed record (warn mode): reported
        # when the run ends, for the records that were never replayed.
        self.divergences: dict[int, dict[str, Any]] = {}

    @property
    def slots_used(self) -> int:
        """How many storage slots the run's records take (for commit and failure records)."""
        return self.next_record_slot

    def _digest(self, call: DurableCall) -> bytes:
        if call.digest is None:
            call.digest = self.journal.codec.call_digest(call.args, call.kwargs)
        return call.digest

    def replay(self, call: DurableCall) -> Outcome | Reconcile | None:
        """The recorded outcome of ``call``, ``RECONCILE``, or None (run it); sets the storage
        slot its record goes to. Raises ``NonDeterminismError`` (strict divergence) or
        ``JournalError`` (a record that cannot be read here) for the run to keep its input for
        a fixed restart."""
        if not self.recorded:
            call.record_slot = call.slot
            self.next_record_slot = call.slot + 1
            return None
        digest = self._digest(call)
        slot: int | None = call.slot
        fields = None
        if slot in self.recorded and slot not in self.consumed:
            fields = CallRecord.fields(slot, self.recorded[slot])
            if fields[0] != call.function_id or fields[1] != digest:
                slot = self._same_call(call.function_id, digest)
        else:
            slot = self._same_call(call.function_id, digest)
        if slot is None:
            if fields is not None:  # its position holds another, unreplayed call
                self._diverge(call, fields[0], fields[1], digest)
            call.record_slot = self.next_record_slot
            self.next_record_slot += 1
            return None
        if fields is None or slot != call.slot:
            fields = CallRecord.fields(slot, self.recorded[slot])
        self.consumed.add(slot)
        call.record_slot = slot  # a PENDING record is completed in place
        return self._outcome(call, slot, fields)

    def _same_call(self, function_id: str, digest: bytes) -> int | None:
        """The first unreplayed record of the same function with the same arguments."""
        index = self._by_content
        if index is None:
            index = self._by_content = {}
            for slot in sorted(self.recorded):
                recorded_id, recorded_digest, *_ = CallRecord.fields(slot, self.recorded[slot])
                index.setdefault((recorded_id, recorded_digest), []).append(slot)
        for slot in index.get((function_id, digest), ()):
            if slot not in self.consumed:
                return slot
        return None

    def _outcome(
        self, call: DurableCall, slot: int, fields: list[Any]
    ) -> Outcome | Reconcile | None:
        _, _, status, ok, payload = fields
        if status == PENDING:
            return RECONCILE if call.reconciler is not None else None
        value = self.journal.codec.decode(
            payload,
            "the recorded outcome of slot {} of run {} of key {!r}",
            slot,
            self.run,
            self.key,
        )
        if ok:
            return Outcome(value)
        if not isinstance(value, BaseException):
            value = ReplayedError(type(value).__name__, repr(value))
        return Outcome(error=value)

    def _diverge(
        self, call: DurableCall, function_id: str, recorded_digest: bytes, digest: bytes
    ) -> None:
        diff = {
            "key": self.key,
            "run": self.run,
            "action": call.action,
            "slot": call.slot,
            "expected": {"function": function_id, "args_digest": recorded_digest.hex()},
            "actual": {"function": call.function_id, "args_digest": digest.hex()},
        }
        if self.journal.strict:
            raise NonDeterminismError(
                f"durable call slot {call.slot} of run {self.run} of key {self.key!r} (action "
                f"{call.action!r}) called {call.function_id} with args digest {digest.hex()}, "
                f"but the journal recorded {function_id} with {recorded_digest.hex()}: run the "
                "code that made the journal to finish this input, or set durable.divergence: "
                "warn to run the changed call",
                diff=diff,
            )
        self.divergences.setdefault(call.slot, diff)

    def report_divergences(self) -> None:
        """The run ended: warn about each recorded call that was never replayed, with the call
        made at its position instead. (Reported now, not when met: with concurrent calls, the
        record at a position may just be replayed a little later, by another call.)"""
        for slot, diff in self.divergences.items():
            if slot in self.recorded and slot not in self.consumed:
                logger.warning(
                    "durable call differs from the journal; the changed call ran, recorded "
                    "calls that still matched were replayed",
                    key=self.key, run=self.run, action=diff["action"], slot=slot,
                    expected=diff["expected"], actual=diff["actual"],
                )  # fmt: skip
        self.divergences.clear()

    def started(self, call: DurableCall) -> Ack | None:
        if call.reconciler is None:
            return None  # only calls with a reconciler need their start on record
        record = CallRecord(call.record_slot, call.function_id, self._digest(call), PENDING)
        self.written[call.record_slot] = record
        ack = self.journal.write_call(self.seq, record)
        return None if self.journal.durability == "none" or ack.done else ack

    def finished(self, call: DurableCall, outcome: Outcome) -> Ack | None:
        codec = self.journal.codec
        encode_error: JournalEncodeError | None = None
        if outcome.error is None:
            try:
                payload = codec.encode(
                    outcome.value,
                    "the result of durable call {} (slot {}, action {!r}, key {!r})",
                    call.function_id,
                    call.slot,
                    call.action,
                    self.key,
                )
                ok = True
            except JournalEncodeError as error:
                encode_error = error
                payload, ok = codec.encode(error), False
        else:
            payload, ok = codec.encode(outcome.error), False
        if ok:
            try:
                self.journal._check_size(
                    len(payload),
                    "the result of durable call {} (slot {}, action {!r}, key {!r})",
                    call.function_id,
                    call.slot,
                    call.action,
                    self.key,
                )
            except JournalEncodeError as error:
                encode_error = error
                payload, ok = codec.encode(error), False
        record = CallRecord(
            call.record_slot, call.function_id, self._digest(call), COMPLETED, ok, payload
        )
        self.written[call.record_slot] = record
        ack = self.journal.write_call(self.seq, record)
        if encode_error is not None:
            raise encode_error
        return ack if self.journal.durability == "sync" and not ack.done else None

    def kept_for_retry(self) -> dict[int, bytes]:
        """The records a retry of this run replays: calls that returned a value and calls
        still PENDING (a reconciler decides those), from the journal and from this attempt.
        Calls that raised run again: a retry is there for transient failures."""
        kept = dict(self.recorded)
        for slot, record in self.written.items():
            kept[slot] = record.pack()
        return {slot: data for slot, data in kept.items() if _replayed_on_retry(slot, data)}


def _replayed_on_retry(slot: int, data: bytes) -> bool:
    try:
        _, _, status, ok, _ = CallRecord.fields(slot, data)
    except JournalError:
        return True  # unreadable: the retry meets it, and keeps the input for a fixed restart
    return status == PENDING or bool(ok)


def _recorded_error(type_path: str, message: str) -> BaseException:
    """A failure recorded as ``module.QualName`` and its message, as that class again when this
    process has it loaded (so ``except ValueError:`` catches it after a restart as before), else
    a ``ReplayedError``. Made without running the class's ``__init__``."""
    module, _, name = type_path.rpartition(".")
    while module:
        cls = find_class(f"{module}:{name}")
        if cls is not None:
            if issubclass(cls, Exception):
                error = rebuild_exception(cls, [message], {})
                if error is not None:
                    return error
            break
        module, _, head = module.rpartition(".")
        name = f"{head}.{name}"
    return ReplayedError(type_path, message)

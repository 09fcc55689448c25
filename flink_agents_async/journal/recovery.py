"""Recovery: a journal's rows read back into what a runtime resumes from.

Each key's memory is its snapshot with the later commits applied in order; accepted inputs
without a commit or failure are pending (they run again, replaying their recorded calls);
outputs of committed runs and failures come back for the host to report.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ActionFailedError
from ..memory import MemoryStore, MemoryType
from .codec import Codec
from .memory_format import memory_from
from .records import (
    INPUT_ACCEPTED,
    CommitRecord,
    FailureRecord,
    InputRecord,
    OutputsRecord,
    SnapshotRecord,
)
from .replay import recorded_error
from .store import StoredJournal

__all__ = ["RecoveredInput", "RecoveredJournal", "RecoveredKey", "recover"]


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
    next_commit_no: int = 1  # the number the next commit takes

    @property
    def pending(self) -> list[RecoveredInput]:
        """Accepted but uncommitted inputs, in their original order."""
        return [entry for seq, entry in sorted(self.inputs.items())
                if entry.record.status == INPUT_ACCEPTED]  # fmt: skip


def recover(stored: StoredJournal, codec: Codec) -> RecoveredJournal:
    """Every key's committed state, the inputs to resume, the outputs and failures of earlier
    runs, from the rows of a journal."""
    decode = codec.decode
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
        state.memory, state.stamps = memory_from(codec, snapshot.memory)
        state.runs = snapshot.runs
        state.last_commit_no = snapshot.commit_no
    for seq, commit_no, key_bytes, data in stored.commits:
        commit = CommitRecord.unpack(seq, commit_no, key_bytes, data)
        state = key_state(key_bytes)
        if commit_no <= state.last_commit_no:
            continue  # folded into the snapshot already
        values, objects, deleted, stamps = decode(commit.delta, "the memory delta of input {}", seq)
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
        recovered.next_commit_no = max(recovered.next_commit_no, commit_no + 1)
    for key_bytes, _ in stored.snapshots:
        state = key_state(key_bytes)
        recovered.next_commit_no = max(recovered.next_commit_no, state.last_commit_no + 1)
    recovered.next_commit_no = max(
        [recovered.next_commit_no] + [no + 1 for _, no, _, _ in stored.commits]
    )
    for seq, key_bytes, data in stored.failures:
        failure = FailureRecord.unpack(seq, data)
        state = key_state(key_bytes)
        state.runs = max(state.runs, failure.run)
        recovered.failures.append(_replayed_failure(state.key, failure))
    for seq, key_bytes, status, data in stored.inputs:
        input_record = InputRecord.unpack(seq, status, data)
        recovered.inputs[seq] = RecoveredInput(input_record, key_state(key_bytes).key)
        recovered.next_seq = max(recovered.next_seq, seq + 1)
    for seq, slot, data in stored.calls:
        entry = recovered.inputs.get(seq)
        if entry is not None and entry.record.status == INPUT_ACCEPTED:
            entry.calls[slot] = data
    return recovered


def _replayed_failure(key: Hashable, failure: FailureRecord) -> ActionFailedError:
    cause = recorded_error(failure.error_type, failure.message)
    return ActionFailedError(
        key, failure.run, failure.action, failure.event_type, cause, input_index=failure.seq
    )

"""Write operations: what the ``Journal`` hands a ``JournalStore`` in one atomic group.

Each is a small immutable record: a ``NamedTuple``, a third of the cost of a frozen dataclass
to make, as one is made for every commit and durable call. A store applies a group in order,
all or nothing, and dispatches on the record's type; the records inside (``InputRecord``...)
are packed by the store when it writes them.
"""

from __future__ import annotations

from typing import NamedTuple

from .records import (
    CallRecord,
    CommitRecord,
    FailureRecord,
    InputRecord,
    InputStatus,
    SnapshotRecord,
)

__all__ = [
    "CallOp",
    "CommitOp",
    "FailOp",
    "InputOp",
    "MetaOp",
    "Op",
    "SnapshotOp",
]


class InputOp(NamedTuple):
    """Accept an input (or rewrite its status)."""

    seq: int
    key: bytes
    status: InputStatus
    record: InputRecord


class CallOp(NamedTuple):
    """Record a durable call slot of input ``seq`` (pending, or its outcome)."""

    seq: int
    slot: int
    record: CallRecord


class CommitOp(NamedTuple):
    """Commit the run of input ``seq``: its memory delta, and its outputs (codec bytes); the
    input becomes COMMITTED."""

    seq: int
    commit_no: int
    key: bytes
    record: CommitRecord
    outputs: bytes


class FailOp(NamedTuple):
    """The run of input ``seq`` failed for good: its calls go, the input becomes FAILED."""

    seq: int
    key: bytes
    record: FailureRecord


class SnapshotOp(NamedTuple):
    """Replace ``key``'s snapshot, folding its commits up to ``commit_no`` (and dropping their
    inputs and outputs unless ``keep_inputs``)."""

    key: bytes
    commit_no: int
    record: SnapshotRecord
    keep_inputs: bool


class MetaOp(NamedTuple):
    """Set the journal's metadata ``name`` (which job wrote it)."""

    name: str
    value: bytes


Op = InputOp | CallOp | CommitOp | FailOp | SnapshotOp | MetaOp

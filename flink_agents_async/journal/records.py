"""Journal records: what a store keeps, each packed as a versioned msgpack array.

Every record starts with ``FORMAT_VERSION``, so a journal written by a future format is refused
with a clear error instead of being misread. Values inside records (inputs, results, memory,
outputs) are already encoded by the ``Codec``; records only frame them.

* ``InputRecord``: an accepted input (sequence number, key, value, the item's digest).
* ``CallRecord``: one durable call slot of an uncommitted run: PENDING or its outcome.
* ``CommitRecord``: a committed run: its memory delta and outputs.
* ``FailureRecord``: a run that failed for good (the input is consumed, nothing committed).
* ``SnapshotRecord``: a key's whole memory after compaction folded its commits.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import msgpack

from ..errors import JournalError
from .packer import ThreadPacker

__all__ = [
    "FORMAT_VERSION",
    "CallRecord",
    "CommitRecord",
    "FailureRecord",
    "InputRecord",
    "InputStatus",
    "OutputsRecord",
    "SnapshotRecord",
    "item_digest",
]

FORMAT_VERSION = 1
_unpackb = msgpack.unpackb

PENDING = 0
COMPLETED = 1

_CALL_FIELDS = (str, bytes, int, bool, bytes)  # function id, args digest, status, ok, payload


class InputStatus(IntEnum):
    """Where an accepted input stands (stored as its number)."""

    ACCEPTED = 0
    """Journaled, not yet committed: it runs (again) at the next start."""
    COMMITTED = 1
    """Its run committed: its outputs are journaled."""
    FAILED = 2
    """Its run failed for good: it never runs again."""


INPUT_ACCEPTED = InputStatus.ACCEPTED
INPUT_COMMITTED = InputStatus.COMMITTED
INPUT_FAILED = InputStatus.FAILED


def item_digest(item_bytes: bytes) -> bytes:
    """The digest that identifies an input item (from its codec bytes)."""
    return hashlib.blake2b(item_bytes, digest_size=16).digest()


_record_packer = ThreadPacker(use_bin_type=True)


def _pack(*fields: Any) -> bytes:
    """A record as [FORMAT_VERSION, *fields] (see ``_unpack``)."""
    return _record_packer.pack([FORMAT_VERSION, *fields])


def _unpack(data: bytes, types: tuple[type, ...], what: str, *what_args: Any) -> list[Any]:
    """The fields of a record, each of the exact type in ``types``; ``what`` (a format string
    with ``what_args``) names it in errors and is only filled in when there is one."""
    try:
        record = _unpackb(data, raw=False, strict_map_key=False)
    except Exception as error:
        raise JournalError(
            f"{what.format(*what_args)} is corrupt ({type(error).__name__}: {error})"
        ) from None
    if type(record) is not list or len(record) != len(types) + 1 or record[0] != FORMAT_VERSION:
        _explain(record, len(types), what.format(*what_args))
    fields = record[1:]
    for value, expected in zip(fields, types, strict=True):
        if type(value) is not expected:
            raise JournalError(
                f"{what.format(*what_args)} is corrupt (a field holds a "
                f"{type(value).__name__}, not a {expected.__name__})"
            )
    return fields


def _explain(record: Any, width: int, what: str) -> None:
    if not isinstance(record, list) or not record:
        raise JournalError(f"{what} is corrupt (not a versioned array)")
    if record[0] != FORMAT_VERSION:
        raise JournalError(
            f"{what} has format version {record[0]!r:.40}; this version of flink-agents-async "
            f"reads version {FORMAT_VERSION}"
        )
    raise JournalError(f"{what} is corrupt ({len(record) - 1} fields, not {width})")


@dataclass(slots=True)
class InputRecord:
    """An accepted input. ``item`` is the codec bytes of ``[given key or None, value]``;
    ``key`` the codec bytes of the key it runs under (a generated uuid for keyless items)."""

    seq: int
    key: bytes
    item: bytes
    status: InputStatus = InputStatus.ACCEPTED

    @property
    def digest(self) -> bytes:
        return item_digest(self.item)

    def pack(self) -> bytes:
        return _pack(self.key, self.item)

    @classmethod
    def unpack(cls, seq: int, status: int, data: bytes) -> InputRecord:
        key, item = _unpack(data, (bytes, bytes), "the input record of item {}", seq)
        try:
            known = InputStatus(status)
        except ValueError:
            raise JournalError(
                f"the input record of item {seq} has an unknown status {status!r}"
            ) from None
        return cls(seq, key, item, known)


@dataclass(slots=True)
class CallRecord:
    """One durable call slot. ``payload`` is the codec bytes of the value (``ok``) or of the
    exception; empty while PENDING."""

    slot: int
    function_id: str
    digest: bytes
    status: int
    ok: bool = True
    payload: bytes = b""

    def pack(self) -> bytes:
        return _pack(self.function_id, self.digest, self.status, self.ok, self.payload)

    @staticmethod
    def fields(slot: int, data: bytes) -> list[Any]:
        """``[function_id, digest, status, ok, payload]`` without building a record (replay
        reads every recorded call, so this path is kept lean)."""
        return _unpack(data, _CALL_FIELDS, "the call record of slot {}", slot)

    @classmethod
    def unpack(cls, slot: int, data: bytes) -> CallRecord:
        function_id, digest, status, ok, payload = _unpack(
            data, _CALL_FIELDS, "the call record of slot {}", slot
        )
        return cls(slot, function_id, digest, status, ok, payload)


@dataclass(slots=True)
class CommitRecord:
    """A committed run: its memory delta (codec bytes of ``[values, objects, deleted]``) and
    how many durable calls it made. Its outputs are kept apart (``OutputsRecord``), because a
    batch job keeps them after compaction folds the delta away."""

    seq: int
    commit_no: int
    key: bytes
    run: int
    delta: bytes
    calls: int = 0

    def pack(self) -> bytes:
        return _pack(self.run, self.delta, self.calls)

    @classmethod
    def unpack(cls, seq: int, commit_no: int, key: bytes, data: bytes) -> CommitRecord:
        run, delta, calls = _unpack(data, (int, bytes, int), "the commit record of input {}", seq)
        return cls(seq, commit_no, key, run, delta, calls)


@dataclass(slots=True)
class OutputsRecord:
    """A committed run's outputs (codec bytes of the list), kept apart from its commit record
    because a batch job keeps them after compaction folds the delta away; with the run number
    and call count, so tools can still describe the run."""

    run: int
    calls: int
    outputs: bytes

    def pack(self) -> bytes:
        return _pack(self.run, self.calls, self.outputs)

    @classmethod
    def unpack(cls, data: bytes, seq: int | None = None) -> OutputsRecord:
        run, calls, outputs = _unpack(
            data, (int, int, bytes), "the outputs record of input {}", seq
        )
        return cls(run, calls, outputs)


@dataclass(slots=True)
class FailureRecord:
    """A run that failed for good: what ``execute()`` reports again after a restart."""

    seq: int
    run: int
    action: str
    event_type: str
    error_type: str
    message: str
    calls: int = 0

    def pack(self) -> bytes:
        return _pack(
            self.run, self.action, self.event_type, self.error_type, self.message, self.calls
        )

    @classmethod
    def unpack(cls, seq: int, data: bytes) -> FailureRecord:
        run, action, event_type, error_type, message, calls = _unpack(
            data, (int, str, str, str, str, int), "the failure record of input {}", seq
        )
        return cls(seq, run, action, event_type, error_type, message, calls)


@dataclass(slots=True)
class SnapshotRecord:
    """A key's memory as of commit ``commit_no``: codec bytes of ``[values, objects]``."""

    key: bytes
    commit_no: int
    runs: int
    memory: bytes

    def pack(self) -> bytes:
        return _pack(self.commit_no, self.runs, self.memory)

    @classmethod
    def unpack(cls, key: bytes, data: bytes) -> SnapshotRecord:
        commit_no, runs, memory = _unpack(data, (int, int, bytes), "a memory snapshot record")
        return cls(key, commit_no, runs, memory)

"""The ``flink-agents-async`` command line: look inside a journal directory.

``flink-agents-async journal DIR`` lists the keys with their runs; ``--key K`` shows each run of
that key with its durable calls (slot, function, status, result). It never writes: the journal
is opened read-only, with no lock taken, so it can be looked at while a runtime runs on it. A
missing, damaged or foreign file is reported with its path and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from .errors import JournalError
from .journal.codec import Codec
from .journal.records import (
    COMPLETED,
    INPUT_ACCEPTED,
    INPUT_COMMITTED,
    INPUT_FAILED,
    CallRecord,
    CommitRecord,
    FailureRecord,
    OutputsRecord,
    SnapshotRecord,
)
from .journal.sqlite import read_journal

__all__ = ["main"]

_STATUS = {INPUT_ACCEPTED: "pending", INPUT_COMMITTED: "committed", INPUT_FAILED: "failed"}
_SUMMARY_WIDTH = 60


@dataclass
class _Run:
    seq: int
    status: str
    run: int | None = None
    calls: list[CallRecord] = field(default_factory=list)
    call_count: int | None = None
    failure: FailureRecord | None = None


@dataclass
class _Key:
    key: Any
    runs: dict[int, _Run] = field(default_factory=dict)
    snapshot_runs: int = 0


def _summary(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # a value rebuilt from the journal whose repr needs more than it has
        text = f"<{type(value).__name__}>"
    return text if len(text) <= _SUMMARY_WIDTH else text[: _SUMMARY_WIDTH - 3] + "..."


def _load(directory: str) -> tuple[dict[str, bytes], dict[bytes, _Key], Codec]:
    stored = read_journal(directory)
    for problem in stored.problems:
        sys.stderr.write(f"flink-agents-async: warning: {problem}\n")
    try:
        return _index(stored)
    except JournalError as error:
        raise JournalError(f"{directory}: {error}") from error


class _UndecodableKey:
    """A key whose bytes cannot be decoded here (shown, never matched by ``--key``)."""

    def __init__(self, key_bytes: bytes, error: JournalError) -> None:
        self.key_bytes = key_bytes
        self.error = error

    def __repr__(self) -> str:
        return f"<undecodable key 0x{self.key_bytes[:16].hex()}>"


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def _index(stored: Any) -> tuple[dict[str, bytes], dict[bytes, _Key], Codec]:
    codec = Codec(lenient=True)
    keys: dict[bytes, _Key] = {}

    def entry(key_bytes: bytes) -> _Key:
        if key_bytes not in keys:
            try:
                key: Any = codec.decode(key_bytes, "a key")
            except JournalError as error:
                key = _UndecodableKey(key_bytes, error)
            keys[key_bytes] = _Key(key)
        return keys[key_bytes]

    for key_bytes, data in stored.snapshots:
        entry(key_bytes).snapshot_runs = SnapshotRecord.unpack(key_bytes, data).runs
    for seq, key_bytes, status, _data in stored.inputs:
        entry(key_bytes).runs[seq] = _Run(seq, _STATUS.get(status, f"status {status}"))
    by_seq = {seq: key_entry for key_entry in keys.values() for seq in key_entry.runs}
    for seq, _, key_bytes, data in stored.outputs:
        outputs = OutputsRecord.unpack(data, seq)
        run = entry(key_bytes).runs.setdefault(seq, _Run(seq, "committed"))
        run.run, run.call_count = outputs.run, outputs.calls
    for seq, commit_no, key_bytes, data in stored.commits:
        record = CommitRecord.unpack(seq, commit_no, key_bytes, data)
        run = entry(key_bytes).runs.setdefault(seq, _Run(seq, "committed"))
        run.run, run.call_count = record.run, record.calls
    for seq, key_bytes, data in stored.failures:
        run = entry(key_bytes).runs.setdefault(seq, _Run(seq, "failed"))
        run.failure = FailureRecord.unpack(seq, data)
        run.run, run.call_count = run.failure.run, run.failure.calls
    calls: dict[int, list[CallRecord]] = defaultdict(list)
    for seq, slot, data in stored.calls:
        calls[seq].append(CallRecord.unpack(slot, data))
    for seq, records in calls.items():
        key_entry = by_seq.get(seq)
        if key_entry is not None:
            key_entry.runs[seq].calls = records
    return stored.meta, keys, codec


def _describe_call(record: CallRecord, codec: Codec) -> str:
    if record.status != COMPLETED:
        return "PENDING"
    try:
        value = codec.decode(record.payload, "a result")
    except JournalError as error:
        return f"unreadable: {error}"
    if record.ok:
        return f"-> {_summary(value)}"
    return f"raised {type(value).__name__}: {_summary(str(value))}"


def _print_keys(meta: dict[str, bytes], keys: dict[bytes, _Key], out: TextIO) -> None:
    agent = _text(meta.get("agent", b"?"))
    mode = _text(meta.get("mode", b"?"))
    out.write(f"agent {agent}, mode {mode}, {len(keys)} key(s)\n")
    out.write(
        f"{'KEY':<30} {'RUNS':>5} {'COMMITTED':>9} {'FAILED':>6} {'PENDING':>7} {'CALLS':>6}\n"
    )
    for entry in sorted(keys.values(), key=lambda item: repr(item.key)):
        runs = entry.runs.values()
        count = {status: sum(run.status == status for run in runs) for status in _STATUS.values()}
        calls = sum(len(run.calls) or (run.call_count or 0) for run in runs)
        total = max(len(entry.runs), entry.snapshot_runs)
        out.write(
            f"{_summary(entry.key):<30} {total:>5} {count['committed']:>9} {count['failed']:>6} "
            f"{count['pending']:>7} {calls:>6}\n"
        )


def _print_key(entry: _Key, codec: Codec, out: TextIO) -> None:
    out.write(f"key {entry.key!r}: {len(entry.runs)} run(s) on record\n")
    for seq, run in sorted(entry.runs.items()):
        label = f"run {run.run}" if run.run is not None else "run"
        count = len(run.calls) if run.calls else (run.call_count or 0)
        out.write(f"  input {seq} ({label}, {run.status}), {count} durable call(s)\n")
        if run.failure is not None:
            failure = run.failure
            out.write(
                f"    failed in action {failure.action!r} on {failure.event_type!r}: "
                f"{failure.error_type}: {_summary(failure.message)[1:-1]}\n"
            )
        for record in run.calls:
            out.write(
                f"    slot {record.slot:<3} {record.function_id:<40} "
                f"{_describe_call(record, codec)}\n"
            )
        if run.status == "committed" and not run.calls and count:
            out.write("    (call records pruned by compaction)\n")


def journal_command(directory: str, key: str | None, out: TextIO) -> int:
    meta, keys, codec = _load(directory)
    if key is None:
        _print_keys(meta, keys, out)
        return 0
    matches = [entry for entry in keys.values() if key in (str(entry.key), repr(entry.key))]
    if not matches:
        known = ", ".join(sorted(repr(entry.key) for entry in keys.values())[:10])
        sys.stderr.write(f"no key {key!r} in the journal at {directory} (keys: {known})\n")
        return 1
    for entry in matches:
        _print_key(entry, codec, out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flink-agents-async", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    journal = commands.add_parser("journal", help="list the keys, runs and calls of a journal")
    journal.add_argument("directory", help="the journal directory (journal_dir of the job)")
    journal.add_argument("--key", help="show the runs and durable calls of this key")
    args = parser.parse_args(argv)
    try:
        return journal_command(args.directory, args.key, sys.stdout)
    except JournalError as error:
        sys.stderr.write(f"flink-agents-async: {error}\n")
        return 2
    except Exception as error:  # a journal no check foresaw: still a message, not a traceback
        sys.stderr.write(
            f"flink-agents-async: cannot show the journal at {args.directory}: "
            f"{type(error).__name__}: {error}\n"
        )
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

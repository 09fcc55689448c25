"""The durable local store: one SQLite database in WAL mode, written by one writer thread.

Writes are queued; the writer thread takes everything queued so far and commits it in one
transaction (group commit), so the event loop never waits on disk and many durable calls share
one commit. ``durability`` picks SQLite's ``synchronous`` level:

* ``sync``: FULL, every commit is fsynced, and the runtime waits for it before acknowledging a
  call or a run;
* ``batch`` (default): NORMAL, group commits in WAL mode survive a killed process; the runtime
  waits only where it must (a PENDING mark before its function runs, a run's outputs before
  they are released);
* ``none``: OFF, nothing waits.

A fault hook (``fault_hook(phase, number)``, called ``"before"`` a write group is applied and
``"after"`` it committed) lets tests crash the process at every write position.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog

from ..errors import JournalError
from .records import OutputsRecord
from .store import Ack, DurabilityTracker, JournalStore, Op, StoredJournal

__all__ = ["DURABILITY_MODES", "JOURNAL_FILE", "SQLiteJournalStore", "read_journal"]

logger = structlog.get_logger("flink_agents_async")

DURABILITY_MODES = {"sync": "FULL", "batch": "NORMAL", "none": "OFF"}
JOURNAL_FILE = "journal.sqlite3"
_MAGIC = b"flink-agents-async journal"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS inputs (
    seq INTEGER PRIMARY KEY, key BLOB NOT NULL, status INTEGER NOT NULL, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS calls (
    seq INTEGER NOT NULL, slot INTEGER NOT NULL, record BLOB NOT NULL,
    PRIMARY KEY (seq, slot)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commits (
    seq INTEGER PRIMARY KEY, commit_no INTEGER NOT NULL, key BLOB NOT NULL,
    record BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS commits_by_key ON commits (key, commit_no);
CREATE TABLE IF NOT EXISTS outputs (
    seq INTEGER PRIMARY KEY, commit_no INTEGER NOT NULL, key BLOB NOT NULL,
    record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS failures (
    seq INTEGER PRIMARY KEY, key BLOB NOT NULL, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (key BLOB PRIMARY KEY, record BLOB NOT NULL);
"""


class SQLiteJournalStore(JournalStore):
    """A journal in ``<directory>/journal.sqlite3``."""

    durable = True

    def __init__(
        self,
        directory: str | Path,
        durability: str = "batch",
        fault_hook: Callable[[str, int], None] | None = None,
    ) -> None:
        if durability not in DURABILITY_MODES:
            raise JournalError(
                f"durability {durability!r} is not one of {', '.join(DURABILITY_MODES)}"
            )
        self.directory = Path(directory)
        self.path = self.directory / JOURNAL_FILE
        self.durability = durability
        self.fault_hook = fault_hook
        self._tracker = DurabilityTracker()
        self._condition = threading.Condition()
        self._queue: list[tuple[int, Sequence[Op]]] = []
        self._last_number = 0
        self._stopping = False
        self._connection: sqlite3.Connection | None = None
        self._writer: threading.Thread | None = None
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = threading.Lock()

    def describe(self) -> str:
        return f"SQLite journal {self.path} (durability {self.durability})"

    # -- opening and loading ----------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.directory.exists() and not self.directory.is_dir():
            raise JournalError(f"journal directory {self.directory} exists and is not a directory")
        self.directory.mkdir(parents=True, exist_ok=True)
        is_new = not self.path.exists() or self.path.stat().st_size == 0
        try:
            connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise JournalError(f"{self.path}: cannot switch the database to WAL mode")
            connection.execute(f"PRAGMA synchronous={DURABILITY_MODES[self.durability]}")
            tables = {
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if is_new or not tables:
                connection.executescript(_SCHEMA)
                connection.execute("INSERT OR REPLACE INTO meta VALUES ('format', ?)", (_MAGIC,))
            elif "meta" not in tables:
                raise JournalError(
                    f"{self.path} is an SQLite database but not a flink-agents-async journal "
                    f"(tables: {', '.join(sorted(tables))}); point journal_dir elsewhere"
                )
            else:
                connection.executescript(_SCHEMA)  # tables added by later versions
            row = connection.execute("SELECT value FROM meta WHERE name='format'").fetchone()
            if row is None or bytes(row[0]) != _MAGIC:
                raise JournalError(f"{self.path} is not a flink-agents-async journal")
        except sqlite3.DatabaseError as error:
            raise JournalError(
                f"{self.path} cannot be opened as a journal: {error} (the file is corrupt or not "
                "an SQLite database; move it away to start a new journal)"
            ) from error
        return connection

    def load(self) -> StoredJournal:
        connection = self._connection = self._connect()
        try:
            stored = _read_rows(connection, self.path)
        except JournalError:
            connection.close()
            self._connection = None
            raise
        self._start_writer()
        return stored

    def _start_writer(self) -> None:
        self._writer = threading.Thread(
            target=self._write_loop, name=f"journal-writer:{self.path}", daemon=True
        )
        self._writer.start()

    def bind_loop(self, loop: Any) -> None:
        self._tracker.bind_loop(loop)

    # -- writing ----------------------------------------------------------------------------

    def write(self, ops: Sequence[Op]) -> Ack:
        if self._tracker.error is not None:
            raise JournalError(
                f"{self.path} can no longer be written: {self._tracker.error}"
            ) from self._tracker.error
        if self._writer is None:
            raise JournalError(f"{self.path}: write() before load() or after close()")
        with self._condition:
            self._last_number += 1
            number = self._last_number
            self._queue.append((number, ops))
            self._condition.notify()
        return Ack(self._tracker, number)

    async def flush(self) -> None:
        await Ack(self._tracker, self._last_number)

    def read_snapshot(self, key: bytes) -> bytes | None:
        # A connection of its own: WAL lets it read while the writer writes.
        with self._reader_lock:
            if self._reader is None:
                self._reader = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=30
                )
            try:
                row = self._reader.execute(
                    "SELECT record FROM snapshots WHERE key = ?", (key,)
                ).fetchone()
            except sqlite3.DatabaseError as error:
                raise JournalError(f"{self.path} cannot be read: {error}") from error
        return None if row is None else bytes(row[0])

    def close(self) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify()
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def _write_loop(self) -> None:
        connection = self._connection
        assert connection is not None
        while True:
            with self._condition:
                while not self._queue and not self._stopping:
                    self._condition.wait()
                group, self._queue = self._queue, []
                stopping = self._stopping
            if group:
                try:
                    self._commit(connection, group)
                except BaseException as error:  # the journal is unusable from here on
                    logger.error("journal write failed", path=str(self.path), error=repr(error))
                    self._tracker.mark_failed(error)
                    return
                self._tracker.mark_durable(group[-1][0])
            elif stopping:
                return

    def _commit(
        self, connection: sqlite3.Connection, group: list[tuple[int, Sequence[Op]]]
    ) -> None:
        hook = self.fault_hook
        connection.execute("BEGIN IMMEDIATE")
        try:
            for number, ops in group:
                if hook is not None:
                    hook("before", number)
                for op in ops:
                    _APPLY[op[0]](connection, op)
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        if hook is not None:
            for number, _ in group:
                hook("after", number)


def read_journal(directory: str | Path) -> StoredJournal:
    """Every row of the journal in ``directory``, read without writing anything (for tools)."""
    path = Path(directory) / JOURNAL_FILE
    if not path.is_file():
        raise JournalError(f"no journal at {directory} (expected the file {path})")
    try:
        connection = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as error:
        raise JournalError(f"{path} cannot be opened: {error}") from error
    try:
        tables = {
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }
        if "meta" not in tables:
            raise JournalError(f"{path} is not a flink-agents-async journal")
        row = connection.execute("SELECT value FROM meta WHERE name='format'").fetchone()
        if row is None or bytes(row[0]) != _MAGIC:
            raise JournalError(f"{path} is not a flink-agents-async journal")
        return _read_rows(connection, path)
    except sqlite3.DatabaseError as error:
        raise JournalError(
            f"{path} cannot be read: {error} (the file is corrupt or not an SQLite database)"
        ) from error
    finally:
        connection.close()


def _read_rows(connection: sqlite3.Connection, path: Path) -> StoredJournal:
    try:
        return StoredJournal(
            meta={name: bytes(value) for name, value in connection.execute("SELECT * FROM meta")},
            inputs=[
                (seq, bytes(key), status, bytes(record))
                for seq, key, status, record in connection.execute(
                    "SELECT seq, key, status, record FROM inputs ORDER BY seq"
                )
            ],
            calls=[
                (seq, slot, bytes(record))
                for seq, slot, record in connection.execute(
                    "SELECT seq, slot, record FROM calls ORDER BY seq, slot"
                )
            ],
            commits=_rows(connection, "commits"),
            outputs=_rows(connection, "outputs"),
            failures=[
                (seq, bytes(key), bytes(record))
                for seq, key, record in connection.execute(
                    "SELECT seq, key, record FROM failures ORDER BY seq"
                )
            ],
            snapshots=[
                (bytes(key), bytes(record))
                for key, record in connection.execute("SELECT key, record FROM snapshots")
            ],
        )
    except sqlite3.DatabaseError as error:
        raise JournalError(
            f"{path} cannot be read: {error} (the file is corrupt or truncated)"
        ) from error


def _rows(connection: sqlite3.Connection, table: str) -> list[tuple[int, int, bytes, bytes]]:
    return [
        (seq, commit_no, bytes(key), bytes(record))
        for seq, commit_no, key, record in connection.execute(
            f"SELECT seq, commit_no, key, record FROM {table} ORDER BY commit_no"
        )
    ]


def _apply_input(connection: sqlite3.Connection, op: Op) -> None:
    _, seq, key, status, record = op
    connection.execute(
        "INSERT OR REPLACE INTO inputs VALUES (?, ?, ?, ?)", (seq, key, status, record.pack())
    )


def _apply_call(connection: sqlite3.Connection, op: Op) -> None:
    _, seq, slot, record = op
    connection.execute("INSERT OR REPLACE INTO calls VALUES (?, ?, ?)", (seq, slot, record.pack()))


def _apply_discard(connection: sqlite3.Connection, op: Op) -> None:
    _, seq, from_slot = op
    connection.execute("DELETE FROM calls WHERE seq = ? AND slot >= ?", (seq, from_slot))


def _apply_commit(connection: sqlite3.Connection, op: Op) -> None:
    _, seq, commit_no, key, record, outputs = op
    connection.execute(
        "INSERT INTO commits VALUES (?, ?, ?, ?)", (seq, commit_no, key, record.pack())
    )
    connection.execute(
        "INSERT INTO outputs VALUES (?, ?, ?, ?)",
        (seq, commit_no, key, OutputsRecord(record.run, record.calls, outputs).pack()),
    )
    connection.execute("UPDATE inputs SET status = 1 WHERE seq = ?", (seq,))


def _apply_fail(connection: sqlite3.Connection, op: Op) -> None:
    _, seq, key, record = op
    connection.execute(
        "INSERT OR REPLACE INTO failures VALUES (?, ?, ?)", (seq, key, record.pack())
    )
    connection.execute("DELETE FROM calls WHERE seq = ?", (seq,))
    connection.execute("UPDATE inputs SET status = 2 WHERE seq = ?", (seq,))


def _apply_snapshot(connection: sqlite3.Connection, op: Op) -> None:
    _, key, commit_no, record, keep_inputs = op
    connection.execute("INSERT OR REPLACE INTO snapshots VALUES (?, ?)", (key, record.pack()))
    folded = "SELECT seq FROM commits WHERE key = ? AND commit_no <= ?"
    connection.execute(f"DELETE FROM calls WHERE seq IN ({folded})", (key, commit_no))
    if not keep_inputs:
        connection.execute(f"DELETE FROM inputs WHERE seq IN ({folded})", (key, commit_no))
        connection.execute(f"DELETE FROM outputs WHERE seq IN ({folded})", (key, commit_no))
    connection.execute("DELETE FROM commits WHERE key = ? AND commit_no <= ?", (key, commit_no))


def _apply_meta(connection: sqlite3.Connection, op: Op) -> None:
    _, name, value = op
    connection.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))


_APPLY: dict[str, Callable[[sqlite3.Connection, Op], None]] = {
    "input": _apply_input,
    "call": _apply_call,
    "discard": _apply_discard,
    "commit": _apply_commit,
    "fail": _apply_fail,
    "snapshot": _apply_snapshot,
    "meta": _apply_meta,
}

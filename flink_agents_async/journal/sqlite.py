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

Opening takes the directory's lock (one runtime per journal, see ``lock``), creates a missing
journal atomically or recognises an existing one read-only and checks that no committed write
went missing (see ``sqlite_file``), and only then opens it for writing. A failed write (a full
disk, an I/O error) stops the writer for good: every later write and every waiting ack raise
``JournalWriteError`` naming the cause, and the runtime stops; what was acknowledged before
stays durable.

A fault hook (``fault_hook(phase, number)``, called ``"before"`` a write group is applied and
``"after"`` it committed) lets tests crash the process at every write position.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import JournalError, JournalWriteError
from ..logging import library_logger
from .lock import JournalLock
from .ops import CallOp, CommitOp, FailOp, InputOp, MetaOp, Op, SnapshotOp
from .records import InputStatus, OutputsRecord
from .sqlite_file import (
    JOURNAL_FILE,
    CommitCounter,
    FileState,
    check_header,
    create_journal,
    describe_sqlite_error,
    inspect,
    is_damage,
    open_read_only,
    read_rows,
    seal,
    unseal,
)
from .store import Ack, Durability, DurabilityTracker, JournalStore, StoredJournal

__all__ = ["DURABILITY_MODES", "JOURNAL_FILE", "SQLiteJournalStore", "read_journal"]

logger = library_logger()

DURABILITY_MODES = {Durability.SYNC: "FULL", Durability.BATCH: "NORMAL", Durability.NONE: "OFF"}

# Room kept in a row for what frames a value (keys, function ids, record fields).
_ROW_MARGIN = 64 * 1024


class SQLiteJournalStore(JournalStore):
    """A journal in ``<directory>/journal.sqlite3``."""

    durable = True

    def __init__(
        self,
        directory: str | Path,
        durability: Durability | str = Durability.BATCH,
        fault_hook: Callable[[str, int], None] | None = None,
        *,
        max_record_bytes: int | None = None,
        allow_lost_writes: bool = False,
    ) -> None:
        """``max_record_bytes`` bounds one record (SQLite's own limit, about 1 GB, if None);
        ``allow_lost_writes`` opens a journal that lost committed writes anyway (their runs
        then run again), for a journal restored from an incomplete copy."""
        if durability not in DURABILITY_MODES:
            raise JournalError(
                f"durability {durability!r} is not one of {', '.join(DURABILITY_MODES)}"
            )
        if max_record_bytes is not None and max_record_bytes < 1024:
            raise JournalError(f"max_record_bytes must be at least 1024, got {max_record_bytes}")
        self.directory = Path(directory)
        self.path = self.directory / JOURNAL_FILE
        self.durability = Durability(durability)
        self.fault_hook = fault_hook
        self.max_record_bytes = max_record_bytes
        self.allow_lost_writes = allow_lost_writes
        self._lock = JournalLock(self.directory)
        self._counter = CommitCounter(self.directory)
        self._commits = 0
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

    @property
    def failure(self) -> BaseException | None:
        return self._tracker.error

    # -- opening and loading ----------------------------------------------------------------

    def load(self) -> StoredJournal:
        if self.directory.exists() and not self.directory.is_dir():
            raise JournalError(f"journal directory {self.directory} exists and is not a directory")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise JournalError(
                f"cannot create the journal directory {self.directory}: {error}"
            ) from error
        self._lock.acquire()
        try:
            state, stored = self._recognise()
            self._connection = self._open_for_writing(state)
        except BaseException:
            self._release_files()
            raise
        self._start_writer()
        return stored

    def _recognise(self) -> tuple[FileState, StoredJournal]:
        """The journal as it is on disk, checked without changing it (created first when
        there is none)."""
        if not self.path.exists():
            wal = self.path.with_name(JOURNAL_FILE + "-wal")
            if wal.exists():
                raise JournalError(
                    f"{wal} exists without {self.path}: the journal's main file is missing, "
                    "so the commits in the -wal file cannot be read. Restore the main file, or "
                    "move the directory away to start a new journal"
                )
            self._sqlite(create_journal, self.path, doing="creating the journal")
        check_header(self.path)
        connection = self._sqlite(open_read_only, self.path, doing="opening the journal")
        try:
            state = self._sqlite(inspect, connection, self.path, doing="reading the journal")
            stored = self._sqlite(read_rows, connection, self.path, doing="reading the journal")
        finally:
            connection.close()
        self._check_complete(state)
        return state, stored

    def _check_complete(self, state: FileState) -> None:
        """Refuse a journal that may have lost committed writes (see ``sqlite_file``)."""
        recorded = self._counter.read()
        wal = self.path.with_name(JOURNAL_FILE + "-wal")
        if recorded is not None and recorded > state.commits:
            problem = (
                f"{self.path} holds {state.commits} committed write groups, but {recorded} were "
                f"committed (as {self._counter.path} counts): committed writes are missing, and "
                f"their runs would run again. {wal} is missing, truncated or damaged (or the "
                "machine lost power while running with durability 'batch', which does not wait "
                "for the disk)"
            )
        elif recorded is None and not state.closed:
            problem = (
                f"{self.path} was not closed cleanly, and {self._counter.path} is missing, so "
                "whether committed writes were lost cannot be checked (was the main file copied "
                f"without {wal.name} and {self._counter.path.name}?)"
            )
        else:
            return
        if self.allow_lost_writes:
            logger.warning(
                "opening a journal that may have lost committed writes (journal.allow-lost-writes)",
                problem=problem,
            )
            return
        raise JournalError(
            f"{problem}. Restore the journal with all its files, move it away to start over, or "
            "set journal.allow-lost-writes: true to resume from it anyway"
        )

    def _open_for_writing(self, state: FileState) -> sqlite3.Connection:
        connection = self._sqlite(
            sqlite3.connect,
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=30,
            doing="opening the journal for writing",
        )
        try:
            connection.execute(f"PRAGMA synchronous={DURABILITY_MODES[self.durability]}")
            self._limit_record_size(connection)
            self._commits = state.commits
            self._counter.start(state.commits)
            # Marked open in the main file itself: a copy of that file alone, made while this
            # runtime runs, is then known to be incomplete.
            self._sqlite(self._set_state, connection, b"open", doing="opening the journal")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as error:
            connection.close()
            raise JournalError(
                f"{self.path}: opening the journal for writing failed: "
                f"{describe_sqlite_error(error, self.directory)}"
            ) from error
        except BaseException:
            connection.close()
            raise
        return connection

    def _limit_record_size(self, connection: sqlite3.Connection) -> None:
        limit = connection.getlimit(sqlite3.SQLITE_LIMIT_LENGTH)
        if self.max_record_bytes is not None:
            # SQLite itself then refuses anything bigger than what the journal checks for.
            limit = min(limit, self.max_record_bytes + _ROW_MARGIN)
            connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, limit)
        self.max_record_bytes = limit - _ROW_MARGIN

    def _set_state(self, connection: sqlite3.Connection, state: bytes) -> None:
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.execute("UPDATE meta SET value = ? WHERE name = 'state'", (state,))
            self._count_commit(connection)
            connection.execute("COMMIT")
        except BaseException:
            _roll_back(connection)
            raise
        self._commits += 1
        self._counter.update(self._commits)

    def _count_commit(self, connection: sqlite3.Connection) -> None:
        connection.execute(
            "UPDATE meta SET value = ? WHERE name = 'commits'", (str(self._commits + 1).encode(),)
        )

    def _sqlite(self, operation: Callable[..., Any], *args: Any, doing: str, **kwargs: Any) -> Any:
        """Run an SQLite operation; an error becomes a ``JournalError`` that says what the
        cause is (damage, a full disk, a lock, rights), never that a healthy file is corrupt."""
        try:
            return operation(*args, **kwargs)
        except sqlite3.Error as error:
            advice = (
                "; move it away to start a new journal"
                if is_damage(error) and self.path.exists()
                else ""
            )
            raise JournalError(
                f"{self.path}: {doing} failed: "
                f"{describe_sqlite_error(error, self.directory)}{advice}"
            ) from error
        except OSError as error:
            raise JournalError(f"{self.path}: {doing} failed: {error}") from error

    def _start_writer(self) -> None:
        self._writer = threading.Thread(
            target=self._write_loop, name=f"journal-writer:{self.path}", daemon=True
        )
        self._writer.start()

    def bind_loop(self, loop: Any) -> None:
        self._tracker.bind_loop(loop)

    # -- writing ----------------------------------------------------------------------------

    def write(self, ops: Sequence[Op]) -> Ack:
        error = self._tracker.error
        if error is not None:
            raise JournalWriteError(str(error)) from error
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
                self._reader = self._sqlite(open_read_only, self.path, doing="reading a snapshot")
            row = self._sqlite(
                lambda: self._reader.execute(  # type: ignore[union-attr]
                    "SELECT record FROM snapshots WHERE key = ?", (key,)
                ).fetchone(),
                doing="reading a snapshot",
            )
        if row is None:
            return None
        return unseal(row[0], (key,), f"{self.path}: the snapshot of a key")

    def close(self) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify()
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        connection, self._connection = self._connection, None
        if connection is not None:
            if self._tracker.error is None:
                self._close_cleanly(connection)
            connection.close()
        self._release_files()

    def _close_cleanly(self, connection: sqlite3.Connection) -> None:
        """Mark the journal closed and fold the WAL into the main file, so the main file alone
        is the whole journal until the next runtime opens it."""
        try:
            self._set_state(connection, b"closed")
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as error:  # what was committed stays committed
            logger.warning(
                "the journal could not be marked closed; the next start checks it as after a crash",
                path=str(self.path),
                error=describe_sqlite_error(error, self.directory),
            )

    def _release_files(self) -> None:
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        self._counter.close()
        self._lock.release()

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
                    failure = self._write_failure(error)
                    logger.error("journal write failed", path=str(self.path), error=str(failure))
                    self._tracker.mark_failed(failure)
                    return
                self._tracker.mark_durable(group[-1][0])
            elif stopping:
                return

    def _write_failure(self, error: BaseException) -> JournalWriteError:
        cause = (
            describe_sqlite_error(error, self.directory)
            if isinstance(error, sqlite3.Error)
            else f"{type(error).__name__}: {error}"
        )
        failure = JournalWriteError(f"the journal {self.path} could not be written: {cause}")
        failure.__cause__ = error
        return failure

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
                    _APPLY[type(op)](connection, op)
            self._count_commit(connection)
            connection.execute("COMMIT")
        except BaseException:
            _roll_back(connection)
            raise
        self._commits += 1
        if hook is not None:
            for number, _ in group:
                hook("after", number)
        try:
            self._counter.update(self._commits)
        except OSError as error:  # it may fall behind the database, never ahead: harmless
            logger.warning("journal.commits could not be updated", error=repr(error))


def _roll_back(connection: sqlite3.Connection) -> None:
    """Undo an open transaction, if SQLite has not already (it does after some errors, such
    as a full disk): the original error is what matters, not "no transaction is active"."""
    if connection.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")


def read_journal(directory: str | Path) -> StoredJournal:
    """Every row of the journal in ``directory``, read without changing it (for tools): no
    lock taken, no WAL switch, no checkpoint. ``problems`` of the result lists what a runtime
    would refuse it for (committed writes missing)."""
    directory = Path(directory)
    path = directory / JOURNAL_FILE
    if not path.is_file():
        raise JournalError(f"no journal at {directory} (expected the file {path})")
    check_header(path)
    try:
        connection = open_read_only(path)
    except sqlite3.Error as error:
        raise JournalError(
            f"{path} cannot be opened: {describe_sqlite_error(error, directory)}"
        ) from error
    try:
        state = inspect(connection, path)
        stored = read_rows(connection, path)
    except sqlite3.Error as error:
        raise JournalError(
            f"{path} cannot be read: {describe_sqlite_error(error, directory)}"
        ) from error
    finally:
        connection.close()
    recorded = CommitCounter(directory).read()
    if recorded is not None and recorded > state.commits:
        stored.problems.append(
            f"{recorded - state.commits} committed write group(s) are missing from {path} "
            f"(its -wal file is missing, truncated or damaged): a runtime refuses this journal"
        )
    return stored


# -- applying write operations (on the writer thread) -----------------------------------------


def _apply_input(connection: sqlite3.Connection, op: InputOp) -> None:
    connection.execute(
        "INSERT OR REPLACE INTO inputs VALUES (?, ?, ?, ?)",
        (op.seq, op.key, int(op.status), seal(op.record.pack(), op.seq, op.key)),
    )


def _apply_call(connection: sqlite3.Connection, op: CallOp) -> None:
    connection.execute(
        "INSERT OR REPLACE INTO calls VALUES (?, ?, ?)",
        (op.seq, op.slot, seal(op.record.pack(), op.seq, op.slot)),
    )


def _apply_commit(connection: sqlite3.Connection, op: CommitOp) -> None:
    seq, commit_no, key, record = op.seq, op.commit_no, op.key, op.record
    connection.execute(
        "INSERT INTO commits VALUES (?, ?, ?, ?)",
        (seq, commit_no, key, seal(record.pack(), seq, commit_no, key)),
    )
    outputs_record = OutputsRecord(record.run, record.calls, op.outputs).pack()
    connection.execute(
        "INSERT INTO outputs VALUES (?, ?, ?, ?)",
        (seq, commit_no, key, seal(outputs_record, seq, commit_no, key)),
    )
    connection.execute(
        "UPDATE inputs SET status = ? WHERE seq = ?", (int(InputStatus.COMMITTED), seq)
    )


def _apply_fail(connection: sqlite3.Connection, op: FailOp) -> None:
    connection.execute(
        "INSERT OR REPLACE INTO failures VALUES (?, ?, ?)",
        (op.seq, op.key, seal(op.record.pack(), op.seq, op.key)),
    )
    connection.execute("DELETE FROM calls WHERE seq = ?", (op.seq,))
    connection.execute(
        "UPDATE inputs SET status = ? WHERE seq = ?", (int(InputStatus.FAILED), op.seq)
    )


def _apply_snapshot(connection: sqlite3.Connection, op: SnapshotOp) -> None:
    key, commit_no = op.key, op.commit_no
    connection.execute(
        "INSERT OR REPLACE INTO snapshots VALUES (?, ?)", (key, seal(op.record.pack(), key))
    )
    folded = "SELECT seq FROM commits WHERE key = ? AND commit_no <= ?"
    connection.execute(f"DELETE FROM calls WHERE seq IN ({folded})", (key, commit_no))
    if not op.keep_inputs:
        connection.execute(f"DELETE FROM inputs WHERE seq IN ({folded})", (key, commit_no))
        connection.execute(f"DELETE FROM outputs WHERE seq IN ({folded})", (key, commit_no))
    connection.execute("DELETE FROM commits WHERE key = ? AND commit_no <= ?", (key, commit_no))


def _apply_meta(connection: sqlite3.Connection, op: MetaOp) -> None:
    connection.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (op.name, op.value))


_APPLY: dict[type, Callable[[sqlite3.Connection, Any], None]] = {
    InputOp: _apply_input,
    CallOp: _apply_call,
    CommitOp: _apply_commit,
    FailOp: _apply_fail,
    SnapshotOp: _apply_snapshot,
    MetaOp: _apply_meta,
}

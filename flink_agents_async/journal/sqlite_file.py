"""The journal's files on disk: how one is created, recognised, checked and read.

A journal directory holds ``journal.sqlite3`` (SQLite in WAL mode, with its ``-wal`` and
``-shm`` files), ``journal.lock`` (see ``lock``) and ``journal.commits``. Nothing here writes to
a file before it is known to be a journal of this project:

* **Creation is atomic.** A new journal is built in ``journal.sqlite3.new`` (schema, marker and
  counters in one transaction) and renamed into place, so a crash during creation never leaves
  a half-made journal under the real name.
* **Recognition is read-only.** An existing file is first checked by its header, then opened
  with ``mode=ro`` (no WAL switch, no schema changes, no checkpoint on close), so a foreign or
  damaged file is refused exactly as it was found.
* **Committed writes cannot silently vanish.** Every write group increments a counter in the
  ``meta`` table, and after it commits the writer records the counter in ``journal.commits``.
  A database that counts fewer groups than that file lost committed writes (a missing,
  truncated or damaged ``-wal`` file); a database whose last runtime did not close it cleanly,
  found without ``journal.commits``, may have (a copy of the main file alone). Both are refused,
  naming the files, instead of running committed work again.
* **Records carry checksums.** Every record is stored with a CRC-32 over its row's identity and
  bytes, so a damaged page is reported instead of being replayed as a different value.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import JournalError
from .records import INPUT_ACCEPTED, INPUT_COMMITTED, INPUT_FAILED
from .store import StoredJournal

__all__ = [
    "COMMITS_FILE",
    "JOURNAL_FILE",
    "SCHEMA_VERSION",
    "CommitCounter",
    "FileState",
    "check_header",
    "create_journal",
    "describe_sqlite_error",
    "inspect",
    "open_read_only",
    "read_rows",
    "seal",
]

JOURNAL_FILE = "journal.sqlite3"
COMMITS_FILE = "journal.commits"
MAGIC = b"flink-agents-async journal"
SCHEMA_VERSION = 2
_SQLITE_HEADER = b"SQLite format 3\x00"

TABLES = {
    "meta": "CREATE TABLE meta (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
    "inputs": "CREATE TABLE inputs (seq INTEGER PRIMARY KEY, key BLOB NOT NULL, "
    "status INTEGER NOT NULL, record BLOB NOT NULL)",
    "calls": "CREATE TABLE calls (seq INTEGER NOT NULL, slot INTEGER NOT NULL, "
    "record BLOB NOT NULL, PRIMARY KEY (seq, slot)) WITHOUT ROWID",
    "commits": "CREATE TABLE commits (seq INTEGER PRIMARY KEY, commit_no INTEGER NOT NULL, "
    "key BLOB NOT NULL, record BLOB NOT NULL)",
    "outputs": "CREATE TABLE outputs (seq INTEGER PRIMARY KEY, commit_no INTEGER NOT NULL, "
    "key BLOB NOT NULL, record BLOB NOT NULL)",
    "failures": "CREATE TABLE failures (seq INTEGER PRIMARY KEY, key BLOB NOT NULL, "
    "record BLOB NOT NULL)",
    "snapshots": "CREATE TABLE snapshots (key BLOB PRIMARY KEY, record BLOB NOT NULL)",
}
_INDEXES = ("CREATE INDEX commits_by_key ON commits (key, commit_no)",)

# -- errors ------------------------------------------------------------------------------------

_CAUSES = (
    ("SQLITE_FULL", "the disk is full"),
    ("SQLITE_READONLY", "the file or its directory is read-only"),
    ("SQLITE_BUSY", "another process holds a lock on the database"),
    ("SQLITE_LOCKED", "another connection holds a lock on the database"),
    ("SQLITE_PERM", "permission denied"),
    ("SQLITE_CANTOPEN", "the file cannot be opened (its directory, permissions, open files)"),
    ("SQLITE_IOERR", "an I/O error"),
    ("SQLITE_CORRUPT", "the file is damaged"),
    ("SQLITE_NOTADB", "the file is damaged or not an SQLite database"),
    ("SQLITE_TOOBIG", "a record is too big"),
)


def describe_sqlite_error(error: BaseException, directory: Path) -> str:
    """What went wrong, in words, with SQLite's own code and message (and the free space left
    when a write failed, which is what a full disk usually looks like)."""
    name = getattr(error, "sqlite_errorname", None) or type(error).__name__
    cause = next((words for prefix, words in _CAUSES if name.startswith(prefix)), None)
    text = f"{name}: {error}" if cause is None else f"{cause} ({name}: {error})"
    if name.startswith(("SQLITE_FULL", "SQLITE_IOERR")):
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(directory).free
            text += f"; {free:,} bytes free on its disk"
    return text


def is_damage(error: BaseException) -> bool:
    """Whether an SQLite error says the file itself is bad (not the disk, a lock, rights)."""
    name = getattr(error, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))


# -- checksums ---------------------------------------------------------------------------------


def _crc(record: bytes, context: tuple[int | bytes, ...]) -> int:
    crc = 0
    for part in context:
        data = part if isinstance(part, bytes) else part.to_bytes(8, "big", signed=True)
        crc = zlib.crc32(data, crc)
    return zlib.crc32(record, crc)


def seal(record: bytes, *context: int | bytes) -> bytes:
    """``record`` with a CRC-32 over the row's identity (``context``) and the record."""
    return record + _crc(record, context).to_bytes(4, "big")


def unseal(blob: Any, context: tuple[int | bytes, ...], what: str) -> bytes:
    """The record of a sealed blob; raises ``JournalError`` if the checksum does not match."""
    if type(blob) is not bytes or len(blob) < 4:
        raise JournalError(f"{what} is damaged (not a sealed record)")
    record = blob[:-4]
    if int.from_bytes(blob[-4:], "big") != _crc(record, context):
        raise JournalError(f"{what} fails its checksum: the file is damaged")
    return record


# -- the commit counter ------------------------------------------------------------------------


class CommitCounter:
    """``journal.commits``: the number of write groups known to be committed, rewritten in
    place after each group (never ahead of the database, so it can only be behind it)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / COMMITS_FILE
        self._fd: int | None = None

    def read(self) -> int | None:
        """The recorded count, or None when the file does not exist."""
        try:
            text = self.path.read_bytes().decode("ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            raise JournalError(f"{self.path} cannot be read: {error}") from error
        if not text.isdigit():
            raise JournalError(
                f"{self.path} is damaged (it should hold a count of commits, not {text[:40]!r})"
            )
        return int(text)

    def start(self, value: int) -> None:
        """Open the file for updates and record ``value`` durably."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self._fd = fd
        self.update(value)
        os.fsync(fd)

    def update(self, value: int) -> None:
        if self._fd is not None:
            os.pwrite(self._fd, f"{value:020d}\n".encode(), 0)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


# -- recognising a file ------------------------------------------------------------------------


@dataclass
class FileState:
    """What a journal's ``meta`` table says about it."""

    meta: dict[str, bytes]
    commits: int  # write groups committed so far
    closed: bool  # the last runtime closed it cleanly


def check_header(path: Path) -> None:
    """Refuse an empty file or one that is not SQLite at all, before SQLite opens it."""
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except OSError as error:
        raise JournalError(f"{path} cannot be read: {error}") from error
    if not header:
        raise JournalError(
            f"{path} is empty (0 bytes): the journal's contents are lost, or it was never "
            "written. Move it away (with any -wal file beside it) to start a new journal"
        )
    if header != _SQLITE_HEADER:
        raise JournalError(
            f"{path} is not an SQLite database, so not a flink-agents-async journal (it starts "
            f"with {header!r}); point journal_dir elsewhere, or move the file away"
        )


def open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot change the file: no WAL switch, no checkpoint on close."""
    uri = f"file:{quote(str(path))}?mode=ro"
    return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)


def inspect(connection: sqlite3.Connection, path: Path) -> FileState:
    """Check that ``connection`` reads a complete journal of this version; its state."""
    tables = {
        row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    if "meta" not in tables:
        listed = ", ".join(sorted(tables)) or "none"
        raise JournalError(
            f"{path} is an SQLite database but not a flink-agents-async journal (tables: "
            f"{listed}); point journal_dir elsewhere"
        )
    meta = {
        str(name): value if type(value) is bytes else str(value).encode()
        for name, value in connection.execute("SELECT name, value FROM meta")
    }
    if meta.get("format") != MAGIC:
        raise JournalError(f"{path} is not a flink-agents-async journal (its meta table is not)")
    schema = meta.get("schema", b"1").decode("ascii", "replace")
    if schema != str(SCHEMA_VERSION):
        raise JournalError(
            f"{path} is a journal of schema {schema}; this version of flink-agents-async reads "
            f"schema {SCHEMA_VERSION}: finish it with the version that wrote it, or move it away"
        )
    missing = sorted(set(TABLES) - tables)
    if missing:
        raise JournalError(f"{path} is damaged: its tables {', '.join(missing)} are missing")
    mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    if str(mode).lower() != "wal":
        raise JournalError(f"{path} is damaged: it is not in WAL mode (journal_mode={mode})")
    commits = meta.get("commits", b"")
    if not commits.isdigit():
        raise JournalError(f"{path} is damaged: its commit counter reads {commits[:40]!r}")
    return FileState(meta, int(commits), meta.get("state") == b"closed")


def create_journal(path: Path) -> None:
    """Create an empty journal at ``path`` atomically (built aside, then renamed)."""
    building = path.with_name(path.name + ".new")
    for leftover in _with_sidecars(building):  # of a creation that was interrupted
        leftover.unlink(missing_ok=True)
    connection = sqlite3.connect(building, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("BEGIN IMMEDIATE")
        for statement in (*TABLES.values(), *_INDEXES):
            connection.execute(statement)
        connection.executemany(
            "INSERT INTO meta VALUES (?, ?)",
            [
                ("format", MAGIC),
                ("schema", str(SCHEMA_VERSION).encode()),
                ("commits", b"0"),
                ("state", b"closed"),
            ],
        )
        connection.execute("COMMIT")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()  # the last connection: the WAL is checkpointed and removed
    _fsync(building)
    os.replace(building, path)
    _fsync(path.parent)


def _with_sidecars(path: Path) -> list[Path]:
    return [path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- reading rows ------------------------------------------------------------------------------


def read_rows(connection: sqlite3.Connection, path: Path) -> StoredJournal:
    """Every row, with checksums verified and the inputs' statuses checked against the
    commit and failure records they stand for."""
    reader = _RowReader(connection, path)
    stored = StoredJournal(
        calls=reader.rows("calls", "seq, slot, record", (int, int), lambda seq, slot: (seq, slot)),
        commits=reader.rows(
            "commits",
            "seq, commit_no, key, record",
            (int, int, bytes),
            _numbered_context,
            order="commit_no",
        ),
        outputs=reader.rows(
            "outputs",
            "seq, commit_no, key, record",
            (int, int, bytes),
            _numbered_context,
            order="commit_no",
        ),
        failures=reader.rows("failures", "seq, key, record", (int, bytes), _keyed_context),
        snapshots=reader.rows("snapshots", "key, record", (bytes,), lambda key: (key,)),
    )
    committed = {row[0] for row in stored.outputs}
    failed = {row[0] for row in stored.failures}
    for seq, key, status, record in reader.rows(
        "inputs", "seq, key, status, record", (int, bytes, int), _input_context
    ):
        expected = (
            INPUT_COMMITTED
            if seq in committed
            else INPUT_FAILED
            if seq in failed
            else INPUT_ACCEPTED
        )
        if status != expected:
            raise JournalError(
                f"{path} is damaged: input {seq} has status {status}, but its records say "
                f"{expected}"
            )
        stored.inputs.append((seq, key, status, record))
    stored.meta = {
        str(name): value if type(value) is bytes else str(value).encode()
        for name, value in connection.execute("SELECT name, value FROM meta")
    }
    return stored


def _numbered_context(seq: int, commit_no: int, key: bytes) -> tuple[int | bytes, ...]:
    return (seq, commit_no, key)


def _keyed_context(seq: int, key: bytes) -> tuple[int | bytes, ...]:
    return (seq, key)


def _input_context(seq: int, key: bytes, status: int) -> tuple[int | bytes, ...]:
    return (seq, key)  # the status changes in place; it is checked against the records


class _RowReader:
    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self.connection = connection
        self.path = path

    def rows(
        self,
        table: str,
        columns: str,
        types: tuple[type, ...],
        context: Callable[..., tuple[int | bytes, ...]],
        order: str | None = None,
    ) -> list[Any]:
        """The rows of ``table``: the leading columns checked against ``types``, the last
        (the record) unsealed."""
        order = order or columns.split(",")[0]
        result = []
        for row in self.connection.execute(f"SELECT {columns} FROM {table} ORDER BY {order}"):
            *fields, blob = row
            where = f"{self.path}: row {tuple(fields)!r:.80} of table {table}"
            for value, expected in zip(fields, types, strict=True):
                if type(value) is not expected:
                    raise JournalError(
                        f"{where} is damaged: a column holds a {type(value).__name__}, not "
                        f"a {expected.__name__}"
                    )
            record = unseal(blob, context(*fields), where)
            result.append((*fields, record))
        return result

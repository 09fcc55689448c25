"""One runtime per journal: an exclusive OS lock on the journal directory.

Two runtimes on one journal would number inputs from the same sequence and overwrite each
other's records, so the durable store takes ``flock(LOCK_EX)`` on ``journal.lock`` before it
reads or writes anything, and holds it until it closes. ``flock`` belongs to the open file, so a
second environment of the same process is refused as surely as another process, and the lock
goes away with the process that held it: a killed runtime leaves no stale lock behind.

The holder writes who it is (pid, host, start time, command) into the file, so that the error a
second opener gets names the runtime in its way. (Local file systems only: ``flock`` is not
reliable over NFS.)
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
import sys
from pathlib import Path

from ..errors import JournalError, JournalLockedError

__all__ = ["LOCK_FILE", "JournalLock"]

LOCK_FILE = "journal.lock"
_HOLDER_BYTES = 4096


class JournalLock:
    """The exclusive lock of one journal directory, held from ``acquire`` to ``release``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise ``JournalLockedError`` naming whoever holds it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise JournalError(f"cannot open the journal lock {self.path}: {error}") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise JournalLockedError(
                f"the journal {self.directory} is in use by another runtime ({holder}); one "
                "journal serves one runtime at a time: stop that runtime first, or give this "
                "one another journal_dir"
            ) from None
        except OSError as error:
            os.close(fd)
            raise JournalError(f"cannot lock the journal {self.path}: {error}") from error
        _write_holder(fd)
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock. The file stays: removing it could let two openers lock two
        different files of the same name."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the file releases the flock


def _write_holder(fd: int) -> None:
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    command = " ".join(sys.argv)[:200] or "python"
    text = f"pid {os.getpid()} on {socket.gethostname()}, since {started}: {command}\n"
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode("utf-8", "replace"), 0)
    except OSError:
        pass  # only a description for error messages; the lock itself is what counts


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, _HOLDER_BYTES, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    if not text:
        return "holder unknown"
    if text.startswith(f"pid {os.getpid()} "):
        return f"this process: {text}"
    return text

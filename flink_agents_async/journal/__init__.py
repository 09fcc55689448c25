"""The msgpack journal: codec, records, stores, and the runtime's ``Journal``.

Durable calls, accepted inputs and committed runs are recorded here so that a crashed run is
re-executed with its recorded side effects replayed instead of repeated.
"""

from .codec import Codec, JournalEncodeError
from .journal import Journal
from .ops import CallOp, CommitOp, FailOp, InputOp, MetaOp, Op, SnapshotOp
from .records import FORMAT_VERSION, InputStatus
from .recovery import RecoveredJournal
from .replay import RunRecorder
from .sqlite import DURABILITY_MODES, SQLiteJournalStore
from .store import Ack, Durability, JournalStore, MemoryJournalStore, StoredJournal

__all__ = [
    "DURABILITY_MODES",
    "FORMAT_VERSION",
    "Ack",
    "CallOp",
    "Codec",
    "CommitOp",
    "Durability",
    "FailOp",
    "InputOp",
    "InputStatus",
    "Journal",
    "JournalEncodeError",
    "JournalStore",
    "MemoryJournalStore",
    "MetaOp",
    "Op",
    "RecoveredJournal",
    "RunRecorder",
    "SQLiteJournalStore",
    "SnapshotOp",
    "StoredJournal",
]

"""The host API: everything a host (the local one in ``flink_agents_async.local``, the Flink
bridge in ``bridge``, or a third one registered under the ``flink_agents_async.hosts`` entry
points) uses of the core. Hosts import the core from here only; the layer check in the test
suite holds them to it.

A host builds a ``Journal`` over its ``JournalStore`` (``journal_from_config``), runs a
``RuntimeLifecycle`` (open, recover, feed, drain, close) and feeds its ``ActorSystem``:
``dispatch`` (waits for room by the ``Admission`` rule) or ``deliver`` (for a host that keeps
later inputs itself), and learns what happened through ``HostHooks`` and ``OutputHub``.
"""

from ._core.actor import Settled, settles
from ._core.admission import Admission
from ._core.awaiting import MustAwait, loop_is_running
from ._core.failures import error_to_raise, in_input_order
from ._core.host_hooks import NO_HOOKS, HostHooks, OutputSink
from ._core.idle_keys import IdleKeys
from ._core.lifecycle import RuntimeLifecycle
from ._core.outputs import OVERFLOW_POLICIES, OutputHub, OutputStream
from ._core.settings import RuntimeSettings
from ._core.system import ActorSystem
from .journal import (
    Codec,
    Journal,
    JournalStore,
    MemoryJournalStore,
    RecoveredJournal,
    SQLiteJournalStore,
    StoredJournal,
)
from .journal.configured import journal_from_config
from .journal.ops import CallOp, CommitOp, FailOp, InputOp, MetaOp, Op, SnapshotOp
from .journal.records import INPUT_ACCEPTED, item_digest
from .journal.store import DONE, Ack

__all__ = [
    "DONE",
    "INPUT_ACCEPTED",
    "NO_HOOKS",
    "OVERFLOW_POLICIES",
    "Ack",
    "ActorSystem",
    "Admission",
    "CallOp",
    "Codec",
    "CommitOp",
    "FailOp",
    "HostHooks",
    "IdleKeys",
    "InputOp",
    "Journal",
    "JournalStore",
    "MemoryJournalStore",
    "MetaOp",
    "MustAwait",
    "Op",
    "OutputHub",
    "OutputSink",
    "OutputStream",
    "RecoveredJournal",
    "RuntimeLifecycle",
    "RuntimeSettings",
    "SQLiteJournalStore",
    "Settled",
    "SnapshotOp",
    "StoredJournal",
    "error_to_raise",
    "in_input_order",
    "item_digest",
    "journal_from_config",
    "loop_is_running",
    "settles",
]

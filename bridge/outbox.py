"""What a key's runs hand back to the Flink thread, in order: the keyed-state writes the loop
side produced (see ``host.OutboxStore``), applied by the Flink thread in the key's own calls."""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

__all__ = ["CallWritten", "Outbox", "OutboxEntry", "RunDone", "SnapshotWritten"]


class SnapshotWritten(NamedTuple):
    """A commit rewrote the key's snapshot (``fa_snapshot``): a packed ``SnapshotRecord``."""

    snapshot: bytes


class CallWritten(NamedTuple):
    """A durable call slot of the running input was recorded (``fa_calls``)."""

    slot: int
    record: bytes


class RunDone(NamedTuple):
    """The input's run ended: committed with ``outputs``, or failed for good with ``error``."""

    outputs: list[Any] | None
    error: BaseException | None


OutboxEntry = SnapshotWritten | CallWritten | RunDone
Outbox = deque[OutboxEntry]

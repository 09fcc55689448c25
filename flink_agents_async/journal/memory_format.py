"""How a key's short-term memory is written in the journal: a snapshot is
``[values, objects, TTL stamps]``, each encoded by the ``Codec``."""

from __future__ import annotations

from typing import Any

from ..memory import MemoryStore, MemoryType
from .codec import Codec

__all__ = ["memory_from", "memory_state"]


def memory_state(memory: MemoryStore | None, *, pending: bool = False) -> list[Any]:
    """A key's memory as a snapshot records it: [values, objects, TTL stamps]."""
    if memory is None:
        return [{}, {}, {}]
    values, objects = memory.snapshot(pending=pending)
    return [values, objects, memory.stamps(pending=pending)]


def memory_from(codec: Codec, encoded: bytes) -> tuple[MemoryStore, dict[str, float]]:
    """A key's memory and its TTL stamps from an encoded snapshot."""
    values, objects, stamps = codec.decode(encoded, "a memory snapshot")
    return MemoryStore.from_snapshot(MemoryType.SHORT_TERM, values, objects), stamps

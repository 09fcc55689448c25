"""The typed records between the core and the journal: a commit goes one way (the core hands
the journal a ``RunCommit``; the journal never sees an actor), and a key comes back from the
journal as a ``StoredKey``."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, NamedTuple

from ..memory import MemoryStore

__all__ = ["EncodedCommit", "KeyState", "RunCommit", "StoredKey"]


class KeyState(NamedTuple):
    """A key as the journal records it: who it is, and its short-term memory (None while the
    key never used it). The memory is the key's live store, read for its committed state."""

    key: Hashable
    key_bytes: bytes
    memory: MemoryStore | None


class RunCommit(NamedTuple):
    """A run that ended without failure: input ``seq``, run number ``run`` of the key (named as
    in ``KeyState``: one flat record, as one is made per run), its outputs, and how many
    durable call slots it recorded."""

    seq: int
    key: Hashable
    key_bytes: bytes
    memory: MemoryStore | None
    run: int
    outputs: list[Any]
    calls: int


EncodedCommit = tuple[bytes, bytes]
"""A commit's memory (its delta, or the whole memory for a store that keeps snapshots) and its
outputs as codec bytes, encoded before the memory commits."""


class StoredKey(NamedTuple):
    """What a store kept of a key, to bring its actor back: its committed memory, the TTL
    stamps of its values and the number of runs it started."""

    memory: MemoryStore
    stamps: dict[str, float]
    runs: int

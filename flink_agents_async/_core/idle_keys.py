"""Idle keys: the one eviction policy of every host.

A key with nothing to do (no run, nothing queued) is remembered here, the one idle longest
first. A host evicts the keys that were idle longer than ``idle_timeout`` seconds (the local
service's passivation) or, beyond ``max_idle`` idle keys, the one idle longest (the Flink
bridge, whose state lives in keyed state anyway). Either way memory grows with the keys in use,
not with every key ever seen. What eviction does (save a snapshot, drop the actor) is the host's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

__all__ = ["IdleKeys"]

V = TypeVar("V")


class IdleKeys(Generic[V]):
    """Idle keys, each with what the host keeps of it (``V``), oldest first."""

    def __init__(self, *, idle_timeout: float | None = None, max_idle: int | None = None) -> None:
        if idle_timeout is not None and idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, got {idle_timeout}")
        if max_idle is not None and max_idle < 0:
            raise ValueError(f"max_idle must not be negative, got {max_idle}")
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self._since: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._since)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._since

    def went_idle(self, key: Hashable, kept: V, now: float = 0.0) -> list[tuple[Hashable, V]]:
        """``key`` has nothing to do from ``now`` on; returns the keys to evict at once (those
        beyond ``max_idle``, oldest first)."""
        self._since[key] = (now, kept)
        self._since.move_to_end(key)
        if self.max_idle is None or len(self._since) <= self.max_idle:
            return []
        evicted = []
        while len(self._since) > self.max_idle:
            oldest, (_, oldest_kept) = self._since.popitem(last=False)
            evicted.append((oldest, oldest_kept))
        return evicted

    def woke(self, key: Hashable) -> V | None:
        """``key`` has work again: forget it here, returning what was kept of it."""
        entry = self._since.pop(key, None)
        return None if entry is None else entry[1]

    def expired(self, now: float) -> list[tuple[Hashable, V]]:
        """Take every key idle for ``idle_timeout`` seconds or more by ``now``."""
        timeout = self.idle_timeout
        if timeout is None:
            return []
        taken = []
        while self._since:
            key, (since, kept) = next(iter(self._since.items()))
            if since + timeout > now:
                break
            del self._since[key]
            taken.append((key, kept))
        return taken

    def next_due(self, now: float) -> float | None:
        """Seconds from ``now`` until the oldest idle key expires (None: none will)."""
        if self.idle_timeout is None or not self._since:
            return None
        since, _ = next(iter(self._since.values()))
        return max(0.0, since + self.idle_timeout - now)

    def clear(self) -> None:
        self._since.clear()

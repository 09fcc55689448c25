"""The transactional store behind a memory: a tree of objects addressed by dot-separated paths.

It is kept flat: one dict from the full path of every field to either a value or an
``_ObjectNode`` that lists the names of its children. Flat keys make each write touch exactly one
entry, which is what a run needs to be atomic: while a run is open, writes go to an *overlay*
dict that reads consult first. Commit folds the overlay into the base and hands it back as the
run's delta (what a journal records); rollback drops it, leaving the key exactly as before the
run. Values may expire (short-term memory TTL); ``owned_copy`` checks and copies what is stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

from pydantic import BaseModel

from .memory_ref import MemoryRef, MemoryType, reference
from .values import SCALAR_TYPES

__all__ = [
    "DELETED",
    "NESTED_OBJECT",
    "ROOT_PATH",
    "MemoryStore",
    "ObjectAt",
    "join_path",
    "owned_copy",
    "split_delta",
    "validate_path",
]


class ObjectAt(NamedTuple):
    """What ``MemoryStore.get`` returns for a nested object: its path (a view makes a
    ``MemoryObject`` of it)."""

    path: str


class _ObjectNode:
    """A nested object: the ordered names of its children (a dict used as an ordered set)."""

    __slots__ = ("children",)

    def __init__(self, children: dict[str, None] | None = None) -> None:
        self.children: dict[str, None] = children if children is not None else {}

    def with_child(self, name: str) -> _ObjectNode:
        # Copy-on-write, so that a rolled-back run leaves the committed node untouched.
        children = dict(self.children)
        children[name] = None
        return _ObjectNode(children)

    def __repr__(self) -> str:
        return f"_ObjectNode({list(self.children)})"


_MISSING: Any = object()
_DELETED: Any = object()
DELETED: Any = _DELETED
"""Marks a path removed in a delta returned by ``MemoryStore.commit`` (a value may be None)."""
ROOT_PATH = ""
NESTED_OBJECT = "NestedObject"
"""What ``get_fields()`` shows for a nested object, as upstream does in every release."""
_CONTAINER_TYPES = (list, dict)
_MAX_DEPTH = 100

_CONVERSION_HINTS: dict[str, str] = {
    "tuple": "convert it with list(value)",
    "set": "convert it with sorted(value) or list(value)",
    "frozenset": "convert it with sorted(value) or list(value)",
    "datetime": "store value.isoformat() and parse it back when reading",
    "date": "store value.isoformat() and parse it back when reading",
    "time": "store value.isoformat() and parse it back when reading",
    "UUID": "store str(value)",
    "Decimal": "store str(value) (or float(value) if precision does not matter)",
    "bytearray": "convert it with bytes(value)",
    "MemoryObject": "do not store a MemoryObject; create nested objects with new_object(path)",
}


def _conversion_hint(value: Any) -> str:
    from enum import Enum

    type_name = type(value).__name__
    if type_name in _CONVERSION_HINTS:
        return _CONVERSION_HINTS[type_name]
    if isinstance(value, BaseModel):
        return "store value.model_dump() (a dict) and rebuild the model when reading"
    if isinstance(value, Enum):
        return "store value.value"
    if hasattr(value, "__dataclass_fields__"):
        return "store dataclasses.asdict(value) and rebuild it when reading"
    return "convert it to None, bool, int, float, str, bytes, a list or a dict with str keys"


def owned_copy(value: Any, path: str, _open: set[int] | None = None) -> Any:
    """Validate a memory value and return a copy the memory can own.

    Values must be recursively None/bool/int/float/str/bytes, lists, or dicts with str keys.
    Copying detaches the stored value from the caller's object, so a later mutation of that
    object cannot change memory behind the run's back.
    """
    value_type = type(value)
    if value_type in SCALAR_TYPES:
        return value
    if value_type is not list and value_type is not dict:
        raise TypeError(
            f"memory value at {path} has type {value_type.__module__}.{value_type.__qualname__}, "
            f"which is not checkpoint-stable (memory cannot hold it): {_conversion_hint(value)}"
        )
    # The containers being copied above this one: meeting one again means a cycle.
    open_containers = _open if _open is not None else set()
    if id(value) in open_containers:
        raise TypeError(
            f"memory value at {path} contains itself (a reference cycle), which memory cannot "
            "hold: store a copy without the cycle"
        )
    if len(open_containers) >= _MAX_DEPTH:
        raise TypeError(
            f"memory value at {path} is nested more than {_MAX_DEPTH} levels deep; flatten it"
        )
    open_containers.add(id(value))
    try:
        if value_type is list:
            return [
                owned_copy(item, f"{path}[{index}]", open_containers)
                for index, item in enumerate(value)
            ]
        copied = {}
        for field, item in value.items():
            if type(field) is not str:
                raise TypeError(
                    f"memory value at {path} has a non-str key {field!r} "
                    f"({type(field).__name__}); memory dict keys must be str: convert the key "
                    "with str(key)"
                )
            copied[field] = owned_copy(item, f"{path}[{field!r}]", open_containers)
        return copied
    finally:
        open_containers.discard(id(value))


def _detached(value: Any) -> Any:
    """A copy of a stored value for a reader, so that mutating it cannot change memory."""
    value_type = type(value)
    if value_type is list:
        return [_detached(item) for item in value]
    if value_type is dict:
        return {field: _detached(item) for field, item in value.items()}
    return value


def join_path(prefix: str, path: str) -> str:
    return f"{prefix}.{path}" if prefix else path


def validate_path(path: Any, operation: str) -> str:
    if type(path) is not str:
        raise TypeError(
            f"memory {operation}() takes a dot-separated str path or a MemoryRef, "
            f"got {type(path).__name__} {path!r}"
        )
    if not path or (("." in path) and any(not part for part in path.split("."))):
        raise ValueError(
            f"memory path {path!r} passed to {operation}() is not a valid dot-separated path: "
            "it must be non-empty and have no empty segments (like 'a..b' or '.a')"
        )
    return path


class MemoryStore:
    """The flat backing store of one memory (sensory or short-term) of one key.

    ``begin()`` opens a transaction: writes go to an overlay until ``commit()`` folds them in (and
    returns them as the delta) or ``rollback()`` drops them.
    """

    __slots__ = ("_base", "_overlay", "_ttl", "memory_type")

    def __init__(self, memory_type: MemoryType, entries: dict[str, Any] | None = None) -> None:
        self.memory_type = memory_type
        self._base: dict[str, Any] = entries if entries is not None else {ROOT_PATH: _ObjectNode()}
        self._overlay: dict[str, Any] | None = None
        self._ttl: _Expiry | None = None

    def expire_after(
        self,
        seconds: float,
        *,
        refresh_on_read: bool = False,
        clock: Callable[[], float] = time.time,
        stamps: dict[str, float] | None = None,
    ) -> None:
        """Let values expire ``seconds`` after they were last written (or read, with
        ``refresh_on_read``); an expired value reads as absent."""
        previous = self._ttl.stamps if self._ttl is not None else {}
        self._ttl = _Expiry(seconds, refresh_on_read, clock, {**previous, **(stamps or {})})

    def _expired(self, path: str) -> bool:
        ttl = self._ttl
        return ttl is not None and ttl.expired(path)

    # -- transactions -----------------------------------------------------------------------

    def begin(self) -> None:
        self._overlay = {}
        if self._ttl is not None:
            self._ttl.begin()

    def commit(self) -> dict[str, Any]:
        """Fold the open transaction into the base; returns its writes (``DELETED`` = removed)."""
        overlay, self._overlay = self._overlay or {}, None
        if self._ttl is not None:
            self._ttl.commit()
        base = self._base
        for path, entry in overlay.items():
            if entry is _DELETED:
                base.pop(path, None)
            else:
                base[path] = entry
        return overlay  # the writes, deletions as ``DELETED``: the delta

    def rollback(self) -> None:
        self._overlay = None
        if self._ttl is not None:
            self._ttl.rollback()

    def clear(self) -> None:
        self._base = {ROOT_PATH: _ObjectNode()}
        self._overlay = None

    def is_empty(self) -> bool:
        root = self._lookup(ROOT_PATH)
        return not root.children

    # -- raw entry access -------------------------------------------------------------------

    def _lookup(self, path: str) -> Any:
        overlay = self._overlay
        if overlay is not None:
            entry = overlay.get(path, _MISSING)
            if entry is not _MISSING:
                return _MISSING if entry is _DELETED else entry
        return self._base.get(path, _MISSING)

    def _present(self, path: str) -> Any:
        """The entry at ``path``, with an expired value counting as absent."""
        entry = self._lookup(path)
        ttl = self._ttl
        if ttl is not None and entry is not _MISSING and not isinstance(entry, _ObjectNode):
            return _MISSING if ttl.expired(path) else entry
        return entry

    def _write(self, path: str, entry: Any) -> None:
        target = self._overlay if self._overlay is not None else self._base
        target[path] = entry

    def _delete_subtree(self, path: str) -> None:
        entry = self._lookup(path)
        if isinstance(entry, _ObjectNode):
            for child in entry.children:
                self._delete_subtree(join_path(path, child))
        if self._overlay is not None:
            self._overlay[path] = _DELETED
        else:
            self._base.pop(path, None)

    def _ensure_parents(self, path: str) -> None:
        """Create the missing objects above ``path`` and register it with its parent."""
        parent, _, name = path.rpartition(".")
        parent_entry = self._present(parent)
        if parent_entry is _MISSING:
            self._ensure_parents(parent)
            parent_entry = _ObjectNode()
        elif not isinstance(parent_entry, _ObjectNode):
            raise ValueError(
                f"cannot write memory path {path!r}: {parent!r} holds a value, not an object; "
                f"use new_object({parent!r}, overwrite=True) to replace it with an object"
            )
        if name not in parent_entry.children:
            self._write(parent, parent_entry.with_child(name))

    # -- operations used by MemoryObject ----------------------------------------------------

    def get(self, path: str) -> Any:
        entry = self._lookup(path)
        if entry is _MISSING:
            return None
        if isinstance(entry, _ObjectNode):
            return ObjectAt(path)
        ttl = self._ttl
        if ttl is not None:
            if ttl.expired(path):
                return None
            if ttl.refresh_on_read:
                ttl.touch(path)
        return _detached(entry) if type(entry) in _CONTAINER_TYPES else entry

    def set(self, path: str, value: Any) -> MemoryRef:
        stored = value if type(value) in SCALAR_TYPES else owned_copy(value, repr(path))
        existing = self._present(path)
        if isinstance(existing, _ObjectNode):
            raise ValueError(
                f"cannot set memory path {path!r} to a value: it holds a nested object; use "
                f"new_object({path!r}, overwrite=True) first if you mean to replace the object"
            )
        if existing is _MISSING:
            self._ensure_parents(path)
        self._write(path, stored)
        if self._ttl is not None:
            self._ttl.touch(path)
        return reference(self.memory_type, path)

    def new_object(self, path: str, overwrite: bool) -> None:
        existing = self._present(path)
        if existing is not _MISSING:
            if not overwrite:
                kind = "an object" if isinstance(existing, _ObjectNode) else "a value"
                raise ValueError(
                    f"cannot create a memory object at {path!r}: it already holds {kind}; "
                    "pass overwrite=True to replace it"
                )
            self._delete_subtree(path)
        else:
            self._ensure_parents(path)
        self._write(path, _ObjectNode())

    def exists(self, path: str) -> bool:
        return self._lookup(path) is not _MISSING and not self._expired(path)

    def children(self, path: str) -> list[str]:
        # Sorted, as upstream does: the order then does not depend on how a host stores state.
        entry = self._lookup(path)
        if not isinstance(entry, _ObjectNode):
            return []
        names = sorted(entry.children)
        if self._ttl is None:
            return names
        return [name for name in names if not self._expired(join_path(path, name))]

    # -- snapshots (used by stores that persist a key's state) ------------------------------

    def snapshot(self, *, pending: bool = False) -> tuple[dict[str, Any], dict[str, list[str]]]:
        """The committed state as plain data: ``({path: value}, {object path: [children]})``
        (expired values left out). ``pending``: as it will be once the open transaction
        commits (so that a commit can be encoded, and refused, before it happens)."""
        values: dict[str, Any] = {}
        objects: dict[str, list[str]] = {}
        ttl = self._ttl  # every commit of a snapshot-keeping host takes this path
        entries = self._base
        if pending and self._overlay:
            entries = {**entries, **self._overlay}
        for path, entry in entries.items():
            if type(entry) is _ObjectNode:
                objects[path] = list(entry.children)
            elif entry is not _DELETED and (ttl is None or not ttl.expired(path)):
                values[path] = entry
        return values, objects

    def stamps(self, *, pending: bool = False) -> dict[str, float]:
        """When each value was last refreshed (for TTL), empty without a TTL; ``pending``:
        with the refreshes of the open transaction."""
        ttl = self._ttl
        if ttl is None:
            return {}
        if pending and ttl.pending:
            return {**ttl.stamps, **ttl.pending}
        return dict(ttl.stamps)

    def pending_delta(self) -> list[Any]:
        """The open transaction's writes as plain data, as ``split_delta`` gives a commit's
        delta: what the commit will record, encodable (and refusable) before it happens."""
        ttl = self._ttl
        stamps = dict(ttl.pending or {}) if ttl is not None else {}
        return split_delta(self._overlay or {}, stamps=stamps)

    def apply_delta(
        self,
        values: dict[str, Any],
        objects: dict[str, list[str]],
        deleted: list[str],
        stamps: dict[str, float] | None = None,
    ) -> None:
        """Apply a committed run's delta (see ``split_delta``) to the committed state."""
        base = self._base
        for path in deleted:
            base.pop(path, None)
        base.update(values)
        for path, children in objects.items():
            base[path] = _ObjectNode(dict.fromkeys(children))
        if stamps and self._ttl is not None:
            self._ttl.stamps.update(stamps)

    @classmethod
    def from_snapshot(
        cls, memory_type: MemoryType, values: dict[str, Any], objects: dict[str, list[str]]
    ) -> MemoryStore:
        entries: dict[str, Any] = dict(values)
        for path, children in objects.items():
            entries[path] = _ObjectNode(dict.fromkeys(children))
        entries.setdefault(ROOT_PATH, _ObjectNode())
        return cls(memory_type, entries)


class _Expiry:
    """The TTL bookkeeping of a memory: when each value path was last refreshed. Refreshes
    made during a run are kept apart and only count if the run commits."""

    __slots__ = ("clock", "committed", "pending", "refresh_on_read", "seconds", "stamps")

    def __init__(
        self,
        seconds: float,
        refresh_on_read: bool,
        clock: Callable[[], float],
        stamps: dict[str, float],
    ) -> None:
        self.seconds = seconds
        self.refresh_on_read = refresh_on_read
        self.clock = clock
        self.stamps = stamps
        self.pending: dict[str, float] | None = None
        self.committed: dict[str, float] = {}  # the refreshes of the last committed run

    def begin(self) -> None:
        self.pending = {}

    def commit(self) -> None:
        self.committed = self.pending or {}
        self.stamps.update(self.committed)
        self.pending = None

    def rollback(self) -> None:
        self.pending = None

    def touch(self, path: str) -> None:
        target = self.pending if self.pending is not None else self.stamps
        target[path] = self.clock()

    def expired(self, path: str) -> bool:
        stamp = None if self.pending is None else self.pending.get(path)
        if stamp is None:
            stamp = self.stamps.get(path)
        return stamp is not None and self.clock() - stamp > self.seconds


def split_delta(
    delta: dict[str, Any],
    store: MemoryStore | None = None,
    *,
    stamps: dict[str, float] | None = None,
) -> list[Any]:
    """A delta from ``MemoryStore.commit`` as plain data: [values, objects, deleted paths,
    TTL stamps of the written values] (``stamps`` given, or those of ``store``'s last
    commit)."""
    values: dict[str, Any] = {}
    objects: dict[str, list[str]] = {}
    deleted: list[str] = []
    for path, entry in delta.items():
        if entry is _DELETED:
            deleted.append(path)
        elif isinstance(entry, _ObjectNode):
            objects[path] = list(entry.children)
        else:
            values[path] = entry
    # Every TTL refresh of the run, by writes and (with refresh on read) by reads, so that
    # a recovered key expires when it would have.
    if stamps is None:
        ttl = store._ttl if store is not None else None
        stamps = dict(ttl.committed) if ttl is not None else {}
    return [values, objects, deleted, stamps]

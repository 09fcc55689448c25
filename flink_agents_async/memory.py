"""Sensory and short-term memory as actions see them: ``MemoryObject`` views and ``MemoryRef``
references, over a transactional ``MemoryStore`` (``memory_store``)."""

from __future__ import annotations

from typing import Any, Protocol

from ._guard import ensure_not_durable, running_durable_function
from .memory_ref import MemoryRef, MemoryType
from .memory_store import (
    DELETED,
    NESTED_OBJECT,
    ROOT_PATH,
    MemoryStore,
    ObjectAt,
    join_path,
    owned_copy,
    split_delta,
    validate_path,
)

__all__ = [
    "DELETED",
    "NESTED_OBJECT",
    "MemoryObject",
    "MemoryRef",
    "MemoryStore",
    "MemoryType",
    "owned_copy",
    "split_delta",
]


class Owner(Protocol):
    """What a memory view handed to an action belongs to (its run): it says whether the view
    may still be used here and now."""

    def check_usable(self, operation: str) -> None: ...


class MemoryObject:
    """A view of one object in a memory: read and write its fields by relative dotted path.

    Values are recursively None/bool/int/float/str/bytes, lists, or dicts with str keys; a value
    of any other type is rejected by ``set`` with a ``TypeError`` naming the path and how to
    convert it, and the memory is left unchanged.

    A view an action gets from its context belongs to that run: used after the run ended (by a
    task that outlived it) or from another thread, it raises instead of writing into whatever
    run the key is in by then.
    """

    __slots__ = ("_owner", "_prefix", "_store")

    def __init__(
        self, store: MemoryStore, prefix: str = ROOT_PATH, owner: Owner | None = None
    ) -> None:
        self._store = store
        self._prefix = prefix
        self._owner = owner

    def _view(self, value: Any) -> Any:
        """A value read from the store, with a nested object as a view of it that belongs to
        the same run as this one."""
        if type(value) is ObjectAt:
            return MemoryObject(self._store, value.path, self._owner)
        return value

    @property
    def memory_type(self) -> MemoryType:
        return self._store.memory_type

    def _absolute(self, path: str, operation: str) -> str:
        if type(path) is not str or not path or "." in path:  # else valid as it is
            validate_path(path, operation)
        prefix = self._prefix
        return f"{prefix}.{path}" if prefix else path

    def get(self, path_or_ref: str | MemoryRef) -> Any:
        """The value at a relative path (or a ``MemoryRef``): a value, a nested
        ``MemoryObject``, or ``None`` when nothing is there."""
        if running_durable_function() is not None:
            ensure_not_durable("reading memory")
        owner = self._owner
        if owner is not None:
            owner.check_usable("reading memory")
        if type(path_or_ref) is str and path_or_ref and "." not in path_or_ref and not self._prefix:
            value = self._store.get(path_or_ref)  # a field of the root: its own absolute path
        elif isinstance(path_or_ref, MemoryRef):
            if path_or_ref.memory_type != self._store.memory_type:
                raise ValueError(
                    f"{path_or_ref!r} points into {path_or_ref.memory_type.value} memory, "
                    f"not {self._store.memory_type.value} memory: use ref.resolve(ctx)"
                )
            value = self._store.get(validate_path(path_or_ref.path, "get"))
        else:
            value = self._store.get(self._absolute(path_or_ref, "get"))
        return self._view(value)

    def set(self, path: str, value: Any) -> MemoryRef:
        """Store ``value`` at a relative path, creating missing parent objects.

        Returns a ``MemoryRef`` to the field. A rejected value changes nothing.
        """
        if running_durable_function() is not None:
            ensure_not_durable("writing memory")
        if self._owner is not None:
            self._owner.check_usable("writing memory")
        if type(path) is str and path and "." not in path and not self._prefix:
            return self._store.set(path, value)  # a field of the root: its own absolute path
        return self._store.set(self._absolute(path, "set"), value)

    def new_object(self, path: str, *, overwrite: bool = False) -> MemoryObject:
        """Create a nested object at a relative path and return it.

        Raises ``ValueError`` if something is already there, unless ``overwrite=True``.
        """
        self._check("writing memory")
        absolute = self._absolute(path, "new_object")
        self._store.new_object(absolute, overwrite)
        return MemoryObject(self._store, absolute, self._owner)

    def is_exist(self, path: str) -> bool:
        """Whether a value or an object exists at a relative path."""
        self._check("reading memory")
        return self._store.exists(self._absolute(path, "is_exist"))

    def get_field_names(self) -> list[str]:
        """The names of this object's direct fields, sorted."""
        self._check("reading memory")
        return self._store.children(self._prefix)

    def get_fields(self) -> dict[str, Any]:
        """This object's direct fields: their values, and for a nested object upstream's
        marker ``"NestedObject"`` (read it with ``get(name)``; ``to_dict()`` copies it all)."""
        return {
            name: NESTED_OBJECT if isinstance(value, MemoryObject) else value
            for name, value in self._children().items()
        }

    def _children(self) -> dict[str, Any]:
        """The direct fields, nested objects as ``MemoryObject``."""
        self._check("reading memory")
        return {
            name: self._view(self._store.get(join_path(self._prefix, name)))
            for name in self._store.children(self._prefix)
        }

    def _check(self, operation: str) -> None:
        ensure_not_durable(operation)
        if self._owner is not None:
            self._owner.check_usable(operation)

    def to_dict(self) -> dict[str, Any]:
        """This object and everything below it as plain nested dicts (a detached copy)."""
        return {
            name: (value.to_dict() if isinstance(value, MemoryObject) else value)
            for name, value in self._children().items()
        }

    def __repr__(self) -> str:
        where = self._prefix or "<root>"
        return f"MemoryObject({self._store.memory_type.value}:{where})"

"""``MemoryRef``: a reference to a field of a memory, small enough to carry inside an event."""

from __future__ import annotations

import functools
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from .context import RunnerContext

__all__ = ["MemoryRef", "MemoryType", "reference"]


class MemoryType(StrEnum):
    """Which memory a ``MemoryRef`` points into. Members compare equal to plain strings."""

    SENSORY = "sensory"
    SHORT_TERM = "short_term"


class MemoryRef(BaseModel):
    """A reference to a field of a memory, small enough to carry inside an event.

    ``MemoryObject.set`` returns one; ``ref.resolve(ctx)`` or ``memory.get(ref)`` reads the value.
    """

    model_config = ConfigDict(frozen=True)

    memory_type: MemoryType = MemoryType.SHORT_TERM
    path: str

    @staticmethod
    def create(memory_type: MemoryType | str, path: str) -> MemoryRef:
        """Build a reference to ``path`` (absolute, dot-separated) in ``memory_type``."""
        return MemoryRef(memory_type=MemoryType(memory_type), path=path)

    def resolve(self, ctx: RunnerContext) -> Any:
        """Read the referenced value through the memories of ``ctx``."""
        if self.memory_type == MemoryType.SENSORY:
            return ctx.sensory_memory.get(self)
        return ctx.short_term_memory.get(self)


@functools.lru_cache(maxsize=4096)
def reference(memory_type: MemoryType, path: str) -> MemoryRef:
    # MemoryRef is frozen, so one instance per path can be handed out again and again.
    return MemoryRef(memory_type=memory_type, path=path)

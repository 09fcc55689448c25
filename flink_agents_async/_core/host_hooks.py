"""What a host hears from its actor system, given once when the system is made."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from ..errors import JournalWriteError

__all__ = ["NO_HOOKS", "HostHooks", "OutputSink"]

OutputSink = Callable[[int, Hashable, Any], None]
"""Called with ``(input_seq, key, output)`` for each output, once its run is durable."""


@dataclass(frozen=True, slots=True)
class HostHooks:
    """Callbacks of a host, each optional. They run on the loop, in the runtime's context, and
    must not raise."""

    output: OutputSink | None = None
    """Each committed output, once durable, in commit order."""
    input_finished: Callable[[], None] | None = None
    """An input ended (committed, failed or settled with an error): room opened."""
    journal_broken: Callable[[JournalWriteError], None] | None = None
    """The journal could no longer be written: the runtime stops taking inputs."""


NO_HOOKS = HostHooks()

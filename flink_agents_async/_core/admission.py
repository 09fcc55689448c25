"""Admission: how many inputs a runtime holds in memory before new ones must wait.

One rule for every host. A key holds at most ``per_key`` inputs waiting behind the one it runs
(the ``mailbox-capacity`` option), and a runtime at most ``max_pending`` unfinished inputs in
all (``serve(max_pending=...)``; unbounded for a batch job, whose source is read as it goes).
The local host makes a producer wait (or refuses it, with ``nowait``); the Flink bridge keeps the
inputs beyond the bound in keyed state and hands them over as room opens.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from ..config import AgentExecutionOptions, ReadableConfiguration, at_least

__all__ = ["Admission"]


@dataclass(frozen=True, slots=True)
class Admission:
    """The bounds on inputs held in memory; see the module doc."""

    per_key: int
    max_pending: int | None = None

    def __post_init__(self) -> None:
        if self.per_key < 1:
            raise ValueError(f"a key's capacity must be at least 1, got {self.per_key}")
        if self.max_pending is not None and self.max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {self.max_pending}")

    @classmethod
    def from_config(
        cls, config: ReadableConfiguration, max_pending: int | None = None
    ) -> Admission:
        return cls(at_least(config, AgentExecutionOptions.MAILBOX_CAPACITY, 1), max_pending)

    def key_has_room(self, waiting: int) -> bool:
        """Whether a key with ``waiting`` inputs behind its running one takes another."""
        return waiting < self.per_key

    def why_full(self, key: Hashable, *, unfinished: int, waiting: int) -> str | None:
        """Why one more input for ``key`` must wait (None: it need not), given the runtime's
        ``unfinished`` inputs and the inputs ``waiting`` in the key's mailbox."""
        if self.max_pending is not None and unfinished >= self.max_pending:
            return f"{unfinished} inputs are unfinished (max_pending={self.max_pending})"
        if not self.key_has_room(waiting):
            return f"key {key!r} has a full mailbox (mailbox_capacity={self.per_key})"
        return None

"""``RunnerContext``: what an action receives besides its event.

``RunnerContext`` is the public, abstract API (type-hint your actions with it). The runtime
implements it (``runtime.action_context.ActionContext``); this module knows nothing of the
runtime.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .events import Event

if TYPE_CHECKING:
    from .config import ReadableConfiguration
    from .memory import MemoryObject
    from .metrics import MetricGroup
    from .resources import ResourceType

__all__ = ["RunnerContext"]


class RunnerContext(ABC):
    """The per-key context handed to every action as its second argument."""

    __slots__ = ()

    @property
    @abstractmethod
    def key(self) -> Hashable:
        """The key this run belongs to."""

    @abstractmethod
    def send_event(self, event: Event) -> None:
        """Send an event; every action listening to its type runs, in plan order."""

    @abstractmethod
    def get_resource(
        self, name: str, type: ResourceType, metric_group: MetricGroup | None = None
    ) -> Any:
        """The resource declared as ``name`` of ``type`` (created on first use, then shared)."""

    @property
    @abstractmethod
    def action_config(self) -> dict[str, Any]:
        """The config of the running action (``add_action(..., **config)``); empty if none."""

    @abstractmethod
    def get_action_config_value(self, key: str) -> Any:
        """One value of the running action's config, or ``None``."""

    @property
    @abstractmethod
    def sensory_memory(self) -> MemoryObject:
        """Memory of this run only: cleared when the run ends."""

    @property
    @abstractmethod
    def short_term_memory(self) -> MemoryObject:
        """Memory of this key: kept across runs; a failed run's writes are discarded."""

    @property
    @abstractmethod
    def long_term_memory(self) -> Any:
        """The key's long-term memory: memory sets searched by meaning, kept in the vector store
        ``LongTermMemoryOptions`` names (a ``BaseLongTermMemory``)."""

    @property
    @abstractmethod
    def agent_metric_group(self) -> MetricGroup:
        """Metrics shared by every key and action of the agent."""

    @property
    @abstractmethod
    def action_metric_group(self) -> MetricGroup:
        """Metrics of the running action (a sub-group of the agent's, named after it)."""

    @property
    @abstractmethod
    def config(self) -> ReadableConfiguration:
        """The configuration of the environment that runs the agent."""

    @abstractmethod
    def durable_execute(
        self,
        func: Callable[..., Any],
        *args: Any,
        reconciler: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``func(*args, **kwargs)`` as a journaled side effect and return its result.

        After a crash the recorded result (or exception) is returned without calling ``func``
        again. ``reconciler`` (no arguments) is run instead of ``func`` if recovery finds the
        call started but not finished. ``func`` must not touch memory or send events.
        """

    @abstractmethod
    def durable_execute_async(
        self,
        func: Callable[..., Any],
        *args: Any,
        reconciler: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> Awaitable[Any]:
        """Like ``durable_execute`` but returns an awaitable future; the call starts now.

        A sync ``func`` runs in a bounded thread pool (``num-async-threads``), an ``async def``
        one on the event loop, so several calls can be gathered.
        """

    def durable_execute_all_async(
        self,
        calls: Iterable[Callable[..., Any] | Sequence[Any]],
        *,
        return_exceptions: bool = False,
    ) -> Awaitable[list[Any]]:
        """Start several durable calls at once and await their results, in order.

        Each call is a function, ``(func, args)`` or ``(func, args, kwargs)``; they start now,
        in list order (so their slots are deterministic), and run concurrently. With
        ``return_exceptions`` a call's exception is its result instead of being raised.
        """
        futures = [self.durable_execute_async(func, *args, **kwargs)
                   for func, args, kwargs in map(_call_parts, calls)]  # fmt: skip
        return asyncio.gather(*futures, return_exceptions=return_exceptions)

    def run_scratch(self) -> dict[str, Any]:
        """A dict that lives as long as the run (the built-in actions keep their requests in
        flight there; unlike sensory memory it holds any object and is never journaled)."""
        raise NotImplementedError(f"{type(self).__name__} has no run scratch space")

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what the context holds (nothing: resources close with the runtime)."""

    @abstractmethod
    def execute_async(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """Run ``func`` like ``durable_execute_async`` but without journaling it: after a crash
        it runs again. For calls that are cheap and safe to repeat."""

    # Getter spellings of older Flink Agents releases, so agents written against them run.

    def get_short_term_memory(self) -> MemoryObject:
        return self.short_term_memory

    def get_sensory_memory(self) -> MemoryObject:
        return self.sensory_memory

    def get_action_config(self) -> dict[str, Any]:
        return self.action_config

    def get_agent_metric_group(self) -> MetricGroup:
        return self.agent_metric_group

    def get_action_metric_group(self) -> MetricGroup:
        return self.action_metric_group

    def get_config(self) -> ReadableConfiguration:
        return self.config


def _call_parts(call: Any) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
    """``(func, args, kwargs)`` of one call given to ``durable_execute_all_async``."""
    if callable(call):
        return call, (), {}
    if isinstance(call, Sequence) and call and callable(call[0]) and len(call) <= 3:
        args = tuple(call[1]) if len(call) > 1 else ()
        kwargs = dict(call[2]) if len(call) > 2 else {}
        return call[0], args, kwargs
    raise TypeError(
        "durable_execute_all_async() takes functions or (func, args[, kwargs]) tuples, got "
        f"{call!r:.200}"
    )

"""``ActionContext``: the runtime's ``RunnerContext``.

The runtime hands each action invocation an ``ActionContext``: a view of the running run and
the action, so that several actions of one run may be in flight at once and each still sees its
own ``action_config`` and ``action_metric_group``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any

from .._guard import ensure_not_durable, running_durable_function
from ..context import RunnerContext
from ..events import Event, mark_lineage

if TYPE_CHECKING:
    from ..agent import ActionSpec
    from ..config import ReadableConfiguration
    from ..memory import MemoryObject
    from ..metrics import MetricGroup
    from ..resources import ResourceType
    from ..vector_store_memory import VectorStoreLongTermMemory
    from .run import Run

__all__ = ["ActionContext"]


class ActionContext(RunnerContext):
    """The context of one action invocation within a run.

    It belongs to that run: used after the run ended, or from another thread, its memory,
    events and durable calls raise ``ContextUsageError``.
    """

    __slots__ = ("_action", "_event", "_run")

    def __init__(self, run: Run, action: ActionSpec, event: Event) -> None:
        self._run = run
        self._action = action
        self._event = event

    @property
    def key(self) -> Hashable:
        return self._run.key

    def send_event(self, event: Event) -> None:
        if running_durable_function() is not None:
            ensure_not_durable("send_event()")
        if not isinstance(event, Event):
            raise TypeError(
                f"action {self._action.name!r}: send_event() takes an Event, got "
                f"{type(event).__name__} {event!r}"
            )
        mark_lineage(event, self._event.id, self._action.name)
        self._run.send(event)

    def get_resource(
        self, name: str, type: ResourceType, metric_group: MetricGroup | None = None
    ) -> Any:
        return self._run.system.resources.get(name, type)

    @property
    def action_config(self) -> dict[str, Any]:
        return dict(self._action.config or {})

    def get_action_config_value(self, key: str) -> Any:
        config = self._action.config
        return None if config is None else config.get(key)

    @property
    def sensory_memory(self) -> MemoryObject:
        self._run.check_usable("sensory_memory")
        return self._run.sensory_view

    @property
    def short_term_memory(self) -> MemoryObject:
        self._run.check_usable("short_term_memory")
        return self._run.short_term_view

    @property
    def long_term_memory(self) -> VectorStoreLongTermMemory:
        self._run.check_usable("long_term_memory")
        return self._run.long_term_memory

    @property
    def agent_metric_group(self) -> MetricGroup:
        return self._run.system.metrics.agent

    @property
    def action_metric_group(self) -> MetricGroup:
        return self._run.system.metrics.actions[self._action.index].group

    @property
    def config(self) -> ReadableConfiguration:
        return self._run.system.config

    @property
    def action_name(self) -> str:
        """The name of the running action."""
        return self._action.name

    def durable_execute(
        self,
        func: Callable[..., Any],
        *args: Any,
        reconciler: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        ensure_not_durable("durable_execute()")
        return self._run.durable_call(
            func, args, kwargs, reconciler, self._action.name, self._event.type
        )

    def durable_execute_async(
        self,
        func: Callable[..., Any],
        *args: Any,
        reconciler: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> Awaitable[Any]:
        ensure_not_durable("durable_execute_async()")
        return self._run.durable_call_async(
            func, args, kwargs, reconciler, self._action.name, self._event.type
        )

    def execute_async(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
        ensure_not_durable("execute_async()")
        return self._run.plain_call_async(func, args, kwargs, self._action.name)

    def run_scratch(self) -> dict[str, Any]:
        run = self._run
        run.check_usable("run_scratch()")
        if run.scratch is None:
            run.scratch = {}
        return run.scratch

    def __repr__(self) -> str:
        return f"<RunnerContext key={self._run.key!r} action={self._action.name!r}>"

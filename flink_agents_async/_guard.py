"""The marker that says "this code runs inside a durable function".

A durable function may be replayed from the journal instead of being called, so whatever it does
besides returning a value would silently disappear on replay. Memory and ``send_event`` check this
marker and refuse to work inside one. A context variable follows the function into its thread and
into tasks it starts, and costs one lookup per check.
"""

from __future__ import annotations

from contextvars import ContextVar

from .errors import DurableContextError

_inside_durable: ContextVar[str | None] = ContextVar("flink_agents_async_durable", default=None)


running_durable_function = _inside_durable.get
"""The name of the durable function this context runs in, or None. A C call: hot paths test it
inline and call ``ensure_not_durable`` (which raises) only when it is set."""


def enter_durable(function_name: str) -> object:
    """Mark the current context as running ``function_name``; returns a reset token."""
    return _inside_durable.set(function_name)


def exit_durable(token: object) -> None:
    _inside_durable.reset(token)  # type: ignore[arg-type]


def ensure_not_durable(operation: str) -> None:
    """Raise ``DurableContextError`` if called from inside a durable function."""
    function_name = running_durable_function()
    if function_name is not None:
        raise DurableContextError(
            f"{operation} is not allowed inside the durable function {function_name!r}: its "
            "result may be replayed from the journal without calling it, so the effect would be "
            "lost. Return a value from the durable function and use it in the action instead."
        )

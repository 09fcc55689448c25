"""The error types of flink-agents-async.

Every error raised because of something a user wrote or passed names what was wrong and where
(input index, key, action, memory path), so that it can be fixed without a debugger.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence


class FlinkAgentsAsyncError(Exception):
    """Base class of every error this library raises on purpose."""


class AgentDefinitionError(FlinkAgentsAsyncError, ValueError):
    """An agent is malformed: bad action signature, bad trigger, duplicate name.

    Raised when the agent is applied (``builder.apply(agent)``), naming the action or resource.
    """


class InputError(FlinkAgentsAsyncError, ValueError):
    """An input item is malformed (not a dict, no value, unknown field). Names the index."""


class ConfigurationError(FlinkAgentsAsyncError, ValueError):
    """A configuration value or file cannot be used. Names the key or the file."""


class ResourceError(FlinkAgentsAsyncError, LookupError):
    """A resource cannot be found or created. Names the resource and its type."""


class DurableContextError(FlinkAgentsAsyncError, RuntimeError):
    """Memory or ``send_event`` was used from inside a durable function.

    Durable functions may be replayed from the journal instead of being called, so anything they
    do besides returning a value would be lost on replay. Do it in the action instead.
    """


class ActionFailedError(FlinkAgentsAsyncError):
    """One run failed because an action raised. The original exception is ``__cause__``."""

    def __init__(
        self, key: Hashable, run: int, action: str, event_type: str, cause: BaseException
    ) -> None:
        self.key = key
        self.run = run
        self.action = action
        self.event_type = event_type
        self.cause = cause
        super().__init__(
            f"run {run} of key {key!r} failed in action {action!r} "
            f"handling event type {event_type!r}: {type(cause).__name__}: {cause}"
        )
        self.__cause__ = cause


class ExecutionError(FlinkAgentsAsyncError):
    """Raised by ``execute()`` once every key has finished, when one or more runs failed.

    ``failures`` lists every failed run in the order they failed; the first one is chained as
    ``__cause__`` so that its traceback is printed.
    """

    def __init__(self, failures: Sequence[ActionFailedError], message: str | None = None) -> None:
        """``message`` replaces the list of failures as the text (for hosts that only have a
        report of them, such as a failed Flink job)."""
        self.failures = list(failures)
        if message is None:
            lines = [f"{len(self.failures)} run(s) failed:"]
            lines += [f"  - {failure}" for failure in self.failures]
            message = "\n".join(lines)
        super().__init__(message)
        if self.failures:
            self.__cause__ = self.failures[0]


class NonDeterminismError(FlinkAgentsAsyncError):
    """A replayed run called a different durable function than the journal recorded.

    Raised in ``durable.divergence: strict`` mode; carries the recorded and the actual call.
    """

    def __init__(self, message: str, *, diff: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.diff = dict(diff or {})


class ReplayedError(FlinkAgentsAsyncError):
    """A recorded exception whose class could not be rebuilt on replay.

    Carries the original type name and message.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message


class JournalError(FlinkAgentsAsyncError):
    """A journal cannot be read or written (corrupt, foreign, or belongs to other input)."""


class RuntimeBusyError(FlinkAgentsAsyncError):
    """The runtime has no room for another input and the caller asked not to wait."""


class RuntimeClosedError(FlinkAgentsAsyncError, RuntimeError):
    """The runtime no longer accepts inputs because it is shutting down or closed."""

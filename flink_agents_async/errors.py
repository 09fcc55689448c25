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


class TriggerError(AgentDefinitionError, TypeError):
    """An action has no trigger, or one that is neither an ``Event`` subclass nor a non-empty
    event-type string. Raised by ``@action`` when it decorates (a ``TypeError``, as upstream
    raises), and by ``add_action``; names the action."""


class InputError(FlinkAgentsAsyncError, ValueError):
    """An input item is malformed (not a dict, no value, unknown field). Names the index."""


class UnhashableKeyError(InputError, TypeError):
    """A key that is not hashable: an ``InputError``, and a ``TypeError`` as Python's own."""


class ConfigurationError(FlinkAgentsAsyncError, ValueError):
    """A configuration value or file cannot be used. Names the key or the file."""


class ResourceError(FlinkAgentsAsyncError, LookupError):
    """A resource cannot be found or created. Names the resource and its type."""


class DurableContextError(FlinkAgentsAsyncError, RuntimeError):
    """Memory or ``send_event`` was used from inside a durable function.

    Durable functions may be replayed from the journal instead of being called, so anything they
    do besides returning a value would be lost on replay. Do it in the action instead.
    """


class ContextUsageError(FlinkAgentsAsyncError, RuntimeError):
    """A ``RunnerContext`` (or a memory view from it) was used where it no longer belongs.

    Either after its run ended (a task started by an action outlived it: await it inside the
    action), or from a thread other than the event loop's (hand the value back to the action
    instead). Raised rather than letting the write land in another run or bypass the journal.
    """


class ActionFailedError(FlinkAgentsAsyncError):
    """One run failed because an action raised. The original exception is ``__cause__``.

    ``input_kept`` is True when the run could not be replayed (a divergence in strict mode, a
    journaled value this process cannot read): its input and its journaled calls are kept, and
    the next start runs it again once the cause is fixed. ``input_index`` is the position of
    the run's input in its source (None until the runtime knows it).
    """

    def __init__(
        self,
        key: Hashable,
        run: int,
        action: str,
        event_type: str,
        cause: BaseException,
        *,
        input_kept: bool = False,
        input_index: int | None = None,
    ) -> None:
        self.key = key
        self.run = run
        self.action = action
        self.event_type = event_type
        self.cause = cause
        self.input_kept = input_kept
        self.input_index = input_index
        message = (
            f"run {run} of key {key!r} failed in action {action!r} "
            f"handling event type {event_type!r}: {type(cause).__name__}: {text_of(cause)}"
        )
        if input_kept:
            message += (
                " (the input and its journaled calls are kept: fix the cause and start again "
                "to finish it; later inputs of this key wait until then)"
            )
        super().__init__(message)
        self.__cause__ = cause


def text_of(error: BaseException) -> str:
    """``str(error)``, or a stand-in when its ``__str__`` itself fails."""
    try:
        return str(error)
    except Exception:
        return f"<unprintable {type(error).__name__}>"


class ExecutionError(FlinkAgentsAsyncError):
    """A job failed as a whole, or a report of failed runs that has no original exception.

    The local ``execute()`` raises the original exception of the earliest failed input instead
    (see ``flink_agents_async._core.failures``); this is what a host raises when it only has
    a report of the failures (a failed Flink job). ``failures`` lists the failed runs known
    (``execution_failures`` too, as on the exceptions ``execute()`` re-raises); the first one
    is chained as ``__cause__`` so that its traceback is printed.
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

    @property
    def execution_failures(self) -> list[ActionFailedError]:
        """The same list as ``failures``, under the name re-raised action errors carry."""
        return self.failures


class NonDeterminismError(FlinkAgentsAsyncError):
    """A replayed run called a different durable function than the journal recorded.

    Raised in ``durable.divergence: strict`` mode; carries the recorded and the actual call.
    """

    def __init__(self, message: str, *, diff: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.diff = dict(diff or {})


class ReplayedError(FlinkAgentsAsyncError):
    """A recorded exception whose class could not be rebuilt on replay.

    Carries the original type name, message and attributes (``attributes``; each one is also
    set on the error itself where its name is free, so ``error.code`` still works).
    """

    def __init__(
        self, type_name: str, message: str, attributes: dict[str, object] | None = None
    ) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.attributes = dict(attributes or {})


class JournalError(FlinkAgentsAsyncError):
    """A journal cannot be read or written (corrupt, foreign, or belongs to other input)."""


class JournalWriteError(JournalError):
    """The journal could not be written (a full disk, an I/O error): the runtime stops.

    Every input waiting for a result gets this error; inputs accepted before stay journaled and
    run at the next start.
    """


class JournalLockedError(JournalError):
    """Another runtime (another process, or another environment of this one) holds the journal.

    One journal directory serves one runtime at a time; the message names the holder.
    """


class KeyHaltedError(FlinkAgentsAsyncError):
    """An input of a key that is halted: an earlier input of the key could not be replayed.

    The input stays journaled and runs, in order, at the next start once the cause is fixed.
    """


class RuntimeBusyError(FlinkAgentsAsyncError):
    """The runtime has no room for another input and the caller asked not to wait."""


class RuntimeClosedError(FlinkAgentsAsyncError, RuntimeError):
    """The runtime no longer accepts inputs because it is shutting down or closed."""

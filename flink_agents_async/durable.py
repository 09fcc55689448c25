"""Durable calls: ``ctx.durable_execute`` and ``ctx.durable_execute_async``.

A durable call is identified by its *slot*: the order in which the run called
``durable_execute*`` (assigned at call time, not completion time, so ``asyncio.gather`` over
several calls numbers them deterministically), plus the function id and the arguments.

Whether a call really runs or is answered from a record is the business of a ``CallRecorder``,
which the journal implements (``RunRecorder``) to replay recorded outcomes after a crash. The
execution rules live here once and are shared by every host: sync functions passed to the async
variant run in a bounded thread pool, ``async def`` functions run on the loop, and either runs
with the "inside a durable function" marker set.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from inspect import CO_COROUTINE
from pathlib import Path
from types import FunctionType
from typing import Any, Protocol

import anyio
import anyio.to_thread

from ._guard import enter_durable, exit_durable

__all__ = [
    "RECONCILE",
    "CallRecorder",
    "DurableCall",
    "Outcome",
    "Reconcile",
    "function_id",
]


@dataclass(slots=True)
class Outcome:
    """What a durable call ended with: a value, or an exception."""

    value: Any = None
    error: BaseException | None = None

    def unwrap(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


@dataclass(slots=True)
class DurableCall:
    """One durable call of a run. ``digest`` (of the arguments) is filled by the journal."""

    slot: int
    function_id: str
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    reconciler: Callable[[], Any] | None
    is_async_function: bool
    action: str = ""
    digest: bytes | None = None
    # How a sync function run in a thread ended, kept even when its caller was cancelled
    # meanwhile, so that what it did is journaled all the same.
    outcome: Outcome | None = None
    # Where its record goes in the journal (set by the recorder's ``replay``).
    record_slot: int = -1


class Reconcile:
    """``CallRecorder.replay`` found the slot PENDING and the call has a reconciler: run the
    reconciler instead of the function."""


RECONCILE = Reconcile()


class Waitable(Protocol):
    """A journal acknowledgement: block on it, or await it."""

    def wait(self) -> None: ...

    def __await__(self) -> Any: ...


class CallRecorder(Protocol):
    """The journal's view of a run's durable calls (see ``flink_agents_async.journal``)."""

    def replay(self, call: DurableCall) -> Outcome | Reconcile | None:
        """The recorded outcome of this slot, ``RECONCILE``, or None if it must run.

        Raises ``NonDeterminismError`` on a divergence in strict mode."""

    def started(self, call: DurableCall) -> Waitable | None:
        """The call is about to run: for a call with a reconciler, write PENDING. Returns what
        to wait on before running it, if anything."""

    def finished(self, call: DurableCall, outcome: Outcome) -> Waitable | None:
        """Record the call's outcome; returns what to wait on before delivering it, if anything.

        Raises ``JournalEncodeError`` (after recording that error as the outcome) when the
        value cannot be journaled."""

    def kept_for_retry(self) -> dict[int, bytes]:
        """The recorded calls a retry of the run replays (slot -> record)."""

    @property
    def slots_used(self) -> int:
        """How many call records the run's journal holds (its storage slots)."""

    def report_divergences(self) -> None:
        """The run ended: report recorded calls it did not replay (the code changed)."""


def function_id(func: Callable[..., Any]) -> str:
    """A stable name for a function: ``module.qualname`` (of the wrapped function for
    ``functools.partial``, of the class for callable objects)."""
    if type(func) is FunctionType and func.__module__ != "__main__":  # the common case
        return f"{func.__module__}.{func.__qualname__}"
    while isinstance(func, functools.partial):
        func = func.func
    target = getattr(func, "__func__", func)  # bound methods
    qualname = getattr(target, "__qualname__", None)
    if qualname is None:
        qualname = type(target).__qualname__
    module = getattr(target, "__module__", None) or type(target).__module__
    if module == "__main__":
        module = _main_module_name()
    return f"{module}.{qualname}"


def _main_module_name() -> str:
    """The importable name of ``__main__``, so that a function keeps its id whether its file
    runs as a script (``python job.py``), with ``-m``, or is imported."""
    return _importable_name(sys.modules.get("__main__"))


@functools.lru_cache(maxsize=4)
def _importable_name(main: Any) -> str:
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return spec.name
    path = getattr(main, "__file__", None)
    return Path(path).stem if path else "__main__"


def is_async_function(func: Callable[..., Any]) -> bool:
    if type(func) is FunctionType:  # the common case, without inspect's general walk
        return bool(func.__code__.co_flags & CO_COROUTINE)
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(func, "__call__", None)  # noqa: B004 - callable objects with async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def make_call(
    slot: int,
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    reconciler: Callable[[], Any] | None,
    operation: str,
    action: str = "",
) -> DurableCall:
    """Validate a durable call's function and reconciler and give it its slot."""
    if not callable(func):
        raise TypeError(f"{operation}() needs a callable as its first argument, got {func!r}")
    name = function_id(func)
    if reconciler is not None:
        _check_reconciler(reconciler, name, operation)
    return DurableCall(slot, name, func, args, kwargs, reconciler, is_async_function(func), action)


def _check_reconciler(reconciler: Any, name: str, operation: str) -> None:
    if not callable(reconciler):
        raise TypeError(
            f"{operation}({name}): reconciler must be a callable taking no arguments, "
            f"got {reconciler!r}"
        )
    try:
        inspect.signature(reconciler).bind()
    except TypeError:
        raise TypeError(
            f"{operation}({name}): reconciler must take no arguments; its signature is "
            f"{inspect.signature(reconciler)}"
        ) from None
    except ValueError:
        return  # no signature available (builtins): trust it


def run_sync(call: DurableCall) -> Any:
    """Call a sync durable function here, with the durable marker set."""
    token = enter_durable(call.function_id)
    try:
        result = call.func(*call.args, **call.kwargs)
    finally:
        exit_durable(token)
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        raise TypeError(
            f"durable_execute({call.function_id}) returned an awaitable: the function is async, "
            "so call it with `await ctx.durable_execute_async(...)`"
        )
    return result


def call_awaitable(call: DurableCall, limiter: anyio.CapacityLimiter) -> Awaitable[Any]:
    """What to await for a call of the async variant: the ``async def`` function's own
    coroutine (run on the loop), or its run in the bounded thread pool.

    Call it from inside a task dedicated to this durable call: it marks that task's context as
    durable for the rest of the task, which saves a wrapping coroutine per call.
    """
    enter_durable(call.function_id)
    if call.is_async_function:
        return call.func(*call.args, **call.kwargs)
    return _in_thread(call, limiter)


async def _in_thread(call: DurableCall, limiter: anyio.CapacityLimiter) -> Any:
    """Run a sync function in the pool. A thread cannot be interrupted, so a cancelled caller
    waits for it to end before it is cancelled: no durable function outlives the run that made
    it (a retry never runs it twice at once), and its outcome stays on ``call`` to be
    journaled."""
    work = asyncio.ensure_future(
        anyio.to_thread.run_sync(_run_keeping_outcome, call, limiter=limiter)
    )
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        while not work.done():
            with contextlib.suppress(asyncio.CancelledError):  # again: still wait for the thread
                await asyncio.wait([work])
        if not work.cancelled():
            work.exception()  # the outcome is on ``call``; the caller gets the cancellation
        raise


def _run_keeping_outcome(call: DurableCall) -> Any:
    try:
        value = run_sync(call)
    except BaseException as error:
        call.outcome = Outcome(error=error)
        raise
    call.outcome = Outcome(value)
    return value


def _target(call: DurableCall, recorder: CallRecorder, replayed: Any) -> tuple[DurableCall, Any]:
    """What to run for a call not answered from the journal, and what to wait on first: its
    reconciler if the slot was found PENDING, else the call itself after its start is
    recorded (a PENDING mark, for calls with a reconciler)."""
    if replayed is RECONCILE:
        return reconciler_call(call), None
    return call, recorder.started(call)


def execute_now(
    call: DurableCall, recorder: CallRecorder, replayed: Outcome | Reconcile | None
) -> Any:
    """``durable_execute``: the recorded outcome if the journal has one (``replayed``, what
    ``recorder.replay`` said), else call ``fn`` (or, for a call found PENDING, its reconciler)
    here and record what it did."""
    if isinstance(replayed, Outcome):
        return replayed.unwrap()
    target, ack = _target(call, recorder, replayed)
    if ack is not None:
        ack.wait()
    try:
        outcome = Outcome(value=run_sync(target))
    except Exception as error:
        outcome = Outcome(error=error)
    ack = recorder.finished(call, outcome)
    if ack is not None:
        ack.wait()
    return outcome.unwrap()


async def execute_in_task(
    call: DurableCall,
    recorder: CallRecorder,
    limiter: anyio.CapacityLimiter,
    replayed: Reconcile | None,
) -> Any:
    """The body of the task behind a ``durable_execute_async`` future whose slot was not
    answered from the journal: run the call (or its reconciler) and record what it did."""
    target, ack = _target(call, recorder, replayed)
    if ack is not None:
        await ack
    try:
        outcome = Outcome(value=await call_awaitable(target, limiter))
    except asyncio.CancelledError:
        if target.outcome is not None:  # a thread finished the call while we were cancelled
            _record_anyway(recorder, call, target.outcome)
        raise
    except Exception as error:
        outcome = Outcome(error=error)
    ack = recorder.finished(call, outcome)
    if ack is not None:
        await ack
    return outcome.unwrap()


def _record_anyway(recorder: CallRecorder, call: DurableCall, outcome: Outcome) -> None:
    """Journal what a call did although its run is being cancelled: a retry or a restart then
    replays it instead of doing it again. Nobody waits for it, so a failure changes nothing."""
    with contextlib.suppress(Exception):
        recorder.finished(call, outcome)


def reconciler_call(call: DurableCall) -> DurableCall:
    """The call that stands in for ``call`` when recovery found it PENDING: its reconciler."""
    assert call.reconciler is not None
    return DurableCall(
        call.slot,
        function_id(call.reconciler),
        call.reconciler,
        (),
        {},
        None,
        is_async_function(call.reconciler),
        call.action,
    )

"""A run: one input of one key, carried through the agent's actions until nothing is left.

Events are routed from one FIFO queue in the order they were sent; each goes to every listening
action in plan order. A sync action runs inline. An action that returns an awaitable (``async
def``) becomes a task of the run, and the queue keeps moving while it awaits: whatever it sends is
routed on the next loop turn. The run is over when the queue is empty and no action task or
durable call of it is in flight.

A run that completes without awaiting anything never leaves the caller's stack: no task, no loop
round trip. That is what makes plain synchronous agents cheap.

The first exception of an action fails the run: its other tasks are cancelled, queued events are
dropped, and once everything has stopped the actor rolls the key back. So do a runaway event
loop (more than ``max-events-per-run`` events queued), an exceeded ``action-timeout`` or
``run-timeout``, and a journaled call that cannot be replayed (``replay_problem``: the actor then
keeps the input for the next start instead of failing it for good).
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import TYPE_CHECKING, Any

from .._guard import ensure_not_durable
from ..durable import (
    DurableCall,
    Outcome,
    Reconcile,
    call_awaitable,
    execute_in_task,
    execute_now,
    make_call,
)
from ..errors import (
    ActionFailedError,
    ContextUsageError,
    JournalError,
    JournalWriteError,
    NonDeterminismError,
)
from ..events import Event, InputEvent, OutputEvent, new_input_event, typed_event_class
from ..logging import library_logger
from ..memory import MemoryObject, MemoryStore, MemoryType
from ..vector_store_memory import new_run_tag
from .action_context import ActionContext

if TYPE_CHECKING:
    from ..agent import ActionSpec
    from ..durable import CallRecorder
    from ..vector_store_memory import VectorStoreLongTermMemory
    from .actor import Actor, InputItem
    from .system import ActorSystem

__all__ = ["Run"]

logger = library_logger()

_OUTPUT_TYPE = OutputEvent.EVENT_TYPE
_INPUT_TYPE = InputEvent.EVENT_TYPE

# What a sync action may raise that still only concerns its run (asyncio lets CancelledError
# and SystemExit through ``except Exception``; here they would wedge the key).
_ACTION_ERRORS = (Exception, asyncio.CancelledError, SystemExit)


def _normalized(event: Event) -> Event:
    """An untyped event (exactly ``Event``) whose type string belongs to a typed class, as that
    class."""
    typed = typed_event_class(event.type)
    if typed is None:
        return event
    try:
        return typed.from_event(event)
    except Exception as error:
        raise TypeError(
            f"event of type {event.type!r} cannot be read as {typed.__qualname__}: {error}"
        ) from error


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


async def _run_plain(call: DurableCall, limiter: Any) -> Any:
    # call_awaitable marks the context it runs in: this task's own, not the action's.
    return await call_awaitable(call, limiter)


class Run:
    """One input of one key going through the plan. Created and finished by its ``Actor``."""

    __slots__ = (
        "_deadline",
        "_recorder",
        "_sensory_view",
        "_short_term_view",
        "actor",
        "attempt",
        "events",
        "failure",
        "finished",
        "inflight",
        "item",
        "key",
        "long_term",
        "next_slot",
        "number",
        "outputs",
        "pending",
        "pump_scheduled",
        "pumping",
        "replay_problem",
        "routed",
        "runaway",
        "scratch",
        "system",
        "tasks",
    )

    def __init__(
        self,
        system: ActorSystem,
        actor: Actor,
        number: int,
        item: InputItem,
        attempt: int,
    ) -> None:
        self.system = system
        self.actor = actor
        self.key: Hashable = actor.key
        self.number = number
        self.item = item
        self.attempt = attempt
        self._recorder: CallRecorder | None = None  # made at the first durable call
        self.pending: deque[Event] = deque()
        self.outputs: list[Any] = []
        self.tasks: set[asyncio.Future[Any]] | None = None  # made at the first task
        self.inflight = 0
        self.next_slot = 0
        self.events = 0  # queued so far, the input included: what max-events-per-run bounds
        self.routed = 0
        self.failure: ActionFailedError | None = None
        self.replay_problem: ActionFailedError | None = None
        self.runaway = False
        self.finished = False
        self.pumping = False
        self.pump_scheduled = False
        self._sensory_view: MemoryObject | None = None
        self._short_term_view: MemoryObject | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self.scratch: dict[str, Any] | None = None  # state of the run's built-in actions
        # The key's long-term memory as this run sees it (made when the run first asks).
        self.long_term: VectorStoreLongTermMemory | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Route the input (the actor opened the memory transaction); may finish before
        returning."""
        timeout = self.system.settings.run_timeout
        if timeout is not None:
            self._deadline = self.system.loop.call_later(timeout, self._run_timed_out, timeout)
        self.events = 1
        self.pending.append(new_input_event(self.item.value))
        self._pump()

    def cancel(self, cause: BaseException | None = None) -> None:
        """Stop the run (shutdown, or a failed journal): cancel its tasks; it finishes as
        failed once they stopped."""
        if not self.finished and self.failure is None:
            self.failure = ActionFailedError(
                self.key,
                self.number,
                "<runtime>",
                "<shutdown>",
                cause if cause is not None else asyncio.CancelledError(),
            )
            self._stop_everything()
        self._check_done()

    @property
    def recorder(self) -> CallRecorder:
        """The journal's recorder of this run's durable calls."""
        recorder = self._recorder
        if recorder is None:
            recorder = self._recorder = self.system.recorder_for(self)
        return recorder

    @property
    def has_recorder(self) -> bool:
        return self._recorder is not None

    @property
    def calls_recorded(self) -> int:
        """How many call records the journal holds for this run (its storage slots)."""
        recorder = self._recorder
        return 0 if recorder is None else recorder.slots_used

    @property
    def sensory_view(self) -> MemoryObject:
        view = self._sensory_view
        if view is None:
            view = self._sensory_view = MemoryObject(MemoryStore(MemoryType.SENSORY), owner=self)
        return view

    @property
    def short_term_view(self) -> MemoryObject:
        view = self._short_term_view
        if view is None:
            view = self._short_term_view = MemoryObject(self.actor.short_term, owner=self)
        return view

    @property
    def long_term_memory(self) -> VectorStoreLongTermMemory:
        """The key's long-term memory as this run sees it. Its writes are tagged with a tag
        made by a durable call: unique to the input, and the same when the input runs again
        (after a crash, or as a retry), on either host."""
        memory = self.long_term
        if memory is None:
            tag = self.durable_call(new_run_tag, (), {}, None, "<long-term-memory>", _INPUT_TYPE)
            memory = self.long_term = self.system.long_term.for_run(self.key, tag)
        return memory

    def check_usable(self, operation: str) -> None:
        """Raise ``ContextUsageError`` if this run's context is used after the run ended or
        from a thread other than the event loop's (memory views call this too)."""
        ensure_not_durable(operation)  # the more precise complaint, where it applies
        if self.finished:
            raise ContextUsageError(
                f"{operation} after run {self.number} of key {self.key!r} ended: a task started "
                "by an action outlived its run (await it inside the action); the context of a "
                "run cannot touch the key once the run is over"
            )
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not self.system.loop:
            raise ContextUsageError(
                f"{operation} from a thread other than the event loop's (run {self.number} of "
                f"key {self.key!r}): memory, events and durable calls belong to the action; "
                "return the value from the thread and use it in the action"
            )

    # -- event routing ----------------------------------------------------------------------

    def send(self, event: Event) -> None:
        self.check_usable("send_event()")
        if self.failure is not None:
            if self.runaway:  # stop an action that keeps sending, instead of spinning
                raise self.failure.cause
            return
        self.events += 1
        if self.events > self.system.settings.max_events_per_run:
            raise self._fail_runaway(event)
        self.pending.append(_normalized(event) if type(event) is Event else event)
        if not self.pumping and not self.pump_scheduled:
            self.pump_scheduled = True
            self.system.loop.call_soon(self._scheduled_pump)

    def _scheduled_pump(self) -> None:
        self.pump_scheduled = False
        if not self.finished:
            self._pump()

    def _pump(self) -> None:
        """Route the queued events, oldest first, each to every listening action. (One loop
        over the queue, not a call per event: this is the path every event takes.)"""
        system = self.system
        pending = self.pending
        listeners_of = system.plan.listeners
        routed_before = self.routed
        self.pumping = True
        try:
            while pending and self.failure is None:
                event = pending.popleft()
                self.routed += 1
                event_type = event.type
                if event_type == _OUTPUT_TYPE:
                    self.outputs.append(event.output)  # type: ignore[attr-defined]
                listeners = listeners_of.get(event_type)
                if listeners is None:
                    if event_type != _OUTPUT_TYPE:
                        system.warn_unrouted(self, event_type)
                    continue
                for spec in listeners:
                    if self.failure is not None:
                        break
                    self._invoke(spec, event)
        finally:
            self.pumping = False
            # Counted per pump, not per event: one metric update for all the events routed.
            system.metrics.events_processed(self.routed - routed_before)
        self._check_done()

    def _invoke(self, spec: ActionSpec, event: Event) -> None:
        system = self.system
        system.metrics.action_executed(spec.index)
        timeout = system.settings.action_timeout
        started = system.loop.time() if timeout is not None else 0.0
        try:
            result = spec.func(event, ActionContext(self, spec, event))
        except _ACTION_ERRORS as error:
            self._fail(spec, event, error)
            return
        if timeout is not None and system.loop.time() - started > timeout:
            self._fail(spec, event, _action_timeout(spec, self, timeout))
            return
        if result is None:
            return
        if inspect.isawaitable(result):
            coroutine = result if inspect.iscoroutine(result) else _awaited(result)
            task = system.loop.create_task(coroutine)
            done = _ActionDone(self, spec, event)
            if timeout is not None:
                done.deadline = system.loop.call_later(
                    timeout, self._action_timed_out, spec, event, task, timeout
                )
            self._track(task, done)
        elif inspect.isgenerator(result) or inspect.isasyncgen(result):
            self._fail(spec, event, _generator_error(spec, result))
        else:
            system.warn_returned_value(spec, result)

    def _track(self, task: asyncio.Future[Any], on_done: Callable[[Any], None]) -> None:
        self.inflight += 1
        if self.tasks is None:
            self.tasks = set()
        self.tasks.add(task)
        # An explicit context: without it every callback would copy the current one.
        task.add_done_callback(on_done, context=self.system.callback_context)

    def _action_done(self, spec: ActionSpec, event: Event, task: asyncio.Future[Any]) -> None:
        self.inflight -= 1
        self.tasks.discard(task)  # type: ignore[union-attr]
        if task.cancelled():
            if self.failure is None:
                self._fail(spec, event, asyncio.CancelledError(f"action {spec.name!r} cancelled"))
        else:
            error = task.exception()
            if error is not None:
                self._fail(spec, event, error)
            elif task.result() is not None:
                self.system.warn_returned_value(spec, task.result())
        self._check_done()

    def _fail(self, spec: ActionSpec, event: Event, error: BaseException) -> None:
        if self.failure is not None:
            return
        self.failure = ActionFailedError(self.key, self.number, spec.name, event.type, error)
        self._stop_everything()

    def _fail_runaway(self, event: Event) -> RuntimeError:
        """Fail the run for queueing too many events; returns the error, for the sender."""
        limit = self.system.settings.max_events_per_run
        error = RuntimeError(
            f"run {self.number} of key {self.key!r} queued more than {limit} events (the last "
            f"of type {event.type!r}): probably actions that keep triggering each other; raise "
            "'max-events-per-run' if the run really needs more"
        )
        self.runaway = True
        self.failure = ActionFailedError(self.key, self.number, "<router>", event.type, error)
        self._stop_everything()
        return error

    def _action_timed_out(
        self, spec: ActionSpec, event: Event, task: asyncio.Future[Any], timeout: float
    ) -> None:
        if not task.done() and not self.finished:
            self._fail(spec, event, _action_timeout(spec, self, timeout))

    def _run_timed_out(self, timeout: float) -> None:
        self._deadline = None
        if self.finished or self.failure is not None:
            return
        error = TimeoutError(
            f"run {self.number} of key {self.key!r} did not finish within run-timeout="
            f"{timeout:g} s ({self.inflight} action task(s) or durable call(s) still going)"
        )
        self.failure = ActionFailedError(self.key, self.number, "<run-timeout>", _INPUT_TYPE, error)
        self._stop_everything()
        self._check_done()

    def _stop_everything(self) -> None:
        self.pending.clear()
        for task in list(self.tasks or ()):
            task.cancel()

    def _check_done(self) -> None:
        if self.finished or self.pumping or self.inflight:
            return
        if self.failure is None and (self.pending or self.pump_scheduled):
            return
        if self.failure is not None and self._must_undo_long_term():
            self._undo_long_term()
            if self.inflight:
                return
        self.finished = True
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.actor.run_finished(self)

    def _must_undo_long_term(self) -> bool:
        """Whether a failed run must forget what its input wrote to long-term memory: it
        failed for good, and it wrote some or an earlier attempt may have (its input has
        recorded calls). Not when it is retried (the retry replays the writes made in durable
        calls and makes the others again), nor at shutdown or on a replay problem (the input
        stays, to run again)."""
        system = self.system
        if system.long_term.store_name is None or system.closing:
            return False
        if self.replay_problem is not None or system.should_retry(self):
            return False
        memory = self.long_term
        if memory is not None and memory.undone:
            return False
        return (memory is not None and memory.wrote) or bool(self.item.calls)

    def _undo_long_term(self) -> None:
        try:
            memory = self.long_term_memory  # its tag: replayed if an attempt made one
        except Exception as error:  # the journal cannot give it: nothing to undo by
            self._log_undo_failure(error)
            return
        task = self.system.loop.create_task(memory.undo())
        self._track(task, self._undone)

    def _log_undo_failure(self, error: BaseException) -> None:
        logger.error(
            "a failed run's long-term memory writes could not be undone",
            key=self.key, run=self.number, error=repr(error),
        )  # fmt: skip

    def _undone(self, task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            self._log_undo_failure(error)
        self._durable_done(task)

    # -- durable calls ----------------------------------------------------------------------

    def _new_call(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        reconciler: Callable[[], Any] | None,
        operation: str,
        action: str,
    ) -> DurableCall:
        call = make_call(self.next_slot, func, args, kwargs, reconciler, operation, action)
        self.next_slot += 1
        return call

    def _replay(self, call: DurableCall, event_type: str) -> Outcome | Reconcile | None:
        """What the journal recorded for ``call``. A record that cannot be replayed here (a
        divergence in strict mode, a value this process cannot read) fails the run, and marks
        it so that its input and calls are kept for a fixed restart, whatever the action does
        with the exception."""
        try:
            return self.recorder.replay(call)
        except JournalWriteError:
            raise
        except (NonDeterminismError, JournalError) as problem:
            if self.replay_problem is None:
                self.replay_problem = ActionFailedError(
                    self.key, self.number, call.action, event_type, problem, input_kept=True
                )
            raise

    def durable_call(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        reconciler: Callable[[], Any] | None,
        action: str,
        event_type: str,
    ) -> Any:
        self.check_usable("durable_execute()")
        call = self._new_call(func, args, kwargs, reconciler, "durable_execute", action)
        return execute_now(call, self.recorder, self._replay(call, event_type))

    def plain_call_async(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        action: str,
    ) -> asyncio.Future[Any]:
        """``execute_async``: run like a durable call, but take no slot and record nothing."""
        self.check_usable("execute_async()")
        call = make_call(-1, func, args, kwargs, None, "execute_async", action)
        task = self.system.loop.create_task(_run_plain(call, self.system.thread_limiter))
        self._track(task, self._durable_done)
        return task

    def durable_call_async(
        self,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        reconciler: Callable[[], Any] | None,
        action: str,
        event_type: str,
    ) -> asyncio.Future[Any]:
        self.check_usable("durable_execute_async()")
        call = self._new_call(func, args, kwargs, reconciler, "durable_execute_async", action)
        recorded = self._replay(call, event_type)
        if isinstance(recorded, Outcome):  # replayed: the future resolves at once, nothing runs
            future = self.system.loop.create_future()
            if recorded.error is not None:
                future.set_exception(recorded.error)
            else:
                future.set_result(recorded.value)
            future.add_done_callback(retrieve_exception, context=self.system.callback_context)
            return future
        task = self.system.loop.create_task(
            execute_in_task(call, self.recorder, self.system.thread_limiter, recorded)
        )
        self._track(task, self._durable_done)
        return task

    def _durable_done(self, task: asyncio.Future[Any]) -> None:
        self.inflight -= 1
        self.tasks.discard(task)  # type: ignore[union-attr]
        retrieve_exception(task)
        self._check_done()


class _ActionDone:
    """The done callback of an action task (one small object instead of a closure)."""

    __slots__ = ("deadline", "event", "run", "spec")

    def __init__(self, run: Run, spec: ActionSpec, event: Event) -> None:
        self.run = run
        self.spec = spec
        self.event = event
        self.deadline: asyncio.TimerHandle | None = None  # of action-timeout, if set

    def __call__(self, task: asyncio.Future[Any]) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.run._action_done(self.spec, self.event, task)


def _action_timeout(spec: ActionSpec, run: Run, timeout: float) -> TimeoutError:
    return TimeoutError(
        f"action {spec.name!r} of run {run.number} of key {run.key!r} did not finish within "
        f"action-timeout={timeout:g} s"
    )


def _generator_error(spec: ActionSpec, result: Any) -> TypeError:
    close = getattr(result, "close", None)
    if inspect.isgenerator(result) and close is not None:
        close()  # never started: closing runs none of its code
    return TypeError(
        f"action {spec.name!r} returned a generator, so its body never ran: actions are plain "
        "functions or `async def` coroutines. Instead of `yield from ctx.execute_async(fn)` "
        "write `await ctx.durable_execute_async(fn)` in an `async def` action"
    )


def retrieve_exception(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen: the awaiting action (if any) gets it anyway."""
    if not future.cancelled():
        future.exception()

"""The Flink half: a ``KeyedProcessFunction`` whose keys are the core's actors.

Per key, keyed state holds the committed memory (``fa_snapshot``), the inputs not yet committed
(``fa_queue``, ``fa_pending``) and the durable calls of the oldest one (``fa_calls``), so a
checkpoint is exactly-once. An input of an idle key runs inline on the Flink thread when the
loop is parked; otherwise it goes to the loop, and timers (processing time while runs are in
flight, event time at the end of a bounded input) apply what its runs wrote. After a restore
the timers bring keys back and their runs replay their journaled calls. ARCHITECTURE.md ("The
Flink host in detail") tells the whole story.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from pyflink.common import Types
from pyflink.common.time import Time
from pyflink.datastream import KeyedProcessFunction, KeySelector, RuntimeContext, TimeDomain
from pyflink.datastream.state import (
    MapStateDescriptor,
    StateTtlConfig,
    ValueStateDescriptor,
)

from flink_agents_async.agent import AgentPlan
from flink_agents_async.config import (
    ConfigOption,
    Configuration,
    ErrorHandlingStrategy,
    at_least,
)
from flink_agents_async.errors import ConfigurationError, KeyHaltedError, RuntimeClosedError
from flink_agents_async.host_api import IdleKeys, RuntimeSettings
from flink_agents_async.keys import check_key
from flink_agents_async.logging import library_logger

from .host import LoopHost
from .metrics import FlinkMetricsMirror
from .outbox import Outbox, RunDone, SnapshotWritten

__all__ = ["END_OF_INPUT", "AgentProcessFunction", "BridgeOptions"]

logger = library_logger("flink_agents_async.bridge")

END_OF_INPUT = 2**63 - 2  # below Long.MAX_VALUE, the watermark that ends a bounded input


class BridgeOptions:
    """How the function wakes up for runs in flight, and how many idle actors it keeps (see the
    module doc)."""

    POLL_MIN_INTERVAL_MS = ConfigOption("bridge.poll.min-interval-ms", int, 1)
    POLL_MAX_INTERVAL_MS = ConfigOption("bridge.poll.max-interval-ms", int, 100)
    IDLE_ACTORS = ConfigOption("bridge.idle-actors", int, 10_000)


def _task_info(runtime_context: RuntimeContext) -> tuple[int, int]:
    """(subtask index, attempt number): thread mode on Flink 2 only has them on the Java
    context's ``TaskInfo``."""
    try:
        return runtime_context.get_index_of_this_subtask(), runtime_context.get_attempt_number()
    except Exception:  # fall back to the Java object
        pass
    try:
        info = runtime_context._runtime_context.getTaskInfo()
        return int(info.getIndexOfThisSubtask()), int(info.getAttemptNumber())
    except Exception:  # unknown: act as the first attempt of subtask 0
        return 0, 0


# The hosts of this interpreter, by (function id, subtask), with their task attempt. In thread
# mode a failed task's function is not closed, and its loop would go on running the inputs it
# held: a later attempt of the same subtask closes the hosts of earlier attempts before it
# starts (the restored state runs those inputs again).
_live_hosts: dict[tuple[str, int], list[tuple[int, LoopHost]]] = {}
_live_hosts_lock = threading.Lock()


def _input_named(value: Any) -> str:
    return f"the input {value!r:.200} (make the key selector return a str, an int or a tuple)"


def _check_key(key: Hashable, value: Any, ctx: Any) -> None:
    """Raise if the re-applied key selector disagrees with the key Flink keyed the input by
    (checked for the first input of each key, where a wrong key would start a wrong actor)."""
    flink_key = ctx.get_current_key()
    if key != flink_key:
        raise ConfigurationError(
            f"the key_selector gave {key!r:.200} for input {value!r:.200}, which Flink keyed as "
            f"{flink_key!r:.200}: a key selector must be deterministic, and its keys must "
            "compare equal (==) to their pickled copies, as the agent's function applies it "
            "again to each input"
        )


def _register_host(identity: tuple[str, int], attempt: int, host: LoopHost) -> None:
    with _live_hosts_lock:
        hosts = _live_hosts.setdefault(identity, [])
        stale = [entry for entry in hosts if entry[0] < attempt]
        hosts[:] = [entry for entry in hosts if entry[0] >= attempt] + [(attempt, host)]
    for old_attempt, old_host in stale:
        logger.warning(
            "closing the runs left by a failed attempt of this subtask",
            agent=identity[0], subtask=identity[1], attempt=old_attempt,
        )  # fmt: skip
        old_host.close(timeout=5.0)


def _unregister_host(identity: tuple[str, int], host: LoopHost) -> None:
    with _live_hosts_lock:
        hosts = _live_hosts.get(identity, [])
        hosts[:] = [entry for entry in hosts if entry[1] is not host]
        if not hosts:
            _live_hosts.pop(identity, None)


class _Key:
    """The Flink thread's bookkeeping of one key that has inputs in flight."""

    __slots__ = ("alive", "delay", "head", "outbox", "restored", "sent", "stored", "tail",
                 "timer", "wrote_calls")  # fmt: skip

    def __init__(self, head: int, tail: int, stored: bool = True) -> None:
        self.head = head  # position of the oldest uncommitted input
        self.sent = head  # inputs before this position were handed to the loop
        self.tail = tail  # position the next input gets
        self.alive = False  # the loop holds this key's actor
        self.restored = head < tail  # inputs left by an earlier attempt: replay their calls
        self.wrote_calls = False
        # ``fa_queue`` is as ``_save_positions`` keeps it for this key. Until then the key is
        # new: nothing of it is in keyed state, so there is no snapshot to read back.
        self.stored = stored
        self.delay = 0
        self.timer: int | None = None
        self.outbox: Outbox = deque()


class AgentProcessFunction(KeyedProcessFunction):
    """Runs an agent plan on a keyed stream: one actor per key, state in keyed state."""

    def __init__(
        self,
        plan: AgentPlan,
        config: Configuration,
        emit: Callable[[Hashable, Any], Any] | None = None,
        key_selector: KeySelector | Callable[[Any], Hashable] | None = None,
    ) -> None:
        self._plan = plan
        # The selector that keyed the stream, applied again to each input: in ``thread`` mode
        # ``ctx.get_current_key()`` is a call into the JVM (6-8 us of about 50 per record).
        self._key_selector = key_selector
        self._config = config
        self._emit = emit
        # Checked here, in the client, so that a bad value stops the job before it starts.
        self._min_delay = at_least(config, BridgeOptions.POLL_MIN_INTERVAL_MS, 1)
        self._max_delay = at_least(config, BridgeOptions.POLL_MAX_INTERVAL_MS, self._min_delay)
        self._idle_capacity = at_least(config, BridgeOptions.IDLE_ACTORS, 0)
        # The runtime's settings, read (and refused when bad) here, before the job starts;
        # every subtask's runtime takes them as they are.
        self._settings = RuntimeSettings.from_config(config)
        self._keys: dict[Hashable, _Key] = {}
        self._idle = self._new_idle_keys()
        self._next_seq = 0
        self._uid = f"{plan.agent_name}-{uuid.uuid4().hex}"  # shared by its deserialized copies

    def _new_idle_keys(self) -> IdleKeys[_Key]:
        """Idle keys whose actors stay on the loop, the oldest leaving beyond the capacity."""
        return IdleKeys(max_idle=self._idle_capacity)

    def _has_room(self, state: _Key) -> bool:
        """Whether the loop takes another input of the key: its inputs in memory, but for the
        one that runs, are within the admission bound."""
        return self._settings.admission.key_has_room(state.sent - state.head - 1)

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self, runtime_context: RuntimeContext) -> None:
        pickled = Types.PICKLED_BYTE_ARRAY()
        snapshot = ValueStateDescriptor("fa_snapshot", pickled)
        ttl = self._state_ttl()
        if ttl is not None:
            snapshot.enable_time_to_live(ttl)
        self._keep_positions = ttl is None
        self._snapshot = runtime_context.get_state(snapshot)
        self._queue = runtime_context.get_state(ValueStateDescriptor("fa_queue", pickled))
        self._pending = runtime_context.get_map_state(
            MapStateDescriptor("fa_pending", Types.LONG(), pickled)
        )
        self._calls = runtime_context.get_map_state(
            MapStateDescriptor("fa_calls", Types.INT(), pickled)
        )
        self._key_of = self._open_key_selector(runtime_context)
        subtask, attempt = _task_info(runtime_context)
        self._identity = (self._uid, subtask)
        context = {"agent": self._plan.agent_name, "subtask": subtask, "attempt": attempt}
        self._host = LoopHost(self._plan, self._config, context, settings=self._settings)
        _register_host(self._identity, attempt, self._host)
        self._keys = {}
        self._idle = self._new_idle_keys()
        self._metrics = FlinkMetricsMirror(
            self._host.system.metrics.agent, runtime_context.get_metrics_group().add_group("agent")
        )

    def _open_key_selector(
        self, runtime_context: RuntimeContext
    ) -> Callable[[Any], Hashable] | None:
        selector = self._key_selector
        if isinstance(selector, KeySelector):
            selector.open(runtime_context)
            return selector.get_key
        return selector

    def close(self) -> None:
        if isinstance(self._key_selector, KeySelector) and getattr(self, "_key_of", None):
            self._key_selector.close()
        host = getattr(self, "_host", None)
        if host is not None:
            with contextlib.suppress(Exception):  # metrics must not stop the closing
                self._metrics.sync(force=True)
            _unregister_host(self._identity, host)
            host.close()

    def _state_ttl(self) -> StateTtlConfig | None:
        ttl = self._settings.memory_ttl
        if ttl is None:
            return None
        milliseconds = round(ttl * 1000)
        # The core expires single values; Flink's TTL only has to drop keys left idle longer
        # than that, and every commit rewrites the snapshot, so write-refresh is enough.
        return (
            StateTtlConfig.new_builder(Time.milliseconds(milliseconds))
            .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
            .build()
        )

    # -- Flink callbacks ---------------------------------------------------------------------

    # Both return the outputs as a list: Flink iterates whatever comes back, and a list costs
    # less than a chain of generators on the path every record takes.

    # When a callback ends, the loop thread takes over the loop if inputs are still in flight.

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context) -> list[Any]:
        key_of = self._key_of
        key = ctx.get_current_key() if key_of is None else key_of(value)
        out: list[Any] = []
        try:
            self._accept(key, value, ctx, out)
        finally:
            self._host.hand_off()
        return out

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> list[Any]:
        out: list[Any] = []
        try:
            self._timer(ctx.get_current_key(), timestamp, ctx, out)
        finally:
            self._host.hand_off()
        return out

    def _accept(self, key: Hashable, value: Any, ctx: Any, out: list[Any]) -> None:
        try:
            state = self._keys.get(key)
        except TypeError:
            check_key(key, _input_named(value))  # raises, naming the input
            raise
        if state is None:
            state = self._idle.woke(key)  # its actor stayed on the loop, queue empty
            if state is None:
                check_key(key, _input_named(value))
                if self._key_of is not None:
                    _check_key(key, value, ctx)
                state = self._stored_key(key)
            if state.head == state.tail and self._host.parked:
                # The common case: an idle key, and the loop is this thread's. The input runs
                # right here, and unless it outlives this call keyed state never holds it.
                self._send(key, state, value)
                outbox = state.outbox
                if outbox and isinstance(outbox[-1], RunDone):  # it ran to its end already
                    self._apply(key, state, out, queued=False)
                    self._rest(key, state)
                    return
            self._watch(key, state, ctx)
        self._pending.put(state.tail, value)
        state.tail += 1
        self._save_positions(state)
        if state.sent == state.tail - 1 and self._has_room(state):
            self._send(key, state, value)  # no need to read it back from keyed state
        self._advance(key, state, ctx, out)

    def _timer(self, key: Hashable, timestamp: int, ctx: Any, out: list[Any]) -> None:
        if ctx.time_domain() == TimeDomain.EVENT_TIME:
            if timestamp >= END_OF_INPUT:
                self._finish_key(key, ctx, out)
            return
        state = self._keys.get(key)
        if state is None:  # restored from a checkpoint: the timer brings the key back
            state = self._activate(key, ctx)
        elif state.timer != timestamp:
            return  # an older timer of this key (a newer one is pending)
        state.timer = None
        self._advance(key, state, ctx, out)

    # -- per key -----------------------------------------------------------------------------

    def _wake(self, key: Hashable) -> _Key:
        """The bookkeeping of a key that had nothing in flight (not yet in ``_keys``)."""
        state = self._idle.woke(key)
        if state is not None:  # its actor stayed on the loop, and its queue is empty
            return state
        return self._stored_key(key)

    def _stored_key(self, key: Hashable) -> _Key:
        """The bookkeeping of a key whose actor is not on the loop, from keyed state."""
        positions = self._queue.value()
        if positions is not None:
            return _Key(*positions)
        # Without a state TTL, every key that ever ran keeps its positions (see
        # ``_save_positions``), so one without them is new: its first input skips reading
        # ``fa_snapshot``. In ``process`` mode each keyed-state read is a round trip to the JVM.
        return _Key(0, 0, stored=not self._keep_positions)

    def _activate(self, key: Hashable, ctx: Any, watch_end: bool = True) -> _Key:
        state = self._keys.get(key)
        if state is None:
            state = self._watch(key, self._wake(key), ctx, watch_end)
        return state

    def _watch(self, key: Hashable, state: _Key, ctx: Any, watch_end: bool = True) -> _Key:
        """From now on the key has inputs in flight: keep its bookkeeping, and have Flink call
        at the end of a bounded input."""
        self._keys[key] = state
        if watch_end:  # not while ending: past the final watermark it would fire at once
            ctx.timer_service().register_event_time_timer(END_OF_INPUT)
        return state

    def _rest(self, key: Hashable, state: _Key) -> None:
        """The key has nothing in flight: its actor joins the idle ones kept on the loop, and
        the one idle the longest leaves when there are too many."""
        self._keys.pop(key, None)
        if not state.alive:
            return
        state.delay = 0  # kept as it is otherwise: no input in flight, positions go on
        for oldest, _ in self._idle.went_idle(key, state):
            self._host.forget(oldest)

    def _advance(self, key: Hashable, state: _Key, ctx: Any, out: list[Any]) -> None:
        """Apply what the key's run wrote, start its next input, and make sure Flink calls
        again while anything is in flight."""
        progressed = False
        while True:
            if state.outbox:
                self._apply(key, state, out)
                progressed = True
            if not (state.sent < state.tail and self._has_room(state)):
                break
            # A parked loop runs what it is sent right here: apply that before going on.
            self._send_waiting(key, state)
            progressed = True
        if state.head >= state.tail:
            self._rest(key, state)
            return
        if state.timer is None:
            state.delay = (
                self._min_delay
                if progressed or not state.delay
                else min(self._max_delay, state.delay * 2)
            )
            now = ctx.timer_service().current_processing_time()
            state.timer = now + state.delay
            ctx.timer_service().register_processing_time_timer(state.timer)

    def _finish_key(self, key: Hashable, ctx: Any, out: list[Any]) -> None:
        """End of a bounded input: wait until every input of the key is committed."""
        state = self._activate(key, ctx, watch_end=False)
        while True:
            self._apply(key, state, out)
            self._send_waiting(key, state)
            if state.head >= state.tail:
                break
            self._host.wait_for(state.outbox, timeout=1.0)
        self._rest(key, state)
        self._metrics.sync(force=True)

    def _send_waiting(self, key: Hashable, state: _Key) -> None:
        """Hand inputs that wait in keyed state to the loop, up to the in-memory window."""
        while state.sent < state.tail and self._has_room(state):
            self._send(key, state, self._pending.get(state.sent))

    def _send(self, key: Hashable, state: _Key, value: Any) -> None:
        calls = None
        if state.restored:  # the head input of an earlier attempt: replay its calls
            calls = {slot: record for slot, record in self._calls.items()} or None
            state.restored = False
            state.wrote_calls = calls is not None
        snapshot = None if state.alive or not state.stored else self._snapshot.value()
        seq = self._next_seq
        self._next_seq += 1
        state.sent += 1
        load = not state.alive
        state.alive = True
        self._host.start(key, seq, value, calls, snapshot, load, state.outbox)

    def _apply(self, key: Hashable, state: _Key, out: list[Any], queued: bool = True) -> None:
        """Write what the key's runs produced to keyed state, in order. ``queued=False``: the
        one input handed over ran to its end within this call, so it was never queued and its
        durable calls need no keeping for a restore."""
        outbox = state.outbox
        while outbox:
            entry = outbox.popleft()
            if isinstance(entry, SnapshotWritten):
                self._snapshot.update(entry.snapshot)
            elif isinstance(entry, RunDone):  # the run committed (or failed for good)
                self._done(key, state, entry.outputs, entry.error, out, queued)
            elif queued:  # a CallWritten
                self._calls.put(entry.slot, entry.record)
                state.wrote_calls = True

    def _done(
        self,
        key: Hashable,
        state: _Key,
        outputs: list[Any] | None,
        error: BaseException | None,
        out: list[Any],
        queued: bool,
    ) -> None:
        if queued:
            self._pending.remove(state.head)
            state.head += 1
            self._save_positions(state)
            if state.wrote_calls:
                self._calls.clear()
                state.wrote_calls = False
        else:  # it took the next position without being stored there, and left it
            state.head = state.tail = state.sent
            if not state.stored:  # a new key's first run: from now on it has state
                self._save_positions(state)
        self._metrics.sync()
        if error is not None:
            self._failed(key, state, error)
        elif outputs:
            emit = self._emit
            out.extend(outputs if emit is None else [emit(key, output) for output in outputs])

    def _save_positions(self, state: _Key) -> None:
        """Write the key's queue positions to ``fa_queue``. An empty queue keeps them too (a
        key without them is new), unless a state TTL may drop the key's snapshot: positions
        would then stay for every key ever seen, which the TTL is there to prevent."""
        if state.head < state.tail or self._keep_positions:
            self._queue.update((state.head, state.tail))
        else:
            self._queue.clear()
        state.stored = True

    def _failed(self, key: Hashable, state: _Key, error: BaseException) -> None:
        if isinstance(error, RuntimeClosedError):
            return  # the subtask is closing; the input was consumed by the closing attempt
        kept = isinstance(error, KeyHaltedError) or getattr(error, "input_kept", False)
        if self._settings.error_strategy is ErrorHandlingStrategy.IGNORE and not kept:
            return  # logged by the runtime; the input is skipped as on every host
        # Otherwise the job fails and restarts from its checkpoint; an input that could not be
        # replayed is never skipped, so it runs again there (with its calls) once fixed.
        state.alive = False  # a failed job restarts from its checkpoint, not from this actor
        raise error

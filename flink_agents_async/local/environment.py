"""The local (asyncio) host: ``from_list`` / ``from_iterable`` -> ``apply`` -> ``execute``.

``execute()`` feeds every input to the actor system in source order, waits until every run has
finished, closes the resources, and then raises the original exception of the earliest failed
input, annotated with the others (see ``runtime.failures``).
Called from synchronous code (as upstream Flink Agents scripts do), it runs its own event loop;
from async code it returns a coroutine to await.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Hashable, Iterable
from typing import Any

from ..agent import Agent, AgentPlan
from ..clock import SYSTEM_CLOCK, Clock
from ..config import KEYWORD_OPTIONS, Configuration, JournalOptions, keyword_settings
from ..environment import AgentBuilder, AgentsExecutionEnvironment
from ..errors import ActionFailedError
from ..host_api import (
    HostHooks,
    Journal,
    JournalStore,
    MemoryJournalStore,
    MustAwait,
    OutputHub,
    OutputStream,
    RuntimeLifecycle,
    SQLiteJournalStore,
    error_to_raise,
    in_input_order,
    journal_from_config,
    loop_is_running,
)
from ..serve_settings import DEFAULT_SERVE_SETTINGS, ServeSettings
from .batch import feed_batch
from .inputs import InputReader
from .service import ServiceRuntime

__all__ = [
    "BatchOutputs",
    "LocalAgentBuilder",
    "LocalExecutionEnvironment",
    "create_environment",
]


class BatchOutputs:
    """What ``builder.outputs()`` returns: the job's stream of ``(key, output)`` pairs, which
    runs the job itself when iterated before anything else started it (see ``OutputStream``
    for buffering, ``async with`` and closing)."""

    def __init__(self, env: LocalExecutionEnvironment, stream: OutputStream) -> None:
        self._env = env
        self._stream = stream
        self._driver: asyncio.Future[None] | None = None

    @property
    def dropped(self) -> int:
        """Outputs dropped because the reader fell behind (``overflow="drop-oldest"``)."""
        return self._stream.dropped

    def __aiter__(self) -> BatchOutputs:
        return self

    async def __anext__(self) -> tuple[Hashable, Any]:
        if self._driver is None and not self._env.started:
            self._driver = self._env._start()  # nobody started the job: this stream runs it
        try:
            return await self._stream.__anext__()
        except StopAsyncIteration:
            driver, self._driver = self._driver, None
            if driver is not None:
                await driver  # raises what execute() would, after the last output
            raise

    async def aclose(self) -> None:
        """Stop reading. A job this stream started stops too, unless ``execute()`` has joined
        it meanwhile: then ``execute()`` still runs every input."""
        await self._stream.aclose()
        driver, self._driver = self._driver, None
        if driver is not None and not driver.done() and not self._env._execute_called:
            driver.cancel()
            await asyncio.gather(driver, return_exceptions=True)

    async def __aenter__(self) -> BatchOutputs:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:  # left by `break` and dropped: stop the job it started
        driver = self._driver
        if driver is not None and not driver.done() and not self._env._execute_called:
            with contextlib.suppress(RuntimeError):  # its loop is closed already
                driver.cancel()


class LocalAgentBuilder(AgentBuilder):
    """Inputs of the local environment, the agent applied to them, and where outputs go."""

    def __init__(self, env: LocalExecutionEnvironment, source: Any) -> None:
        self._env = env
        self._source = source
        self._plan: AgentPlan | None = None
        self._output_list: list[dict[Any, Any]] | None = None
        # Outputs for to_list() by input position: runs of different keys finish in any order,
        # the list is in input order.
        self._outputs_by_input: dict[int, list[dict[Any, Any]]] = {}
        self._hub = OutputHub()
        self._runtime: RuntimeLifecycle | None = None

    def apply(self, agent: Agent) -> LocalAgentBuilder:
        """Validate ``agent`` (raises ``AgentDefinitionError`` naming the culprit) and use it."""
        if self._plan is not None:
            raise RuntimeError("this builder already has an agent: apply() takes one agent")
        self._plan = AgentPlan.from_agent(agent, self._env.resources)
        return self

    def to_list(self) -> list[dict[Any, Any]]:
        """The list that ``execute()`` fills with ``{key: output}`` when it finishes.

        The list is in input order: every output of input i comes before those of input i + 1,
        and the outputs of one input in the order its run emitted them, however the keys'
        runs interleaved (``outputs()`` streams them in completion order instead)."""
        if self._output_list is None:
            if self._env.started:
                raise RuntimeError(
                    "to_list() was first called after execute() started; call it before, so the "
                    "outputs are collected"
                )
            self._output_list = []
        return self._output_list

    def outputs(self, *, max_buffered: int = 1000, overflow: str = "wait") -> BatchOutputs:
        """Every output as ``(key, output)``, as runs commit.

        Iterate it while ``execute()`` runs (e.g. in a task group), or on its own: if the
        environment has not started when iteration begins, the iterator runs it, and raises
        what ``execute()`` would (if anything) after the last output. At most
        ``max_buffered`` outputs wait for the reader; when that many do, ``overflow="wait"``
        (the default) holds new inputs back until it catches up, ``"drop-oldest"`` drops the
        oldest (counted in ``dropped``). ``async with builder.outputs() as stream`` closes it
        at the end.
        """
        if self._env.finished:
            raise RuntimeError(
                "outputs() was called after execute() finished; call it before or while "
                "execute() runs, or use to_list()"
            )
        return BatchOutputs(self._env, self._hub.subscribe(max_buffered, overflow))

    def metrics(self) -> dict[str, Any]:
        """A snapshot of the agent's metrics (empty before ``execute()`` starts)."""
        runtime = self._runtime
        return runtime.system.metrics_snapshot() if runtime and runtime.opened else {}

    def _collect(self, seq: int, key: Hashable, output: Any) -> None:
        self._outputs_by_input.setdefault(seq, []).append({key: output})

    def _fill_output_list(self) -> None:
        if self._output_list is not None:
            by_input, self._outputs_by_input = self._outputs_by_input, {}
            for seq in sorted(by_input):
                self._output_list.extend(by_input[seq])

    async def _run(self, config: Configuration, journal: Journal) -> None:
        if self._plan is None:
            raise RuntimeError("nothing to execute: call apply(agent) on the builder first")
        runtime = self._runtime = RuntimeLifecycle(
            self._plan,
            config,
            journal,
            mode="batch",
            clock=self._env.clock,
            hooks=HostHooks(output=self._collect if self._output_list is not None else None),
            outputs=self._hub,
            drain_timeout=0,  # execute() waits for every input; a failed feed waits for none
        )
        try:
            async with runtime:
                recovered = runtime.recovered
                if self._output_list is not None:  # outputs committed before a restart
                    for seq, key, output in recovered.outputs:
                        self._collect(seq, key, output)
                system = runtime.system
                system.failures.extend(recovered.failures)
                await feed_batch(system, self._source, InputReader(), recovered, self._hub)
                await runtime.drain()
        finally:
            self._fill_output_list()
            if runtime.opened:
                self._env.failures = in_input_order(runtime.system.failures)
        if self._env.failures:
            raise error_to_raise(self._env.failures)


class LocalExecutionEnvironment(AgentsExecutionEnvironment):
    """Runs agents on the asyncio event loop of this process, one actor per key."""

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        journal_store: JournalStore | None = None,
        clock: Clock | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self._journal_store = journal_store
        #: Where the runtime reads wall time (a ``MockClock`` in tests).
        self.clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        settings = keyword_settings(
            kwargs,
            KEYWORD_OPTIONS,
            "get_execution_environment()",
            "journal_store=..., clock=..., config={...}",
        )
        if config:
            self._config.update(config)
        self._config.update(settings)
        self._builder: LocalAgentBuilder | None = None
        self._execution: asyncio.Future[None] | None = None
        self._execute_called = False
        self.started = False
        self.finished = False
        #: Every failed run of the last ``execute()``, in input order.
        self.failures: list[ActionFailedError] = []

    def from_list(self, input: list[dict[str, Any]]) -> LocalAgentBuilder:
        """Inputs from a list of dicts. The list is read when ``execute()`` starts, so items
        appended before then are included; a malformed item is rejected before any runs."""
        if not isinstance(input, list | tuple):
            raise TypeError(f"from_list() takes a list of dicts, got {type(input).__name__}")
        return self._set_source(input)

    def from_iterable(self, input: Iterable[Any] | Any) -> LocalAgentBuilder:
        """Inputs from an iterable or async iterable of dicts, read as ``execute()`` goes."""
        return self._set_source(input)

    def _set_source(self, source: Any) -> LocalAgentBuilder:
        if self._builder is not None:
            raise RuntimeError(
                "this environment already has its inputs: call from_list()/from_iterable() once "
                "per environment"
            )
        self._builder = LocalAgentBuilder(self, source)
        return self._builder

    def execute(self, job_name: str | None = None) -> Coroutine[Any, Any, None] | None:
        """Run every input to completion.

        ``await env.execute()`` in async code. Called without a running event loop (a plain
        script), it runs one itself and returns when done; called inside one without
        ``await``, nothing runs and a ``RuntimeWarning`` says so.

        When runs failed, it raises once every other input finished: the original exception
        of the earliest failed input (input order), with notes naming its key, run, action and
        event type and listing the other failed runs, and every failure (``ActionFailedError``,
        in input order) in its ``execution_failures`` and in ``env.failures``. Failures of the
        job itself raise their own errors (``InputError``, ``JournalError``...). ``job_name``
        is accepted as on Flink (it names nothing here).
        """
        if not loop_is_running():
            asyncio.run(self._execute())
            return None
        return MustAwait(self._execute(), "env.execute()")

    async def _execute(self) -> None:
        if self._execute_called:
            raise RuntimeError("this environment was already executed; create a new one")
        self._execute_called = True
        await self._start()

    def _start(self) -> asyncio.Future[None]:
        """The execution task, started on first call (by execute() or by iterating outputs())."""
        if self._execution is None:
            if self._builder is None:
                raise RuntimeError(
                    "nothing to execute: call env.from_list(...).apply(agent) (or from_iterable) "
                    "first"
                )
            self.started = True
            self._execution = asyncio.ensure_future(self._run_job(self._builder))
        return self._execution

    async def _run_job(self, builder: LocalAgentBuilder) -> None:
        try:
            await builder._run(self._config, self._journal())
        finally:
            self.finished = True

    def _journal(self, service: bool = False) -> Journal:
        config = self._config
        store = self._journal_store
        # A batch job's input positions and outputs are what make it resumable. Nobody can
        # resume from a private in-memory store, so it records nothing only recovery reads; a
        # service keeps no committed inputs (its source is not replayable anyway).
        resumable = True
        if store is None:
            directory = config.get(JournalOptions.DIR)
            if directory:
                store = SQLiteJournalStore(
                    directory,
                    str(config.get(JournalOptions.DURABILITY)),
                    max_record_bytes=config.get(JournalOptions.MAX_RECORD_BYTES),
                    allow_lost_writes=bool(config.get(JournalOptions.ALLOW_LOST_WRITES)),
                )
            else:
                store, resumable = MemoryJournalStore(), False
        return journal_from_config(config, store, keep_inputs=not service, recording=resumable)

    def metrics(self) -> dict[str, Any]:
        """A snapshot of the agent's metrics: ``{"numOfEventProcessed": ..., ...}``."""
        return self._builder.metrics() if self._builder is not None else {}

    def serve(
        self,
        agent: Agent,
        *,
        drain_timeout: float = DEFAULT_SERVE_SETTINGS.drain_timeout,
        max_pending: int = DEFAULT_SERVE_SETTINGS.max_pending,
        busy_policy: str = DEFAULT_SERVE_SETTINGS.busy_policy,
        idle_timeout: float | None = DEFAULT_SERVE_SETTINGS.idle_timeout,
    ) -> ServiceRuntime:
        """A long-lived runtime for ``agent`` in the caller's event loop.

        ``async with env.serve(agent) as runtime:`` then ``await runtime.send(key, value)``
        (one input, its outputs back), ``await runtime.submit(key, value)`` (a handle to
        await), ``runtime.outputs()`` (every output), ``runtime.stats()``. With ``journal_dir``
        set on the environment, accepted inputs survive a crash. ``max_pending`` bounds the
        unfinished inputs, ``busy_policy`` (``queue`` or ``reject``) says what an input for a
        busy key does, ``idle_timeout`` (seconds) passivates idle keys, ``drain_timeout``
        bounds the wait for in-flight inputs when the block ends.
        """
        settings = ServeSettings(drain_timeout, max_pending, busy_policy, idle_timeout)
        plan = AgentPlan.from_agent(agent, self.resources)
        return ServiceRuntime(
            plan, self._config, self._journal(service=True), settings, clock=self.clock
        )


def create_environment(env: Any, t_env: Any, **kwargs: Any) -> LocalExecutionEnvironment:
    """The local host's factory (``flink_agents_async.hosts``): ``env`` and ``t_env`` are
    Flink's and always None here; ``kwargs`` configure the runtime."""
    return LocalExecutionEnvironment(**kwargs)

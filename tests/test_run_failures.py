"""Runs that end badly still end: every failure path fails that run (or stops the runtime when
its journal breaks) and settles every waiter; nothing runs twice that the journal recorded.

Regression tests for what hostile use found: exceptions escaping the commit path, a sync action
raising ``CancelledError``, a context used after its run, runaway event loops, generator
actions, NaN keys, timeouts, retries that repeated completed calls, and replay problems that
threw away the journal's record.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from journal_helpers import GUARD_TIMEOUT, crash_job, run_job
from structlog.testing import capture_logs

from flink_agents_async import (
    ActionFailedError,
    Agent,
    AgentDefinitionError,
    AgentsExecutionEnvironment,
    ConfigurationError,
    ContextUsageError,
    ExecutionError,
    InputError,
    InputEvent,
    JournalError,
    JournalWriteError,
    KeyHaltedError,
    NonDeterminismError,
    OutputEvent,
    RunnerContext,
    RuntimeClosedError,
    action,
)
from flink_agents_async.journal import CommitOp, MemoryJournalStore
from flink_agents_async.journal.codec import JournalEncodeError
from flink_agents_async.journal.records import INPUT_ACCEPTED


async def execute(env: Any) -> None:
    await asyncio.wait_for(env.execute(), GUARD_TIMEOUT)


# -- the commit path never leaves a run unsettled ----------------------------------------------


@dataclasses.dataclass
class Half:
    """A dataclass instance missing one of its fields: reading it raises AttributeError."""

    code: int


def half_made() -> Half:
    value = Half(1)
    del value.code
    return value


def emitting_agent() -> Agent:
    def act(event: InputEvent, ctx: RunnerContext) -> None:
        if event.input == "bad":  # past the event's JSON check, to reach the journal's codec
            ctx.send_event(OutputEvent.model_construct(output=half_made()))
        else:
            ctx.send_event(OutputEvent(output=event.input))

    return Agent().add_action("act", [InputEvent], act)


async def test_an_output_whose_encoding_raises_anything_fails_only_its_run(
    tmp_path: Path,
) -> None:
    env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=tmp_path)
    items = [{"key": "a", "value": "bad"}, {"key": "a", "value": "good"}]
    outputs = env.from_list(items).apply(emitting_agent()).to_list()
    with pytest.raises(JournalEncodeError, match="Half") as caught:
        await execute(env)
    assert outputs == [{"a": "good"}]
    (failure,) = caught.value.execution_failures  # type: ignore[attr-defined]
    assert failure.action == "<commit>" and failure.cause is caught.value


async def test_without_a_journal_such_an_output_is_never_encoded() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    items = [{"key": "a", "value": "bad"}, {"key": "a", "value": "good"}]
    outputs = env.from_list(items).apply(emitting_agent()).to_list()
    await execute(env)
    assert [type(entry["a"]) for entry in outputs] == [Half, str]


async def test_serve_settles_a_run_whose_output_cannot_be_encoded(tmp_path: Path) -> None:
    env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=tmp_path)
    async with env.serve(emitting_agent(), drain_timeout=1) as runtime:
        with pytest.raises(ActionFailedError, match="Half"):
            await asyncio.wait_for(runtime.send("a", "bad"), GUARD_TIMEOUT)
        assert await asyncio.wait_for(runtime.send("a", "good"), GUARD_TIMEOUT) == ["good"]


class BreakingStore(MemoryJournalStore):
    """A journal store whose disk gives out at the ``fail_at``-th commit (a user's store on a
    device that fails is what this stands for: every write after raises)."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.commit_writes = 0
        self.broken = False

    def write(self, ops: Any) -> Any:
        if any(isinstance(op, CommitOp) for op in ops):
            self.commit_writes += 1
            if self.commit_writes >= self.fail_at:
                self.broken = True
        if self.broken:
            raise OSError(28, "No space left on device")
        return super().write(ops)


async def test_a_store_that_breaks_ends_execute_with_a_journal_write_error() -> None:
    store = BreakingStore(fail_at=3)
    env = AgentsExecutionEnvironment.get_execution_environment(journal_store=store)
    items = [{"key": f"k{n % 4}", "value": n} for n in range(40)]
    outputs = env.from_list(items).apply(emitting_agent()).to_list()
    with pytest.raises(JournalWriteError, match="No space left on device"):
        await execute(env)
    assert len(outputs) == 2  # the two commits before the store broke
    # nothing past the failure was marked done: every other input stays accepted
    pending = [seq for seq, (_, status, _) in store.inputs.items() if status == INPUT_ACCEPTED]
    assert len(pending) == len(store.inputs) - 2


async def test_a_store_that_breaks_stops_serve_and_every_waiter_gets_the_error() -> None:
    store = BreakingStore(fail_at=2)
    env = AgentsExecutionEnvironment.get_execution_environment(journal_store=store)
    gate = asyncio.Event()

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        await gate.wait()
        ctx.send_event(OutputEvent(output=event.input))

    agent = Agent().add_action("act", [InputEvent], act)
    with pytest.raises(JournalWriteError):
        async with env.serve(agent, drain_timeout=GUARD_TIMEOUT) as runtime:
            handles = [await runtime.submit(f"k{n % 3}", n) for n in range(9)]
            gate.set()
            results = await asyncio.wait_for(
                asyncio.gather(*handles, return_exceptions=True), GUARD_TIMEOUT
            )
            assert results[0] == [0]
            assert all(isinstance(result, JournalWriteError) for result in results[1:])
            with pytest.raises(JournalWriteError):
                await runtime.submit("k0", 99)


# -- a sync action raising CancelledError or SystemExit ----------------------------------------


@pytest.mark.parametrize("raised", [asyncio.CancelledError, SystemExit])
async def test_a_sync_action_raising_a_base_exception_fails_only_its_run(
    raised: type[BaseException],
) -> None:
    def act(event: InputEvent, ctx: RunnerContext) -> None:
        if event.input == 1:
            raise raised()
        ctx.send_event(OutputEvent(output=event.input))

    agent = Agent().add_action("act", [InputEvent], act)
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list([{"key": "a", "value": n} for n in range(3)]).apply(agent).to_list()
    # Re-raised, it would end the program or cancel the caller: reported in an ExecutionError
    with pytest.raises(ExecutionError) as caught:
        await execute(env)
    assert outputs == [{"a": 0}, {"a": 2}]
    (failure,) = caught.value.execution_failures
    assert type(failure.cause) is raised and (failure.key, failure.run) == ("a", 2)
    assert "input 1, run 2 of key 'a' failed in action 'act'" in caught.value.__notes__[0]

    async with AgentsExecutionEnvironment.get_execution_environment().serve(agent) as runtime:
        with pytest.raises(ActionFailedError):
            await asyncio.wait_for(runtime.send("a", 1), GUARD_TIMEOUT)
        assert await asyncio.wait_for(runtime.send("a", 2), GUARD_TIMEOUT) == [2]  # not wedged


# -- a context used after its run, or from another thread --------------------------------------


async def test_a_context_kept_by_a_task_after_its_run_refuses_memory_events_and_calls() -> None:
    release = asyncio.Event()
    outcomes: list[str] = []
    leftovers: list[asyncio.Task[None]] = []

    async def late(ctx: RunnerContext) -> None:
        await release.wait()
        for name, use in [
            ("memory", lambda: ctx.short_term_memory.set("late", 1)),
            ("kept view", lambda: kept["view"].set("late", 1)),
            ("event", lambda: ctx.send_event(OutputEvent(output="late"))),
            ("call", lambda: ctx.durable_execute(len, "x")),
            ("async call", lambda: ctx.durable_execute_async(len, "x")),
        ]:
            try:
                use()
                outcomes.append(f"{name}: accepted")
            except ContextUsageError as error:
                assert "after run 1" in str(error)
                outcomes.append(f"{name}: refused")

    kept: dict[str, Any] = {}

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        if event.input == 1:
            kept["view"] = ctx.short_term_memory
            leftovers.append(asyncio.get_running_loop().create_task(late(ctx)))  # fire and forget
            return
        release.set()
        await leftovers[0]
        ctx.send_event(OutputEvent(output=ctx.short_term_memory.get("late")))

    agent = Agent().add_action("act", [InputEvent], act)
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list([{"key": "a", "value": 1}, {"key": "a", "value": 2}]).apply(agent)
    collected = outputs.to_list()
    await execute(env)
    assert outcomes == [
        "memory: refused", "kept view: refused", "event: refused", "call: refused",
        "async call: refused",
    ]  # fmt: skip
    assert collected == [{"a": None}]  # nothing landed in run 2


@pytest.mark.parametrize("how", ["to_thread", "thread"])
async def test_memory_from_another_thread_is_refused(how: str) -> None:
    errors: list[BaseException] = []

    def write(ctx: RunnerContext) -> None:
        try:
            ctx.short_term_memory.set("x", 1)
        except BaseException as error:
            errors.append(error)

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        if how == "to_thread":
            await asyncio.to_thread(write, ctx)
        else:
            worker = threading.Thread(target=write, args=(ctx,))
            worker.start()
            await asyncio.to_thread(worker.join)
        ctx.send_event(OutputEvent(output=ctx.short_term_memory.get("x")))

    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list([{"key": "a", "value": 1}]).apply(
        Agent().add_action("act", [InputEvent], act)
    )
    collected = outputs.to_list()
    await execute(env)
    assert collected == [{"a": None}]
    (error,) = errors
    assert isinstance(error, ContextUsageError) and "thread" in str(error)


# -- runaway event loops are stopped at the limit ----------------------------------------------


async def test_an_action_sending_events_in_a_loop_is_stopped_at_the_limit() -> None:
    sent: list[int] = []

    def flood(event: InputEvent, ctx: RunnerContext) -> None:
        for n in range(1_000_000):
            ctx.send_event(OutputEvent(output=n))
            sent.append(n)

    env = AgentsExecutionEnvironment.get_execution_environment(max_events_per_run=1000)
    outputs = env.from_list([{"key": "a", "value": 1}]).apply(
        Agent().add_action("flood", [InputEvent], flood)
    )
    collected = outputs.to_list()
    with pytest.raises(RuntimeError, match="queued more than 1000 events") as caught:
        await execute(env)
    (failure,) = caught.value.execution_failures
    assert failure.cause is caught.value and failure.key == "a"
    assert len(sent) == 999  # the input plus 999 sent: the next one is refused at once
    assert collected == []


# -- generator actions -------------------------------------------------------------------------


def test_generator_actions_are_refused_when_applied() -> None:
    class Upstream01(Agent):
        @action(InputEvent)
        @staticmethod
        def old_style(event: InputEvent, ctx: RunnerContext):  # type: ignore[no-untyped-def]
            result = yield from ctx.execute_async(len, "x")  # type: ignore[misc]
            ctx.send_event(OutputEvent(output=result))

    class AsyncGenerator(Agent):
        @action(InputEvent)
        @staticmethod
        async def streaming(event: InputEvent, ctx: RunnerContext):  # type: ignore[no-untyped-def]
            yield 1

    for agent, name in [(Upstream01(), "old_style"), (AsyncGenerator(), "streaming")]:
        env = AgentsExecutionEnvironment.get_execution_environment()
        with pytest.raises(AgentDefinitionError) as caught:
            env.from_list([{"key": "a", "value": 1}]).apply(agent)
        assert repr(name) in str(caught.value)
        assert "await ctx.durable_execute_async" in str(caught.value)


async def test_an_action_returning_a_value_is_warned_about_once() -> None:
    async def answer(event: InputEvent, ctx: RunnerContext) -> str:
        return "this is not an output"

    env = AgentsExecutionEnvironment.get_execution_environment()
    env.from_list([{"key": "a", "value": n} for n in range(3)]).apply(
        Agent().add_action("answer", [InputEvent], answer)
    )
    with capture_logs() as logs:
        await execute(env)
    warnings = [log for log in logs if "returned a value" in log["event"]]
    assert len(warnings) == 1 and warnings[0]["action"] == "answer"
    assert "OutputEvent" in warnings[0]["event"]


# -- keys --------------------------------------------------------------------------------------


async def test_nan_keys_are_refused() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    agent = Agent().add_action("act", [InputEvent], lambda event, ctx: None)
    env.from_list([{"key": 1.5, "value": 1}, {"key": ("a", float("nan")), "value": 2}]).apply(agent)
    with pytest.raises(InputError, match=r"input item 1 .* does not equal itself"):
        await execute(env)
    async with AgentsExecutionEnvironment.get_execution_environment().serve(agent) as runtime:
        with pytest.raises(InputError, match="NaN"):
            await runtime.submit(float("nan"), 1)


# -- timeouts ----------------------------------------------------------------------------------


async def test_action_timeout_fails_a_slow_async_action_and_its_run() -> None:
    never = asyncio.Event()

    async def slow(event: InputEvent, ctx: RunnerContext) -> None:
        if event.input == "slow":
            await never.wait()
        ctx.send_event(OutputEvent(output=event.input))

    env = AgentsExecutionEnvironment.get_execution_environment(action_timeout=0.05)
    items = [{"key": "a", "value": "slow"}, {"key": "a", "value": "fast"}]
    outputs = env.from_list(items).apply(Agent().add_action("slow", [InputEvent], slow))
    collected = outputs.to_list()
    with pytest.raises(TimeoutError, match=r"action-timeout=0\.05") as caught:
        await execute(env)
    assert collected == [{"a": "fast"}]
    (failure,) = caught.value.execution_failures
    assert failure.cause is caught.value and failure.action == "slow"
    assert "action-timeout=0.05" in str(failure.cause)


async def test_run_timeout_fails_a_run_whose_actions_keep_going() -> None:
    never = asyncio.Event()

    async def step(event: InputEvent, ctx: RunnerContext) -> None:
        await never.wait()

    env = AgentsExecutionEnvironment.get_execution_environment(run_timeout=0.05)
    env.from_list([{"key": "a", "value": 1}]).apply(Agent().add_action("step", [InputEvent], step))
    with pytest.raises(TimeoutError, match=r"run-timeout=0\.05") as caught:
        await execute(env)
    (failure,) = caught.value.execution_failures
    assert failure.cause is caught.value and failure.key == "a"


async def test_timeouts_are_off_by_default_and_refuse_negative_values() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment(run_timeout=-1)
    env.from_list([{"key": "a", "value": 1}]).apply(
        Agent().add_action("act", [InputEvent], lambda event, ctx: None)
    )
    with pytest.raises(ConfigurationError, match="run-timeout"):
        await execute(env)


# -- retries replay what completed -------------------------------------------------------------


async def test_a_retry_replays_completed_calls_and_calls_again_those_that_raised() -> None:
    counts: Counter[str] = Counter()

    def charge(order: int) -> str:
        counts["charge"] += 1
        return f"charged {order}"

    def ship(order: int) -> str:
        counts["ship"] += 1
        if counts["ship"] < 3:
            raise ConnectionError("carrier unreachable")  # transient
        return f"shipped {order}"

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        charged = await ctx.durable_execute_async(charge, event.input)
        shipped = ctx.durable_execute(ship, event.input)
        ctx.send_event(OutputEvent(output=[charged, shipped]))

    env = AgentsExecutionEnvironment.get_execution_environment(
        error_handling_strategy="retry", max_retries=3
    )
    outputs = env.from_list([{"key": "a", "value": 7}]).apply(
        Agent().add_action("act", [InputEvent], act)
    )
    collected = outputs.to_list()
    await execute(env)
    assert collected == [{"a": ["charged 7", "shipped 7"]}]
    assert counts == {"charge": 1, "ship": 3}  # the charge ran once in three attempts


async def test_a_thread_call_cancelled_by_a_failing_sibling_is_recorded_for_the_retry() -> None:
    counts: Counter[str] = Counter()
    started = threading.Event()
    release = threading.Event()

    def effect() -> str:
        started.set()
        release.wait(GUARD_TIMEOUT)
        counts["effect"] += 1
        return "done"

    async def slow(event: InputEvent, ctx: RunnerContext) -> None:
        result = await ctx.durable_execute_async(effect)
        ctx.send_event(OutputEvent(output=result))

    async def flaky(event: InputEvent, ctx: RunnerContext) -> None:
        counts["flaky"] += 1
        if counts["flaky"] == 1:
            await asyncio.to_thread(started.wait, GUARD_TIMEOUT)  # the call is in its thread
            release.set()  # it ends while its run is being cancelled
            raise RuntimeError("transient")

    agent = Agent().add_action("slow", [InputEvent], slow).add_action("flaky", [InputEvent], flaky)
    env = AgentsExecutionEnvironment.get_execution_environment(
        error_handling_strategy="retry", max_retries=2
    )
    collected = env.from_list([{"key": "a", "value": 1}]).apply(agent).to_list()
    await execute(env)
    assert collected == [{"a": "done"}]
    assert counts == {"effect": 1, "flaky": 2}  # the retry replayed what the thread did


# -- replay problems keep the input ------------------------------------------------------------


class Versions:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.crashed = asyncio.Event()
        self.crash = True

    def original(self, item: int) -> str:
        self.counts[f"original {item}"] += 1
        return f"original {item}"

    def changed(self, item: int) -> str:
        self.counts[f"changed {item}"] += 1
        return f"changed {item}"

    def agent(self, function: Any) -> Agent:
        async def act(event: InputEvent, ctx: RunnerContext) -> None:
            result = await ctx.durable_execute_async(function, event.input)
            if self.crash and event.input == 1:
                self.crashed.set()
                await asyncio.Event().wait()
            ctx.send_event(OutputEvent(output=result))

        return Agent().add_action("act", [InputEvent], act)


INPUTS = [{"key": "k", "value": 1}, {"key": "k", "value": 2}, {"key": "j", "value": 3}]


async def test_a_strict_divergence_keeps_the_input_and_halts_the_key_until_fixed() -> None:
    store = MemoryJournalStore()
    versions = Versions()
    await crash_job(store, versions.agent(versions.original), INPUTS[:2], versions.crashed)
    versions.crash = False
    with pytest.raises(NonDeterminismError) as caught:
        await run_job(store, versions.agent(versions.changed), INPUTS, divergence="strict")
    (failure,) = caught.value.execution_failures
    assert failure.cause is caught.value and failure.input_kept
    assert "kept" in str(failure)
    assert "input and journaled calls are kept" in "\n".join(caught.value.__notes__)
    assert versions.counts["changed 2"] == 0  # the key's later input waited
    assert versions.counts["changed 3"] == 1  # other keys went on
    assert store.calls[0]  # the call record of input 0 is still there
    assert store.inputs[0][1] == INPUT_ACCEPTED and store.inputs[1][1] == INPUT_ACCEPTED

    outputs = await run_job(store, versions.agent(versions.original), INPUTS)
    # to_list() is in input order, whichever start committed each run
    assert outputs == [{"k": "original 1"}, {"k": "original 2"}, {"j": "changed 3"}]
    assert versions.counts["original 1"] == 1  # replayed, not called again


async def test_later_inputs_of_a_halted_key_get_key_halted_errors_in_serve() -> None:
    store = MemoryJournalStore()
    versions = Versions()
    env = AgentsExecutionEnvironment.get_execution_environment(journal_store=store)
    async with env.serve(versions.agent(versions.original), drain_timeout=0) as runtime:
        handle = await runtime.submit("k", 1)
        await asyncio.wait_for(versions.crashed.wait(), GUARD_TIMEOUT)
    with pytest.raises(RuntimeClosedError):  # cut off by the drain: kept for the next start
        await handle
    versions.crash = False
    env = AgentsExecutionEnvironment.get_execution_environment(
        journal_store=store, divergence="strict"
    )
    async with env.serve(versions.agent(versions.changed)) as runtime:
        with pytest.raises(KeyHaltedError, match="halted"):
            await asyncio.wait_for(runtime.send("k", 5), GUARD_TIMEOUT)
        assert await runtime.send("other", 6) == ["changed 6"]
    env = AgentsExecutionEnvironment.get_execution_environment(journal_store=store)
    async with env.serve(versions.agent(versions.original)) as runtime:
        resumed = runtime.outputs()
        assert await runtime.send("k", 7) == ["original 7"]
    assert [pair async for pair in resumed] == [("k", "original 1"), ("k", "original 5"),
                                                ("k", "original 7")]  # fmt: skip
    assert versions.counts["original 1"] == 1


async def test_a_value_that_needs_pickling_keeps_the_input_until_pickling_is_allowed() -> None:
    store = MemoryJournalStore()
    counts: Counter[str] = Counter()
    crashed = asyncio.Event()
    crash = {"now": True}

    def lookup(item: int) -> Any:
        counts["lookup"] += 1
        return threading.Lock  # a function object: no codec carries it but pickle

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        found = await ctx.durable_execute_async(lookup, event.input)
        if crash["now"]:
            crashed.set()
            await asyncio.Event().wait()
        ctx.send_event(OutputEvent(output=found.__name__))

    agent = Agent().add_action("act", [InputEvent], act)
    items = [{"key": "k", "value": 1}]
    await crash_job(store, agent, items, crashed, allow_pickle=True)
    crash["now"] = False
    with pytest.raises(JournalError, match=r"journal\.allow-pickle") as caught:
        await run_job(store, agent, items)
    (failure,) = caught.value.execution_failures
    assert failure.input_kept and failure.cause is caught.value
    assert "journal.allow-pickle" in str(failure.cause)
    assert await run_job(store, agent, items, allow_pickle=True) == [{"k": "allocate_lock"}]
    assert counts["lookup"] == 1


async def test_a_model_whose_module_is_not_imported_yet_keeps_the_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = tmp_path / "late_models.py"
    module.write_text(
        "import pydantic\n\n\nclass Quote(pydantic.BaseModel):\n    price: int\n\n\n"
        "def fetch(item):\n    return Quote(price=item * 10)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import late_models  # type: ignore[import-not-found]

    store = MemoryJournalStore()
    counts: Counter[str] = Counter()
    crashed = asyncio.Event()
    crash = {"now": True}

    def fetch(item: int) -> Any:
        counts["fetch"] += 1
        return late_models.fetch(item)

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        quote = await ctx.durable_execute_async(fetch, event.input)
        if crash["now"]:
            crashed.set()
            await asyncio.Event().wait()
        ctx.send_event(OutputEvent(output=quote.price))

    agent = Agent().add_action("act", [InputEvent], act)
    items = [{"key": "k", "value": 4}]
    await crash_job(store, agent, items, crashed)
    crash["now"] = False
    monkeypatch.delitem(sys.modules, "late_models")  # a restart that has not imported it yet
    with pytest.raises(JournalError, match=r"late_models\.Quote") as caught:
        await run_job(store, agent, items)
    (failure,) = caught.value.execution_failures
    assert failure.cause is caught.value
    assert failure.input_kept and "late_models.Quote" in str(failure.cause)
    assert "import its module" in str(failure.cause)
    import late_models  # noqa: F811 - the fix: import it before the job starts

    assert await run_job(store, agent, items) == [{"k": 40}]
    assert counts["fetch"] == 1

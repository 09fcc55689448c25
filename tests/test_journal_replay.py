"""Replay after a crash: recorded slots answer without calling, divergence, reconcilers."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from journal_helpers import crash_job, make_store, run_job
from structlog.testing import capture_logs

from flink_agents_async import (
    Agent,
    InputEvent,
    NonDeterminismError,
    OutputEvent,
    RunnerContext,
)

STORES = ["memory", "sqlite"]


class Calls:
    """Counts real calls of durable functions, and can stop the job at one of them."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.crashed = asyncio.Event()
        self.crash_at: str | None = None

    def effect(self, name: str, value: Any = None) -> Any:
        self.counts[name] += 1
        return value

    async def maybe_crash(self, name: str) -> None:
        if self.crash_at == name:
            self.crashed.set()
            await asyncio.Event().wait()  # never finishes: the job is stopped here


def three_step_agent(calls: Calls, mode: str = "sync") -> Agent:
    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        results = []
        for step in ("one", "two", "three"):
            if mode == "sync":
                results.append(ctx.durable_execute(calls.effect, step, f"{step}:{event.input}"))
            else:
                results.append(
                    await ctx.durable_execute_async(calls.effect, step, f"{step}:{event.input}")
                )
            ctx.short_term_memory.set("last", step)
            await calls.maybe_crash(step)
        ctx.send_event(OutputEvent(output=results))

    return Agent().add_action("act", [InputEvent], act)


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_recorded_results_replay_without_calling(kind: str, mode: str, tmp_path: Path):
    store = make_store(kind, tmp_path)
    calls = Calls()
    calls.crash_at = "two"
    agent = three_step_agent(calls, mode)
    crashed = await crash_job(store(), agent, [{"key": "a", "value": 7}], calls.crashed)
    assert crashed == []
    assert calls.counts == {"one": 1, "two": 1}

    calls.crash_at = None
    outputs = await run_job(store(), agent, [{"key": "a", "value": 7}])
    assert outputs == [{"a": ["one:7", "two:7", "three:7"]}]
    assert calls.counts == {"one": 1, "two": 1, "three": 1}  # one and two were replayed


class Flaky(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message, code)
        self.code = code


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_recorded_exceptions_replay_with_type_and_message(
    kind: str, mode: str, tmp_path: Path
) -> None:
    store = make_store(kind, tmp_path)
    calls = Calls()
    crashed = asyncio.Event()
    stop = {"now": True}

    def fail(code: int) -> None:
        calls.counts["fail"] += 1
        raise Flaky(f"refused {code}", code)

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        try:
            if mode == "sync":
                ctx.durable_execute(fail, 3)
            else:
                await ctx.durable_execute_async(fail, 3)
        except Flaky as error:
            caught = [type(error).__name__, str(error), error.args]
        if stop["now"]:
            crashed.set()
            await asyncio.Event().wait()
        ctx.send_event(OutputEvent(output=caught))

    agent = Agent().add_action("act", [InputEvent], act)
    await crash_job(store(), agent, [{"key": "a", "value": 1}], crashed)
    stop["now"] = False
    outputs = await run_job(store(), agent, [{"key": "a", "value": 1}])
    assert outputs == [{"a": ["Flaky", "('refused 3', 3)", ("refused 3", 3)]}]
    assert calls.counts["fail"] == 1


@pytest.mark.parametrize("kind", STORES)
async def test_gather_of_five_replays_each_slot_to_its_awaiter(kind: str, tmp_path: Path):
    store = make_store(kind, tmp_path)
    calls = Calls()
    crashed = asyncio.Event()
    crash = {"now": True}

    async def square(x: int) -> int:
        calls.counts[f"square {x}"] += 1
        await asyncio.sleep(0.001 * (6 - x))  # completes in reverse order of the calls
        return x * x

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        results = await asyncio.gather(*(ctx.durable_execute_async(square, x) for x in range(5)))
        if crash["now"]:
            crashed.set()
            await asyncio.Event().wait()
        ctx.send_event(OutputEvent(output=results))

    agent = Agent().add_action("act", [InputEvent], act)
    await crash_job(store(), agent, [{"key": "a", "value": 0}], crashed)
    crash["now"] = False
    outputs = await run_job(store(), agent, [{"key": "a", "value": 0}])
    assert outputs == [{"a": [0, 1, 4, 9, 16]}]
    assert all(count == 1 for count in calls.counts.values()) and len(calls.counts) == 5


def diverging_agent(calls: Calls, first_function: Any) -> Agent:
    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        first = ctx.durable_execute(first_function, "first")
        second = ctx.durable_execute(calls.effect, "second", "2nd")
        await calls.maybe_crash("after second")
        ctx.send_event(OutputEvent(output=[first, second]))

    return Agent().add_action("act", [InputEvent], act)


@pytest.mark.parametrize("kind", STORES)
async def test_divergence_warns_runs_the_changed_call_and_replays_the_rest(
    kind: str, tmp_path: Path
) -> None:
    store = make_store(kind, tmp_path)
    calls = Calls()
    calls.crash_at = "after second"

    def original(name: str) -> str:
        calls.counts["original"] += 1
        return "original"

    def changed(name: str) -> str:
        calls.counts["changed"] += 1
        return "changed"

    await crash_job(
        store(), diverging_agent(calls, original), [{"key": "k", "value": 1}], calls.crashed
    )
    calls.crash_at = None
    with capture_logs() as logs:
        outputs = await run_job(
            store(), diverging_agent(calls, changed), [{"key": "k", "value": 1}]
        )
    assert outputs == [{"k": ["changed", "2nd"]}]
    # slot 0 diverged and ran anew; the second call was journaled as it is now: replayed
    assert calls.counts == {"original": 1, "changed": 1, "second": 1}
    (warning,) = [log for log in logs if "differs from the journal" in log["event"]]
    assert warning["key"] == "k" and warning["slot"] == 0 and warning["action"] == "act"
    assert warning["expected"]["function"].endswith("original")
    assert warning["actual"]["function"].endswith("changed")


@pytest.mark.parametrize("kind", STORES)
async def test_divergence_of_arguments_counts_too(kind: str, tmp_path: Path) -> None:
    store = make_store(kind, tmp_path)
    calls = Calls()
    crashed = asyncio.Event()
    argument = {"value": "before"}

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        result = ctx.durable_execute(calls.effect, "call", argument["value"])
        if argument["value"] == "before":
            crashed.set()
            await asyncio.Event().wait()
        ctx.send_event(OutputEvent(output=result))

    agent = Agent().add_action("act", [InputEvent], act)
    await crash_job(store(), agent, [{"key": "k", "value": 1}], crashed)
    argument["value"] = "after"
    with capture_logs():
        outputs = await run_job(store(), agent, [{"key": "k", "value": 1}])
    assert outputs == [{"k": "after"}]
    assert calls.counts["call"] == 2


@pytest.mark.parametrize("kind", STORES)
async def test_strict_divergence_raises_non_determinism_error(kind: str, tmp_path: Path):
    store = make_store(kind, tmp_path)
    calls = Calls()
    calls.crash_at = "after second"

    def original(name: str) -> str:
        return "original"

    def changed(name: str) -> str:
        return "changed"

    await crash_job(
        store(), diverging_agent(calls, original), [{"key": "k", "value": 1}], calls.crashed
    )
    calls.crash_at = None
    with pytest.raises(NonDeterminismError) as caught:
        await run_job(
            store(), diverging_agent(calls, changed), [{"key": "k", "value": 1}],
            divergence="strict",
        )  # fmt: skip
    error = caught.value
    (failure,) = error.execution_failures
    assert failure.cause is error and failure.input_kept
    assert error.diff["slot"] == 0 and error.diff["key"] == "k" and error.diff["action"] == "act"
    assert error.diff["expected"]["function"].endswith("original")
    assert error.diff["actual"]["function"].endswith("changed")
    assert "slot 0" in str(error)


class Effects:
    """An external effect that is not idempotent by itself, and a reconciler that checks it."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.function_calls = 0
        self.reconciler_calls = 0

    def apply(self, effect_id: str) -> str:
        self.function_calls += 1
        self.applied.append(effect_id)
        return f"applied {effect_id}"

    def reconcile(self, effect_id: str) -> str:
        self.reconciler_calls += 1
        if effect_id in self.applied:
            return f"found {effect_id}"
        return self.apply(effect_id)


class Crash(BaseException):
    """Stands for the process dying inside a durable function (nothing catches it)."""


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_pending_slot_runs_the_reconciler_instead(kind: str, mode: str, tmp_path: Path):
    store = make_store(kind, tmp_path)
    effects = Effects()
    crashed = asyncio.Event()
    crash_inside = {"now": True}

    def apply_then_crash(effect_id: str) -> str:
        result = effects.apply(effect_id)
        if crash_inside["now"]:  # the effect happened; its completion never reaches the journal
            raise Crash
        return result

    async def apply_then_hang(effect_id: str) -> str:
        result = effects.apply(effect_id)
        if crash_inside["now"]:
            crashed.set()
            await asyncio.Event().wait()
        return result

    def act_sync(event: InputEvent, ctx: RunnerContext) -> None:
        effect_id = f"effect-{event.input}"
        result = ctx.durable_execute(
            apply_then_crash, effect_id, reconciler=lambda: effects.reconcile(effect_id)
        )
        ctx.send_event(OutputEvent(output=result))

    async def act_async(event: InputEvent, ctx: RunnerContext) -> None:
        effect_id = f"effect-{event.input}"
        result = await ctx.durable_execute_async(
            apply_then_hang, effect_id, reconciler=lambda: effects.reconcile(effect_id)
        )
        ctx.send_event(OutputEvent(output=result))

    agent = Agent().add_action("act", [InputEvent], act_sync if mode == "sync" else act_async)
    inputs = [{"key": "k", "value": 1}]
    if mode == "sync":
        with pytest.raises(Crash):
            await run_job(store(), agent, inputs)
    else:
        await crash_job(store(), agent, inputs, crashed)
    assert effects.applied == ["effect-1"]
    crash_inside["now"] = False
    outputs = await run_job(store(), agent, inputs)
    assert outputs == [{"k": "found effect-1"}]
    assert effects.applied == ["effect-1"]  # exactly once
    assert (effects.function_calls, effects.reconciler_calls) == (1, 1)


@pytest.mark.parametrize("kind", STORES)
@pytest.mark.parametrize("reconciler_raises", [False, True])
async def test_reconciler_outcome_is_recorded_and_replayed(
    kind: str, reconciler_raises: bool, tmp_path: Path
) -> None:
    """PENDING found: the reconciler's result or exception becomes the slot's outcome, and is
    replayed (not reconciled again) after a later crash."""
    store = make_store(kind, tmp_path)
    state = {"phase": "crash in effect", "reconciled": 0}

    def effect() -> str:
        if state["phase"] == "crash in effect":
            raise Crash
        return "ran"

    def reconciler() -> str:
        state["reconciled"] += 1
        if reconciler_raises:
            raise LookupError("cannot tell whether it happened")
        return "reconciled"

    def act(event: InputEvent, ctx: RunnerContext) -> None:
        try:
            result = ctx.durable_execute(effect, reconciler=reconciler)
        except LookupError as error:
            result = f"reconciler said: {error}"
        if state["phase"] == "crash after the call":
            raise Crash
        ctx.send_event(OutputEvent(output=result))

    agent = Agent().add_action("act", [InputEvent], act)
    inputs = [{"key": "k", "value": 1}]
    with pytest.raises(Crash):
        await run_job(store(), agent, inputs)
    state["phase"] = "crash after the call"
    with pytest.raises(Crash):
        await run_job(store(), agent, inputs)
    assert state["reconciled"] == 1
    state["phase"] = "finish"
    outputs = await run_job(store(), agent, inputs)
    expected = (
        "reconciler said: cannot tell whether it happened" if reconciler_raises else ("reconciled")
    )
    assert outputs == [{"k": expected}]
    assert state["reconciled"] == 1  # replayed, not reconciled again


@pytest.mark.parametrize("kind", STORES)
async def test_concurrent_flows_replay_whatever_order_their_later_calls_come_in(
    kind: str, tmp_path: Path
) -> None:
    store = make_store(kind, tmp_path)
    counts: Counter[str] = Counter()
    crashed = asyncio.Event()
    first_run = {"now": True}
    gates: dict[str, asyncio.Event] = {}

    async def ask(name: str, step: int) -> str:
        counts[f"{name}{step}"] += 1
        return f"{name}{step}"

    async def flow(ctx: RunnerContext, name: str, other: str) -> list[str]:
        first = await ctx.durable_execute_async(ask, name, 1)
        await gates[name].wait()
        second = await ctx.durable_execute_async(ask, name, 2)
        if first_run["now"]:
            crashed.set()  # b2 is journaled, a2 never made: then the process dies
        else:
            gates[other].set()  # the other flow's second call comes after this one's
        return [first, second]

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        results = await asyncio.gather(flow(ctx, "a", "b"), flow(ctx, "b", "a"))
        ctx.send_event(OutputEvent(output=results))

    agent = Agent().add_action("act", [InputEvent], act)
    gates.update(a=asyncio.Event(), b=asyncio.Event())
    gates["b"].set()  # first run: b's second call first (and a never gets to make its own)
    await crash_job(store(), agent, [{"key": "k", "value": 1}], crashed)

    first_run["now"] = False
    gates.update(a=asyncio.Event(), b=asyncio.Event())
    gates["a"].set()  # the replay: a's second call first, at the position b2 was journaled
    with capture_logs() as logs:
        outputs = await run_job(store(), agent, [{"key": "k", "value": 1}])
    assert outputs == [{"k": [["a1", "a2"], ["b1", "b2"]]}]
    assert counts == {"a1": 1, "b1": 1, "b2": 1, "a2": 1}  # nothing journaled ran again
    assert [log for log in logs if "differs from the journal" in log["event"]] == []

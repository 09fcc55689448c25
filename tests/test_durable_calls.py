"""durable_execute / durable_execute_async: execution rules, validation, isolation."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    DurableContextError,
    Event,
    InputEvent,
    OutputEvent,
    RunnerContext,
)

GUARD_TIMEOUT = 10.0


async def outputs_of(agent: Agent, inputs: list[dict[str, Any]], **kwargs: Any) -> list[Any]:
    env = AgentsExecutionEnvironment.get_execution_environment(**kwargs)
    outputs = env.from_list(inputs).apply(agent).to_list()
    await asyncio.wait_for(env.execute(), GUARD_TIMEOUT)
    return [value for entry in outputs for value in entry.values()]


async def failure_cause(agent: Agent, raised: type[BaseException]) -> BaseException:
    """What ``execute()`` raised (of type ``raised``): the cause of the run's only failure."""
    env = AgentsExecutionEnvironment.get_execution_environment()
    env.from_list([{"key": "a", "value": 1}]).apply(agent)
    with pytest.raises(raised) as caught:
        await asyncio.wait_for(env.execute(), GUARD_TIMEOUT)
    (failure,) = caught.value.execution_failures
    assert (failure.key, failure.action) == ("a", "act")
    assert failure.cause is caught.value and failure.__cause__ is caught.value
    return caught.value


def single_action_agent(body: Any) -> Agent:
    agent = Agent()
    agent.add_action("act", [InputEvent], body)
    return agent


async def test_gather_of_durable_calls_returns_each_result_to_its_awaiter() -> None:
    meeting = threading.Barrier(3, timeout=GUARD_TIMEOUT)

    def blocking_square(x: int) -> int:
        meeting.wait()  # all three must be running at once in the thread pool
        return x * x

    async def async_negate(x: int) -> int:
        await asyncio.sleep(0.001 * (5 - x))  # finish in reverse order
        return -x

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        squares = [ctx.durable_execute_async(blocking_square, x) for x in (1, 2, 3)]
        negations = [ctx.durable_execute_async(async_negate, x) for x in (1, 2, 3, 4)]
        ctx.send_event(OutputEvent(output=await asyncio.gather(*squares, *negations)))

    assert await outputs_of(single_action_agent(act), [{"key": "a", "value": 0}]) == [
        [1, 4, 9, -1, -2, -3, -4]
    ]


async def test_durable_execute_async_starts_at_call_time() -> None:
    started: list[str] = []

    async def effect() -> str:
        started.append("effect")
        return "done"

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        future = ctx.durable_execute_async(effect)
        for _ in range(3):
            await asyncio.sleep(0)
        observed = list(started)  # before anybody awaited the future
        ctx.send_event(OutputEvent(output=[observed, await future]))

    assert await outputs_of(single_action_agent(act), [{"key": "a", "value": 0}]) == [
        [["effect"], "done"]
    ]


async def test_sync_functions_run_in_a_pool_bounded_by_num_async_threads() -> None:
    lock = threading.Lock()
    running = 0
    peak = 0
    pairs = threading.Barrier(2, timeout=GUARD_TIMEOUT)

    def tracked(x: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        pairs.wait()  # two at a time can meet; a third would have to wait for room
        with lock:
            running -= 1
        return x

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        results = await asyncio.gather(*(ctx.durable_execute_async(tracked, x) for x in range(6)))
        ctx.send_event(OutputEvent(output=results))

    outputs = await outputs_of(
        single_action_agent(act), [{"key": "a", "value": 0}], num_async_threads=2
    )
    assert outputs == [list(range(6))]
    assert peak == 2


async def test_sync_durable_execute_of_an_async_function_explains_the_fix() -> None:
    async def remote() -> int:
        return 1

    def act(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.durable_execute(remote)

    cause = await failure_cause(single_action_agent(act), TypeError)
    assert "durable_execute_async" in str(cause) and "remote" in str(cause)


@pytest.mark.parametrize("variant", ["sync", "async-thread", "async-def"])
@pytest.mark.parametrize("operation", ["read", "write", "send"])
async def test_memory_and_send_event_are_refused_inside_durable_functions(
    variant: str, operation: str
) -> None:
    def touch(ctx: RunnerContext) -> None:
        if operation == "read":
            ctx.short_term_memory.get("x")
        elif operation == "write":
            ctx.sensory_memory.set("x", 1)
        else:
            ctx.send_event(Event(type="anything"))

    async def touch_async(ctx: RunnerContext) -> None:
        touch(ctx)

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        try:
            if variant == "sync":
                ctx.durable_execute(touch, ctx)
            elif variant == "async-thread":
                await ctx.durable_execute_async(touch, ctx)
            else:
                await ctx.durable_execute_async(touch_async, ctx)
        except DurableContextError as error:
            ctx.short_term_memory.set("still usable after", True)
            ctx.send_event(OutputEvent(output=str(error)))

    (message,) = await outputs_of(single_action_agent(act), [{"key": "a", "value": 0}])
    assert "durable function" in message
    assert "touch" in message


async def test_reconciler_is_validated_and_not_forwarded() -> None:
    received: list[dict[str, Any]] = []

    def effect(**kwargs: Any) -> str:
        received.append(kwargs)
        return "ok"

    def act(event: InputEvent, ctx: RunnerContext) -> None:
        result = ctx.durable_execute(effect, reconciler=lambda: "reconciled", flag=1)
        ctx.send_event(OutputEvent(output=result))

    assert await outputs_of(single_action_agent(act), [{"key": "a", "value": 0}]) == ["ok"]
    assert received == [{"flag": 1}]


@pytest.mark.parametrize(
    ("reconciler", "message"),
    [("not callable", "must be a callable"), (lambda x: x, "must take no arguments")],
)
async def test_bad_reconciler_is_refused_at_the_call(reconciler: Any, message: str) -> None:
    called: list[int] = []

    def effect() -> None:
        called.append(1)

    def act(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.durable_execute(effect, reconciler=reconciler)

    cause = await failure_cause(single_action_agent(act), TypeError)
    assert message in str(cause) and "effect" in str(cause)
    assert called == []


async def test_non_callable_function_is_refused() -> None:
    def act(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.durable_execute_async(42)

    cause = await failure_cause(single_action_agent(act), TypeError)
    assert "42" in str(cause)

"""Actor and run semantics: ordering, concurrency, routing, memory lifetimes, failures."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

import pytest

from flink_agents_async import (
    ActionFailedError,
    Agent,
    AgentsExecutionEnvironment,
    Event,
    InputEvent,
    OutputEvent,
    RunnerContext,
    action,
)

GUARD_TIMEOUT = 10.0  # only ever reached when the behaviour under test is broken


async def run_agent(agent: Agent, inputs: Any, **env_kwargs: Any) -> list[dict[Any, Any]]:
    env = AgentsExecutionEnvironment.get_execution_environment(**env_kwargs)
    outputs = env.from_iterable(inputs).apply(agent).to_list()
    await asyncio.wait_for(env.execute(), GUARD_TIMEOUT)
    return outputs


def per_key(outputs: list[dict[Any, Any]]) -> dict[Any, list[Any]]:
    grouped: dict[Any, list[Any]] = defaultdict(list)
    for entry in outputs:
        for key, value in entry.items():
            grouped[key].append(value)
    return dict(grouped)


# -- per-key order and cross-key concurrency ---------------------------------------------------


async def test_per_key_order_under_concurrency() -> None:
    keys, per_key_inputs = 40, 15
    seen: dict[str, list[int]] = defaultdict(list)
    active: dict[str, int] = defaultdict(int)
    overlaps: list[str] = []
    rng = random.Random(7)

    class Counter(Agent):
        @action(InputEvent)
        @staticmethod
        async def count(event: InputEvent, ctx: RunnerContext) -> None:
            key, sequence = event.input
            active[key] += 1
            if active[key] > 1:
                overlaps.append(key)
            memory = ctx.short_term_memory
            # Read, yield to other keys, then write: lost updates would show if two runs of
            # one key ever overlapped.
            count = (memory.get("count") or 0) + 1
            for _ in range(rng.randint(0, 3)):
                await asyncio.sleep(0)
            memory.set("count", count)
            seen[key].append(sequence)
            active[key] -= 1
            ctx.send_event(OutputEvent(output=count))

    inputs = [
        {"key": f"k{k}", "value": (f"k{k}", n)} for n in range(per_key_inputs) for k in range(keys)
    ]
    rng.shuffle(inputs)  # interleave keys arbitrarily; per key, sequence order must still hold
    expected_order = defaultdict(list)
    for item in inputs:
        expected_order[item["key"]].append(item["value"][1])

    outputs = await run_agent(Counter(), inputs)
    assert overlaps == []
    assert per_key(outputs) == {f"k{k}": list(range(1, per_key_inputs + 1)) for k in range(keys)}
    assert dict(seen) == dict(expected_order)


async def test_keys_run_concurrently() -> None:
    """Every key's run waits until all keys are inside their action at once: with keys run
    one after another this could never finish."""
    keys = 25
    inside = 0
    all_inside = asyncio.Event()

    class Rendezvous(Agent):
        @action(InputEvent)
        @staticmethod
        async def meet(event: InputEvent, ctx: RunnerContext) -> None:
            nonlocal inside
            inside += 1
            if inside == keys:
                all_inside.set()
            await all_inside.wait()
            await asyncio.sleep(0.05)
            ctx.send_event(OutputEvent(output="met"))

    outputs = await run_agent(Rendezvous(), [{"key": k, "value": k} for k in range(keys)])
    assert len(outputs) == keys


async def test_one_input_at_a_time_per_key_in_arrival_order() -> None:
    release = asyncio.Event()
    order: list[int] = []

    class Slow(Agent):
        @action(InputEvent)
        @staticmethod
        async def work(event: InputEvent, ctx: RunnerContext) -> None:
            order.append(event.input)
            if event.input == 0:
                for _ in range(50):  # give later inputs every chance to jump the queue
                    await asyncio.sleep(0)
                release.set()
            await release.wait()
            order.append(-event.input - 1)

    await run_agent(Slow(), [{"key": "same", "value": n} for n in range(4)])
    assert order == [0, -1, 1, -2, 2, -3, 3, -4]


async def test_full_mailbox_makes_the_producer_wait() -> None:
    produced = 0
    observed_backlog: list[int] = []

    async def source() -> AsyncIterator[dict[str, Any]]:
        nonlocal produced
        for n in range(20):
            produced += 1
            yield {"key": "one", "value": n}

    class Blocking(Agent):
        @action(InputEvent)
        @staticmethod
        async def work(event: InputEvent, ctx: RunnerContext) -> None:
            if event.input == 0:
                for _ in range(100):  # let the producer run as far as it is allowed to
                    await asyncio.sleep(0)
                observed_backlog.append(produced)

    await run_agent(Blocking(), source(), mailbox_capacity=3)
    # item 0 is running, 3 wait in the mailbox, one more is held by the waiting producer
    assert observed_backlog == [5]


# -- inside a run -------------------------------------------------------------------------------


class Ping(Event):
    n: int


class Pong(Event):
    n: int


async def test_events_route_in_send_order_to_listeners_in_plan_order() -> None:
    log: list[str] = []

    class Router(Agent):
        @action(InputEvent)
        @staticmethod
        def start(event: InputEvent, ctx: RunnerContext) -> None:
            for n in range(3):
                ctx.send_event(Ping(n=n))
            log.append("start done")

        @action(Ping)
        @staticmethod
        def first(event: Ping, ctx: RunnerContext) -> None:
            log.append(f"first {event.n}")
            if event.n == 0:
                ctx.send_event(Pong(n=0))

        @action(Ping, Pong)
        @staticmethod
        def second(event: Event, ctx: RunnerContext) -> None:
            log.append(f"second {type(event).__name__} {event.n}")

    await run_agent(Router(), [{"key": "a", "value": None}])
    assert log == [
        "start done",
        "first 0",
        "second Ping 0",
        "first 1",
        "second Ping 1",
        "first 2",
        "second Ping 2",
        "second Pong 0",
    ]


async def test_awaiting_action_does_not_stall_its_run() -> None:
    """The async action waits for something only another action of the same run provides."""

    class Handshake(Agent):
        @action(InputEvent)
        @staticmethod
        async def ask(event: InputEvent, ctx: RunnerContext) -> None:
            answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            ctx.sensory_memory.set("asked", True)
            handshakes[ctx.key] = answer
            ctx.send_event(Ping(n=1))
            reply = await answer
            ctx.send_event(OutputEvent(output=reply))

        @action(Ping)
        @staticmethod
        def answer(event: Ping, ctx: RunnerContext) -> None:
            assert ctx.sensory_memory.get("asked") is True
            handshakes[ctx.key].set_result("answered while ask() was waiting")

    handshakes: dict[Any, asyncio.Future[str]] = {}
    outputs = await run_agent(Handshake(), [{"key": "a", "value": 1}])
    assert outputs == [{"a": "answered while ask() was waiting"}]


async def test_fan_out_keeps_several_async_actions_of_one_run_in_flight() -> None:
    width = 4
    in_flight = 0
    peak = 0
    everyone_started = asyncio.Event()

    class FanOut(Agent):
        @action(InputEvent)
        @staticmethod
        def split(event: InputEvent, ctx: RunnerContext) -> None:
            for n in range(width):
                ctx.send_event(Ping(n=n))

        @action(Ping)
        @staticmethod
        async def call_model(event: Ping, ctx: RunnerContext) -> None:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            if in_flight == width:
                everyone_started.set()
            await everyone_started.wait()
            in_flight -= 1
            ctx.send_event(OutputEvent(output=event.n))

    outputs = await run_agent(FanOut(), [{"key": "a", "value": None}])
    assert peak == width
    assert sorted(entry["a"] for entry in outputs) == list(range(width))


async def test_asyncio_primitives_work_inside_actions() -> None:
    class Primitives(Agent):
        @action(InputEvent)
        @staticmethod
        async def use_them(event: InputEvent, ctx: RunnerContext) -> None:
            async def double(x: int) -> int:
                await asyncio.sleep(0.001)
                return 2 * x

            gathered = await asyncio.gather(double(1), double(2))
            task = asyncio.create_task(double(3))
            done, _ = await asyncio.wait({task})
            try:
                await asyncio.wait_for(asyncio.sleep(5), timeout=0.01)
                timed_out = False
            except TimeoutError:
                timed_out = True
            async with asyncio.timeout(1):
                await asyncio.sleep(0)
            ctx.send_event(OutputEvent(output=[*gathered, next(iter(done)).result(), timed_out]))

    outputs = await run_agent(Primitives(), [{"key": "a", "value": None}])
    assert outputs == [{"a": [2, 4, 6, True]}]


async def test_sensory_memory_is_cleared_when_the_run_ends() -> None:
    class Senses(Agent):
        @action(InputEvent)
        @staticmethod
        def look(event: InputEvent, ctx: RunnerContext) -> None:
            before = ctx.sensory_memory.get("seen")
            ctx.sensory_memory.set("seen", event.input)
            ctx.short_term_memory.set("last", event.input)
            ctx.send_event(Ping(n=event.input))
            ctx.send_event(OutputEvent(output=("before", before)))

        @action(Ping)
        @staticmethod
        def check(event: Ping, ctx: RunnerContext) -> None:
            ctx.send_event(OutputEvent(output=("same run", ctx.sensory_memory.get("seen"))))

    outputs = await run_agent(Senses(), [{"key": "a", "value": 1}, {"key": "a", "value": 2}])
    assert [entry["a"] for entry in outputs] == [
        ("before", None),
        ("same run", 1),
        ("before", None),
        ("same run", 2),
    ]


async def test_run_waits_for_durable_calls_it_started_but_did_not_await() -> None:
    finished: list[str] = []

    async def slow_effect() -> None:
        await asyncio.sleep(0.01)
        finished.append("effect")

    class Forgetful(Agent):
        @action(InputEvent)
        @staticmethod
        def fire_and_forget(event: InputEvent, ctx: RunnerContext) -> None:
            ctx.durable_execute_async(slow_effect)
            ctx.send_event(OutputEvent(output="sent"))

    env = AgentsExecutionEnvironment.get_execution_environment()
    builder = env.from_list([{"key": "a", "value": 1}]).apply(Forgetful())
    outputs_seen_with: list[list[str]] = []
    async with asyncio.TaskGroup() as group:
        group.create_task(env.execute())
        async for _ in builder.outputs():
            outputs_seen_with.append(list(finished))
    assert outputs_seen_with == [["effect"]]


# -- failures -----------------------------------------------------------------------------------


class Boom(RuntimeError):
    pass


async def test_failed_run_rolls_back_memory_and_discards_outputs_other_keys_go_on() -> None:
    class Fragile(Agent):
        @action(InputEvent)
        @staticmethod
        def work(event: InputEvent, ctx: RunnerContext) -> None:
            memory = ctx.short_term_memory
            history = memory.get("history") or []
            memory.set("history", [*history, event.input])
            memory.set("nested.deep.value", event.input)
            ctx.send_event(OutputEvent(output=list(memory.get("history"))))
            if event.input == "bad":
                raise Boom("refused")

    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = (
        env.from_list(
            [
                {"key": "a", "value": "one"},
                {"key": "b", "value": "x"},
                {"key": "a", "value": "bad"},
                {"key": "a", "value": "two"},
                {"key": "b", "value": "y"},
            ]
        )
        .apply(Fragile())
        .to_list()
    )
    with pytest.raises(Boom) as caught:
        await env.execute()
    assert str(caught.value) == "refused"
    assert per_key(outputs) == {"a": [["one"], ["one", "two"]], "b": [["x"], ["x", "y"]]}
    (failure,) = caught.value.execution_failures
    assert env.failures == [failure]  # type: ignore[attr-defined]
    assert isinstance(failure, ActionFailedError)
    assert (failure.key, failure.run, failure.action, failure.event_type, failure.input_index) == (
        "a",
        2,
        "work",
        "_input_event",
        2,
    )
    assert failure.cause is caught.value and failure.__cause__ is caught.value
    notes = "\n".join(caught.value.__notes__)
    assert "input 2, run 2 of key 'a' failed in action 'work'" in notes


async def test_async_failure_cancels_the_rest_of_the_run() -> None:
    cancelled: list[str] = []
    started = asyncio.Event()

    class Doomed(Agent):
        @action(InputEvent)
        @staticmethod
        def split(event: InputEvent, ctx: RunnerContext) -> None:
            ctx.send_event(Ping(n=0))
            ctx.send_event(Pong(n=0))

        @action(Ping)
        @staticmethod
        async def waits_forever(event: Ping, ctx: RunnerContext) -> None:
            try:
                started.set()
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append("waits_forever")
                raise

        @action(Pong)
        @staticmethod
        async def fails(event: Pong, ctx: RunnerContext) -> None:
            await started.wait()
            ctx.send_event(OutputEvent(output="never delivered"))
            raise Boom("late failure")

    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list([{"key": "a", "value": 0}]).apply(Doomed()).to_list()
    with pytest.raises(Boom, match="late failure") as caught:
        await asyncio.wait_for(env.execute(), GUARD_TIMEOUT)
    assert cancelled == ["waits_forever"]
    assert outputs == []
    (failure,) = caught.value.execution_failures
    assert failure.action == "fails"
    assert failure.event_type == Pong.event_type()


async def test_cancelling_execute_cancels_running_actions_and_closes_resources() -> None:
    cancelled: list[Any] = []
    started = asyncio.Event()

    class Stuck(Agent):
        @action(InputEvent)
        @staticmethod
        async def hang(event: InputEvent, ctx: RunnerContext) -> None:
            try:
                started.set()
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(ctx.key)
                raise

    env = AgentsExecutionEnvironment.get_execution_environment()
    env.from_list([{"key": "a", "value": 0}, {"key": "b", "value": 0}]).apply(Stuck())
    task = asyncio.create_task(env.execute())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(cancelled) == ["a", "b"]


async def test_runaway_event_loop_fails_the_run_with_a_clear_error() -> None:
    class Echo(Agent):
        @action(InputEvent)
        @staticmethod
        def start(event: InputEvent, ctx: RunnerContext) -> None:
            ctx.send_event(Ping(n=0))

        @action(Ping)
        @staticmethod
        def again(event: Ping, ctx: RunnerContext) -> None:
            ctx.send_event(Ping(n=event.n + 1))

    env = AgentsExecutionEnvironment.get_execution_environment(config={"max-events-per-run": 50})
    outputs = env.from_list([{"key": "loop", "value": 0}]).apply(Echo()).to_list()
    with pytest.raises(RuntimeError, match="more than 50 events") as caught:
        await asyncio.wait_for(env.execute(), GUARD_TIMEOUT)
    (failure,) = caught.value.execution_failures
    assert failure.cause is caught.value
    assert failure.key == "loop" and failure.event_type == Ping.event_type()
    assert "more than 50 events" in str(failure.cause)
    assert "max-events-per-run" in str(failure.cause)
    assert outputs == []

"""Behaviour cases taken from upstream Flink Agents; they must reproduce exactly."""

from __future__ import annotations

import uuid

import pytest
from parity_cases import VisitCounterAgent

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    Event,
    EventType,
    InputEvent,
    OutputEvent,
    RunnerContext,
    action,
)

EXPECTED_VISITS = [
    ("bob", {"(visit 1 times)": "The message from bob -> processed_by_first_action"}),
    ("bob", {"(visit 2 times)": "The message from bob -> processed by second_action"}),
    ("john", {"(visit 1 times)": "The message from john -> processed_by_first_action"}),
    ("john", {"(visit 2 times)": "The message from john -> processed by second_action"}),
    ("john", {"(visit 3 times)": "Second message from john -> processed_by_first_action"}),
    ("john", {"(visit 4 times)": "Second message from john -> processed by second_action"}),
    ("bob", {"(visit 3 times)": "Second message from bob -> processed_by_first_action"}),
    ("bob", {"(visit 4 times)": "Second message from bob -> processed by second_action"}),
    (None, {"(visit 1 times)": "Message from unknown -> processed_by_first_action"}),
    (None, {"(visit 2 times)": "Message from unknown -> processed by second_action"}),
]


def _visit_inputs() -> list[dict[str, str]]:
    return [
        {"key": "bob", "value": "The message from bob"},
        {"k": "john", "v": "The message from john"},
        {"key": "john", "value": "Second message from john"},
        {"key": "bob", "value": "Second message from bob"},
        {"value": "Message from unknown"},
    ]


def _assert_visits(outputs: list[dict[object, object]]) -> None:
    assert len(outputs) == len(EXPECTED_VISITS)
    keyless = [next(iter(entry)) for entry in outputs[-2:]]
    assert isinstance(keyless[0], uuid.UUID) and keyless[0] == keyless[1]
    for entry, (key, value) in zip(outputs, EXPECTED_VISITS, strict=True):
        ((actual_key, actual_value),) = entry.items()
        if key is not None:
            assert actual_key == key
        assert actual_value == value


async def test_visit_counter_with_memory_ref() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    inputs: list[dict[str, str]] = []
    outputs = env.from_list(inputs).apply(VisitCounterAgent()).to_list()
    inputs += _visit_inputs()  # upstream appends after from_list(); they must be seen
    await env.execute()
    _assert_visits(outputs)


def test_visit_counter_from_a_plain_script() -> None:
    """Upstream scripts call env.execute() without await; that must run the job too."""
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list(_visit_inputs()).apply(VisitCounterAgent()).to_list()
    assert env.execute() is None
    _assert_visits(outputs)


# -- durable execution cases --------------------------------------------------------------------


def compute_value(x: int, y: int) -> int:
    return x + y


def multiply_value(x: int, y: int) -> int:
    return x * y


def raise_exception(message: str) -> None:
    raise ValueError(message)


class ExecuteTestAgent(Agent):
    @action(EventType.InputEvent)
    @staticmethod
    def process(event: Event, ctx: RunnerContext) -> None:
        value = InputEvent.from_event(event).input
        ctx.send_event(OutputEvent(output=ctx.durable_execute(compute_value, value, 10)))


class ExecuteMultipleTestAgent(Agent):
    @action(EventType.InputEvent)
    @staticmethod
    def process(event: Event, ctx: RunnerContext) -> None:
        value = InputEvent.from_event(event).input
        first = ctx.durable_execute(compute_value, value, 5)
        ctx.send_event(OutputEvent(output=ctx.durable_execute(multiply_value, first, 2)))


class ExecuteWithAsyncTestAgent(Agent):
    @action(EventType.InputEvent)
    @staticmethod
    async def process(event: Event, ctx: RunnerContext) -> None:
        value = InputEvent.from_event(event).input
        first = ctx.durable_execute(compute_value, value, 5)
        result = await ctx.durable_execute_async(multiply_value, first, 3)
        ctx.send_event(OutputEvent(output=result))


class ExecuteWithKwargsTestAgent(Agent):
    @action(EventType.InputEvent)
    @staticmethod
    def process(event: Event, ctx: RunnerContext) -> None:
        value = InputEvent.from_event(event).input
        ctx.send_event(OutputEvent(output=ctx.durable_execute(compute_value, x=value, y=20)))


class ExecuteWithSyncExceptionTestAgent(Agent):
    @action(EventType.InputEvent)
    @staticmethod
    def process(event: Event, ctx: RunnerContext) -> None:
        value = InputEvent.from_event(event).input
        try:
            ctx.durable_execute(raise_exception, f"Test error: {value}")
        except ValueError as error:
            ctx.send_event(OutputEvent(output=f"Caught: {error}"))


class ExecuteWithAsyncExceptionTestAgent(Agent):
    @action(EventType.InputEvent)
    @staticmethod
    async def process(event: Event, ctx: RunnerContext) -> None:
        value = InputEvent.from_event(event).input
        try:
            await ctx.durable_execute_async(raise_exception, f"Test error: {value}")
        except ValueError as error:
            ctx.send_event(OutputEvent(output=f"Caught: {error}"))


DURABLE_INPUTS = [{"key": 1, "value": 5}, {"key": 2, "value": 15}, {"key": 3, "value": 10}]


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (ExecuteTestAgent, {1: 15, 2: 25, 3: 20}),
        (ExecuteMultipleTestAgent, {1: 20, 2: 40, 3: 30}),
        (ExecuteWithAsyncTestAgent, {1: 30, 2: 60, 3: 45}),
        (ExecuteWithKwargsTestAgent, {1: 25, 2: 35, 3: 30}),
        (
            ExecuteWithSyncExceptionTestAgent,
            {1: "Caught: Test error: 5", 2: "Caught: Test error: 15", 3: "Caught: Test error: 10"},
        ),
        (
            ExecuteWithAsyncExceptionTestAgent,
            {1: "Caught: Test error: 5", 2: "Caught: Test error: 15", 3: "Caught: Test error: 10"},
        ),
    ],
)
async def test_durable_execute_cases(agent: type[Agent], expected: dict[int, object]) -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list(list(DURABLE_INPUTS)).apply(agent()).to_list()
    await env.execute()
    assert len(outputs) == 3
    # One output per key; keys run concurrently, so only sync agents fix the order across keys.
    assert {key: value for entry in outputs for key, value in entry.items()} == expected


async def test_sync_durable_cases_keep_input_order() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list(list(DURABLE_INPUTS)).apply(ExecuteMultipleTestAgent()).to_list()
    await env.execute()
    assert outputs == [{1: 20}, {2: 40}, {3: 30}]


async def test_basic_local_cases() -> None:
    """Upstream's local environment test: input + 1, keys from key/k."""

    class PlusOne(Agent):
        @action(InputEvent)
        @staticmethod
        def increment(event: InputEvent, ctx: RunnerContext) -> None:
            ctx.send_event(OutputEvent(output=event.input + 1))

    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = (
        env.from_list([{"key": "bob", "value": 1}, {"k": "john", "v": 2}])
        .apply(PlusOne())
        .to_list()
    )
    await env.execute()
    assert outputs == [{"bob": 2}, {"john": 3}]


async def test_older_getter_spellings_and_execute_async_work() -> None:
    """Agents written against older Flink Agents releases use get_*() and execute_async."""

    def plus_one(value: int) -> int:
        return value + 1

    class OldStyle(Agent):
        @action(InputEvent)
        @staticmethod
        async def act(event: InputEvent, ctx: RunnerContext) -> None:
            memory = ctx.get_short_term_memory()
            memory.set("seen", event.input)
            ctx.get_sensory_memory().set("tmp", 1)
            assert ctx.get_action_config() == {}
            ctx.get_agent_metric_group().get_counter("old").inc()
            ctx.get_action_metric_group().get_counter("old").inc()
            assert ctx.get_config() is ctx.config
            result = await ctx.execute_async(plus_one, event.input)
            ctx.send_event(OutputEvent(output=[memory.get("seen"), result]))

    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list([{"key": "bob", "value": 1}]).apply(OldStyle()).to_list()
    await env.execute()
    assert outputs == [{"bob": [1, 2]}]
    assert env.metrics()["old"] == 1 and env.metrics()["act.old"] == 1

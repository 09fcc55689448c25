"""The local execution environment: inputs, outputs, execute(), configuration, failures."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import structlog

from flink_agents_async import (
    ActionFailedError,
    Agent,
    AgentsExecutionEnvironment,
    ConfigurationError,
    Event,
    EventType,
    InputError,
    InputEvent,
    OutputEvent,
    RunnerContext,
)
from flink_agents_async.local.environment import LocalExecutionEnvironment

# -- helpers ------------------------------------------------------------------------------------


def echo_agent(calls: list[Any] | None = None) -> Agent:
    """An agent that outputs each input unchanged, recording every input it sees in ``calls``."""

    def echo(event: InputEvent, ctx: RunnerContext) -> None:
        if calls is not None:
            calls.append((ctx.key, event.input))
        ctx.send_event(OutputEvent(output=event.input))

    return Agent().add_action("echo", [InputEvent], echo)


def failing_agent(bad_values: set[Any], calls: list[Any] | None = None) -> Agent:
    """Echoes its input, but raises ``ValueError`` for inputs in ``bad_values``."""

    def process(event: InputEvent, ctx: RunnerContext) -> None:
        if calls is not None:
            calls.append(event.input)
        if event.input in bad_values:
            raise ValueError(f"boom for {event.input}")
        ctx.send_event(OutputEvent(output=event.input))

    return Agent().add_action("process", [InputEvent], process)


# -- getting an environment ---------------------------------------------------------------------


def test_get_execution_environment_returns_local_environment() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    assert isinstance(env, LocalExecutionEnvironment)
    assert isinstance(env, AgentsExecutionEnvironment)


def test_unknown_keyword_argument_raises_type_error_naming_it() -> None:
    with pytest.raises(TypeError, match="no_such_option"):
        AgentsExecutionEnvironment.get_execution_environment(no_such_option=1)


def test_keyword_arguments_land_in_the_configuration() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment(
        num_async_threads=3, error_handling_strategy="ignore", max_retries=7
    )
    config = env.get_config()
    assert config.get_int("num-async-threads") == 3
    assert config.get_str("error-handling-strategy") == "ignore"
    assert config.get_int("max-retries") == 7


def test_config_kwarg_sets_arbitrary_keys() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment(config={"my.key": "v"})
    assert env.get_config().get_str("my.key") == "v"


def test_configuration_is_per_environment() -> None:
    first = AgentsExecutionEnvironment.get_execution_environment()
    second = AgentsExecutionEnvironment.get_execution_environment()
    first.get_config().set_str("shared.key", "first")
    first.get_config().set_int("num-async-threads", 5)
    assert first.get_config() is not second.get_config()
    assert first.get_config().get_str("shared.key") == "first"
    assert second.get_config().get_str("shared.key") is None
    assert not second.get_config().contains("shared.key")
    assert second.get_config().get_int("num-async-threads") is None
    third = AgentsExecutionEnvironment.get_execution_environment()
    assert not third.get_config().contains("shared.key")


def test_configuration_from_kwargs_is_per_environment() -> None:
    first = AgentsExecutionEnvironment.get_execution_environment(num_async_threads=3)
    second = AgentsExecutionEnvironment.get_execution_environment()
    assert first.get_config().get_int("num-async-threads") == 3
    assert second.get_config().get_int("num-async-threads") is None


# -- from_list ----------------------------------------------------------------------------------


async def test_from_list_outputs_in_emission_order() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    inputs = [{"key": "a", "value": 1}, {"key": "b", "value": 2}, {"key": "a", "value": 3}]
    outputs = env.from_list(inputs).apply(echo_agent()).to_list()
    assert outputs == []
    result = await env.execute()
    assert result is None
    assert outputs == [{"a": 1}, {"b": 2}, {"a": 3}]


async def test_from_list_keeps_a_reference_to_the_callers_list() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    inputs: list[dict[str, Any]] = [{"key": "a", "value": 1}]
    outputs = env.from_list(inputs).apply(echo_agent()).to_list()
    inputs.append({"key": "b", "value": 2})
    inputs.extend([{"key": "c", "value": 3}])
    await env.execute()
    assert outputs == [{"a": 1}, {"b": 2}, {"c": 3}]


async def test_key_and_value_aliases() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    calls: list[Any] = []
    inputs = [
        {"key": "a", "value": 1},
        {"k": "b", "v": 2},
        {"key": "c", "v": 3},
        {"k": "d", "value": 4},
    ]
    outputs = env.from_list(inputs).apply(echo_agent(calls)).to_list()
    await env.execute()
    assert outputs == [{"a": 1}, {"b": 2}, {"c": 3}, {"d": 4}]
    assert calls == [("a", 1), ("b", 2), ("c", 3), ("d", 4)]


async def test_missing_or_none_key_gets_a_fresh_uuid_per_item() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    calls: list[Any] = []
    inputs = [{"value": 1}, {"v": 2}, {"key": None, "value": 3}, {"k": None, "v": 4}]
    outputs = env.from_list(inputs).apply(echo_agent(calls)).to_list()
    await env.execute()
    keys = [next(iter(entry)) for entry in outputs]
    assert [next(iter(entry.values())) for entry in outputs] == [1, 2, 3, 4]
    assert all(isinstance(key, uuid.UUID) for key in keys)
    assert len(set(keys)) == 4
    assert [key for key, _ in calls] == keys


async def test_non_string_hashable_keys_are_kept() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    inputs = [{"key": 7, "value": "x"}, {"key": ("t", 1), "value": "y"}]
    outputs = env.from_list(inputs).apply(echo_agent()).to_list()
    await env.execute()
    assert outputs == [{7: "x"}, {("t", 1): "y"}]


async def test_several_outputs_per_run_in_emission_order() -> None:
    def fan_out(event: InputEvent, ctx: RunnerContext) -> None:
        for part in event.input:
            ctx.send_event(OutputEvent(output=part))

    agent = Agent().add_action("fan_out", [InputEvent], fan_out)
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list([{"key": "a", "value": [1, 2, 3]}]).apply(agent).to_list()
    await env.execute()
    assert outputs == [{"a": 1}, {"a": 2}, {"a": 3}]


def test_from_list_rejects_a_non_list() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    with pytest.raises(TypeError):
        env.from_list({"key": "a", "value": 1})  # type: ignore[arg-type]


# -- from_iterable ------------------------------------------------------------------------------


async def test_from_iterable_with_a_sync_generator() -> None:
    produced: list[int] = []

    def source() -> Iterator[dict[str, Any]]:
        for i in range(4):
            produced.append(i)
            yield {"key": f"k{i % 2}", "value": i}

    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_iterable(source()).apply(echo_agent()).to_list()
    assert produced == []  # read lazily, by execute()
    await env.execute()
    assert produced == [0, 1, 2, 3]
    assert outputs == [{"k0": 0}, {"k1": 1}, {"k0": 2}, {"k1": 3}]


async def test_from_iterable_with_an_async_generator() -> None:
    async def source() -> AsyncIterator[dict[str, Any]]:
        for i in range(3):
            await asyncio.sleep(0)
            yield {"k": f"key{i}", "v": i * 10}
        yield {"v": "keyless"}

    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_iterable(source()).apply(echo_agent()).to_list()
    await env.execute()
    assert outputs[:3] == [{"key0": 0}, {"key1": 10}, {"key2": 20}]
    ((last_key, last_value),) = outputs[3].items()
    assert isinstance(last_key, uuid.UUID)
    assert last_value == "keyless"


async def test_from_iterable_bad_item_raises_input_error_with_its_index() -> None:
    def source() -> Iterator[Any]:
        yield {"key": "a", "value": 1}
        yield {"key": "b", "value": 2}
        yield ["not", "a", "dict"]

    env = AgentsExecutionEnvironment.get_execution_environment()
    env.from_iterable(source()).apply(echo_agent())
    with pytest.raises(InputError, match=r"input item 2\b"):
        await env.execute()


async def test_from_iterable_async_bad_item_raises_input_error_with_its_index() -> None:
    async def source() -> AsyncIterator[Any]:
        yield {"key": "a", "value": 1}
        yield {"key": "b"}

    env = AgentsExecutionEnvironment.get_execution_environment()
    env.from_iterable(source()).apply(echo_agent())
    with pytest.raises(InputError, match=r"input item 1\b"):
        await env.execute()


# -- outputs() ----------------------------------------------------------------------------------


async def test_outputs_iterated_alone_drives_the_execution() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    inputs = [{"key": "a", "value": 1}, {"key": "b", "value": 2}, {"key": "a", "value": 3}]
    calls: list[Any] = []
    builder = env.from_list(inputs).apply(echo_agent(calls))
    received = [pair async for pair in builder.outputs()]
    assert received == [("a", 1), ("b", 2), ("a", 3)]
    assert calls == [("a", 1), ("b", 2), ("a", 3)]
    assert env.finished  # type: ignore[attr-defined]
    # execute() afterwards may join the finished run or refuse; it must never run inputs again.
    with contextlib.suppress(RuntimeError):
        await env.execute()
    assert calls == [("a", 1), ("b", 2), ("a", 3)]


async def test_outputs_iterated_alone_raises_the_failure_after_last_output() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    inputs = [{"key": "a", "value": 1}, {"key": "b", "value": "bad"}, {"key": "c", "value": 3}]
    builder = env.from_list(inputs).apply(failing_agent({"bad"}))
    received: list[tuple[Any, Any]] = []
    with pytest.raises(ValueError, match="boom for bad") as caught:
        async for pair in builder.outputs():
            received.append(pair)
    assert received == [("a", 1), ("c", 3)]
    (failure,) = caught.value.execution_failures
    assert (failure.key, failure.input_index, failure.cause) == ("b", 1, caught.value)
    assert env.failures == [failure]  # type: ignore[attr-defined]


async def test_outputs_concurrently_with_execute_in_a_task_group() -> None:
    async def slow(event: InputEvent, ctx: RunnerContext) -> None:
        await asyncio.sleep(0)
        ctx.send_event(OutputEvent(output=event.input * 2))

    agent = Agent().add_action("slow", [InputEvent], slow)
    env = AgentsExecutionEnvironment.get_execution_environment()
    inputs = [{"key": f"k{i % 3}", "value": i} for i in range(10)]
    builder = env.from_list(inputs).apply(agent)
    outputs = builder.to_list()
    stream = builder.outputs()
    received: list[tuple[Any, Any]] = []

    async def consume() -> None:
        async for pair in stream:
            received.append(pair)

    async with asyncio.TaskGroup() as group:
        group.create_task(env.execute())
        group.create_task(consume())
    assert sorted(value for _, value in received) == [i * 2 for i in range(10)]
    assert received == [next(iter(entry.items())) for entry in outputs]


async def test_outputs_concurrently_with_execute_in_gather() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    inputs = [{"key": i, "value": i} for i in range(5)]
    builder = env.from_list(inputs).apply(echo_agent())

    async def consume() -> list[tuple[Any, Any]]:
        return [pair async for pair in builder.outputs()]

    _, received = await asyncio.gather(env.execute(), consume())
    assert received == [(i, i) for i in range(5)]


async def test_two_outputs_consumers_each_get_every_output() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    builder = env.from_list([{"key": i, "value": i} for i in range(3)]).apply(echo_agent())
    first, second = builder.outputs(), builder.outputs()

    async def drain(stream: AsyncIterator[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
        return [pair async for pair in stream]

    _, a, b = await asyncio.gather(env.execute(), drain(first), drain(second))
    assert a == b == [(0, 0), (1, 1), (2, 2)]


async def test_outputs_consumer_task_started_before_execute_task() -> None:
    """A consumer created first in a task group (a natural way to write it) must not make the
    execute() task fail: the docstring says to iterate outputs() "while execute() runs (e.g. in a
    task group)"."""
    env = AgentsExecutionEnvironment.get_execution_environment()
    builder = env.from_list([{"key": i, "value": i} for i in range(3)]).apply(echo_agent())
    received: list[tuple[Any, Any]] = []

    async def consume() -> None:
        async for pair in builder.outputs():
            received.append(pair)

    async with asyncio.TaskGroup() as group:
        group.create_task(consume())
        group.create_task(env.execute())
    assert received == [(0, 0), (1, 1), (2, 2)]


@pytest.mark.parametrize("consumer_first", [False, True])
async def test_consumer_leaving_early_does_not_stop_a_joined_execute(consumer_first: bool) -> None:
    """execute() runs every input to completion, whichever task happened to start the job: an
    outputs() consumer that stops early must not cancel the execution execute() is waiting on."""
    gate = asyncio.Event()
    calls: list[Any] = []

    async def wait_for_gate(event: InputEvent, ctx: RunnerContext) -> None:
        calls.append(event.input)
        if event.input:
            await gate.wait()
        ctx.send_event(OutputEvent(output=event.input))

    agent = Agent().add_action("wait_for_gate", [InputEvent], wait_for_gate)
    env = AgentsExecutionEnvironment.get_execution_environment()
    builder = env.from_list([{"key": i, "value": i} for i in range(3)]).apply(agent)
    outputs = builder.to_list()

    async def first_output() -> tuple[Any, Any]:
        async with contextlib.aclosing(builder.outputs()) as stream:
            async for pair in stream:
                gate.set()
                return pair
        raise AssertionError("no output")

    async with asyncio.TaskGroup() as group:
        if consumer_first:
            consumer = group.create_task(first_output())
            executor = group.create_task(env.execute())
        else:
            executor = group.create_task(env.execute())
            consumer = group.create_task(first_output())
    assert consumer.result() == (0, 0)
    assert not executor.cancelled()
    assert executor.result() is None
    assert outputs == [{0: 0}, {1: 1}, {2: 2}]


async def test_outputs_after_execute_finished_raises() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    builder = env.from_list([{"key": "a", "value": 1}]).apply(echo_agent())
    await env.execute()
    with pytest.raises(RuntimeError, match="outputs"):
        builder.outputs()


async def test_to_list_first_called_after_execute_started_raises() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    builder = env.from_list([{"key": "a", "value": 1}]).apply(echo_agent())
    await env.execute()
    with pytest.raises(RuntimeError, match="to_list"):
        builder.to_list()


# -- execute() ----------------------------------------------------------------------------------


def test_execute_from_sync_code_runs_to_completion() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    calls: list[Any] = []
    outputs = (
        env.from_list([{"key": "a", "value": 1}, {"key": "b", "value": 2}])
        .apply(echo_agent(calls))
        .to_list()
    )
    assert env.execute() is None
    assert outputs == [{"a": 1}, {"b": 2}]
    assert calls == [("a", 1), ("b", 2)]


def test_execute_from_sync_code_raises_the_failure() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = (
        env.from_list([{"key": "a", "value": "bad"}, {"key": "b", "value": 2}])
        .apply(failing_agent({"bad"}))
        .to_list()
    )
    with pytest.raises(ValueError, match="boom for bad") as caught:
        env.execute()
    assert outputs == [{"b": 2}]
    assert [failure.key for failure in caught.value.execution_failures] == ["a"]


def test_second_execute_from_sync_code_raises() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    env.from_list([{"key": "a", "value": 1}]).apply(echo_agent())
    env.execute()
    with pytest.raises(RuntimeError, match="already executed"):
        env.execute()


async def test_second_execute_raises_and_does_not_rerun() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    calls: list[Any] = []
    outputs = env.from_list([{"key": "a", "value": 1}]).apply(echo_agent(calls)).to_list()
    await env.execute()
    with pytest.raises(RuntimeError, match="already executed"):
        await env.execute()
    assert calls == [("a", 1)]
    assert outputs == [{"a": 1}]


def test_second_from_list_raises() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    env.from_list([{"key": "a", "value": 1}])
    with pytest.raises(RuntimeError):
        env.from_list([{"key": "b", "value": 2}])
    with pytest.raises(RuntimeError):
        env.from_iterable(iter([{"key": "b", "value": 2}]))


def test_apply_twice_raises() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    builder = env.from_list([{"key": "a", "value": 1}]).apply(echo_agent())
    with pytest.raises(RuntimeError, match="apply"):
        builder.apply(echo_agent())


async def test_execute_without_apply_raises() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    env.from_list([{"key": "a", "value": 1}])
    with pytest.raises(RuntimeError, match="apply"):
        await env.execute()


async def test_execute_without_inputs_raises() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    with pytest.raises(RuntimeError, match="from_list"):
        await env.execute()


async def test_execute_with_empty_list_produces_nothing() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list([]).apply(echo_agent()).to_list()
    await env.execute()
    assert outputs == []


# -- malformed inputs ---------------------------------------------------------------------------

GOOD = [{"key": "a", "value": 1}, {"key": "b", "value": 2}]


@pytest.mark.parametrize(
    ("bad_item", "detail"),
    [
        (["key", "c"], "not a dict"),
        ("just a string", "not a dict"),
        ({"key": "c"}, "no 'value'"),
        ({"key": "c", "k": "c", "value": 3}, "both 'key' and 'k'"),
        ({"key": "c", "value": 3, "v": 3}, "both 'value' and 'v'"),
        ({"key": ["un", "hashable"], "value": 3}, "not hashable"),
        ({"key": {"a": 1}, "value": 3}, "not hashable"),
    ],
)
async def test_malformed_list_item_rejected_before_any_item_runs(
    bad_item: Any, detail: str
) -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    calls: list[Any] = []
    outputs = env.from_list([*GOOD, bad_item]).apply(echo_agent(calls)).to_list()
    with pytest.raises(InputError, match=r"input item 2\b") as info:
        await env.execute()
    assert detail in str(info.value)
    assert calls == []
    assert outputs == []


async def test_malformed_item_appended_after_from_list_is_rejected_before_any_runs() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    calls: list[Any] = []
    inputs: list[Any] = list(GOOD)
    env.from_list(inputs).apply(echo_agent(calls))
    inputs.append({"key": "x"})
    inputs.append({"key": "y", "value": 1})
    with pytest.raises(InputError, match=r"input item 2\b"):
        await env.execute()
    assert calls == []


def test_input_error_is_a_value_error() -> None:
    assert issubclass(InputError, ValueError)


async def test_unknown_extra_fields_ignored_with_one_warning() -> None:
    field = f"extra_{uuid.uuid4().hex}"  # warnings are once per field name per process
    env = AgentsExecutionEnvironment.get_execution_environment()
    calls: list[Any] = []
    inputs = [
        {"key": "a", "value": 1, field: "ignored"},
        {"key": "b", "value": 2, field: "ignored too"},
    ]
    outputs = env.from_list(inputs).apply(echo_agent(calls)).to_list()
    with structlog.testing.capture_logs() as logs:
        await env.execute()
    assert outputs == [{"a": 1}, {"b": 2}]
    assert calls == [("a", 1), ("b", 2)]
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert len(warnings) == 1, logs
    assert field in warnings[0]["fields"]


# -- failures -----------------------------------------------------------------------------------


async def test_execute_raises_the_earliest_failure_listing_every_failed_run() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    inputs = [
        {"key": "bad-one", "value": "bad1"},
        {"key": "good", "value": "ok"},
        {"key": "bad-two", "value": "bad2"},
        {"key": "good", "value": "ok again"},
    ]
    calls: list[Any] = []
    outputs = env.from_list(inputs).apply(failing_agent({"bad1", "bad2"}, calls)).to_list()
    with pytest.raises(ValueError) as info:
        await env.execute()
    # The original exception of the earliest failed input, not a wrapper.
    error = info.value
    assert type(error) is ValueError and str(error) == "boom for bad1"
    failures = error.execution_failures
    assert len(failures) == 2
    assert all(isinstance(failure, ActionFailedError) for failure in failures)
    assert [failure.key for failure in failures] == ["bad-one", "bad-two"]  # input order
    assert [failure.input_index for failure in failures] == [0, 2]
    assert env.failures == failures  # type: ignore[attr-defined]
    notes = "\n".join(error.__notes__)
    assert "bad-one" in notes and "bad-two" in notes
    assert "'process'" in notes
    assert EventType.InputEvent in notes
    assert "ValueError: boom for bad2" in notes  # the other failure, with its cause
    for failure in failures:
        assert failure.action == "process"
        assert failure.event_type == EventType.InputEvent
        assert isinstance(failure.cause, ValueError)
        assert failure.__cause__ is failure.cause
    assert failures[0].cause is error
    assert str(failures[1].cause) == "boom for bad2"
    # Other keys are unaffected and every input ran.
    assert outputs == [{"good": "ok"}, {"good": "ok again"}]
    assert sorted(calls) == sorted(["bad1", "ok", "bad2", "ok again"])


async def test_failed_run_memory_is_rolled_back_under_fail_strategy() -> None:
    def count(event: InputEvent, ctx: RunnerContext) -> None:
        memory = ctx.short_term_memory
        memory.set("n", (memory.get("n") or 0) + 1)
        if event.input == "bad":
            raise ValueError("boom")
        ctx.send_event(OutputEvent(output=memory.get("n")))

    agent = Agent().add_action("count", [InputEvent], count)
    env = AgentsExecutionEnvironment.get_execution_environment()
    inputs = [{"key": "a", "value": "x"}, {"key": "a", "value": "bad"}, {"key": "a", "value": "y"}]
    outputs = env.from_list(inputs).apply(agent).to_list()
    with pytest.raises(ValueError, match="boom") as caught:
        await env.execute()
    assert [failure.run for failure in caught.value.execution_failures] == [2]
    assert outputs == [{"a": 1}, {"a": 2}]


async def test_failure_in_a_later_action_discards_earlier_outputs_of_the_run() -> None:
    class Step(Event):
        n: int

    def first(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output="early"))
        ctx.send_event(Step(n=event.input))

    def second(event: Step, ctx: RunnerContext) -> None:
        if event.n < 0:
            raise ValueError("negative")
        ctx.send_event(OutputEvent(output=event.n))

    agent = Agent().add_action("first", [InputEvent], first).add_action("second", [Step], second)
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = (
        env.from_list([{"key": "a", "value": -1}, {"key": "b", "value": 1}]).apply(agent).to_list()
    )
    with pytest.raises(ValueError, match="negative") as info:
        await env.execute()
    assert outputs == [{"b": "early"}, {"b": 1}]
    (failure,) = info.value.execution_failures
    assert failure.key == "a"
    assert failure.action == "second"
    assert failure.event_type == Step(n=0).type
    assert failure.event_type in info.value.__notes__[0]


async def test_ignore_strategy_skips_failed_runs() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment(error_handling_strategy="ignore")
    calls: list[Any] = []
    inputs = [{"key": "a", "value": "bad"}, {"key": "b", "value": 2}, {"key": "c", "value": 3}]
    outputs = env.from_list(inputs).apply(failing_agent({"bad"}, calls)).to_list()
    assert await env.execute() is None
    assert outputs == [{"b": 2}, {"c": 3}]
    assert calls.count("bad") == 1  # ignored, not retried


async def test_ignore_strategy_from_config_mapping() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment(
        config={"error-handling-strategy": "IGNORE"}
    )
    outputs = (
        env.from_list([{"key": "a", "value": "bad"}, {"key": "b", "value": 2}])
        .apply(failing_agent({"bad"}))
        .to_list()
    )
    await env.execute()
    assert outputs == [{"b": 2}]


def _flaky_agent(attempts: list[int], failures: int) -> Agent:
    """Increments a short-term counter, then fails the first ``failures`` attempts."""

    def flaky(event: InputEvent, ctx: RunnerContext) -> None:
        attempts.append(event.input)
        memory = ctx.short_term_memory
        memory.set("count", (memory.get("count") or 0) + 1)
        ctx.sensory_memory.set("seen", True)
        if len(attempts) <= failures:
            ctx.send_event(OutputEvent(output=f"from failed attempt {len(attempts)}"))
            raise RuntimeError(f"attempt {len(attempts)} fails")
        ctx.send_event(OutputEvent(output={"count": memory.get("count"), "value": event.input}))

    return Agent().add_action("flaky", [InputEvent], flaky)


async def test_retry_strategy_retries_until_success_and_rolls_back_failed_attempts() -> None:
    attempts: list[int] = []
    env = AgentsExecutionEnvironment.get_execution_environment(
        error_handling_strategy="retry", max_retries=3
    )
    outputs = env.from_list([{"key": "a", "value": 5}]).apply(_flaky_agent(attempts, 2)).to_list()
    await env.execute()
    assert attempts == [5, 5, 5]
    assert outputs == [{"a": {"count": 1, "value": 5}}]


async def test_retry_strategy_memory_kept_from_earlier_committed_runs() -> None:
    attempts: list[int] = []
    env = AgentsExecutionEnvironment.get_execution_environment(
        error_handling_strategy="retry", max_retries=2
    )
    agent = _flaky_agent(attempts, 0)
    builder = env.from_list([{"key": "a", "value": 1}, {"key": "a", "value": 2}]).apply(agent)
    outputs = builder.to_list()
    await env.execute()
    assert outputs == [{"a": {"count": 1, "value": 1}}, {"a": {"count": 2, "value": 2}}]


async def test_retry_strategy_gives_up_after_max_retries() -> None:
    attempts: list[int] = []
    env = AgentsExecutionEnvironment.get_execution_environment(
        error_handling_strategy="retry", max_retries=1
    )
    outputs = (
        env.from_list([{"key": "a", "value": 5}, {"key": "b", "value": 6}])
        .apply(_flaky_agent(attempts, 2))
        .to_list()
    )
    with pytest.raises(RuntimeError, match="attempt 2 fails") as info:
        await env.execute()
    (failure,) = info.value.execution_failures
    assert failure.key == "a"
    assert failure.action == "flaky"
    assert failure.cause is info.value
    assert attempts[:2] == [5, 5]  # one try plus one retry
    assert attempts.count(5) == 2
    assert outputs == [{"b": {"count": 1, "value": 6}}]


@pytest.mark.parametrize("strategy", ["bogus", "retry-forever", ""])
async def test_invalid_error_handling_strategy_raises_configuration_error(strategy: str) -> None:
    env = AgentsExecutionEnvironment.get_execution_environment(error_handling_strategy=strategy)
    calls: list[Any] = []
    env.from_list([{"key": "a", "value": 1}]).apply(echo_agent(calls))
    with pytest.raises(ConfigurationError, match="error-handling-strategy"):
        await env.execute()
    assert calls == []


def test_journal_dir_none_means_no_journal_directory(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=None)
    assert env.get_config().get_str("journal.dir") is None
    assert list(tmp_path.iterdir()) == []

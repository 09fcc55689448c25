"""``env.execute()`` as upstream scripts call it: plain, named, and forgotten inside a loop."""

from __future__ import annotations

import asyncio
import gc
import traceback

import pytest

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    ExecutionError,
    InputEvent,
    OutputEvent,
    RunnerContext,
)


def echo_agent() -> Agent:
    def echo(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=event.input))

    return Agent().add_action("echo", [InputEvent], echo)


def failing_agent() -> Agent:
    def fail(event: InputEvent, ctx: RunnerContext) -> None:
        raise ValueError(f"bad input {event.input}")

    return Agent().add_action("fail", [InputEvent], fail)


def test_a_plain_execute_takes_a_job_name_as_on_flink() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list([{"key": "a", "value": 1}]).apply(echo_agent()).to_list()

    assert env.execute(job_name="my job") is None
    assert outputs == [{"a": 1}]


async def test_an_awaited_execute_takes_a_job_name_too() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list([{"key": "a", "value": 1}]).apply(echo_agent()).to_list()

    await env.execute("my job")
    assert outputs == [{"a": 1}]


def test_a_failed_plain_execute_does_not_blame_a_missing_event_loop() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    env.from_list([{"key": "a", "value": 1}]).apply(failing_agent())

    with pytest.raises((ExecutionError, ValueError)) as caught:
        env.execute()

    printed = "".join(traceback.format_exception(caught.value))
    assert "no running event loop" not in printed
    assert "bad input 1" in printed


async def test_execute_forgotten_inside_a_running_loop_warns_naming_the_fix() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list([{"key": "a", "value": 1}]).apply(echo_agent()).to_list()

    with pytest.warns(RuntimeWarning, match=r"never awaited, so nothing ran: write `await env"):
        env.execute()  # the upstream idiom, in a notebook cell or an async test
        gc.collect()

    assert outputs == []


@pytest.mark.filterwarnings("error::RuntimeWarning")
async def test_execute_scheduled_as_a_task_runs_and_does_not_warn() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list([{"key": "a", "value": 1}]).apply(echo_agent()).to_list()

    await asyncio.create_task(env.execute())
    assert outputs == [{"a": 1}]

    again = AgentsExecutionEnvironment.get_execution_environment()
    more = again.from_list([{"key": "b", "value": 2}]).apply(echo_agent()).to_list()
    await asyncio.gather(again.execute())
    assert more == [{"b": 2}]

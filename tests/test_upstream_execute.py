"""``env.execute()`` as upstream scripts call it: plain, named, and forgotten inside a loop."""

from __future__ import annotations

import asyncio
import gc
import traceback

import pytest

from flink_agents_async import (
    ActionFailedError,
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


# -- what a failed execute() raises -------------------------------------------------------------


class QuotaError(Exception):
    """An error of the user's own, with a field of its own."""

    def __init__(self, who: str) -> None:
        super().__init__(f"{who} is over quota")
        self.who = who


def racing_failures_agent(released: asyncio.Event) -> Agent:
    """Input 0 (key a) fails last: it waits until input 2 (key c) has failed."""

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        if event.input == 0:
            await released.wait()
            raise QuotaError("alice")
        if event.input == 1:
            ctx.send_event(OutputEvent(output="fine"))
            return
        released.set()
        raise KeyError(f"missing {event.input}")

    return Agent().add_action("charge", [InputEvent], act)


async def test_execute_raises_the_earliest_inputs_own_exception_with_notes() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    items = [{"key": "a", "value": 0}, {"key": "b", "value": 1}, {"key": "c", "value": 2}]
    outputs = env.from_list(items).apply(racing_failures_agent(asyncio.Event())).to_list()

    with pytest.raises(QuotaError) as caught:
        await asyncio.wait_for(env.execute(), 20)

    error = caught.value
    assert error.who == "alice" and outputs == [{"b": "fine"}]
    first, others = error.__notes__
    assert "input 0, run 1 of key 'a' failed in action 'charge'" in first
    assert "handling event type '_input_event'" in first
    assert "1 other run(s) failed too" in others
    assert "input 2, run 1 of key 'c'" in others and "KeyError" in others
    assert [(f.input_index, f.key, f.action) for f in error.execution_failures] == [
        (0, "a", "charge"),
        (2, "c", "charge"),
    ]
    assert error.execution_failures[1].cause.args == ("missing 2",)
    assert env.failures == error.execution_failures
    assert "QuotaError: alice is over quota" in "".join(traceback.format_exception(error))


def test_a_plain_execute_lets_upstream_scripts_catch_the_actions_error() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    env.from_list([{"key": "a", "value": 1}, {"key": "b", "value": 2}]).apply(failing_agent())

    try:
        env.execute()
    except ValueError as error:  # what upstream scripts write
        caught = error
    assert str(caught) == "bad input 1"
    assert [failure.key for failure in caught.execution_failures] == ["a", "b"]  # type: ignore[attr-defined]
    assert not isinstance(caught, ExecutionError)


def test_execution_error_still_reports_failures_under_both_names() -> None:
    failure = ActionFailedError("k", 1, "act", "_input_event", ValueError("x"), input_index=3)
    error = ExecutionError([failure])
    assert error.failures == error.execution_failures == [failure]
    assert error.__cause__ is failure and failure.input_index == 3

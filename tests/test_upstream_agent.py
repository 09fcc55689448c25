"""Agent definitions in each upstream generation's spelling."""

from __future__ import annotations

import pytest

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    InputEvent,
    OutputEvent,
    RunnerContext,
)


def echo(event: InputEvent, ctx: RunnerContext) -> None:
    ctx.send_event(OutputEvent(output=event.input))


async def outputs_of(agent: Agent) -> list[dict[object, object]]:
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list([{"key": "k", "value": 7}]).apply(agent).to_list()
    await env.execute()
    return outputs


@pytest.mark.parametrize(
    "add",
    [
        pytest.param(lambda a: a.add_action(name="echo", events=[InputEvent], func=echo), id="0.2"),
        pytest.param(
            lambda a: a.add_action(name="echo", trigger_conditions=[InputEvent], func=echo),
            id="main",
        ),
        pytest.param(lambda a: a.add_action("echo", [InputEvent], echo), id="positional"),
        pytest.param(lambda a: a.add_action("echo", events=[InputEvent], func=echo), id="mixed"),
    ],
)
async def test_add_action_takes_each_generations_spelling(add: object) -> None:
    agent = Agent()
    add(agent)  # type: ignore[operator]
    assert await outputs_of(agent) == [{"k": 7}]


def test_add_action_refuses_both_spellings_at_once() -> None:
    with pytest.raises(TypeError, match=r"add_action\('echo'\): give the triggers once"):
        Agent().add_action("echo", [InputEvent], echo, events=[InputEvent])


@pytest.mark.parametrize(
    ("call", "missing"),
    [
        (lambda: Agent().add_action(name="echo", func=echo), "the triggers"),
        (lambda: Agent().add_action(name="echo", events=[InputEvent]), "the action function"),
    ],
)
def test_add_action_names_what_is_missing(call: object, missing: str) -> None:
    with pytest.raises(TypeError, match=f"add_action\\('echo'\\): missing {missing}"):
        call()  # type: ignore[operator]

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


def test_an_option_set_to_none_reads_as_its_default() -> None:
    from flink_agents_async import AgentExecutionOptions, Configuration

    config = Configuration()
    config.set(AgentExecutionOptions.MAX_TOOL_CALL_ROUNDS, None)
    config.set_str("plain", None)  # type: ignore[arg-type]

    assert config.get(AgentExecutionOptions.MAX_TOOL_CALL_ROUNDS) == 20
    assert config.get_str("plain", "fallback") == "fallback"


def test_a_value_that_cannot_be_converted_is_named_as_upstream_words_it() -> None:
    from flink_agents_async import Configuration

    config = Configuration()
    config.set_str("retries", "many")
    with pytest.raises(ValueError, match="Invalid value for retries: many") as caught:
        config.get_int("retries")
    assert "not a valid int" in str(caught.value)


def test_get_fields_marks_nested_objects_as_upstream_does() -> None:
    from flink_agents_async import MemoryObject, MemoryType
    from flink_agents_async.memory import MemoryStore

    memory = MemoryObject(MemoryStore(MemoryType.SHORT_TERM))
    memory.new_object("foo.bar")
    memory.set("a.b.c", True)

    assert memory.get("foo").get_fields()["bar"] == "NestedObject"
    assert memory.get("a").get_fields() == {"b": "NestedObject"}
    assert memory.get_fields() == {"a": "NestedObject", "foo": "NestedObject"}
    assert memory.get("a").get("b").get("c") is True


@pytest.mark.parametrize(
    ("value", "phrase"),
    [
        ([1, 2, {"bad": object()}], r"\[2\]\['bad'\]"),
        ({1: "v"}, "non-str key"),
        (bytearray(b"x"), "not checkpoint-stable"),
        ((1, 2), "not checkpoint-stable"),
    ],
)
def test_memory_value_errors_carry_upstreams_key_phrases(value: object, phrase: str) -> None:
    from flink_agents_async import MemoryObject, MemoryType
    from flink_agents_async.memory import MemoryStore

    memory = MemoryObject(MemoryStore(MemoryType.SHORT_TERM))
    with pytest.raises(TypeError, match=phrase) as caught:
        memory.set("p", value)
    assert "'p'" in str(caught.value)
    assert not memory.is_exist("p")

"""The event API of upstream's main branch (lineage, frozen ids, ``reconstruct_from``,
serialisable fields, rows in JSON), its 0.2 style without ``type``, and ``@action`` checks."""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError
from pyflink.common import Row

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    Event,
    InputEvent,
    OutputEvent,
    RunnerContext,
    action,
)

UPSTREAM = UUID("00000000-0000-0000-0000-000000000001")


class Custom(Event):
    """A typed event in upstream's style: its data in ``attributes``."""

    EVENT_TYPE: ClassVar[str] = "custom_event"

    @classmethod
    def from_event(cls, event: Event) -> Custom:
        draft = cls(attributes={"value": event.attributes["value"]})
        return draft.reconstruct_from(event)


# -- identity and lineage (point 5) -------------------------------------------------------------


def test_an_event_id_is_fixed_once_made() -> None:
    event = Event(type="x", a=1)
    original = event.id
    event.a = 2  # type: ignore[attr-defined]
    assert event.id == original
    with pytest.raises(ValidationError, match="Field is frozen"):
        event.id = uuid4()
    assert event.id == original


def test_an_explicit_none_id_gets_a_fresh_one() -> None:
    first, second = Event(id=None, type="x"), Event(id=None, type="x")  # type: ignore[arg-type]
    assert first.id.version == second.id.version == 4 and first.id != second.id
    assert Event.from_json('{"id": null, "type": "x"}').id.version == 4


def test_lineage_uses_upstreams_json_names_and_is_left_out_when_empty() -> None:
    event = Event(type="child")
    assert "upstreamEventId" not in event.model_dump_json()
    event.upstream_event_id = UPSTREAM
    event.upstream_action_name = "make_child"

    parsed = json.loads(event.model_dump_json())
    assert parsed["upstreamEventId"] == str(UPSTREAM)
    assert parsed["upstreamActionName"] == "make_child"
    assert "upstream_event_id" not in parsed and "upstream_action_name" not in parsed
    restored = Event.from_json(json.dumps(parsed))
    assert (restored.upstream_event_id, restored.upstream_action_name) == (UPSTREAM, "make_child")
    assert restored.id == event.id
    assert event.model_dump(include={"type"}) == {"type": "child"}


def test_reconstruct_from_copies_the_occurrence_not_the_draft() -> None:
    source = Event(type=Custom.EVENT_TYPE, attributes={"value": "v"}, upstreamActionName="act")
    typed = Custom.from_event(source)
    assert isinstance(typed, Custom) and typed.attributes == {"value": "v"}
    assert typed.id == source.id and typed.upstream_action_name == "act"

    draft = OutputEvent(output=1)
    copy = draft.reconstruct_from(source)
    assert copy is not draft and copy.id == source.id and draft.id != source.id
    assert draft.upstream_action_name is None


def test_the_built_in_from_event_keeps_identity_and_lineage() -> None:
    source = Event(
        type=OutputEvent.EVENT_TYPE,
        attributes={"output": "r"},
        upstreamEventId=UPSTREAM,
        upstreamActionName="emit",
    )
    typed = OutputEvent.from_event(source)
    assert isinstance(typed, OutputEvent) and typed.output == "r"
    assert (typed.id, typed.upstream_event_id, typed.upstream_action_name) == (
        source.id,
        UPSTREAM,
        "emit",
    )


class Step(Event):
    n: int = 0


async def test_the_runtime_records_which_event_and_action_sent_an_event() -> None:
    seen: list[tuple[Any, ...]] = []

    def start(event: InputEvent, ctx: RunnerContext) -> None:
        seen.append(("input", event.id, event.upstream_event_id))
        ctx.send_event(Step(n=1))

    def step(event: Step, ctx: RunnerContext) -> None:
        seen.append(("step", event.id, event.upstream_event_id, event.upstream_action_name))
        output = OutputEvent(output=event.n)
        ctx.send_event(output)
        seen.append(("output", output.upstream_event_id, output.upstream_action_name))

    agent = Agent().add_action("start", [InputEvent], start).add_action("step", [Step], step)
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list([{"key": "k", "value": 0}]).apply(agent).to_list()
    await asyncio.wait_for(env.execute(), 20)

    (_, input_id, no_parent), (_, step_id, step_parent, step_action), output = seen
    assert outputs == [{"k": 1}] and no_parent is None
    assert (step_parent, step_action) == (input_id, "start")
    assert output == ("output", step_id, "step")


# -- serialisable fields and rows (point 6) -----------------------------------------------------


def test_fields_are_checked_for_serialisability_when_made() -> None:
    Event(type="ok", a=1, nested=InputEvent(input=1), out=OutputEvent(output="x"), row=Row(a=1))
    with pytest.raises(ValidationError, match="Unable to serialize unknown type"):
        Event(type="bad", a=1, b=type[InputEvent])
    with pytest.raises(ValidationError):
        Event(type="bad", row=Row(a=1), b=object())
    with pytest.raises(ValidationError):
        OutputEvent(output=object())


def test_an_assignment_that_cannot_serialise_is_refused_and_undone() -> None:
    event = Event(type="x", a=1)
    event.row = Row(key="value")  # type: ignore[attr-defined]
    event.nested = Event(type="nested")  # type: ignore[attr-defined]
    with pytest.raises(PydanticSerializationError):
        event.a = object()  # type: ignore[attr-defined]
    with pytest.raises(PydanticSerializationError):
        event.c = object()  # type: ignore[attr-defined]
    assert event.a == 1 and not hasattr(event, "c")  # type: ignore[attr-defined]
    assert json.loads(event.model_dump_json())["a"] == 1


def test_the_runtimes_input_event_carries_any_input_unchecked() -> None:
    from flink_agents_async.events import new_input_event

    value = object()
    assert new_input_event(value).input is value


def test_rows_serialise_as_upstream_writes_them_and_come_back() -> None:
    event = Event(
        type="rows",
        attributes={"named": Row(a=1, b="x"), "plain": Row(1, [2, 3]), "deep": {"r": Row(z=1)}},
    )
    parsed = json.loads(event.model_dump_json())
    attributes = parsed["attributes"]
    assert attributes["named"] == {"type": "Row", "values": [1, "x"], "fields": ["a", "b"]}
    assert attributes["plain"] == {"type": "Row", "values": [1, [2, 3]]}
    assert attributes["deep"]["r"]["type"] == "Row"

    restored = Event.from_json(event.model_dump_json()).attributes
    assert restored["named"] == Row(a=1, b="x") and restored["named"].b == "x"
    assert list(restored["plain"]) == [1, [2, 3]] and isinstance(restored["plain"], Row)
    assert restored["deep"]["r"] == Row(z=1)


def test_a_row_in_a_typed_field_round_trips_too() -> None:
    event = InputEvent(input=Row(city="Paris"))
    restored = Event.from_json(event.model_dump_json())
    assert isinstance(restored, InputEvent) and restored.input == Row(city="Paris")


def test_a_fallback_of_ones_own_replaces_the_row_form() -> None:
    event = InputEvent(input=Row(a=1))

    def custom(value: Any) -> Any:
        return {"custom": list(value)}

    parsed = json.loads(event.model_dump_json(fallback=custom))
    assert parsed["attributes"]["input"] == {"custom": [1]}


# -- 0.2-style events without a type (point 7) --------------------------------------------------


async def test_a_0_2_style_event_is_routed_by_its_class_with_a_deprecation_warning() -> None:
    def start(event: InputEvent, ctx: RunnerContext) -> None:
        with pytest.warns(DeprecationWarning, match="pass type="):
            ctx.send_event(Event(value=event.input))  # type: ignore[call-arg]

    def legacy(event: Event, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=event.value))  # type: ignore[attr-defined]

    agent = (
        Agent()
        .add_action("start", [InputEvent], start)
        .add_action("legacy", [Event.LEGACY_TYPE], legacy)
    )
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list([{"key": "k", "value": 5}]).apply(agent).to_list()
    await asyncio.wait_for(env.execute(), 20)
    assert outputs == [{"k": 5}]


# -- @action checks its triggers when it decorates (point 10) -----------------------------------


@pytest.mark.parametrize("trigger", [int, 42, Event, None, "", object()])
def test_action_refuses_a_bad_trigger_naming_the_function(trigger: Any) -> None:
    with pytest.raises(TypeError, match=r"action '.*handle' has .*(neither an Event|empty)"):

        @action(trigger)
        def handle(event: Event, ctx: RunnerContext) -> None: ...


def test_action_refuses_no_trigger_naming_the_function() -> None:
    with pytest.raises(TypeError, match=r"action '.*handle' has no trigger"):

        @action()
        def handle(event: Event, ctx: RunnerContext) -> None: ...


# -- the wire shape of built-in events -----------------------------------------------------------


def test_built_in_events_serialise_their_payload_under_attributes_as_upstream() -> None:
    event = InputEvent(input={"row": Row(a=1), "n": [1, 2]})
    parsed = json.loads(event.model_dump_json())
    assert "input" not in parsed
    assert parsed["attributes"]["input"]["row"] == {"type": "Row", "values": [1], "fields": ["a"]}
    assert parsed["attributes"]["input"]["n"] == [1, 2]

    restored = Event.from_json(event.model_dump_json())
    assert isinstance(restored, InputEvent) and restored.id == event.id
    assert restored.input == {"row": Row(a=1), "n": [1, 2]} and restored.attributes == {}


def test_a_built_in_event_reads_its_payload_from_either_place() -> None:
    top_level = OutputEvent.from_json('{"type": "_output_event", "output": 1}')
    nested = OutputEvent.from_json(
        '{"type": "_output_event", "attributes": {"output": 2, "note": "kept"}}'
    )
    assert (top_level.output, nested.output) == (1, 2)
    assert nested.attributes == {"note": "kept"}
    typed = InputEvent.from_event(Event(type="_input_event", attributes={"input": "data"}))
    assert typed.input == "data" and typed.type == "_input_event"


def test_action_refuses_a_condition_expression_instead_of_never_matching() -> None:
    with pytest.raises(TypeError, match="condition expression: they are not supported"):

        @action("type == _input_event && score > 5")
        def handle(event: Event, ctx: RunnerContext) -> None: ...


def test_action_records_its_triggers_under_upstreams_attribute_too() -> None:
    @action(InputEvent, "custom_event")
    def handle(event: Event, ctx: RunnerContext) -> None: ...

    assert handle._trigger_conditions == (InputEvent, "custom_event")  # type: ignore[attr-defined]

"""Events: typed and untyped styles, attributes, JSON round trip, ids, and routing."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import pydantic
import pytest
import structlog

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    ChatMessage,
    ChatRequestEvent,
    ChatResponseEvent,
    Event,
    EventType,
    InputEvent,
    MessageRole,
    OutputEvent,
    RunnerContext,
    ToolRequestEvent,
    ToolResponseEvent,
    action,
)
from flink_agents_async import events as events_module


class Step(Event):
    n: int


class Named(Event):
    EVENT_TYPE: ClassVar[str] = "test_events.named"
    label: str = "default"


class WithDefaults(Event):
    note: str = "none"
    items: list[int] = pydantic.Field(default_factory=list)


class SubStep(Step):
    extra: str = ""


async def run_agent(agent: Agent, inputs: list[dict[str, Any]] | None = None) -> list[dict]:
    env = AgentsExecutionEnvironment.get_execution_environment()
    out = env.from_list(inputs or [{"key": "a", "value": 1}]).apply(agent).to_list()
    await env.execute()
    return out


# -- type strings ------------------------------------------------------------------------------


def test_typed_subclass_type_string_is_module_and_qualname() -> None:
    expected = f"{Step.__module__}.{Step.__qualname__}"
    assert Step.event_type() == expected
    step = Step(n=1)
    assert step.type == expected
    assert step.get_type() == expected


def test_typed_subclass_with_event_type_classvar() -> None:
    assert Named.event_type() == "test_events.named"
    assert Named().get_type() == "test_events.named"
    assert Named.EVENT_TYPE == "test_events.named"


def test_subclass_of_typed_event_has_its_own_type_string() -> None:
    assert SubStep.event_type() == f"{SubStep.__module__}.{SubStep.__qualname__}"
    assert SubStep.event_type() != Step.event_type()
    sub = SubStep(n=1, extra="x")
    assert isinstance(sub, Step)
    assert sub.get_type() == SubStep.event_type()


def test_event_itself_has_no_type_string() -> None:
    with pytest.raises(TypeError):
        Event.event_type()


def test_typed_event_validates_fields() -> None:
    with pytest.raises(pydantic.ValidationError):
        Step()  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        Step(n="not a number")  # type: ignore[arg-type]


def test_builtin_event_type_strings() -> None:
    assert EventType.InputEvent == "_input_event"
    assert EventType.OutputEvent == "_output_event"
    assert EventType.ChatRequestEvent == "_chat_request_event"
    assert EventType.ChatResponseEvent == "_chat_response_event"
    assert EventType.ToolRequestEvent == "_tool_request_event"
    assert EventType.ToolResponseEvent == "_tool_response_event"
    assert InputEvent.event_type() == "_input_event"
    assert OutputEvent.event_type() == "_output_event"
    assert InputEvent(input=1).type == "_input_event"
    assert OutputEvent(output=1).type == "_output_event"
    assert ChatRequestEvent(model="m").type == "_chat_request_event"
    assert (
        ChatResponseEvent(request_id=uuid.uuid4(), response=ChatMessage()).type
        == "_chat_response_event"
    )
    assert ToolRequestEvent(model="m").type == "_tool_request_event"
    assert ToolResponseEvent(request_id=uuid.uuid4()).type == "_tool_response_event"


def test_input_and_output_event_payloads() -> None:
    assert InputEvent(input={"q": 1}).input == {"q": 1}
    assert OutputEvent(output=[1, 2]).output == [1, 2]


def test_the_runtime_input_event_is_the_event_a_user_would_build() -> None:
    payload = {"q": [1, 2]}
    made = events_module.new_input_event(payload)
    built = InputEvent(id=made.id, input=payload)
    assert type(made) is InputEvent
    assert made == built
    assert made.input is payload  # Any is not copied, as with the constructor
    assert made.model_dump() == built.model_dump()
    assert made.model_fields_set == InputEvent(input=payload).model_fields_set
    assert InputEvent.from_json(made.model_dump_json()) == built
    made.set_attr("seen", True)
    assert made.attributes == {"seen": True}
    assert events_module.new_input_event(1).attributes == {}  # each event its own dict
    assert made.id != events_module.new_input_event(payload).id


def test_the_runtime_input_event_falls_back_to_validation_when_assembly_differs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def assembled_without_fields_set(value: Any) -> InputEvent:
        event = InputEvent(input=value)
        object.__setattr__(event, "__pydantic_fields_set__", set())
        return event

    monkeypatch.setattr(events_module, "_assembled_input_event", assembled_without_fields_set)
    assert events_module._input_event_factory() is events_module._validated_input_event


# -- untyped events ----------------------------------------------------------------------------


def test_untyped_event() -> None:
    event = Event(type="Step", attributes={"n": 1})
    assert event.type == "Step"
    assert event.get_type() == "Step"
    assert event.attributes == {"n": 1}
    assert event.get_attr("n") == 1
    assert type(event) is Event


def test_an_event_without_type_is_the_deprecated_0_2_style() -> None:
    with pytest.warns(DeprecationWarning, match=r"0\.2 style.*pass type=") as warned:
        bare = Event()  # type: ignore[call-arg]
        with_fields = Event(a=1, attributes={"n": 1})  # type: ignore[call-arg]
    assert bare.type == with_fields.type == Event.LEGACY_TYPE
    assert with_fields.a == 1 and with_fields.get_attr("n") == 1  # type: ignore[attr-defined]
    assert all(warning.filename == __file__ for warning in warned)  # blames the caller


def test_extra_fields_are_allowed_and_kept() -> None:
    event = Event(type="x", note="hi", count=3)
    assert event.note == "hi"  # type: ignore[attr-defined]
    assert event.count == 3  # type: ignore[attr-defined]
    assert event.model_dump()["note"] == "hi"
    step = Step(n=1, flag=True)
    assert step.flag is True  # type: ignore[attr-defined]


def test_attributes_default_to_independent_dicts() -> None:
    first = Event(type="x")
    second = Event(type="x")
    first.set_attr("k", 1)
    assert first.attributes == {"k": 1}
    assert second.attributes == {}


# -- attributes --------------------------------------------------------------------------------


def test_get_attr_prefers_attributes_then_fields_then_none() -> None:
    event = Event(type="x", note="field", attributes={"note": "attribute", "only_attr": 1})
    assert event.get_attr("note") == "attribute"
    assert event.get_attr("only_attr") == 1
    assert event.get_attr("missing") is None

    plain = Event(type="x", note="field")
    assert plain.get_attr("note") == "field"
    assert plain.get_attr("type") == "x"

    step = Step(n=4)
    assert step.get_attr("n") == 4
    step.set_attr("n", 5)
    assert step.get_attr("n") == 5  # attributes win over fields
    assert step.n == 4


def test_get_attr_of_a_method_name_is_none() -> None:
    # Only attributes and fields count: methods of the model are neither.
    event = Event(type="x")
    assert event.get_attr("get_type") is None
    assert event.get_attr("model_dump") is None


def test_get_attr_of_none_valued_attribute() -> None:
    event = Event(type="x", note="field", attributes={"note": None})
    assert event.get_attr("note") is None


def test_set_attr() -> None:
    event = Event(type="x")
    event.set_attr("a", 1)
    event.set_attr("b", [1, 2])
    event.set_attr("a", 2)
    assert event.attributes == {"a": 2, "b": [1, 2]}
    assert event.get_attr("a") == 2


# -- from_event --------------------------------------------------------------------------------


def test_from_event_typed_from_untyped() -> None:
    untyped = Event(type=Step.event_type(), attributes={"n": 3})
    step = Step.from_event(untyped)
    assert type(step) is Step
    assert step.n == 3
    assert step.id == untyped.id
    assert step.type == Step.event_type()


def test_from_event_keeps_extra_attributes_and_fields() -> None:
    untyped = Event(type="whatever", attributes={"label": "L"}, other=1)
    named = Named.from_event(untyped)
    assert type(named) is Named
    assert named.label == "L"
    assert named.get_attr("other") == 1
    assert named.type == Named.event_type()


def test_from_event_identity() -> None:
    step = Step(n=1)
    assert Step.from_event(step) is step
    assert Event.from_event(step) is step
    untyped = Event(type="x")
    assert Event.from_event(untyped) is untyped


def test_from_event_missing_field_fails() -> None:
    with pytest.raises(pydantic.ValidationError):
        Step.from_event(Event(type=Step.event_type(), attributes={"m": 1}))


# -- JSON ----------------------------------------------------------------------------------------


def test_json_round_trip_returns_typed_subclass() -> None:
    step = Step(n=7, attributes={"a": [1, 2]})
    restored = Event.from_json(step.model_dump_json())
    assert type(restored) is Step
    assert restored == step
    assert restored.n == 7
    assert restored.id == step.id
    assert restored.attributes == {"a": [1, 2]}


def test_json_round_trip_of_bytes_input() -> None:
    step = Step(n=7)
    assert type(Event.from_json(step.model_dump_json().encode())) is Step


def test_json_round_trip_via_subclass() -> None:
    named = Named(label="x")
    restored = Named.from_json(named.model_dump_json())
    assert type(restored) is Named
    assert restored == named


def test_json_round_trip_untyped_with_extras() -> None:
    event = Event(type="not.registered", attributes={"k": {"v": 1}}, note="hi")
    restored = Event.from_json(event.model_dump_json())
    assert type(restored) is Event
    assert restored.id == event.id
    assert restored.type == "not.registered"
    assert restored.attributes == {"k": {"v": 1}}
    assert restored.note == "hi"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "event",
    [
        InputEvent(input={"q": [1, 2]}),
        OutputEvent(output="done"),
        ChatRequestEvent(model="m", messages=[ChatMessage(content="hi")], prompt_args={"a": 1}),
        ChatResponseEvent(
            request_id=uuid.uuid4(),
            response=ChatMessage(role=MessageRole.ASSISTANT, content="r"),
            retry_count=2,
        ),
        ToolRequestEvent(model="m", tool_calls=[{"name": "t"}]),
        ToolResponseEvent(
            request_id=uuid.uuid4(),
            responses={uuid.UUID(int=5): "ok"},
            external_ids={uuid.UUID(int=5): None},
        ),
    ],
    ids=lambda event: type(event).__name__,
)
def test_builtin_events_json_round_trip(event: Event) -> None:
    restored = Event.from_json(event.model_dump_json())
    assert type(restored) is type(event)
    assert restored == event


@pytest.mark.parametrize(
    "text",
    ['{"id": "7c4c8a2e-8f0c-4a52-9c8e-2f6a1d1d1d1d"}', '{"type": ""}', "[]", '"Step"'],
)
def test_from_json_without_type_raises(text: str) -> None:
    with pytest.raises(ValueError, match="type"):
        Event.from_json(text)


# -- ids -----------------------------------------------------------------------------------------


def test_ids_are_unique_uuid4() -> None:
    ids = [Event(type="x").id for _ in range(2000)] + [Step(n=1).id for _ in range(500)]
    assert len(set(ids)) == len(ids)
    for event_id in ids:
        assert isinstance(event_id, uuid.UUID)
        assert event_id.version == 4
        assert event_id.variant == uuid.RFC_4122
        # A well-formed UUID: it survives a str round trip, compares and hashes as usual.
        parsed = uuid.UUID(str(event_id))
        assert parsed == event_id
        assert hash(parsed) == hash(event_id)
        assert uuid.UUID(str(event_id), version=4) == event_id


def test_explicit_id_is_kept() -> None:
    event_id = uuid.uuid4()
    assert Event(type="x", id=event_id).id == event_id


# -- routing through the local environment -------------------------------------------------------


class RoutingAgent(Agent):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Event] = []
        self.steps: list[Any] = []
        self.customs: list[Any] = []

    @action(InputEvent)
    def start(self, event: InputEvent, ctx: RunnerContext) -> None:
        untyped = Event(type=Step.event_type(), attributes={"n": 3})
        self.sent.append(untyped)
        ctx.send_event(untyped)
        ctx.send_event(Event(type="custom", attributes={"v": event.input}))

    @action(Step)
    def on_step(self, event: Step, ctx: RunnerContext) -> None:
        self.steps.append(event)
        ctx.send_event(OutputEvent(output=("step", event.n)))

    @action("custom")
    def on_custom(self, event: Event, ctx: RunnerContext) -> None:
        self.customs.append(event)
        ctx.send_event(OutputEvent(output=("custom", event.get_attr("v"))))


async def test_untyped_event_is_delivered_as_typed_instance() -> None:
    agent = RoutingAgent()
    out = await run_agent(agent, [{"key": "a", "value": 10}])

    assert len(agent.steps) == 1
    step = agent.steps[0]
    assert type(step) is Step
    assert step.n == 3
    assert step.type == Step.event_type()
    assert step.id == agent.sent[0].id

    assert len(agent.customs) == 1
    custom = agent.customs[0]
    assert type(custom) is Event
    assert custom.type == "custom"
    assert custom.get_attr("v") == 10

    assert out == [{"a": ("step", 3)}, {"a": ("custom", 10)}]


async def test_typed_event_reaches_string_trigger_with_its_type_string() -> None:
    received: list[Any] = []

    class ByString(Agent):
        @action(InputEvent)
        @staticmethod
        def start(event: InputEvent, ctx: RunnerContext) -> None:
            ctx.send_event(Named(label="typed"))

        @action("test_events.named")
        @staticmethod
        def by_string(event: Event, ctx: RunnerContext) -> None:
            received.append(event)

    await run_agent(ByString())
    assert len(received) == 1
    assert type(received[0]) is Named
    assert received[0].label == "typed"


async def test_untyped_event_that_does_not_fit_typed_class_fails_at_send() -> None:
    errors: list[BaseException] = []

    class Bad(Agent):
        @action(InputEvent)
        @staticmethod
        def start(event: InputEvent, ctx: RunnerContext) -> None:
            try:
                ctx.send_event(Event(type=Step.event_type(), attributes={"wrong": 1}))
            except TypeError as error:
                errors.append(error)
            ctx.send_event(OutputEvent(output="after"))

        @action(Step)
        @staticmethod
        def on_step(event: Step, ctx: RunnerContext) -> None:
            raise AssertionError("a malformed Step must not be delivered")

    out = await run_agent(Bad())
    assert out == [{"a": "after"}]
    assert len(errors) == 1
    assert "Step" in str(errors[0])


def unrouted_warnings(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry.get("log_level") == "warning"]


async def test_unrouted_event_type_warns_once_per_type() -> None:
    class Sender(Agent):
        @action(InputEvent)
        @staticmethod
        def start(event: InputEvent, ctx: RunnerContext) -> None:
            for _ in range(3):
                ctx.send_event(Event(type="nobody.listens"))
            ctx.send_event(Event(type="nobody.either"))
            ctx.send_event(Event(type="nobody.listens"))
            ctx.send_event(OutputEvent(output=event.input))

    with structlog.testing.capture_logs() as logs:
        out = await run_agent(
            Sender(),
            [{"key": "a", "value": 1}, {"key": "b", "value": 2}, {"key": "a", "value": 3}],
        )

    assert sorted(out, key=lambda item: next(iter(item.values()))) == [
        {"a": 1},
        {"b": 2},
        {"a": 3},
    ]
    warnings = unrouted_warnings(logs)
    by_type: dict[str, int] = {}
    for entry in warnings:
        by_type[entry.get("event_type")] = by_type.get(entry.get("event_type"), 0) + 1
    assert by_type == {"nobody.listens": 1, "nobody.either": 1}


async def test_output_event_without_listener_is_not_warned() -> None:
    class Echo(Agent):
        @action(InputEvent)
        @staticmethod
        def start(event: InputEvent, ctx: RunnerContext) -> None:
            ctx.send_event(OutputEvent(output=event.input))

    with structlog.testing.capture_logs() as logs:
        out = await run_agent(Echo())
    assert out == [{"a": 1}]
    assert unrouted_warnings(logs) == []

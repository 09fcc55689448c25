"""Agent definition: @action forms, validation at apply(), add_action config, and resources."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from flink_agents_async import (
    Agent,
    AgentDefinitionError,
    AgentsExecutionEnvironment,
    Event,
    EventType,
    FunctionTool,
    InputEvent,
    OutputEvent,
    Resource,
    ResourceDescriptor,
    ResourceNotFoundError,
    ResourceType,
    RunnerContext,
    TriggerError,
    action,
    chat_model_connection,
    chat_model_setup,
    embedding_model_connection,
    embedding_model_setup,
    mcp_server,
    prompt,
    tool,
    vector_store,
)


class Ping(Event):
    n: int = 0


def new_env() -> AgentsExecutionEnvironment:
    return AgentsExecutionEnvironment.get_execution_environment()


async def run_agent(
    agent: Agent,
    inputs: list[dict[str, Any]] | None = None,
    env: AgentsExecutionEnvironment | None = None,
) -> list[dict]:
    env = env or new_env()
    out = env.from_list(inputs or [{"key": "a", "value": 1}]).apply(agent).to_list()
    await env.execute()
    return out


def apply(agent: Agent) -> None:
    new_env().from_list([{"key": "a", "value": 1}]).apply(agent)


# -- action forms --------------------------------------------------------------------------------


class AboveStatic(Agent):
    @action(InputEvent)
    @staticmethod
    def act(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=("above", event.input)))


class BelowStatic(Agent):
    @staticmethod
    @action(InputEvent)
    def act(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=("below", event.input)))


class InstanceMethod(Agent):
    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag

    @action(InputEvent)
    def act(self, event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=(self.tag, event.input)))


class AsyncAction(Agent):
    @action(InputEvent)
    @staticmethod
    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(Ping(n=event.input))

    @action(Ping)
    async def on_ping(self, event: Ping, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=("async", event.n)))


async def test_action_above_staticmethod() -> None:
    assert await run_agent(AboveStatic()) == [{"a": ("above", 1)}]


async def test_action_below_staticmethod() -> None:
    assert await run_agent(BelowStatic()) == [{"a": ("below", 1)}]


async def test_action_as_instance_method() -> None:
    assert await run_agent(InstanceMethod("mine")) == [{"a": ("mine", 1)}]


async def test_async_def_actions() -> None:
    assert await run_agent(AsyncAction()) == [{"a": ("async", 1)}]


async def test_string_trigger_event_type_constant() -> None:
    class ByConstant(Agent):
        @action(EventType.InputEvent)
        @staticmethod
        def act(event: InputEvent, ctx: RunnerContext) -> None:
            ctx.send_event(OutputEvent(output=type(event).__name__))

    assert await run_agent(ByConstant()) == [{"a": "InputEvent"}]


async def test_action_with_several_triggers_runs_for_each() -> None:
    class Multi(Agent):
        @action(InputEvent)
        @staticmethod
        def start(event: InputEvent, ctx: RunnerContext) -> None:
            ctx.send_event(Ping(n=1))
            ctx.send_event(Event(type="other"))

        @action(Ping, "other")
        @staticmethod
        def both(event: Event, ctx: RunnerContext) -> None:
            ctx.send_event(OutputEvent(output=event.get_type()))

    assert await run_agent(Multi()) == [{"a": Ping.event_type()}, {"a": "other"}]


async def test_add_action_sync_and_async_functions() -> None:
    def sync_func(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(Ping(n=event.input + 1))

    async def async_func(event: Ping, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=event.n))

    agent = Agent().add_action("first", [InputEvent], sync_func)
    assert agent.add_action("second", [Ping], async_func) is agent
    assert await run_agent(agent) == [{"a": 2}]


# -- bad actions fail at apply() -----------------------------------------------------------------


def one_parameter(event):  # type: ignore[no-untyped-def]
    return None


def three_parameters(event, ctx, extra):  # type: ignore[no-untyped-def]
    return None


def keyword_only_ctx(event, *, ctx):  # type: ignore[no-untyped-def]
    return None


@pytest.mark.parametrize(
    "func", [one_parameter, three_parameters, keyword_only_ctx], ids=lambda f: f.__name__
)
def test_bad_signature_of_added_action_fails_at_apply(func: Any) -> None:
    agent = Agent().add_action("bad_sig_action", [InputEvent], func)
    with pytest.raises(AgentDefinitionError, match="bad_sig_action"):
        apply(agent)


def test_bad_signature_of_decorated_static_action_fails_at_apply() -> None:
    class OneParam(Agent):
        @action(InputEvent)
        @staticmethod
        def lonely_action(event: InputEvent) -> None:
            return None

    with pytest.raises(AgentDefinitionError, match="lonely_action"):
        apply(OneParam())


def test_bad_signature_of_decorated_instance_action_fails_at_apply() -> None:
    class ThreeParams(Agent):
        @action(InputEvent)
        def crowded_action(self, event: InputEvent, ctx: RunnerContext, more: int) -> None:
            return None

    with pytest.raises(AgentDefinitionError, match="crowded_action"):
        apply(ThreeParams())


def test_defaulted_extra_parameter_is_accepted() -> None:
    def with_default(event, ctx, extra=1):  # type: ignore[no-untyped-def]
        return None

    apply(Agent().add_action("ok", [InputEvent], with_default))


def test_decorated_action_without_trigger_fails_when_decorated() -> None:
    with pytest.raises(TriggerError, match="untriggered_action"):

        class NoTrigger(Agent):
            @action()
            @staticmethod
            def untriggered_action(event: Event, ctx: RunnerContext) -> None:
                return None


def test_added_action_without_trigger_fails_at_apply() -> None:
    agent = Agent().add_action("empty_triggers", [], lambda event, ctx: None)
    with pytest.raises(AgentDefinitionError, match="empty_triggers"):
        apply(agent)


@pytest.mark.parametrize("trigger", [int, 42, Event, None, object(), ""], ids=repr)
def test_decorated_bad_trigger_fails_when_decorated(trigger: Any) -> None:
    with pytest.raises(TriggerError, match="wrongly_triggered") as caught:

        class BadTrigger(Agent):
            @action(trigger)
            @staticmethod
            def wrongly_triggered(event: Event, ctx: RunnerContext) -> None:
                return None

    assert isinstance(caught.value, TypeError) and isinstance(caught.value, AgentDefinitionError)


@pytest.mark.parametrize("trigger", [int, 42, Event, "", "  "], ids=repr)
def test_added_bad_trigger_fails_at_apply(trigger: Any) -> None:
    agent = Agent().add_action("added_bad", [InputEvent, trigger], lambda event, ctx: None)
    with pytest.raises(TriggerError, match="added_bad"):
        apply(agent)


def test_non_callable_added_action_fails_at_apply() -> None:
    agent = Agent().add_action("not_callable", [InputEvent], 5)  # type: ignore[arg-type]
    with pytest.raises(AgentDefinitionError, match="not_callable"):
        apply(agent)


def test_agent_with_no_actions_fails_at_apply() -> None:
    class Empty(Agent):
        pass

    with pytest.raises(AgentDefinitionError, match="Empty"):
        apply(Empty())
    with pytest.raises(AgentDefinitionError):
        apply(Agent())


def test_apply_of_non_agent_fails() -> None:
    with pytest.raises(AgentDefinitionError):
        new_env().from_list([]).apply(object())  # type: ignore[arg-type]


def test_agent_definition_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        apply(Agent())


# -- action config -------------------------------------------------------------------------------


async def test_add_action_config_is_visible_in_context() -> None:
    seen: list[tuple[Any, ...]] = []

    def configured(event: InputEvent, ctx: RunnerContext) -> None:
        seen.append(
            (
                ctx.get_action_config_value("k"),
                ctx.get_action_config_value("nope"),
                ctx.action_config,
            )
        )

    agent = Agent().add_action("configured", [InputEvent], configured, k="v", n=2)
    await run_agent(agent)
    assert seen == [("v", None, {"k": "v", "n": 2})]


async def test_action_config_is_a_copy() -> None:
    seen: list[Any] = []

    def configured(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.action_config["k"] = "changed"
        seen.append(ctx.get_action_config_value("k"))

    agent = Agent().add_action("configured", [InputEvent], configured, k="v")
    await run_agent(agent, [{"key": "a", "value": 1}, {"key": "a", "value": 2}])
    assert seen == ["v", "v"]


async def test_decorated_action_has_no_config() -> None:
    seen: list[tuple[Any, Any]] = []

    class Decorated(Agent):
        @action(InputEvent)
        @staticmethod
        def plain(event: InputEvent, ctx: RunnerContext) -> None:
            seen.append((ctx.get_action_config_value("k"), ctx.action_config))

    await run_agent(Decorated())
    assert seen == [(None, {})]


async def test_added_action_without_config_has_empty_config() -> None:
    seen: list[tuple[Any, Any]] = []

    def no_config(event: InputEvent, ctx: RunnerContext) -> None:
        seen.append((ctx.get_action_config_value("k"), ctx.action_config))

    await run_agent(Agent().add_action("no_config", [InputEvent], no_config))
    assert seen == [(None, {})]


async def test_each_action_sees_its_own_config() -> None:
    seen: dict[str, Any] = {}

    def first(event: Event, ctx: RunnerContext) -> None:
        seen["first"] = ctx.action_config
        ctx.send_event(Ping(n=1))

    def second(event: Event, ctx: RunnerContext) -> None:
        seen["second"] = ctx.action_config

    agent = (
        Agent()
        .add_action("first", [InputEvent], first, which=1)
        .add_action("second", [Ping], second, which=2)
    )
    await run_agent(agent)
    assert seen == {"first": {"which": 1}, "second": {"which": 2}}


def test_add_action_properties() -> None:
    def func(event: Event, ctx: RunnerContext) -> None:
        return None

    agent = Agent().add_action("a", [InputEvent], func, k=1).add_action("b", ["x"], func)
    assert agent.actions["a"] == ([InputEvent], func, {"k": 1})
    assert agent.actions["b"] == (["x"], func, None)


def test_duplicate_add_action_raises_value_error() -> None:
    agent = Agent().add_action("twice", [InputEvent], lambda event, ctx: None)
    with pytest.raises(ValueError, match="twice"):
        agent.add_action("twice", [InputEvent], lambda event, ctx: None)
    assert list(agent.actions) == ["twice"]


def test_decorated_and_added_action_with_same_name_fail_at_apply() -> None:
    class Clash(Agent):
        @action(InputEvent)
        @staticmethod
        def clashing(event: InputEvent, ctx: RunnerContext) -> None:
            return None

    agent = Clash().add_action("clashing", [InputEvent], lambda event, ctx: None)
    with pytest.raises(AgentDefinitionError, match="clashing"):
        apply(agent)


# -- resources -----------------------------------------------------------------------------------


class Counted(Resource):
    """A resource that counts its constructions, opens and closes (reset per test)."""

    created: ClassVar[list[Counted]] = []
    opened: ClassVar[int] = 0
    closed: ClassVar[int] = 0

    label: str = ""

    @classmethod
    def resource_type(cls) -> ResourceType:
        return ResourceType.CHAT_MODEL_CONNECTION

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        Counted.created.append(self)

    def open(self) -> None:
        Counted.opened += 1

    def close(self) -> None:
        Counted.closed += 1


class Plain:
    """A resource class that is not a Resource subclass."""

    created = 0

    def __init__(self, value: int) -> None:
        Plain.created += 1
        self.value = value


@pytest.fixture(autouse=True)
def reset_counters() -> None:
    Counted.created = []
    Counted.opened = 0
    Counted.closed = 0
    Plain.created = 0


class DecoratedResources(Agent):
    @chat_model_connection
    @staticmethod
    def conn() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=Counted, label="connection")

    @staticmethod
    @chat_model_setup
    def setup() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=Plain, value=1)

    @embedding_model_connection
    @staticmethod
    def emb_conn() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=Plain, value=2)

    @embedding_model_setup
    @staticmethod
    def emb_setup() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=Plain, value=3)

    @vector_store
    @staticmethod
    def store() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=Plain, value=4)

    @prompt
    @staticmethod
    def greeting() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=Plain, value=5)

    @mcp_server
    @staticmethod
    def server() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=Plain, value=6)

    @tool
    @staticmethod
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @action(InputEvent)
    @staticmethod
    def use(event: InputEvent, ctx: RunnerContext) -> None:
        conn = ctx.get_resource("conn", ResourceType.CHAT_MODEL_CONNECTION)
        adder = ctx.get_resource("add", ResourceType.TOOL)
        values = {
            name: ctx.get_resource(name, kind).value
            for name, kind in [
                ("setup", ResourceType.CHAT_MODEL),
                ("emb_conn", ResourceType.EMBEDDING_MODEL_CONNECTION),
                ("emb_setup", ResourceType.EMBEDDING_MODEL),
                ("store", ResourceType.VECTOR_STORE),
                ("greeting", ResourceType.PROMPT),
                ("server", ResourceType.MCP_SERVER),
            ]
        }
        ctx.send_event(
            OutputEvent(
                output={
                    "conn": (type(conn).__name__, conn.label),
                    "tool": (type(adder).__name__, adder.name, adder.description, adder(2, 3)),
                    "values": values,
                }
            )
        )


async def test_resource_decorators_are_available_through_context() -> None:
    out = await run_agent(DecoratedResources())
    assert out == [
        {
            "a": {
                "conn": ("Counted", "connection"),
                "tool": ("FunctionTool", "add", "Add two numbers.", 5),
                "values": {
                    "setup": 1,
                    "emb_conn": 2,
                    "emb_setup": 3,
                    "store": 4,
                    "greeting": 5,
                    "server": 6,
                },
            }
        }
    ]


async def test_tool_resource_call_method() -> None:
    seen: list[Any] = []

    class ToolAgent(Agent):
        @staticmethod
        @tool
        def shout(text: str) -> str:
            return text.upper()

        @action(InputEvent)
        @staticmethod
        def use(event: InputEvent, ctx: RunnerContext) -> None:
            resource = ctx.get_resource("shout", ResourceType.TOOL)
            seen.append((isinstance(resource, FunctionTool), resource.call("hi")))

    await run_agent(ToolAgent())
    assert seen == [(True, "HI")]


async def test_descriptor_resource_created_and_opened_once_closed_after_execute() -> None:
    during: list[tuple[int, int, int]] = []
    instances: list[int] = []

    class Many(Agent):
        @chat_model_connection
        @staticmethod
        def conn() -> ResourceDescriptor:
            return ResourceDescriptor(clazz=Counted, label="shared")

        @action(InputEvent)
        @staticmethod
        async def use(event: InputEvent, ctx: RunnerContext) -> None:
            first = ctx.get_resource("conn", ResourceType.CHAT_MODEL_CONNECTION)
            second = ctx.get_resource("conn", ResourceType.CHAT_MODEL_CONNECTION)
            assert first is second
            instances.append(id(first))
            during.append((len(Counted.created), Counted.opened, Counted.closed))
            ctx.send_event(OutputEvent(output=first.label))

    inputs = [{"key": f"k{i % 10}", "value": i} for i in range(30)]
    out = await run_agent(Many(), inputs)

    assert len(out) == 30
    assert len(set(instances)) == 1
    assert all(entry == (1, 1, 0) for entry in during)
    assert len(Counted.created) == 1
    assert Counted.opened == 1
    assert Counted.closed == 1


async def test_unused_descriptor_resource_is_never_created() -> None:
    class Unused(Agent):
        @chat_model_connection
        @staticmethod
        def conn() -> ResourceDescriptor:
            return ResourceDescriptor(clazz=Counted)

        @action(InputEvent)
        @staticmethod
        def noop(event: InputEvent, ctx: RunnerContext) -> None:
            return None

    await run_agent(Unused())
    assert Counted.created == []
    assert Counted.opened == 0
    assert Counted.closed == 0


async def test_each_environment_run_creates_its_own_instance() -> None:
    class Uses(Agent):
        @chat_model_connection
        @staticmethod
        def conn() -> ResourceDescriptor:
            return ResourceDescriptor(clazz=Counted)

        @action(InputEvent)
        @staticmethod
        def use(event: InputEvent, ctx: RunnerContext) -> None:
            ctx.get_resource("conn", ResourceType.CHAT_MODEL_CONNECTION)

    await run_agent(Uses())
    await run_agent(Uses())
    assert len(Counted.created) == 2
    assert Counted.created[0] is not Counted.created[1]
    assert Counted.opened == 2
    assert Counted.closed == 2


async def test_resource_is_closed_when_a_run_fails() -> None:
    class Fails(Agent):
        @chat_model_connection
        @staticmethod
        def conn() -> ResourceDescriptor:
            return ResourceDescriptor(clazz=Counted)

        @action(InputEvent)
        @staticmethod
        def use(event: InputEvent, ctx: RunnerContext) -> None:
            ctx.get_resource("conn", ResourceType.CHAT_MODEL_CONNECTION)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom") as caught:
        await run_agent(Fails())
    assert [failure.action for failure in caught.value.execution_failures] == ["use"]
    assert Counted.opened == 1
    assert Counted.closed == 1


async def test_env_resource_visible_and_agent_resource_wins() -> None:
    seen: list[Any] = []

    class Mixed(Agent):
        @prompt
        @staticmethod
        def shared() -> ResourceDescriptor:
            return ResourceDescriptor(clazz=Plain, value=1)

        @action(InputEvent)
        @staticmethod
        def use(event: InputEvent, ctx: RunnerContext) -> None:
            seen.append(ctx.get_resource("shared", ResourceType.PROMPT).value)
            seen.append(ctx.get_resource("env_only", ResourceType.PROMPT).value)
            seen.append(ctx.get_resource("added", ResourceType.PROMPT).value)

    env = new_env()
    assert env.add_resource("env_only", ResourceType.PROMPT, Plain(10)) is env
    env.add_resource("shared", ResourceType.PROMPT, Plain(20))
    env.add_resource("added", ResourceType.PROMPT, Plain(30))
    agent = Mixed().add_resource("added", ResourceType.PROMPT, Plain(3))
    await run_agent(agent, env=env)
    assert seen == [1, 10, 3]


async def test_env_resource_with_same_name_but_other_type_is_separate() -> None:
    seen: list[Any] = []

    def use(event: InputEvent, ctx: RunnerContext) -> None:
        seen.append(ctx.get_resource("r", ResourceType.PROMPT).value)
        seen.append(ctx.get_resource("r", ResourceType.VECTOR_STORE).value)

    env = new_env()
    env.add_resource("r", ResourceType.VECTOR_STORE, Plain(2))
    agent = Agent().add_action("use", [InputEvent], use)
    agent.add_resource("r", ResourceType.PROMPT, Plain(1))
    await run_agent(agent, env=env)
    assert seen == [1, 2]


async def test_descriptor_with_class_path_string() -> None:
    seen: list[Any] = []

    def use(event: InputEvent, ctx: RunnerContext) -> None:
        seen.append(ctx.get_resource("by_path", ResourceType.PROMPT).value)

    descriptor = ResourceDescriptor(clazz=f"{Plain.__module__}.Plain", arguments={"value": 8})
    agent = Agent().add_action("use", [InputEvent], use)
    agent.add_resource("by_path", ResourceType.PROMPT, descriptor)
    await run_agent(agent)
    assert seen == [8]
    assert Plain.created == 1


async def test_get_resource_accepts_type_value_string() -> None:
    seen: list[Any] = []

    def use(event: InputEvent, ctx: RunnerContext) -> None:
        seen.append(ctx.get_resource("r", "prompt").value)  # type: ignore[arg-type]

    agent = Agent().add_action("use", [InputEvent], use)
    agent.add_resource("r", ResourceType.PROMPT, Plain(7))
    await run_agent(agent)
    assert seen == [7]


async def test_get_unknown_resource_raises_resource_not_found() -> None:
    errors: list[BaseException] = []

    def use(event: InputEvent, ctx: RunnerContext) -> None:
        try:
            ctx.get_resource("no_such_resource", ResourceType.CHAT_MODEL)
        except Exception as error:
            errors.append(error)
        try:
            # Declared, but as another type.
            ctx.get_resource("known", ResourceType.CHAT_MODEL)
        except Exception as error:
            errors.append(error)

    agent = Agent().add_action("use", [InputEvent], use)
    agent.add_resource("known", ResourceType.PROMPT, Plain(1))
    await run_agent(agent)

    assert len(errors) == 2
    for error in errors:
        assert isinstance(error, ResourceNotFoundError)
        assert isinstance(error, KeyError)
        assert "chat_model" in str(error)
    assert "no_such_resource" in str(errors[0])
    assert "known" in str(errors[1])


def test_add_resource_duplicate_raises() -> None:
    agent = Agent().add_resource("dup", ResourceType.CHAT_MODEL, Plain(1))
    with pytest.raises(ValueError, match=r"^chat_model dup already defined$"):
        agent.add_resource("dup", ResourceType.CHAT_MODEL, Plain(2))
    # Another type with the same name is fine.
    agent.add_resource("dup", ResourceType.TOOL, Plain(3))
    assert agent.resources[ResourceType.CHAT_MODEL]["dup"].value == 1
    assert agent.resources[ResourceType.TOOL]["dup"].value == 3


def test_env_add_resource_duplicate_raises() -> None:
    env = new_env()
    env.add_resource("dup", ResourceType.VECTOR_STORE, Plain(1))
    with pytest.raises(ValueError, match=r"^vector_store dup already defined$"):
        env.add_resource("dup", ResourceType.VECTOR_STORE, Plain(2))


def test_add_resource_with_bad_type_raises() -> None:
    with pytest.raises(TypeError, match="r"):
        Agent().add_resource("r", "prompt", Plain(1))  # type: ignore[arg-type]


def test_decorated_and_added_resource_with_same_name_fail_at_apply() -> None:
    agent = DecoratedResources().add_resource("conn", ResourceType.CHAT_MODEL_CONNECTION, Plain(1))
    with pytest.raises(AgentDefinitionError, match="conn"):
        apply(agent)


def test_resource_declared_as_class_fails_at_apply() -> None:
    agent = Agent().add_action("act", [InputEvent], lambda event, ctx: None)
    agent.add_resource("klass", ResourceType.PROMPT, Plain)
    with pytest.raises(AgentDefinitionError, match="klass"):
        apply(agent)


def test_resource_declaring_function_returning_none_fails_at_apply() -> None:
    class NoneResource(Agent):
        @prompt
        @staticmethod
        def empty_prompt() -> None:
            return None

        @action(InputEvent)
        @staticmethod
        def act(event: InputEvent, ctx: RunnerContext) -> None:
            return None

    with pytest.raises(AgentDefinitionError, match="empty_prompt"):
        apply(NoneResource())

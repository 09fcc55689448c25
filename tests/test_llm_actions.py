"""The built-in chat-model and tool-call actions, with a scripted chat model connection.

The connection here is a user-written ``BaseChatModelConnection`` (the public extension point)
that answers from a script and records what it was asked; the provider integrations are tested
with their official clients against a local model server in ``test_llm_providers.py``.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import pytest
from journal_helpers import GUARD_TIMEOUT, crash_job, run_job
from pydantic import BaseModel, PrivateAttr

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    BaseChatModelConnection,
    BaseChatModelSetup,
    ChatMessage,
    ChatRequestEvent,
    ChatResponseEvent,
    Event,
    InjectedArg,
    InputEvent,
    MessageRole,
    OutputEvent,
    OutputSchema,
    Prompt,
    ReActAgent,
    ResourceDescriptor,
    ResourceNotFoundError,
    ResourceType,
    RunnerContext,
    Tool,
    ToolRequestEvent,
    ToolResponseEvent,
    action,
    chat_model_connection,
    chat_model_setup,
    prompt,
    tool,
)
from flink_agents_async.journal import MemoryJournalStore
from flink_agents_async.llm.actions import ChatModelError

# -- a scripted connection and a plain setup ---------------------------------------------------

Script = Callable[[list[ChatMessage], list[Tool]], ChatMessage]


class ScriptedConnection(BaseChatModelConnection):
    """Answers with ``script(messages, tools)``; counts calls and the most in flight at once."""

    name: str = "scripted"
    delay: float = 0.0
    _script: Script | None = PrivateAttr(default=None)
    _seen: list[list[ChatMessage]] = PrivateAttr(default_factory=list)
    _in_flight: int = PrivateAttr(default=0)
    _most_in_flight: int = PrivateAttr(default=0)

    async def achat(
        self,
        messages: Sequence[ChatMessage],
        tools: list[Tool] | None = None,
        output_schema: Any = None,
        **kwargs: Any,
    ) -> ChatMessage:
        self._seen.append(list(messages))
        self._in_flight += 1
        self._most_in_flight = max(self._most_in_flight, self._in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            assert self._script is not None
            answer = self._script(list(messages), list(tools or []))
        finally:
            self._in_flight -= 1
        answer.extra_args.setdefault("model_name", kwargs.get("model"))
        return answer


class PlainSetup(BaseChatModelSetup):
    @property
    def model_kwargs(self) -> dict[str, Any]:
        return {"model": self.model}


def ask(text: str) -> Callable[[InputEvent, RunnerContext], None]:
    """An action that sends one chat request per input, asking ``text`` (with the input)."""

    def send(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(
            ChatRequestEvent(
                model="model",
                messages=[ChatMessage(role=MessageRole.USER, content=f"{text} {event.input}")],
            )
        )

    return send


def reply(event: ChatResponseEvent, ctx: RunnerContext) -> None:
    ctx.send_event(OutputEvent(output=event.response.content))


def llm_agent(
    connection: BaseChatModelConnection,
    actions: dict[str, tuple[list[Any], Callable[..., Any]]] | None = None,
    tools: dict[str, Tool] | None = None,
    **setup: Any,
) -> Agent:
    """An agent with the connection ``conn``, the setup ``model`` (model ``m1``) using
    ``tools``, and ``actions`` (by default: ask ``question <input>``, output the answer)."""
    tools = tools or {}
    agent = Agent()
    agent.add_resource("conn", ResourceType.CHAT_MODEL_CONNECTION, connection)
    agent.add_resource(
        "model",
        ResourceType.CHAT_MODEL,
        PlainSetup(connection="conn", model="m1", tools=list(tools), **setup),
    )
    for name, declared in tools.items():
        agent.add_resource(name, ResourceType.TOOL, declared)
    if actions is None:
        actions = {"ask": ([InputEvent], ask("question")), "reply": ([ChatResponseEvent], reply)}
    for name, (triggers, function) in actions.items():
        agent.add_action(name, triggers, function)
    return agent


def tools_of(*functions: Callable[..., Any]) -> dict[str, Tool]:
    return {function.__name__: Tool.from_callable(function) for function in functions}


async def execute(agent: Agent, inputs: list[Any], **options: Any) -> list[Any]:
    env = AgentsExecutionEnvironment.get_execution_environment(**options)
    outputs = env.from_list([{"key": "k", "value": value} for value in inputs]).apply(agent)
    collected = outputs.to_list()
    await asyncio.wait_for(env.execute(), GUARD_TIMEOUT)
    return [output for entry in collected for output in entry.values()]


def last_text(messages: list[ChatMessage]) -> str:
    return messages[-1].content


def call_tool(name: str, **arguments: Any) -> ChatMessage:
    return ChatMessage(
        role=MessageRole.ASSISTANT,
        tool_calls=[
            {
                "id": f"call-{name}",
                "type": "function",
                "function": {"name": name, "arguments": arguments},
                "original_id": f"provider-{name}",
            }
        ],
    )


def answer(text: str) -> ChatMessage:
    return ChatMessage(role=MessageRole.ASSISTANT, content=text)


# -- plain chat and prompts --------------------------------------------------------------------


async def test_a_chat_request_is_answered_with_a_response_naming_it() -> None:
    connection = ScriptedConnection()
    connection._script = lambda messages, tools: answer(f"echo {last_text(messages)}")
    seen: list[Any] = []

    def check(event: ChatResponseEvent, ctx: RunnerContext) -> None:
        seen.append(event.request_id)

    def send(event: InputEvent, ctx: RunnerContext) -> None:
        request = ChatRequestEvent(model="model", messages=[ChatMessage(content="hi")])
        seen.append(request.id)
        ctx.send_event(request)

    agent = llm_agent(
        connection,
        {
            "send": ([InputEvent], send),
            "check": ([ChatResponseEvent], check),
            "reply": ([ChatResponseEvent], reply),
        },
    )
    assert await execute(agent, [1]) == ["echo hi"]
    assert seen[0] == seen[1]


async def test_the_setup_prompt_is_filled_from_prompt_args_and_message_extra_args() -> None:
    connection = ScriptedConnection()
    connection._script = lambda messages, tools: answer(" | ".join(m.content for m in messages))

    def send(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(
            ChatRequestEvent(
                model="model",
                # upstream 0.2's style: an empty user message carrying the prompt's variables
                messages=[ChatMessage(role=MessageRole.USER, extra_args={"topic": "tea"})],
                prompt_args={"tone": "dry"},
            )
        )

    template = Prompt.from_messages(
        [
            ChatMessage(role=MessageRole.SYSTEM, content="Be {tone}. Keep {braces} as they are."),
            ChatMessage(role=MessageRole.USER, content='About {topic}: {"json": 1}'),
        ]
    )
    agent = llm_agent(
        connection,
        {"send": ([InputEvent], send), "reply": ([ChatResponseEvent], reply)},
        prompt="greeting",
    )
    agent.add_resource("greeting", ResourceType.PROMPT, template)
    assert await execute(agent, [1]) == [
        'Be dry. Keep {braces} as they are. | About tea: {"json": 1}'
    ]


# -- tools -------------------------------------------------------------------------------------


def add(a: int, b: Annotated[int, "the second number"]) -> int:
    """Add two numbers.

    Args:
        a: the first number
    """
    return a + b


async def slow_double(x: int) -> int:
    """Double a number, slowly."""
    await asyncio.sleep(0)
    return x * 2


def broken(x: int) -> int:
    """Always fails."""
    raise ConnectionError(f"backend down for {x}")


async def test_a_tool_round_runs_the_tools_and_sends_their_results_back() -> None:
    connection = ScriptedConnection()

    def script(messages: list[ChatMessage], tools: list[Tool]) -> ChatMessage:
        if messages[-1].role == MessageRole.TOOL:
            results = [(m.content, m.extra_args) for m in messages if m.role == MessageRole.TOOL]
            return answer(f"results {results}")
        assert sorted(t.name for t in tools) == ["add", "slow_double"]
        both = call_tool("add", a=2, b="3")  # "3" is converted by the schema
        both.tool_calls += call_tool("slow_double", x=5).tool_calls
        return both

    connection._script = script
    outputs = await execute(llm_agent(connection, tools=tools_of(add, slow_double)), [1])
    assert outputs == [
        "results [('5', {'external_id': 'provider-add'}), "
        "('10', {'external_id': 'provider-slow_double'})]"
    ]


async def test_tool_schemas_come_from_signatures_and_docstrings() -> None:
    schema = Tool.from_callable(add).metadata.get_parameters_dict()  # type: ignore[union-attr]
    assert schema["required"] == ["a", "b"]
    assert schema["properties"]["a"]["description"] == "the first number"
    assert schema["properties"]["b"]["description"] == "the second number"
    assert schema["properties"]["a"]["type"] == "integer"
    assert Tool.from_callable(add).description == "Add two numbers."


@pytest.mark.parametrize(
    ("call", "complaint"),
    [
        (call_tool("broken", x=1), "Tool `broken` execute failed: ConnectionError: backend down"),
        (call_tool("nowhere", x=1), "Tool `nowhere` does not exist."),
        (call_tool("add", a="not a number", b=1), "invalid arguments for tool 'add'"),
        (
            ChatMessage(
                role=MessageRole.ASSISTANT,
                tool_calls=[{"function": {"name": "add", "arguments": '{"a": 1,'}}],
            ),
            "Tool `add`: its arguments are not valid JSON",
        ),
        (
            ChatMessage(role=MessageRole.ASSISTANT, tool_calls=[{"function": {"arguments": {}}}]),
            "a tool call names no tool",
        ),
        (
            ChatMessage(
                role=MessageRole.ASSISTANT,
                tool_calls=[{"function": {"name": "add", "arguments": [1, 2]}}],
            ),
            "Tool `add`: its arguments are not a JSON object",
        ),
    ],
    ids=["raises", "unknown", "bad-arguments", "invalid-json", "no-name", "not-an-object"],
)
async def test_a_failing_tool_call_goes_back_to_the_model_as_an_error(
    call: ChatMessage, complaint: str
) -> None:
    connection = ScriptedConnection()
    responses: list[ToolResponseEvent] = []

    def script(messages: list[ChatMessage], tools: list[Tool]) -> ChatMessage:
        if messages[-1].role == MessageRole.TOOL:
            return answer(f"saw: {messages[-1].content}")
        return call.model_copy(deep=True)

    def watch(event: ToolResponseEvent, ctx: RunnerContext) -> None:
        responses.append(event)

    connection._script = script
    agent = llm_agent(
        connection,
        {
            "ask": ([InputEvent], ask("question")),
            "watch": ([ToolResponseEvent], watch),
            "reply": ([ChatResponseEvent], reply),
        },
        tools=tools_of(add, broken),
    )
    (output,) = await execute(agent, [1])
    assert output.startswith("saw: ") and complaint in output
    (response,) = responses
    assert list(response.success.values()) == [False]
    assert next(iter(response.error.values())) in output  # what the model read, said why


async def test_tool_calls_without_ids_get_ids_that_their_results_find() -> None:
    connection = ScriptedConnection()

    def script(messages: list[ChatMessage], tools: list[Tool]) -> ChatMessage:
        if messages[-1].role == MessageRole.TOOL:
            return answer(str([m.content for m in messages if m.role == MessageRole.TOOL]))
        return ChatMessage(
            role=MessageRole.ASSISTANT,
            tool_calls=[
                {"function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}},
                {"function": {"name": "add", "arguments": {"a": 3, "b": 4}}},
            ],
        )

    connection._script = script
    assert await execute(llm_agent(connection, tools=tools_of(add)), [1]) == ["['3', '7']"]


@pytest.mark.parametrize(
    ("setup", "request_model", "complaint"),
    [
        ({}, "missing", "to 'missing': Resource not found: 'missing' of type chat_model"),
        (
            {"tools": ["ghost"]},
            "model",
            "to 'model': chat model setup PlainSetup names the tool 'ghost', which is not declared",
        ),
        (
            {"prompt": "ghost"},
            "model",
            "to 'model': chat model setup PlainSetup names the prompt 'ghost', which is not "
            "declared",
        ),
        (
            {"connection": "ghost"},
            "model",
            "names the chat_model_connection 'ghost', which is not declared",
        ),
    ],
    ids=["model", "tool", "prompt", "connection"],
)
async def test_unknown_names_fail_the_request_naming_the_resource_and_the_request(
    setup: dict[str, Any], request_model: str, complaint: str
) -> None:
    connection = ScriptedConnection()
    connection._script = lambda messages, tools: answer("never")
    agent = Agent()
    agent.add_resource("conn", ResourceType.CHAT_MODEL_CONNECTION, connection)
    arguments = {"connection": "conn", "model": "m1", **setup}
    agent.add_resource("model", ResourceType.CHAT_MODEL, PlainSetup(**arguments))
    sent: list[ChatRequestEvent] = []

    def send(event: InputEvent, ctx: RunnerContext) -> None:
        sent.append(ChatRequestEvent(model=request_model, messages=[ChatMessage(content="hi")]))
        ctx.send_event(sent[-1])

    agent.add_action("ask", [InputEvent], send)
    agent.add_action("reply", [ChatResponseEvent], reply)

    with pytest.raises(ResourceNotFoundError) as caught:
        await execute(agent, [1])

    error = caught.value
    (failure,) = error.execution_failures
    assert failure.cause is error and failure.event_type == ChatRequestEvent.event_type()
    assert f"chat request {sent[0].id} " in str(error) and complaint in str(error)
    assert connection._seen == []


class Opaque:
    """A type pydantic has no schema for."""


def test_a_tool_whose_schema_cannot_be_made_is_refused_naming_it() -> None:
    def lookup(thing: Opaque) -> str:
        """Look a thing up."""
        return "found"

    with pytest.raises(ValueError, match="tool 'lookup': no argument schema can be made"):
        Tool.from_callable(lookup)


def test_a_tool_whose_hints_cannot_be_resolved_is_refused_naming_it() -> None:
    class Local:
        pass

    def lookup(thing: Local) -> str:
        """Look a thing up."""
        return "found"

    with pytest.raises(ValueError, match="tool 'lookup': its type hints cannot be resolved"):
        Tool.from_callable(lookup)


async def test_injected_arguments_come_from_config_and_memory_and_are_hidden() -> None:
    def lookup(customer: str, region: str, tier: str) -> str:
        """Find a customer."""
        return f"{customer}@{region}/{tier}"

    looked_up = Tool.from_callable(
        lookup,
        injected_args={
            "region": InjectedArg.from_config("app.region"),
            "tier": {"source": "short_term_memory", "key": "profile.tier"},
        },
    )
    schema = looked_up.metadata.get_parameters_dict()  # type: ignore[union-attr]
    assert list(schema["properties"]) == ["customer"]  # the model sees only its own argument

    connection = ScriptedConnection()

    def script(messages: list[ChatMessage], tools: list[Tool]) -> ChatMessage:
        if messages[-1].role == MessageRole.TOOL:
            return answer(messages[-1].content)
        return call_tool("lookup", customer="ada", region="ignored")

    connection._script = script

    def remember(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.short_term_memory.set("profile.tier", "gold")

    agent = llm_agent(
        connection,
        {
            "remember": ([InputEvent], remember),
            "ask": ([InputEvent], ask("question")),
            "reply": ([ChatResponseEvent], reply),
        },
        tools={"lookup": looked_up},
    )
    outputs = await execute(agent, [1], config={"app.region": "eu"})
    assert outputs == ["ada@eu/gold"]


# -- bounds and structured output --------------------------------------------------------------


async def test_a_model_that_keeps_asking_for_tools_fails_its_request_at_the_bound() -> None:
    connection = ScriptedConnection()
    connection._script = lambda messages, tools: call_tool("add", a=1, b=1)
    with pytest.raises(ChatModelError) as caught:
        await execute(
            llm_agent(connection, tools=tools_of(add)), [1], config={"chat.max-tool-call-rounds": 3}
        )
    (failure,) = caught.value.execution_failures
    assert failure.cause is caught.value
    assert "more than 3 times" in str(failure.cause) and "'model'" in str(failure.cause)
    assert len(connection._seen) == 4


class Verdict(BaseModel):
    score: int
    reasons: list[str]


@pytest.mark.parametrize(
    "schema",
    [Verdict, OutputSchema(output_schema=Verdict), Verdict.model_json_schema()],
    ids=["model", "wrapped", "json-schema"],
)
async def test_structured_output_is_validated_and_re_asked_when_it_does_not_fit(
    schema: Any,
) -> None:
    connection = ScriptedConnection()
    answers = iter(
        [
            answer("I think it is a 4"),
            answer('```json\n{"score": "high", "reasons": []}\n```'),
            answer('Sure: {"score": 4, "reasons": ["tasty"]} Hope this helps'),
        ]
    )
    connection._script = lambda messages, tools: next(answers)

    def send(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(
            ChatRequestEvent(
                model="model", messages=[ChatMessage(content="rate")], output_schema=schema
            )
        )

    def structured(event: ChatResponseEvent, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=event.response.extra_args["structured_output"]))

    agent = llm_agent(
        connection, {"send": ([InputEvent], send), "out": ([ChatResponseEvent], structured)}
    )
    (output,) = await execute(agent, [1])
    expected = {"score": 4, "reasons": ["tasty"]}
    assert (output if isinstance(output, dict) else output.model_dump()) == expected
    corrections = [m for m in connection._seen[-1] if m.role == MessageRole.USER][1:]
    assert len(corrections) == 2 and "JSON" in corrections[0].content


async def test_an_answer_that_never_fits_the_schema_fails_after_the_re_asks() -> None:
    connection = ScriptedConnection()
    connection._script = lambda messages, tools: answer("no JSON here")

    def send(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(ChatRequestEvent(model="model", messages=[], output_schema=Verdict))

    agent = llm_agent(
        connection, {"send": ([InputEvent], send), "reply": ([ChatResponseEvent], reply)}
    )
    with pytest.raises(ChatModelError, match="does not fit its output schema after 2 re-asks"):
        await execute(agent, [1])
    assert len(connection._seen) == 3


# -- concurrency and threads -------------------------------------------------------------------


async def test_fanned_out_requests_are_in_flight_at_once() -> None:
    connection = ScriptedConnection(delay=0.01)
    connection._script = lambda messages, tools: answer(last_text(messages))

    def fan_out(event: InputEvent, ctx: RunnerContext) -> None:
        for n in range(20):
            ctx.send_event(ChatRequestEvent(model="model", messages=[ChatMessage(content=str(n))]))

    agent = llm_agent(
        connection, {"fan_out": ([InputEvent], fan_out), "reply": ([ChatResponseEvent], reply)}
    )
    outputs = await execute(agent, [1])
    assert sorted(outputs, key=int) == [str(n) for n in range(20)]
    assert connection._most_in_flight == 20


class SyncOnlyConnection(BaseChatModelConnection):
    """Upstream's style: only a sync ``chat``."""

    threads: list[int] = []

    def chat(
        self, messages: Sequence[ChatMessage], tools: list[Tool] | None = None, **kwargs: Any
    ) -> ChatMessage:
        SyncOnlyConnection.threads.append(threading.get_ident())
        return answer(f"sync {messages[-1].content}")


class SyncOnlySetup(BaseChatModelSetup):
    """Upstream 0.2's style: a setup with its own sync ``chat`` and no prompt_args."""

    @property
    def model_kwargs(self) -> dict[str, Any]:
        return {}

    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:  # type: ignore[override]
        SyncOnlyConnection.threads.append(threading.get_ident())
        return answer(f"setup {messages[-1].content}")


@pytest.mark.parametrize("setup_class", [PlainSetup, SyncOnlySetup])
async def test_upstream_style_sync_models_run_in_the_thread_pool(setup_class: type) -> None:
    SyncOnlyConnection.threads = []
    agent = Agent()
    agent.add_resource("conn", ResourceType.CHAT_MODEL_CONNECTION, SyncOnlyConnection())
    agent.add_resource("model", ResourceType.CHAT_MODEL, setup_class(connection="conn", model="m"))
    agent.add_action("ask", [InputEvent], ask("q")).add_action("reply", [ChatResponseEvent], reply)
    outputs = await execute(agent, [1])
    assert outputs == [("sync" if setup_class is PlainSetup else "setup") + " q 1"]
    assert SyncOnlyConnection.threads and threading.get_ident() not in SyncOnlyConnection.threads


# -- durability --------------------------------------------------------------------------------


async def test_model_and_tool_calls_are_replayed_after_a_crash_not_asked_again() -> None:
    store = MemoryJournalStore()
    connection = ScriptedConnection()
    asked: Counter[str] = Counter()
    crashed = asyncio.Event()
    crash = {"now": True}
    tools_run: Counter[int] = Counter()

    def counted_double(x: int) -> int:
        """Double."""
        tools_run[x] += 1
        return x * 2

    def script(messages: list[ChatMessage], tools: list[Tool]) -> ChatMessage:
        first = messages[0].content
        asked[first] += 1
        if messages[-1].role == MessageRole.TOOL:
            return answer(f"{first} -> {messages[-1].content}")
        return call_tool("counted_double", x=int(first.split()[-1]))

    connection._script = script

    def fan_out(event: InputEvent, ctx: RunnerContext) -> None:
        for n in range(5):
            ctx.send_event(
                ChatRequestEvent(model="model", messages=[ChatMessage(content=f"q {n}")])
            )

    async def collect(event: ChatResponseEvent, ctx: RunnerContext) -> None:
        memory = ctx.sensory_memory
        done = (memory.get("done") or []) + [event.response.content]
        memory.set("done", done)
        if len(done) == 5:
            if crash["now"]:
                crashed.set()
                await asyncio.Event().wait()  # every answer is journaled: the process dies
            ctx.send_event(OutputEvent(output=sorted(done)))

    def make_agent() -> Agent:
        return llm_agent(
            connection,
            {"fan_out": ([InputEvent], fan_out), "collect": ([ChatResponseEvent], collect)},
            tools=tools_of(counted_double),
        )

    await crash_job(store, make_agent(), [{"key": "k", "value": 1}], crashed)
    assert sum(asked.values()) == 10 and sum(tools_run.values()) == 5
    crash["now"] = False
    outputs = await run_job(store, make_agent(), [{"key": "k", "value": 1}])
    assert outputs == [{"k": [f"q {n} -> {n * 2}" for n in range(5)]}]
    assert sum(asked.values()) == 10  # no model call asked twice
    assert sum(tools_run.values()) == 5  # no tool run twice


# -- metrics -----------------------------------------------------------------------------------


async def test_token_counts_are_metrics_of_the_model() -> None:
    connection = ScriptedConnection()

    def script(messages: list[ChatMessage], tools: list[Tool]) -> ChatMessage:
        message = answer("ok")
        message.extra_args.update(promptTokens=11, completionTokens=3)
        return message

    connection._script = script
    env = AgentsExecutionEnvironment.get_execution_environment()
    env.from_list([{"key": "k", "value": n} for n in range(2)]).apply(llm_agent(connection))
    await asyncio.wait_for(env.execute(), GUARD_TIMEOUT)
    metrics = env.metrics()
    assert metrics["chat_model_action.model.m1.promptTokens"] == 22
    assert metrics["chat_model_action.model.m1.completionTokens"] == 6


# -- ReAct -------------------------------------------------------------------------------------


class Review(BaseModel):
    id: str
    review: str


class Analysis(BaseModel):
    id: str
    score: int


def notify(id: str, review: str) -> str:
    """Notify the shipping manager about a review.

    Args:
        id: the review's id
        review: the review's text
    """
    return f"notified about {id}"


async def test_react_agent_uses_its_tools_and_returns_the_validated_answer() -> None:
    connection = ScriptedConnection()

    def script(messages: list[ChatMessage], tools: list[Tool]) -> ChatMessage:
        if messages[-1].role == MessageRole.TOOL:
            assert messages[-1].content == "notified about r1"
            return answer('{"id": "r1", "score": 1}')
        assert messages[0].role == MessageRole.SYSTEM and "JSON schema" in messages[1].content
        assert messages[-1].content == 'Review r1: "broken on arrival"'
        return call_tool("notify", id="r1", review="broken on arrival")

    connection._script = script
    agent = ReActAgent(
        chat_model=ResourceDescriptor(
            clazz=PlainSetup, connection="conn", model="m", tools=["notify"]
        ),
        prompt=Prompt.from_messages(
            [
                ChatMessage(role=MessageRole.SYSTEM, content="Analyse reviews."),
                ChatMessage(role=MessageRole.USER, content='Review {id}: "{review}"'),
            ]
        ),
        output_schema=Analysis,
    )
    agent.add_resource("conn", ResourceType.CHAT_MODEL_CONNECTION, connection)
    agent.add_resource("notify", ResourceType.TOOL, Tool.from_callable(notify))
    (output,) = await execute(agent, [Review(id="r1", review="broken on arrival")])
    assert output == Analysis(id="r1", score=1)


# -- declared with decorators, as upstream agents are ------------------------------------------


class AddingConnection(BaseChatModelConnection):
    """Answers ``a+b`` questions by asking for the ``plus`` tool, then says the sum."""

    async def achat(
        self,
        messages: Sequence[ChatMessage],
        tools: list[Tool] | None = None,
        output_schema: Any = None,
        **kwargs: Any,
    ) -> ChatMessage:
        assert messages[0].content == "You add numbers."
        if messages[-1].role == MessageRole.TOOL:
            return answer(f"the sum is {messages[-1].content}")
        a, b = (int(part) for part in messages[-1].content.split("+"))
        return call_tool("plus", a=a, b=b)


class DecoratedAgent(Agent):
    @chat_model_connection
    @staticmethod
    def conn() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=AddingConnection)

    @prompt
    @staticmethod
    def instructions() -> Prompt:
        return Prompt.from_text("You add numbers.")

    @tool
    @staticmethod
    def plus(a: int, b: int) -> int:
        """Add a and b."""
        return a + b

    @chat_model_setup
    @staticmethod
    def model() -> ResourceDescriptor:
        return ResourceDescriptor(
            clazz=PlainSetup, connection="conn", model="m", prompt="instructions", tools=["plus"]
        )

    @action(InputEvent)
    @staticmethod
    def start(event: Event, ctx: RunnerContext) -> None:
        ctx.send_event(
            ChatRequestEvent(model="model", messages=[ChatMessage(content=str(event.input))])
        )

    @action(ChatResponseEvent)
    @staticmethod
    def finish(event: ChatResponseEvent, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=event.response.content))


async def test_an_agent_declared_with_decorators_runs_its_tool_loop() -> None:
    outputs = await execute(DecoratedAgent(), ["2+3", "10+1"])
    assert outputs == ["the sum is 5", "the sum is 11"]


def test_tool_requests_and_responses_keep_upstream_fields() -> None:
    request = ToolRequestEvent("m", [{"id": "1", "function": {"name": "t", "arguments": {}}}])
    assert request.model == "m" and request.tool_calls[0]["function"]["name"] == "t"


async def test_configuration_gives_resource_classes_their_default_arguments() -> None:
    seen: list[Any] = []

    def inspect_resources(event: InputEvent, ctx: RunnerContext) -> None:
        connection = ctx.get_resource("conn", ResourceType.CHAT_MODEL_CONNECTION)
        seen.append((connection.delay, connection.name))

    agent = Agent()
    agent.add_resource(
        "conn",
        ResourceType.CHAT_MODEL_CONNECTION,
        ResourceDescriptor(clazz=ScriptedConnection, name="from the descriptor"),
    )
    agent.add_action("inspect", [InputEvent], inspect_resources)
    config = {"ScriptedConnection.delay": 0.5, "ScriptedConnection.name": "from config"}
    await execute(agent, [1], config=config)
    assert seen == [(0.5, "from the descriptor")]  # config fills in, the descriptor wins

"""The OpenAI, Anthropic and Ollama integrations, with their official clients, over real HTTP.

Agents run in the local runtime against ``ModelServer`` (a scripted server speaking the three
wire protocols on 127.0.0.1), so each test goes through the whole path: chat action, setup,
connection, SDK, HTTP, and back. Most tests run once per provider; what a protocol spells its
own way (tool call ids, tool result fields, request bodies) is in ``Provider``. One server
serves the module and is reset before each test, since starting uvicorn costs a few hundred ms.
Overlap is made certain with a ``Gate`` (the server holds requests until enough are in flight),
never with sleeps.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
from journal_helpers import GUARD_TIMEOUT
from pydantic import BaseModel

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
ollama = pytest.importorskip("ollama")

from flink_agents_async import (  # noqa: E402 - after the importorskips
    Agent,
    AgentsExecutionEnvironment,
    ChatMessage,
    ChatRequestEvent,
    ChatResponseEvent,
    InputEvent,
    MessageRole,
    OutputEvent,
    Prompt,
    ResourceDescriptor,
    ResourceError,
    ResourceName,
    ResourceType,
    RunnerContext,
    Tool,
)
from flink_agents_async.integrations._common import ChatModelRequestError  # noqa: E402
from flink_agents_async.integrations.anthropic import (  # noqa: E402
    AnthropicChatModelConnection,
    AnthropicChatModelSetup,
)
from flink_agents_async.integrations.ollama import (  # noqa: E402
    OllamaChatModelConnection,
    OllamaChatModelSetup,
)
from flink_agents_async.integrations.openai import (  # noqa: E402
    AzureOpenAIChatModelConnection,
    AzureOpenAIChatModelSetup,
    OpenAIChatModelConnection,
    OpenAIChatModelSetup,
    VLLMChatModelConnection,
    VLLMChatModelSetup,
)
from flink_agents_async.journal import Codec  # noqa: E402
from flink_agents_async.testing import (  # noqa: E402
    Message,
    ModelRequest,
    ModelServer,
    ProtocolName,
    Reply,
    ToolCall,
    Usage,
)

# -- the providers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    """One integration: its classes, a model name, and what its protocol spells its own way."""

    name: ProtocolName
    connection: str
    setup: str
    model: str
    first_call_id: str | None  # the server's id of the first tool call (Ollama gives none)
    setup_defaults: dict[str, Any]  # what the setup's defaults put in the request body
    key_variable: str | None = None  # the API key's environment variable

    def connection_args(self, server: ModelServer) -> dict[str, Any]:
        if self.name == "openai":
            return {"api_key": "test", "api_base_url": server.url("openai")}
        if self.name == "anthropic":
            return {"api_key": "test", "base_url": server.url("anthropic")}
        return {"base_url": server.url("ollama")}

    def make_connection(self, server: ModelServer, **options: Any) -> Any:
        cls = ResourceDescriptor(clazz=self.connection).clazz
        return cls(**{**self.connection_args(server), **options})

    def tool_result(self, content: str, call_id: str | None, tool: str) -> Message:
        """A tool result as the server records it."""
        if self.name == "ollama":
            return Message("tool", content, tool_name=tool)
        return Message("tool", content, tool_call_id=call_id)


CHAT = ResourceName.ChatModel
OPENAI = Provider(
    "openai",
    CHAT.OPENAI_CONNECTION,
    CHAT.OPENAI_SETUP,
    "gpt-test",
    "call_1",
    {"temperature": 0.1},
    "OPENAI_API_KEY",
)
ANTHROPIC = Provider(
    "anthropic",
    CHAT.ANTHROPIC_CONNECTION,
    CHAT.ANTHROPIC_SETUP,
    "claude-test",
    "toolu_1",
    {"max_tokens": 1024, "temperature": 0.1},
    "ANTHROPIC_API_KEY",
)
OLLAMA = Provider(
    "ollama",
    CHAT.OLLAMA_CONNECTION,
    CHAT.OLLAMA_SETUP,
    "llama-test",
    None,
    {"options": {"temperature": 0.75, "num_ctx": 2048}, "think": True, "stream": False},
)
PROVIDERS = [OPENAI, ANTHROPIC, OLLAMA]


@pytest.fixture(params=PROVIDERS, ids=[p.name for p in PROVIDERS])
def provider(request: pytest.FixtureRequest) -> Provider:
    return request.param


# -- agents ------------------------------------------------------------------------------------


def weather_tool(calls: list[str] | None = None, fail: bool = False) -> Tool:
    """A ``get_weather`` tool that records its calls in ``calls`` (and fails with ``fail``)."""

    def get_weather(city: str) -> str:
        """The weather in a city.

        Args:
            city: the city's name
        """
        if calls is not None:
            calls.append(city)
        if fail:
            raise ValueError(f"no weather for {city}")
        return f"sunny in {city}"

    return Tool.from_callable(get_weather)


def ask(event: InputEvent, ctx: RunnerContext) -> None:
    ctx.send_event(ChatRequestEvent(model="model", messages=[ChatMessage(content=event.input)]))


def respond(event: ChatResponseEvent, ctx: RunnerContext) -> None:
    ctx.send_event(
        OutputEvent(
            output={
                "response": event.response,
                "retry_count": event.retry_count,
                "waited": event.total_retry_wait_sec,
            }
        )
    )


def chat_agent(
    provider: Provider,
    server: ModelServer,
    *,
    tools: Sequence[Tool] = (),
    connection: dict[str, Any] | None = None,
    setup: dict[str, Any] | None = None,
    send: Callable[..., Any] = ask,
    receive: Callable[..., Any] = respond,
) -> Agent:
    """An agent with the provider's connection ``conn`` and setup ``model`` (with ``tools``),
    asking the model its input and outputting the ``ChatResponseEvent``'s parts."""
    agent = Agent()
    connection_args = {**provider.connection_args(server), **(connection or {})}
    agent.add_resource(
        "conn",
        ResourceType.CHAT_MODEL_CONNECTION,
        ResourceDescriptor(clazz=provider.connection, **connection_args),
    )
    agent.add_resource(
        "model",
        ResourceType.CHAT_MODEL,
        ResourceDescriptor(
            clazz=provider.setup,
            connection="conn",
            model=provider.model,
            tools=[tool.name for tool in tools],
            **(setup or {}),
        ),
    )
    for declared in tools:
        agent.add_resource(declared.name, ResourceType.TOOL, declared)
    agent.add_action("ask", [InputEvent], send)
    agent.add_action("respond", [ChatResponseEvent], receive)
    return agent


async def run(
    agent: Agent, *inputs: Any, **options: Any
) -> tuple[list[Any], AgentsExecutionEnvironment]:
    env = AgentsExecutionEnvironment.get_execution_environment(**options)
    collected = env.from_list([{"key": "k", "value": value} for value in inputs])
    outputs = collected.apply(agent).to_list()
    await asyncio.wait_for(env.execute(), GUARD_TIMEOUT)
    return [output for entry in outputs for output in entry.values()], env


async def failure_of(agent: Agent, *inputs: Any, raised: type[BaseException]) -> BaseException:
    """What the run of ``inputs`` (default: one question) failed with: ``execute()`` raises
    it (of type ``raised``) as the cause of the only failure."""
    with pytest.raises(raised) as caught:
        await run(agent, *(inputs or ("hi",)))
    (failure,) = caught.value.execution_failures
    assert failure.cause is caught.value and failure.key == "k"
    return caught.value


def fan_out(count: int) -> Callable[[InputEvent, RunnerContext], None]:
    def send(event: InputEvent, ctx: RunnerContext) -> None:
        for n in range(count):
            ctx.send_event(ChatRequestEvent(model="model", messages=[ChatMessage(content=f"q{n}")]))

    return send


@dataclass
class Gate:
    """A responder holding each request until ``width`` requests are being answered at once (or
    all ``total`` have arrived), so overlap is certain rather than hoped for. It runs on the
    server's event loop; a request held past ``GUARD_TIMEOUT`` gets a 500 (the test fails)."""

    server: ModelServer
    width: int
    total: int
    arrived: int = 0
    _condition: asyncio.Condition | None = field(default=None, repr=False)

    async def __call__(self, request: ModelRequest) -> Reply:
        if self._condition is None:
            self._condition = asyncio.Condition()
        condition = self._condition
        async with condition:
            self.arrived += 1
            condition.notify_all()
            await asyncio.wait_for(
                condition.wait_for(
                    lambda: self.server.in_flight >= self.width or self.arrived >= self.total
                ),
                GUARD_TIMEOUT,
            )
        return Reply(f"answer to {request.last_user_text}")


# -- one request -------------------------------------------------------------------------------


async def test_a_chat_request_gets_the_scripted_answer(
    provider: Provider, server: ModelServer
) -> None:
    server.script(Reply("Hello there", usage=Usage(prompt_tokens=11, completion_tokens=7)))

    (output,), _ = await run(chat_agent(provider, server), "Hi")

    response = output["response"]
    assert (response.role, response.content, response.tool_calls) == (
        MessageRole.ASSISTANT,
        "Hello there",
        [],
    )
    assert response.extra_args["model_name"] == provider.model
    assert (response.extra_args["promptTokens"], response.extra_args["completionTokens"]) == (
        11,
        7,
    )
    [request] = server.requests
    assert (request.protocol, request.model, request.stream) == (
        provider.name,
        provider.model,
        False,
    )
    assert request.messages == (Message("user", "Hi"),)


async def test_the_prompt_and_the_setup_defaults_reach_the_server(
    provider: Provider, server: ModelServer
) -> None:
    prompt = Prompt.from_messages(
        [
            ChatMessage(role=MessageRole.SYSTEM, content="You review {product}."),
            ChatMessage(role=MessageRole.USER, content="Review: {text}"),
        ]
    )

    def send(event: InputEvent, ctx: RunnerContext) -> None:
        arguments = {"product": "phones", "text": event.input}
        ctx.send_event(ChatRequestEvent(model="model", messages=[], prompt_args=arguments))

    await run(chat_agent(provider, server, setup={"prompt": prompt}, send=send), "great screen")

    [request] = server.requests
    assert request.messages == (
        Message("system", "You review phones."),
        Message("user", "Review: great screen"),
    )
    body = dict(request.body)
    assert {key: body.get(key) for key in provider.setup_defaults} == provider.setup_defaults


async def test_token_counts_become_metrics_of_the_model(
    provider: Provider, server: ModelServer
) -> None:
    server.script(*[Reply("ok", usage=Usage(prompt_tokens=11, completion_tokens=7))] * 2)

    _, env = await run(chat_agent(provider, server), "one", "two")

    metrics = env.metrics()
    group = f"chat_model_action.model.{provider.model}"
    assert (metrics[f"{group}.promptTokens"], metrics[f"{group}.completionTokens"]) == (22, 14)


# -- tools -------------------------------------------------------------------------------------


async def test_a_tool_call_loop_sends_the_result_back_under_the_call_id(
    provider: Provider, server: ModelServer
) -> None:
    calls: list[str] = []
    server.script(Reply.tools(ToolCall("get_weather", {"city": "Paris"})), "Sunny in Paris.")

    (output,), _ = await run(
        chat_agent(provider, server, tools=[weather_tool(calls)]), "Weather in Paris?"
    )

    assert output["response"].content == "Sunny in Paris."
    assert calls == ["Paris"]
    first, second = server.requests
    assert first.tools == second.tools == ("get_weather",)
    call_id = provider.first_call_id
    assert second.messages == (
        Message("user", "Weather in Paris?"),
        Message("assistant", "", (ToolCall("get_weather", {"city": "Paris"}, call_id),)),
        provider.tool_result("sunny in Paris", call_id, "get_weather"),
    )


async def test_a_failing_tool_goes_back_to_the_model_as_an_error_result(
    provider: Provider, server: ModelServer
) -> None:
    server.script(Reply.tools(ToolCall("get_weather", {"city": "Atlantis"})), "No idea, sorry.")

    (output,), _ = await run(
        chat_agent(provider, server, tools=[weather_tool(fail=True)]), "Weather in Atlantis?"
    )

    assert output["response"].content == "No idea, sorry."
    [result] = server.requests[1].tool_results
    assert result.content == (
        "Tool `get_weather` execute failed: ValueError: no weather for Atlantis"
    )


def openai_body(tool_calls: list[dict[str, Any]]) -> dict[str, Any]:
    message = {"role": "assistant", "content": None, "tool_calls": tool_calls}
    choice = {"index": 0, "message": message, "finish_reason": "tool_calls", "logprobs": None}
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 0,
        "model": OPENAI.model,
        "choices": [choice],
        "usage": usage,
    }


def anthropic_body(content: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "msg_x",
        "type": "message",
        "role": "assistant",
        "model": ANTHROPIC.model,
        "content": content,
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }


def unusable_tool_call(provider: Provider) -> tuple[Reply, str]:
    """A reply asking for ``get_weather`` with arguments it cannot take, and what the tool
    result says about them. OpenAI sends arguments as a JSON string (here a truncated one);
    Anthropic's input should be an object (here a string); Ollama sends objects only, so its
    arguments are an object that does not fit the tool's schema."""
    if provider.name == "openai":
        function = {"name": "get_weather", "arguments": '{"city": "Par'}
        call = {"id": "call_bad", "type": "function", "function": function}
        return Reply(body=openai_body([call])), "its arguments are not valid JSON"
    if provider.name == "anthropic":
        block = {"type": "tool_use", "id": "toolu_bad", "name": "get_weather", "input": "{Paris"}
        return Reply(body=anthropic_body([block])), "its arguments are not valid JSON"
    return (
        Reply.tools(ToolCall("get_weather", {"town": "Paris"})),
        "invalid arguments for tool 'get_weather'",
    )


async def test_tool_call_arguments_the_tool_cannot_take_are_reported_back_to_the_model(
    provider: Provider, server: ModelServer
) -> None:
    calls: list[str] = []
    bad_call, problem = unusable_tool_call(provider)
    server.script(bad_call, "Let me try again later.")

    with structlog.testing.capture_logs() as logs:
        (output,), _ = await run(
            chat_agent(provider, server, tools=[weather_tool(calls)]), "Weather in Paris?"
        )

    assert output["response"].content == "Let me try again later."
    assert calls == []  # the tool never ran
    [result] = server.requests[1].tool_results
    assert problem in result.content
    warnings = [log for log in logs if "not valid JSON" in log["event"]]
    if provider.name == "ollama":
        assert warnings == []
    else:
        [warning] = warnings
        assert (warning["model"], warning["tool"]) == (provider.model, "get_weather")


async def test_structured_output_is_re_asked_until_it_fits(
    provider: Provider, server: ModelServer
) -> None:
    class Verdict(BaseModel):
        score: int

    server.script("I would say four", '{"score": 4}')

    def send(event: InputEvent, ctx: RunnerContext) -> None:
        message = ChatMessage(content="Rate it")
        ctx.send_event(ChatRequestEvent(model="model", messages=[message], output_schema=Verdict))

    def structured(event: ChatResponseEvent, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=event.response.extra_args["structured_output"]))

    (output,), _ = await run(chat_agent(provider, server, send=send, receive=structured), 1)

    assert output == Verdict(score=4)
    second = server.requests[1].messages
    assert second[:2] == (Message("user", "Rate it"), Message("assistant", "I would say four"))
    assert second[2].role == "user" and "JSON" in second[2].content


# -- retries, errors and timeouts --------------------------------------------------------------


async def test_retryable_failures_are_retried_honouring_retry_after(
    provider: Provider, server: ModelServer
) -> None:
    hinted = [429, 408, 409, 500, 503, 529]
    server.script(
        *[Reply.error(status, retry_after=0.01) for status in hinted],
        Reply.error(502),  # no hint: the backoff (here 0 s) applies
        Reply.disconnect(),  # a connection dropped mid-answer
        "finally",
    )
    connection = {"max_retries": 8, "retry_wait_interval": 0}

    (output,), env = await run(chat_agent(provider, server, connection=connection), "Hi")

    assert output["response"].content == "finally"
    assert server.count() == 9
    assert output["retry_count"] == 8
    assert output["waited"] == pytest.approx(0.06)  # the six hints of 10 ms, nothing else
    assert env.metrics()["chat_model_action.model.conn.retryCount"] == 8
    assert env.metrics()["chat_model_action.model.conn.retryWaitMs"] == 60


async def test_retries_of_a_request_that_finally_fails_are_counted(
    provider: Provider, server: ModelServer
) -> None:
    server.script(*[Reply.error(503, retry_after=0.01)] * 3, "never asked")
    env = AgentsExecutionEnvironment.get_execution_environment()
    agent = chat_agent(provider, server, connection={"max_retries": 2})
    env.from_list([{"key": "k", "value": "Hi"}]).apply(agent).to_list()

    with pytest.raises(ChatModelRequestError) as caught:
        await asyncio.wait_for(env.execute(), GUARD_TIMEOUT)

    error = caught.value
    (failure,) = error.execution_failures
    assert failure.cause is error and failure.key == "k"
    assert error.status_code == 503
    assert (error.retry_count, error.retry_wait_sec) == (2, pytest.approx(0.02))
    assert env.metrics()["chat_model_action.model.conn.retryCount"] == 2
    assert env.metrics()["chat_model_action.model.conn.retryWaitMs"] == 20
    assert server.count() == 3


@pytest.mark.parametrize(
    "reply",
    [
        Reply.error(400, "nope"),
        Reply.error(401, "nope"),
        Reply.error(404, "nope"),
        Reply.error(500, "nope", headers={"x-should-retry": "false"}),
    ],
    ids=["400", "401", "404", "500-should-not-retry"],
)
async def test_errors_retrying_cannot_fix_fail_at_once_naming_the_model(
    provider: Provider, server: ModelServer, reply: Reply
) -> None:
    server.script(reply, "never asked")

    error = await failure_of(chat_agent(provider, server), raised=ChatModelRequestError)

    assert isinstance(error, ChatModelRequestError)
    assert (error.status_code, error.retryable, error.model) == (
        reply.status,
        False,
        provider.model,
    )
    text = str(error)
    assert text.startswith(f"{provider.connection.rsplit('.', 1)[1]}, model {provider.model!r}")
    assert f"HTTP {reply.status}" in text and "nope" in text
    assert server.count() == 1


async def test_a_malformed_answer_is_a_clear_error_and_not_retried(
    provider: Provider, server: ModelServer
) -> None:
    server.script(Reply.malformed('{"choices": ['), "never asked")

    error = await failure_of(chat_agent(provider, server), raised=ChatModelRequestError)

    assert isinstance(error, ChatModelRequestError) and not error.retryable
    assert "answer cannot be read: JSONDecodeError" in str(error)
    assert provider.model in str(error)
    assert server.count() == 1


async def test_a_timeout_is_retried_then_fails_naming_the_timeout(
    provider: Provider, server: ModelServer
) -> None:
    server.script(Reply("too late", delay=30), Reply("too late", delay=30))
    connection = {"timeout": 0.2, "max_retries": 1, "retry_wait_interval": 0}

    error = await failure_of(
        chat_agent(provider, server, connection=connection), raised=ChatModelRequestError
    )

    assert isinstance(error, ChatModelRequestError) and error.retryable
    assert f"model {provider.model!r}: no answer within 0.2 s" in str(error)
    assert "still failing after max_retries=1 retries" in str(error)
    assert server.count() == 2


async def test_an_unreachable_service_is_retried_then_named(
    provider: Provider, server: ModelServer
) -> None:
    nowhere = "http://127.0.0.1:9"  # the discard port: nothing listens there
    url = {"api_base_url": f"{nowhere}/v1"} if provider.name == "openai" else {"base_url": nowhere}
    connection = provider.make_connection(server, max_retries=1, retry_wait_interval=0, **url)
    try:
        with pytest.raises(ChatModelRequestError) as caught:
            await connection.achat([ChatMessage(content="hi")], model=provider.model)
    finally:
        await connection.aclose()

    error = caught.value
    assert error.retryable and error.status_code is None
    assert f"model {provider.model!r}: cannot reach {nowhere}" in str(error)


@pytest.mark.parametrize("provider", [OPENAI, ANTHROPIC], ids=["openai", "anthropic"])
async def test_a_missing_api_key_names_the_connection_and_the_variable(
    provider: Provider, server: ModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert provider.key_variable is not None
    monkeypatch.delenv(provider.key_variable, raising=False)
    monkeypatch.setattr(openai, "api_key", None)
    agent = chat_agent(provider, server, connection={"api_key": None})

    error = await failure_of(agent, raised=ResourceError)

    assert isinstance(error, ResourceError)
    assert provider.connection.rsplit(".", 1)[1] in str(error)
    assert provider.key_variable in str(error)
    assert server.count() == 0


# -- concurrency -------------------------------------------------------------------------------


async def test_max_concurrency_bounds_the_requests_in_flight(
    provider: Provider, server: ModelServer
) -> None:
    server.respond_with(Gate(server, width=2, total=10))
    agent = chat_agent(provider, server, connection={"max_concurrency": 2}, send=fan_out(10))

    outputs, _ = await run(agent, 1)

    assert sorted(output["response"].content for output in outputs) == sorted(
        f"answer to q{n}" for n in range(10)
    )
    assert server.max_in_flight == 2


async def test_without_a_limit_fanned_out_requests_are_in_flight_at_once(
    provider: Provider, server: ModelServer
) -> None:
    server.respond_with(Gate(server, width=10, total=10))

    outputs, _ = await run(chat_agent(provider, server, send=fan_out(10)), 1)

    assert len(outputs) == 10
    assert server.max_in_flight == 10


# -- durability --------------------------------------------------------------------------------


async def test_after_a_crash_the_journaled_answers_are_replayed_not_asked_again(
    provider: Provider, server: ModelServer, tmp_path: Path
) -> None:
    calls: list[str] = []
    crashed = asyncio.Event()
    crash = {"now": True}
    server.script(Reply.tools(ToolCall("get_weather", {"city": "Paris"})), "Sunny in Paris.")

    async def finish(event: ChatResponseEvent, ctx: RunnerContext) -> None:
        if crash["now"]:
            crashed.set()
            await asyncio.Event().wait()  # both answers are journaled: the process dies here
        ctx.send_event(OutputEvent(output=event.response.content))

    def job() -> tuple[AgentsExecutionEnvironment, list[dict[Any, Any]]]:
        agent = chat_agent(provider, server, tools=[weather_tool(calls)], receive=finish)
        env = AgentsExecutionEnvironment.get_execution_environment(
            journal_dir=tmp_path / "journal", durability="sync"
        )
        return env, env.from_list([{"key": "k", "value": "Weather?"}]).apply(agent).to_list()

    env, _ = job()
    running = asyncio.ensure_future(env.execute())
    await asyncio.wait_for(crashed.wait(), GUARD_TIMEOUT)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert (server.count(), calls) == (2, ["Paris"])

    crash["now"] = False
    env, outputs = job()
    await asyncio.wait_for(env.execute(), GUARD_TIMEOUT)

    assert outputs == [{"k": "Sunny in Paris."}]
    assert (server.count(), calls) == (2, ["Paris"])  # neither the model nor the tool again


async def test_answers_with_tool_calls_round_trip_through_the_journal_codec(
    provider: Provider, server: ModelServer
) -> None:
    server.script(
        Reply.tools(ToolCall("get_weather", {"city": "Paris", "days": [1, 2]}), text="Let me see.")
    )
    connection = provider.make_connection(server)
    try:
        answer = await connection.achat(
            [ChatMessage(content="Weather?")], tools=[weather_tool()], model=provider.model
        )
        [client] = connection.clients()
    finally:
        await connection.aclose()

    codec = Codec()
    assert codec.decode(codec.encode(answer)) == answer
    [call] = answer.tool_calls
    assert call["function"] == {
        "name": "get_weather",
        "arguments": {"city": "Paris", "days": [1, 2]},
    }
    assert call.get("original_id") == provider.first_call_id
    assert answer.content == "Let me see."
    if provider.name == "anthropic":
        assert answer.extra_args["anthropic_content_blocks"] == [
            {"type": "text", "text": "Let me see."},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Paris", "days": [1, 2]},
            },
        ]
    assert connection.clients() == [] and is_closed(client)


async def test_without_client_reuse_each_request_has_a_client_of_its_own(
    server: ModelServer,
) -> None:
    connection = OPENAI.make_connection(server, reuse_client=False)
    answers = [
        await connection.achat([ChatMessage(content=text)], model="m") for text in ("a", "b")
    ]

    assert [answer.content for answer in answers] == ["echo: a", "echo: b"]
    assert connection.clients() == []  # each was closed after its request


def is_closed(client: Any) -> bool:
    if isinstance(client, ollama.AsyncClient):
        return client._client.is_closed  # the SDK does not say; its httpx client does
    return client.is_closed()


async def test_the_runtime_closes_the_clients_at_the_end(
    provider: Provider, server: ModelServer
) -> None:
    seen: list[Any] = []

    def keep(event: ChatResponseEvent, ctx: RunnerContext) -> None:
        connection = ctx.get_resource("conn", ResourceType.CHAT_MODEL_CONNECTION)
        seen.extend(connection.clients())
        ctx.send_event(OutputEvent(output=event.response.content))

    outputs, _ = await run(chat_agent(provider, server, receive=keep), "Hi")

    assert outputs == ["echo: Hi"]
    [client] = seen
    assert is_closed(client)


# -- what each provider does of its own --------------------------------------------------------


async def test_sync_chat_outside_the_runtime_closes_its_loops_client(
    provider: Provider, server: ModelServer
) -> None:
    server.script("from a thread")
    connection = provider.make_connection(server)
    made: list[Any] = []
    real_make = connection._make_client

    def make_and_keep() -> Any:
        made.append(real_make())
        return made[-1]

    object.__setattr__(connection, "_make_client", make_and_keep)

    # A plain thread runs no event loop: chat runs achat on a loop of its own.
    answer = await asyncio.to_thread(
        connection.chat, [ChatMessage(content="Hi")], model=provider.model
    )

    assert answer.content == "from a thread"
    [client] = made
    assert is_closed(client) and connection.clients() == []


async def test_ollama_moves_reasoning_out_of_the_answer(server: ModelServer) -> None:
    server.script("<think>Paris is in France.</think>It is sunny.", "<think>x</think>kept")
    connection = OLLAMA.make_connection(server)
    try:
        extracted = await connection.achat([ChatMessage(content="?")], model="m", temperature=0.3)
        kept = await connection.achat(
            [ChatMessage(content="?")], model="m", extract_reasoning=False
        )
    finally:
        await connection.aclose()

    assert (extracted.content, extracted.extra_args["reasoning"]) == (
        "It is sunny.",
        "Paris is in France.",
    )
    assert kept.content == "<think>x</think>kept" and "reasoning" not in kept.extra_args
    # extract_reasoning shapes the answer: it is not one of the model's options.
    assert server.requests[0].body["options"] == {"temperature": 0.3}
    assert "options" not in server.requests[1].body


# -- fields, defaults and conversions as upstream's --------------------------------------------


def test_openai_fields_and_request_arguments_match_upstream() -> None:
    connection = OpenAIChatModelConnection()
    assert (connection.max_retries, connection.timeout, connection.reuse_client) == (3, 60.0, True)
    assert "api_key" not in repr(OpenAIChatModelConnection(api_key="secret"))
    setup = OpenAIChatModelSetup(connection="c")
    assert setup.model_kwargs == {"model": "gpt-4o-mini", "temperature": 0.1}
    no_temperature = OpenAIChatModelSetup(connection="c", temperature=None)
    assert no_temperature.model_kwargs == {"model": "gpt-4o-mini"}
    tuned = OpenAIChatModelSetup(
        connection="c",
        model="m",
        max_tokens=5,
        logprobs=True,
        top_logprobs=2,
        strict=True,
        reasoning_effort="low",
        additional_kwargs={"seed": 7, "temperature": 0.5},
    )
    assert tuned.model_kwargs == {
        "model": "m",
        "temperature": 0.5,
        "max_tokens": 5,
        "logprobs": True,
        "top_logprobs": 2,
        "reasoning_effort": "low",
        "strict": True,
        "seed": 7,
    }
    with pytest.raises(ValueError):
        OpenAIChatModelSetup(connection="c", temperature=2.5)


def test_openai_requests_carry_upstreams_message_and_tool_shapes() -> None:
    connection = OpenAIChatModelConnection(api_key="k")
    call = {
        "id": "uuid-1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
        "original_id": "call_7",
    }
    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content="Be brief.", extra_args={"name": "boss"}),
        ChatMessage(role=MessageRole.ASSISTANT, tool_calls=[call], extra_args={"model_name": "x"}),
        ChatMessage(role=MessageRole.TOOL, content="sunny", extra_args={"external_id": "call_7"}),
    ]

    request = connection._prepare(messages, [weather_tool()], {"model": "m", "strict": True})

    assert request.payload["messages"] == [
        {"role": "system", "content": "Be brief.", "name": "boss"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_7",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": "sunny", "tool_call_id": "call_7"},
    ]
    [spec] = request.payload["tools"]
    assert spec["function"]["strict"] is True
    assert spec["function"]["parameters"]["additionalProperties"] is False
    assert "strict" not in request.payload
    orphan = ChatMessage(role=MessageRole.TOOL, content="sunny")
    with pytest.raises(ValueError, match="external_id"):
        connection._prepare([orphan], [], {"model": "m"})
    with pytest.raises(ValueError, match="no model to ask"):
        connection._prepare(messages, [], {})


def test_anthropic_and_ollama_fields_match_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    setup = AnthropicChatModelSetup(connection="c")
    assert setup.model_kwargs == {
        "model": "claude-sonnet-4-20250514",
        "max_tokens": 1024,
        "temperature": 0.1,
    }
    no_temperature = AnthropicChatModelSetup(connection="c", temperature=None)
    assert "temperature" not in no_temperature.model_kwargs
    connection = AnthropicChatModelConnection()
    assert (connection.max_retries, connection.timeout) == (3, 60.0)
    ollama_setup = OllamaChatModelSetup(connection="c", model="llama3", request_timeout=5)
    assert ollama_setup.model_kwargs == {
        "model": "llama3",
        "temperature": 0.75,
        "num_ctx": 2048,
        "keep_alive": None,
        "think": True,
        "extract_reasoning": True,
    }
    ollama_connection = OllamaChatModelConnection(request_timeout=12)
    assert (ollama_connection.base_url, ollama_connection.request_timeout) == (
        "http://localhost:11434",
        12,
    )
    monkeypatch.setenv("OLLAMA_HOST", "http://gpu-box:11434")
    assert OllamaChatModelConnection().base_url == "http://gpu-box:11434"
    assert OllamaChatModelConnection(base_url="http://given:1").base_url == "http://given:1"
    assert OllamaChatModelConnection().request_timeout == 30.0
    with pytest.raises(ValueError, match="not both"):
        OllamaChatModelConnection(request_timeout=1, timeout=2)


def test_anthropic_requests_merge_tool_results_into_one_user_turn() -> None:
    calls = [
        {"id": f"u{n}", "function": {"name": "get_weather", "arguments": {"city": city}}}
        for n, city in enumerate(["Paris", "Rome"])
    ]
    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content="Be brief."),
        ChatMessage(content="Weather?"),
        ChatMessage(role=MessageRole.ASSISTANT, tool_calls=calls),
        ChatMessage(role=MessageRole.TOOL, content="sunny", extra_args={"external_id": "u0"}),
        ChatMessage(role=MessageRole.TOOL, content="rainy", extra_args={"external_id": "u1"}),
    ]

    request = AnthropicChatModelConnection()._prepare(messages, [], {"model": "m"})

    assert request.payload["system"] == [{"type": "text", "text": "Be brief."}]
    assert request.payload["max_tokens"] == 1024  # the API requires it
    assert request.payload["messages"] == [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "u0", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "u1", "name": "get_weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "u0", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "u1", "content": "rainy"},
            ],
        },
    ]


def test_anthropic_base_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://proxy.local")
    assert AnthropicChatModelConnection().resolved_base_url() == "http://proxy.local"
    given = AnthropicChatModelConnection(base_url="http://given.local")
    assert given.resolved_base_url() == "http://given.local"


async def test_azure_and_vllm_refuse_what_upstream_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("AZURE_OPENAI_AD_TOKEN", raising=False)
    azure = AzureOpenAIChatModelConnection(azure_endpoint="https://x.openai.azure.com")
    with pytest.raises(ResourceError, match="AZURE_OPENAI_API_KEY"):
        await azure.achat([ChatMessage(content="hi")], model="deployment")
    setup = AzureOpenAIChatModelSetup(
        connection="c", model="deployment", additional_kwargs={"temperature": 1}
    )
    assert setup.model_kwargs == {
        "model": "deployment",
        "model_of_azure_deployment": None,
        "logprobs": False,
        "additional_kwargs": {"temperature": 1},
    }
    with pytest.raises(ValueError, match=r"may not set \['temperature'\]"):
        azure._prepare([ChatMessage(content="hi")], [], dict(setup.model_kwargs))
    prepared = azure._prepare(
        [ChatMessage(content="hi")],
        [],
        {
            "model": "deployment",
            "model_of_azure_deployment": "gpt-4o",
            "additional_kwargs": {"seed": 1},
        },
    )
    assert (prepared.model_name, prepared.payload["seed"]) == ("gpt-4o", 1)
    assert "model_of_azure_deployment" not in prepared.payload
    with pytest.raises(ValueError, match="deployment name"):
        azure._prepare([], [], {})
    vllm = VLLMChatModelConnection()
    assert (vllm.resolved_api_key(), vllm.resolved_base_url()) == (
        "EMPTY",
        "http://localhost:8000/v1",
    )
    with pytest.raises(ValueError, match="vLLM"):
        VLLMChatModelSetup(connection="c", model="  ")


def test_resource_names_and_upstream_class_paths_name_these_classes() -> None:
    expected = {
        CHAT.OPENAI_CONNECTION: OpenAIChatModelConnection,
        CHAT.OPENAI_SETUP: OpenAIChatModelSetup,
        CHAT.AZURE_OPENAI_CONNECTION: AzureOpenAIChatModelConnection,
        CHAT.AZURE_OPENAI_SETUP: AzureOpenAIChatModelSetup,
        CHAT.VLLM_CONNECTION: VLLMChatModelConnection,
        CHAT.VLLM_SETUP: VLLMChatModelSetup,
        CHAT.ANTHROPIC_CONNECTION: AnthropicChatModelConnection,
        CHAT.ANTHROPIC_SETUP: AnthropicChatModelSetup,
        CHAT.OLLAMA_CONNECTION: OllamaChatModelConnection,
        CHAT.OLLAMA_SETUP: OllamaChatModelSetup,
    }
    for path, cls in expected.items():
        assert ResourceDescriptor(clazz=path).clazz is cls
    upstream = "flink_agents.integrations.chat_models.ollama_chat_model.OllamaChatModelSetup"
    assert ResourceDescriptor(clazz=upstream).clazz is OllamaChatModelSetup


# -- optional SDKs -----------------------------------------------------------------------------

SDKS = {"openai": "openai", "anthropic": "anthropic", "ollama": "ollama"}


@pytest.mark.parametrize("integration", list(SDKS))
def test_an_integration_imports_only_its_own_sdk_and_names_its_extra(
    integration: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = importlib.import_module("flink_agents_async.integrations")
    name = f"flink_agents_async.integrations.{integration}"
    # Restored afterwards: the module in sys.modules and the package's attribute.
    monkeypatch.setattr(package, integration, sys.modules[name])
    monkeypatch.delitem(sys.modules, name)
    for other in set(SDKS) - {integration}:
        monkeypatch.setitem(sys.modules, SDKS[other], None)  # importing it fails

    importlib.import_module(name)  # needs none of the others

    monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, SDKS[integration], None)
    with pytest.raises(ImportError, match=rf"pip install 'flink-agents-async\[{integration}\]'"):
        importlib.import_module(name)

"""ModelServer against the official OpenAI, Anthropic and Ollama clients, over real HTTP.

Most tests run once per protocol through a small driver per client (below) that turns the
client's native answer into the same neutral ``Answer``; assertions on native spellings (finish
reasons, error classes, error bodies) stay in the tests. One server is shared by the module and
reset before every test, because starting and stopping uvicorn costs a few hundred
milliseconds; the tests about the server's life cycle start their own.
"""

from __future__ import annotations

import asyncio
import functools
import json
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
ollama = pytest.importorskip("ollama")

from flink_agents_async.testing import (  # noqa: E402 - after the importorskips
    Message,
    ModelRequest,
    ModelServer,
    ProtocolName,
    Reply,
    ToolCall,
    Usage,
    echo_reply,
    fake_embedding,
)

ROOT = Path(__file__).resolve().parent.parent
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER_SCHEMA}}
]


# ---------------------------------------------------------------------------------------------
# The official clients, sharing one TLS context
# ---------------------------------------------------------------------------------------------


@functools.cache
def tls() -> ssl.SSLContext:
    """One TLS context for every client: each client would build its own, at ~0.2 s apiece.

    The server speaks plain HTTP, so the context is never used; its cost is.
    """
    return ssl.create_default_context()


def openai_client(server: ModelServer, **options: Any) -> Any:
    http_client = openai.DefaultAsyncHttpxClient(verify=tls())
    return openai.AsyncOpenAI(
        base_url=server.url("openai"), api_key="test", http_client=http_client, **options
    )


def anthropic_client(server: ModelServer, **options: Any) -> Any:
    http_client = anthropic.DefaultAsyncHttpxClient(verify=tls())
    return anthropic.AsyncAnthropic(
        base_url=server.url("anthropic"), api_key="test", http_client=http_client, **options
    )


def ollama_client(server: ModelServer, **options: Any) -> Any:
    return ollama.AsyncClient(host=server.url("ollama"), verify=tls(), **options)


# ---------------------------------------------------------------------------------------------
# One driver per official client: native request in, neutral Answer out
# ---------------------------------------------------------------------------------------------


@dataclass
class Answer:
    text: str
    tool_calls: list[ToolCall]
    finish: str | None
    usage: tuple[int | None, int | None]


class OpenAIDriver:
    protocol: ProtocolName = "openai"
    stop_reason, tool_reason = "stop", "tool_calls"

    def __init__(self, server: ModelServer, **options: Any) -> None:
        self.server = server
        options.setdefault("max_retries", 0)
        self.client = openai_client(server, **options)

    async def chat(self, messages: list[Any], model: str = "gpt-test", **kw: Any) -> Answer:
        if kw.pop("tools", False):
            kw["tools"] = OPENAI_TOOLS
        completion = await self.client.chat.completions.create(model=model, messages=messages, **kw)
        choice = completion.choices[0]
        calls = [
            ToolCall(call.function.name, json.loads(call.function.arguments), call.id)
            for call in choice.message.tool_calls or ()
        ]
        usage = completion.usage
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
        text = choice.message.content or ""
        return Answer(
            text, calls, choice.finish_reason, (usage.prompt_tokens, usage.completion_tokens)
        )

    @staticmethod
    def tool_turn(call: ToolCall, result: str) -> list[dict[str, Any]]:
        function = {"name": call.name, "arguments": json.dumps(call.arguments)}
        request = {"id": call.id, "type": "function", "function": function}
        return [
            {"role": "assistant", "content": None, "tool_calls": [request]},
            {"role": "tool", "tool_call_id": call.id, "content": result},
        ]

    async def aclose(self) -> None:
        await self.client.close()


class AnthropicDriver:
    protocol: ProtocolName = "anthropic"
    stop_reason, tool_reason = "end_turn", "tool_use"

    def __init__(self, server: ModelServer, **options: Any) -> None:
        self.server = server
        options.setdefault("max_retries", 0)
        self.client = anthropic_client(server, **options)

    async def chat(self, messages: list[Any], model: str = "claude-test", **kw: Any) -> Answer:
        if kw.pop("tools", False):
            kw["tools"] = [{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]
        message = await self.client.messages.create(
            model=model, max_tokens=100, messages=messages, **kw
        )
        text = "".join(block.text for block in message.content if block.type == "text")
        calls = [
            ToolCall(block.name, block.input, block.id)
            for block in message.content
            if block.type == "tool_use"
        ]
        usage = (message.usage.input_tokens, message.usage.output_tokens)
        return Answer(text, calls, message.stop_reason, usage)

    @staticmethod
    def tool_turn(call: ToolCall, result: str) -> list[dict[str, Any]]:
        use = {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        outcome = {"type": "tool_result", "tool_use_id": call.id, "content": result}
        return [{"role": "assistant", "content": [use]}, {"role": "user", "content": [outcome]}]

    async def aclose(self) -> None:
        await self.client.close()


class OllamaDriver:
    protocol: ProtocolName = "ollama"
    stop_reason, tool_reason = "stop", "stop"  # Ollama says "stop" after tool calls too

    def __init__(self, server: ModelServer, **options: Any) -> None:
        self.server = server
        self.client = ollama_client(server, **options)

    async def chat(self, messages: list[Any], model: str = "llama-test", **kw: Any) -> Answer:
        if kw.pop("tools", False):
            kw["tools"] = OPENAI_TOOLS  # Ollama takes the same tool format
        response = await self.client.chat(model=model, messages=messages, **kw)
        assert response.done
        calls = [
            ToolCall(call.function.name, dict(call.function.arguments))
            for call in response.message.tool_calls or ()
        ]
        usage = (response.prompt_eval_count, response.eval_count)
        return Answer(response.message.content or "", calls, response.done_reason, usage)

    @staticmethod
    def tool_turn(call: ToolCall, result: str) -> list[dict[str, Any]]:
        function = {"name": call.name, "arguments": dict(call.arguments)}
        return [
            {"role": "assistant", "content": "", "tool_calls": [{"function": function}]},
            {"role": "tool", "content": result, "tool_name": call.name},
        ]

    async def aclose(self) -> None:
        await self.client.close()


Driver = OpenAIDriver | AnthropicDriver | OllamaDriver
DRIVERS: dict[str, type[Driver]] = {
    "openai": OpenAIDriver,
    "anthropic": AnthropicDriver,
    "ollama": OllamaDriver,
}


def user(text: str) -> dict[str, str]:
    """A user message; all three protocols spell it the same way."""
    return {"role": "user", "content": text}


@pytest.fixture(params=list(DRIVERS))
async def driver(request: pytest.FixtureRequest, server: ModelServer) -> AsyncIterator[Driver]:
    instance = DRIVERS[request.param](server)
    yield instance
    await instance.aclose()


async def failure_of(driver: Driver, **client_options: Any) -> Exception:
    """What the driver's client raises for one request, using a client with these options."""
    probe = type(driver)(driver.server, **client_options)
    try:
        answer = await probe.chat([user("Hi")])
    except Exception as exc:
        return exc
    finally:
        await probe.aclose()
    pytest.fail(f"the {driver.protocol} client did not raise; it answered {answer}")


# ---------------------------------------------------------------------------------------------
# Each protocol with its official async client
# ---------------------------------------------------------------------------------------------


async def test_plain_text_reply_and_recorded_request(driver: Driver, server: ModelServer) -> None:
    server.script("Hello there")

    answer = await driver.chat([user("Hi")])

    assert (answer.text, answer.tool_calls, answer.finish) == (
        "Hello there",
        [],
        driver.stop_reason,
    )
    [request] = server.requests
    assert (request.protocol, request.kind, request.stream) == (driver.protocol, "chat", False)
    assert request.model in ("gpt-test", "claude-test", "llama-test")
    assert request.messages == (Message("user", "Hi"),)
    assert request.body["messages"][0]["content"] == "Hi"
    assert server.pending() == 0


async def test_tool_call_then_tool_result_is_normalised(
    driver: Driver, server: ModelServer
) -> None:
    server.script(Reply.tools(ToolCall("get_weather", {"city": "Paris"})), "Sunny in Paris")

    first = await driver.chat([user("Weather in Paris?")], tools=True)
    [call] = first.tool_calls
    second = await driver.chat(
        [user("Weather in Paris?"), *driver.tool_turn(call, "sunny")], tools=True
    )

    assert first.finish == driver.tool_reason
    assert (call.name, call.arguments) == ("get_weather", {"city": "Paris"})
    expected_id = {"openai": "call_1", "anthropic": "toolu_1", "ollama": None}[driver.protocol]
    assert call.id == expected_id
    assert second.text == "Sunny in Paris"
    request = server.requests[1]
    assert request.tools == ("get_weather",)
    is_ollama = driver.protocol == "ollama"
    assert request.messages == (
        Message("user", "Weather in Paris?"),
        Message("assistant", "", (ToolCall("get_weather", {"city": "Paris"}, expected_id),)),
        Message(
            "tool",
            "sunny",
            tool_call_id=None if is_ollama else expected_id,
            tool_name="get_weather" if is_ollama else None,
        ),
    )
    assert [result.content for result in request.tool_results] == ["sunny"]


async def test_usage_numbers_scripted_and_estimated(driver: Driver, server: ModelServer) -> None:
    server.script(Reply("counted", usage=Usage(prompt_tokens=11, completion_tokens=7)))
    server.script("one two three")

    scripted = await driver.chat([user("Hi")])
    estimated = await driver.chat([user("four words of prompt")])

    assert scripted.usage == (11, 7)
    assert estimated.usage == (4, 3)  # one token per word


async def test_rate_limit_carries_retry_after(driver: Driver, server: ModelServer) -> None:
    server.script(Reply.error(429, "slow down", retry_after=1.5))

    error = await failure_of(driver)

    if isinstance(driver, OllamaDriver):
        assert isinstance(error, ollama.ResponseError)
        assert (error.status_code, error.error) == (429, "slow down")
        return
    module = openai if isinstance(driver, OpenAIDriver) else anthropic
    assert isinstance(error, module.RateLimitError)
    assert error.status_code == 429
    assert error.response.headers["retry-after"] == "2"  # whole seconds, rounded up
    assert error.response.headers["retry-after-ms"] == "1500"
    if isinstance(driver, OpenAIDriver):
        assert error.body == {
            "message": "slow down",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    else:
        assert error.body == {
            "type": "error",
            "error": {"type": "rate_limit_error", "message": "slow down"},
        }


@pytest.mark.parametrize("driver", ["openai", "anthropic"], indirect=True)
async def test_client_retries_after_rate_limit(driver: Driver, server: ModelServer) -> None:
    server.script(Reply.error(429, retry_after=0.01), "finally")

    retrying = type(driver)(server, max_retries=2)
    try:
        answer = await retrying.chat([user("Hi")])
    finally:
        await retrying.aclose()

    assert answer.text == "finally"
    assert server.count() == 2
    assert [r.headers.get("x-stainless-retry-count") for r in server.requests] == ["0", "1"]


async def test_server_error_500(driver: Driver, server: ModelServer) -> None:
    server.script(Reply.error(500, "boom"))

    error = await failure_of(driver)

    if isinstance(driver, OllamaDriver):
        assert isinstance(error, ollama.ResponseError)
        assert (error.status_code, error.error) == (500, "boom")
    elif isinstance(driver, OpenAIDriver):
        assert isinstance(error, openai.InternalServerError)
        assert error.body == {
            "message": "boom",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    else:
        assert isinstance(error, anthropic.InternalServerError)
        assert error.body == {"type": "error", "error": {"type": "api_error", "message": "boom"}}


async def test_delayed_reply_triggers_client_timeout(driver: Driver, server: ModelServer) -> None:
    server.script(Reply("too late", delay=30))

    error = await failure_of(driver, timeout=0.2)
    after = await driver.chat([user("still there?")])

    expected = {
        "openai": openai.APITimeoutError,
        "anthropic": anthropic.APITimeoutError,
        "ollama": httpx.ReadTimeout,
    }[driver.protocol]
    assert isinstance(error, expected)
    assert after.text == "echo: still there?"


async def test_malformed_body(driver: Driver, server: ModelServer) -> None:
    server.script(Reply.malformed('{"choices": ['))

    error = await failure_of(driver)

    # All three clients parse the body with the json module and let its error through.
    assert isinstance(error, json.JSONDecodeError)


async def test_dropped_connection(driver: Driver, server: ModelServer) -> None:
    server.script(Reply.disconnect())

    error = await failure_of(driver)

    expected = {
        "openai": openai.APIConnectionError,
        "anthropic": anthropic.APIConnectionError,
        "ollama": httpx.RemoteProtocolError,
    }[driver.protocol]
    assert isinstance(error, expected)


async def test_default_responder_echoes_last_user_message(
    driver: Driver, server: ModelServer
) -> None:
    answer = await driver.chat([user("first"), {"role": "assistant", "content": "ok"}, user("Hi")])

    assert (answer.text, answer.finish) == ("echo: Hi", driver.stop_reason)


async def test_per_model_scripts(driver: Driver, server: ModelServer) -> None:
    server.script("for m1", model="m1")
    server.script("shared")

    other = await driver.chat([user("Hi")], model="m2")
    own = await driver.chat([user("Hi")], model="m1")
    exhausted = await driver.chat([user("Hi")], model="m1")

    assert [other.text, own.text, exhausted.text] == ["shared", "for m1", "echo: Hi"]
    assert server.count(model="m1") == 2
    assert server.count(protocol=driver.protocol) == 3
    assert server.count(protocol="openai" if driver.protocol != "openai" else "ollama") == 0
    assert (server.pending(), server.pending(model="m1")) == (0, 0)


async def test_response_format_is_recorded(driver: Driver, server: ModelServer) -> None:
    schema: dict[str, Any] = {"type": "json_schema", "schema": WEATHER_SCHEMA}
    options: dict[str, dict[str, Any]] = {
        "openai": {"response_format": {"type": "json_object"}},
        "anthropic": {"output_config": {"format": schema}},
        "ollama": {"format": "json"},
    }

    await driver.chat([user("Hi")], **options[driver.protocol])

    expected: dict[str, Any] = {
        "openai": {"type": "json_object"},
        "anthropic": schema,
        "ollama": "json",
    }
    assert server.requests[0].response_format == expected[driver.protocol]


# ---------------------------------------------------------------------------------------------
# Streaming
# ---------------------------------------------------------------------------------------------


async def test_openai_streaming_text_usage_and_tool_calls(server: ModelServer) -> None:
    server.script("Hello streaming world", Reply.tools(ToolCall("get_weather", {"city": "Oslo"})))
    async with openai_client(server, max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="gpt-test",
            messages=[user("Hi")],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        async with client.chat.completions.stream(
            model="gpt-test", messages=[user("Weather?")], tools=OPENAI_TOOLS
        ) as tool_stream:
            final = await tool_stream.get_final_completion()

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello streaming world"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == 3
    [call] = final.choices[0].message.tool_calls
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Oslo"},
    )
    assert final.choices[0].finish_reason == "tool_calls"
    assert [request.stream for request in server.requests] == [True, True]


async def test_anthropic_streaming_text_and_tool_use(server: ModelServer) -> None:
    server.script(Reply.tools(ToolCall("get_weather", {"city": "Oslo"}), text="Let me look."))
    async with (
        anthropic_client(server) as client,
        client.messages.stream(
            model="claude-test", max_tokens=100, messages=[user("Weather?")]
        ) as stream,
    ):
        deltas = [text async for text in stream.text_stream]
        message = await stream.get_final_message()

    assert "".join(deltas) == "Let me look."
    text, tool_use = message.content
    assert text.text == "Let me look."
    assert (tool_use.name, tool_use.input, tool_use.id) == (
        "get_weather",
        {"city": "Oslo"},
        "toolu_1",
    )
    assert message.stop_reason == "tool_use"


async def test_ollama_streaming(server: ModelServer) -> None:
    server.script("Hello streaming world")
    client = ollama_client(server)
    try:
        parts = [part async for part in await client.chat("llama-test", [user("Hi")], stream=True)]
    finally:
        await client.close()

    assert "".join(part.message.content for part in parts) == "Hello streaming world"
    assert [part.done for part in parts] == [False, False, False, True]
    assert parts[-1].eval_count == 3


# ---------------------------------------------------------------------------------------------
# Scripting API, embeddings and discovery endpoints
# ---------------------------------------------------------------------------------------------


async def test_responder_answers_when_script_is_exhausted(server: ModelServer) -> None:
    seen: list[ModelRequest] = []

    async def responder(request: ModelRequest) -> Reply:
        seen.append(request)
        return Reply(f"{request.model} got {len(request.messages)} messages")

    server.respond_with(responder)
    server.script("scripted first")
    async with openai_client(server) as client:
        texts = [
            (await client.chat.completions.create(model="m", messages=[user("Hi")]))
            .choices[0]
            .message.content
            for _ in range(2)
        ]

    assert texts == ["scripted first", "m got 1 messages"]
    assert len(seen) == 1


async def test_failing_responder_answers_500_without_retries(server: ModelServer) -> None:
    def responder(request: ModelRequest) -> Reply:
        raise RuntimeError("bug in the test's responder")

    server.respond_with(responder)
    async with openai_client(server, max_retries=2) as client:
        with pytest.raises(openai.InternalServerError, match="bug in the test's responder"):
            await client.chat.completions.create(model="m", messages=[user("Hi")])

    assert server.count() == 1  # x-should-retry: false kept the client from retrying


async def test_embeddings_are_deterministic(server: ModelServer) -> None:
    async with openai_client(server) as client:
        floats = await client.embeddings.create(model="embed", input=["alpha", "beta"])
        packed = await client.embeddings.create(
            model="embed", input="alpha", encoding_format="base64"
        )
    local = ollama_client(server)
    try:
        native = await local.embed(model="embed", input=["alpha"])
    finally:
        await local.close()

    alpha, beta = (item.embedding for item in floats.data)
    assert alpha == pytest.approx(fake_embedding("alpha")) and len(alpha) == 16
    assert beta != alpha
    assert isinstance(packed.data[0].embedding, str)  # base64 float32, decoded by the caller
    assert list(native.embeddings[0]) == pytest.approx(alpha)
    assert [(r.kind, r.inputs) for r in server.requests] == [
        ("embeddings", ("alpha", "beta")),
        ("embeddings", ("alpha",)),
        ("embeddings", ("alpha",)),
    ]
    assert server.count(kind="chat") == 0


async def test_model_listings_and_version(model_server: ModelServer) -> None:
    local = ollama_client(model_server)
    try:
        tags = await local.list()
    finally:
        await local.close()
    async with openai_client(model_server) as client:
        openai_models = [model.id async for model in client.models.list()]
    async with httpx.AsyncClient(base_url=model_server.base_url, verify=tls()) as plain:
        version = (await plain.get("/api/version")).json()

    assert [model.model for model in tags.models] == ["test-model"]
    assert openai_models == ["test-model"]
    assert set(version) == {"version"}


def test_sync_clients_work_too(server: ModelServer) -> None:
    server.script("from openai", "from anthropic", "from ollama")

    tls_options = {"http_client": openai.DefaultHttpxClient(verify=tls())}
    with openai.OpenAI(base_url=server.url("openai"), api_key="t", **tls_options) as client:
        first = client.chat.completions.create(model="m", messages=[user("Hi")])
    tls_options = {"http_client": anthropic.DefaultHttpxClient(verify=tls())}
    with anthropic.Anthropic(
        base_url=server.url("anthropic"), api_key="t", **tls_options
    ) as client:
        second = client.messages.create(model="m", max_tokens=10, messages=[user("Hi")])
    with ollama.Client(host=server.url("ollama"), verify=tls()) as client:
        third = client.chat(model="m", messages=[user("Hi")])

    assert first.choices[0].message.content == "from openai"
    assert second.content[0].text == "from anthropic"
    assert third.message.content == "from ollama"


def test_reply_helpers_validate_their_input(server: ModelServer) -> None:
    with pytest.raises(ValueError):
        Reply.error(200)
    with pytest.raises(ValueError):
        Reply.tools()
    with pytest.raises(ValueError):
        Reply("x", delay=-1)
    with pytest.raises(TypeError):
        server.script(42)  # type: ignore[arg-type]
    assert Reply("x", tool_calls=[ToolCall("f")]).tool_calls == (ToolCall("f"),)
    assert server.url("openai") == server.base_url + "/v1"
    assert server.url("anthropic") == server.url("ollama") == server.base_url
    with pytest.raises(ValueError):
        server.url("mistral")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Latency, concurrency and the server's life cycle
# ---------------------------------------------------------------------------------------------


async def post_json(port: int, path: str, payload: dict[str, Any]) -> tuple[int, Any]:
    """One HTTP/1.1 POST on its own connection, with nothing but asyncio streams.

    For the concurrency test: httpx's connection pool costs O(n) per request with n
    connections, so 200 requests through an official client spend seconds in the client.
    """
    body = json.dumps(payload).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode() + body)
        response = await reader.read()  # Connection: close, so EOF ends the response
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


async def test_200_concurrent_requests_are_in_flight_together() -> None:
    async with ModelServer() as server:
        all_arrived = asyncio.Event()  # used only on the server's loop

        async def answer_once_all_arrived(request: ModelRequest) -> Reply:
            # Served one after another, the first request would wait here until the test's
            # guard ends it: answering only once all 200 are in flight proves they all are.
            if server.in_flight >= 200:
                all_arrived.set()
            await all_arrived.wait()
            return echo_reply(request)

        server.respond_with(answer_once_all_arrived)
        requests = (
            post_json(
                server.port, "/v1/chat/completions", {"model": "m", "messages": [user(f"q{i}")]}
            )
            for i in range(200)
        )
        answers = await asyncio.wait_for(asyncio.gather(*requests), 60)

        assert {status for status, _ in answers} == {200}
        texts = sorted(body["choices"][0]["message"]["content"] for _, body in answers)
        assert texts == sorted(f"echo: q{i}" for i in range(200))
        assert server.count() == 200
        assert server.max_in_flight == 200
        assert server.in_flight == 0


def test_sync_context_manager_starts_fast_and_leaves_no_thread() -> None:
    threads_before = set(threading.enumerate())
    started = time.perf_counter()

    with ModelServer() as server:
        startup = time.perf_counter() - started
        response = httpx.get(server.base_url)
        [thread] = [t for t in threading.enumerate() if t.name == f"ModelServer:{server.port}"]

    assert response.text == "Ollama is running"
    assert startup < 1.0
    assert not thread.is_alive()
    assert set(threading.enumerate()) == threads_before


async def test_async_stop_cuts_delayed_replies_short() -> None:
    loop = asyncio.get_running_loop()
    arrived = asyncio.Event()

    def slow(request: ModelRequest) -> Reply:
        loop.call_soon_threadsafe(arrived.set)  # the responder runs on the server's thread
        return Reply("much too late", delay=60)

    async with ModelServer() as server:
        server.respond_with(slow)
        async with openai_client(server, max_retries=0) as client:
            pending = asyncio.ensure_future(
                client.chat.completions.create(model="m", messages=[user("Hi")])
            )
            await arrived.wait()
            started = time.perf_counter()
            await server.stop_async()
            stopping = time.perf_counter() - started
            with pytest.raises(openai.InternalServerError, match="shutting down"):
                await pending
    # Leaving the block stopped it a second time, harmlessly.

    assert stopping < 5.0  # not the 60 s of the delay
    assert f"ModelServer:{server.port}" not in {t.name for t in threading.enumerate()}


def test_standalone_mode_serves_until_interrupted() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flink_agents_async.testing.model_server",
            "--port",
            "0",
            "--latency",
            "0.01",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(5)]
        openai_url = banner[1].split()[-1]
        with openai.OpenAI(base_url=openai_url, api_key="t", max_retries=0) as client:
            answer = client.chat.completions.create(model="m", messages=[user("ping")])
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
        process.wait()

    assert banner[0].startswith("ModelServer on http://127.0.0.1:")
    assert openai_url.endswith("/v1")
    assert answer.choices[0].message.content == "echo: ping"
    assert process.returncode == 0
    assert stderr == ""  # no tracebacks, no runpy warning


def test_import_without_web_extra_names_the_extra() -> None:
    script = (
        "import sys\n"
        "import flink_agents_async\n"
        "assert 'flink_agents_async.testing' not in sys.modules, 'core imports testing'\n"
        "sys.modules['uvicorn'] = None  # as if it were not installed\n"
        "try:\n"
        "    import flink_agents_async.testing\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=30
    )

    assert result.returncode == 0, result.stderr
    assert "uvicorn" in result.stdout
    assert "pip install 'flink-agents-async[web]'" in result.stdout

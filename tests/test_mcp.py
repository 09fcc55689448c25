"""MCP servers: their tools and prompts as the agent's, over streamable HTTP and stdio.

The servers are real (``mcp_server_app.py``, written with the SDK's ``FastMCP``): the HTTP one
runs in a thread of this process on a free port (a test can stop and restart it), the stdio one
is a subprocess the ``MCPServer`` starts itself. The chat model is the local model server
(``model_server`` fixture) through the OpenAI integration.
"""

from __future__ import annotations

import ast
import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from journal_helpers import GUARD_TIMEOUT
from mcp_server_app import HttpServer, free_port

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    ChatMessage,
    ChatRequestEvent,
    ChatResponseEvent,
    InputEvent,
    MessageRole,
    OutputEvent,
    ResourceDescriptor,
    ResourceName,
    RunnerContext,
    action,
    chat_model_connection,
    chat_model_setup,
    mcp_server,
)
from flink_agents_async.errors import ResourceError
from flink_agents_async.integrations.mcp import MCPServer, MCPServerError, MCPTool
from flink_agents_async.testing import ModelServer, Reply, ToolCall

SERVER_APP = str(Path(__file__).with_name("mcp_server_app.py"))
STDIO = {"command": sys.executable, "args": [SERVER_APP, "stdio"]}


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    server = HttpServer().start()
    try:
        yield server
    finally:
        server.stop()


def gone(pid: int) -> bool:
    """Whether no process has that id (a stdio server that exited and was reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# -- the server on its own ---------------------------------------------------------------------


def test_an_http_server_lists_its_tools_and_prompts(http_server: HttpServer) -> None:
    server = MCPServer(endpoint=http_server.url, timeout=5)
    try:
        tools = {tool.name: tool for tool in server.list_tools()}
        assert sorted(tools) == ["add", "multiply", "pid"]  # "broken" is refused, alone
        add = tools["add"]
        assert isinstance(add, MCPTool) and add.is_async
        assert add.metadata is not None
        parameters = add.metadata.get_parameters_dict()
        assert parameters["required"] == ["a", "b"]
        assert parameters["properties"]["a"]["type"] == "integer"
        assert "sum of two numbers" in add.description

        [prompt] = server.list_prompts()
        assert prompt.name == "ask_sum"
        assert prompt.format_messages(MessageRole.SYSTEM, a=1, b=2) == [
            ChatMessage(
                role=MessageRole.USER, content="Can you please calculate the sum of 1 and 2?"
            )
        ]
        with pytest.raises(MCPServerError, match="'ask_sum' needs the argument 'b'"):
            prompt.format_messages(a=1)

        with pytest.raises(MCPServerError, match="tool 'broken' with an unusable input schema"):
            server.get_tool("broken")
    finally:
        server.close()


async def test_a_stdio_server_answers_is_restarted_when_it_died_and_ends_when_closed() -> None:
    server = MCPServer(**STDIO)
    await asyncio.to_thread(server.open)
    assert await server.call_tool_async("add", a=2, b=3) == ["5"]
    assert await server.call_tool_async("multiply", {"a": 2, "b": 3}) == ["6"]
    assert [p.name for p in await server.alist_prompts()] == ["ask_sum"]
    [pid] = await server.call_tool_async("pid")

    os.kill(int(pid), 9)  # died between two calls: the next one starts it again
    assert await server.call_tool_async("add", a=1, b=1) == ["2"]
    [new_pid] = await server.call_tool_async("pid")
    assert new_pid != pid

    await server.aclose()

    assert gone(int(new_pid))
    assert server._link is None  # its thread ended too


async def test_the_next_call_reconnects_to_a_restarted_http_server(http_server: HttpServer) -> None:
    server = MCPServer(endpoint=http_server.url, timeout=5)
    try:
        [first] = await server.call_tool_async("pid")
        http_server.stop()
        http_server.start()  # same port, new server: the old session is unknown there
        assert await server.call_tool_async("add", a=1, b=2) == ["3"]

        http_server.stop()  # a call while it is down fails, naming the server ...
        with pytest.raises(MCPServerError, match=r"cannot be reached: ConnectError") as caught:
            await server.call_tool_async("add", a=1, b=2)
        assert http_server.url in str(caught.value)
        http_server.start()  # ... and the next one, once it is back, works
        assert await server.call_tool_async("add", a=2, b=2) == ["4"]
        assert first == (await server.call_tool_async("pid"))[0]  # a thread of this process
    finally:
        await server.aclose()


async def test_an_unknown_tool_is_an_error_naming_the_server(http_server: HttpServer) -> None:
    server = MCPServer(endpoint=http_server.url, timeout=5)
    try:
        with pytest.raises(MCPServerError, match=r"has no tool 'nope' \(its tools: add, multi"):
            await server.call_tool_async("nope")
    finally:
        await server.aclose()


def test_a_server_that_is_down_is_an_error_naming_it() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}/mcp"
    server = MCPServer(endpoint=endpoint, timeout=5)
    with pytest.raises(MCPServerError, match="cannot be reached: ConnectError") as caught:
        server.open()
    assert endpoint in str(caught.value)
    assert server._link is None  # nothing left running

    missing = MCPServer(command=sys.executable, args=[SERVER_APP + ".missing"], timeout=5)
    with pytest.raises(MCPServerError, match="cannot be reached"):
        missing.open()


def test_a_server_needs_one_transport() -> None:
    with pytest.raises(ValueError, match=r"either endpoint \(streamable HTTP\) or command"):
        MCPServer()
    with pytest.raises(ValueError, match="not both"):
        MCPServer(endpoint="http://127.0.0.1:1/mcp", command="python")
    with pytest.raises(ValueError, match="Invalid HTTP endpoint"):
        MCPServer(endpoint="127.0.0.1:1/mcp")


def test_upstream_names_reach_the_server_class() -> None:
    from flink_agents_async.integrations.mcp import mcp as upstream_path

    assert upstream_path.MCPServer is MCPServer
    for path in (ResourceName.MCP_SERVER, "flink_agents.integrations.mcp.mcp.MCPServer"):
        assert ResourceDescriptor(clazz=path, endpoint="http://x/mcp").clazz is MCPServer


# -- in an agent -------------------------------------------------------------------------------


def math_agent(
    model: ModelServer, tools: tuple[str, ...] = ("add", "pid"), **server: Any
) -> type[Agent]:
    """An agent in upstream's style: an MCP server, and a chat model setup using its tools
    (``add``, ``pid``) and prompt (``ask_sum``) by name."""

    class MathAgent(Agent):
        @mcp_server
        @staticmethod
        def calculator() -> ResourceDescriptor:
            return ResourceDescriptor(clazz=ResourceName.MCP_SERVER, timeout=5, **server)

        @chat_model_connection
        @staticmethod
        def conn() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.ChatModel.OPENAI_CONNECTION,
                api_key="test",
                api_base_url=model.url("openai"),
            )

        @chat_model_setup
        @staticmethod
        def math_model() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.ChatModel.OPENAI_SETUP,
                connection="conn",
                model="gpt-test",
                tools=list(tools),
                prompt="ask_sum",
            )

        @action(InputEvent)
        @staticmethod
        def ask(event: InputEvent, ctx: RunnerContext) -> None:
            a, b = event.input
            ctx.send_event(
                ChatRequestEvent(
                    model="math_model",
                    messages=[ChatMessage(role=MessageRole.USER)],
                    prompt_args={"a": a, "b": b},
                )
            )

        @action(ChatResponseEvent)
        @staticmethod
        def answer(event: ChatResponseEvent, ctx: RunnerContext) -> None:
            ctx.send_event(OutputEvent(output=event.response.content))

    return MathAgent


async def run(agent: Agent, *inputs: Any) -> list[Any]:
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list([{"key": "k", "value": value} for value in inputs]).apply(agent)
    collected = outputs.to_list()
    await asyncio.wait_for(env.execute(), GUARD_TIMEOUT)
    return [output for entry in collected for output in entry.values()]


@pytest.mark.parametrize("transport", ["http", "stdio"])
async def test_a_chat_model_calls_an_mcp_tool(
    transport: str, server: ModelServer, request: pytest.FixtureRequest
) -> None:
    where: dict[str, Any] = (
        {"endpoint": request.getfixturevalue("http_server").url} if transport == "http" else STDIO
    )
    server.script(
        Reply.tools(ToolCall("add", {"a": 1, "b": 2}), ToolCall("pid", {})),
        "The sum is 3.",
    )

    outputs = await run(math_agent(server, **where)(), [1, 2])

    assert outputs == ["The sum is 3."]
    first, second = server.requests
    assert first.tools == ("add", "pid")
    assert first.messages[0].content == "Can you please calculate the sum of 1 and 2?"
    added, pid = (result.content for result in second.tool_results)
    assert added == "['3']"
    [server_pid] = ast.literal_eval(pid)
    if transport == "stdio":  # the runtime closed the server at shutdown: its process ended
        assert gone(int(server_pid))


@pytest.mark.parametrize(
    ("tool", "problem"),
    [
        ("nope", "has no tool 'nope' (its tools: add, broken, multiply, pid)"),
        ("broken", "describes tool 'broken' with an unusable input schema: its properties"),
    ],
)
async def test_a_setup_naming_a_tool_the_server_cannot_give_fails_naming_the_server(
    tool: str, problem: str, server: ModelServer, http_server: HttpServer
) -> None:
    agent = math_agent(server, ("add", tool), endpoint=http_server.url)()

    with pytest.raises(ResourceError) as caught:
        await run(agent, [1, 2])

    assert f"MCP server 'calculator' ({http_server.url}) {problem}" in str(caught.value)
    assert server.count() == 0


async def test_a_server_that_is_down_fails_the_run_naming_it(server: ModelServer) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}/mcp"

    with pytest.raises(ResourceError) as caught:
        await run(math_agent(server, endpoint=endpoint)(), [1, 2])

    assert f"MCP server 'calculator' ({endpoint}) cannot be reached" in str(caught.value)
    assert server.count() == 0


def test_the_flink_bridge_loop_host_runs_the_same_mcp_tools(server: ModelServer) -> None:
    """The bridge's host (its loop driven by the Flink thread, then its loop thread; no PyFlink
    needed) runs the same core: the same tool call, and the server closed with the host."""
    from collections import deque

    from bridge.host import LoopHost
    from bridge.outbox import Outbox, RunDone
    from flink_agents_async.agent import AgentPlan
    from flink_agents_async.config import Configuration

    server.script(
        Reply.tools(ToolCall("add", {"a": 20, "b": 22}), ToolCall("pid", {})), "It is 42."
    )
    agent = math_agent(server, **STDIO)()
    host = LoopHost(AgentPlan.from_agent(agent, {}), Configuration(), {"agent": "mcp"})
    try:
        outbox: Outbox = deque()
        taken: list[Any] = []
        host.start("k", 0, [20, 22], None, None, True, outbox)
        while not any(isinstance(entry, RunDone) for entry in taken):
            if not outbox:
                host.wait_for(outbox, timeout=GUARD_TIMEOUT)  # woken by the loop, not polled
                assert outbox, "the run did not finish"
            while outbox:
                taken.append(outbox.popleft())
        assert taken[-1] == RunDone(["It is 42."], None)
    finally:
        host.close(timeout=GUARD_TIMEOUT)
    added, pid = (result.content for result in server.requests[1].tool_results)
    assert added == "['42']"
    assert gone(int(ast.literal_eval(pid)[0]))


def test_an_open_server_pickles_without_its_connection(http_server: HttpServer) -> None:
    import copy
    import pickle

    server = MCPServer(endpoint=http_server.url, timeout=5)
    server.open()
    try:
        copied = pickle.loads(pickle.dumps(server))
        assert copied.endpoint == server.endpoint and copied._link is None
        deep = copy.deepcopy(copied)
        assert copied.call_tool("add", a=1, b=1) == ["2"]  # each opens its own
        assert deep.list_tools()[0].name == "add"
        copied.close()
        deep.close()
    finally:
        server.close()

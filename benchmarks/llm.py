"""LLM agents against a local model server with a fixed answer latency.

A model server (``flink_agents_async.testing.model_server``, OpenAI protocol) runs in a process of
its own with ``--latency`` seconds per answer. Measured in the same run:

* ``fan_out``: N concurrent chat requests (N keys, one input each) through the built-in chat
  action, against the baseline of a bare ``asyncio.gather`` of N ``AsyncOpenAI`` calls to the
  same server; with the in-memory journal and with the SQLite journal (``batch``). Targets: at
  most 1.3x and 1.5x the bare wall time.
* ``react``: one ReAct round trip with two tool calls (three model answers), sequential runs,
  against the same three calls and two tool calls made by hand: the runtime's overhead per
  round.

The server shares the machine's cores with the client, so both absolute times are reported.

    python benchmarks/llm.py [--requests 1000] [--latency 0.05] [--react-runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
from _common import emit

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    ChatMessage,
    ChatRequestEvent,
    ChatResponseEvent,
    InputEvent,
    OutputEvent,
    ReActAgent,
    ResourceDescriptor,
    ResourceName,
    ResourceType,
    RunnerContext,
    Tool,
)

MODEL = "bench-model"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def model_server(latency: float) -> Iterator[str]:
    """The OpenAI base URL of a model server running in a process of its own."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "flink_agents_async.testing.model_server", "--port", str(port),
         "--latency", str(latency), "--model", MODEL],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        process.stdout.readline()  # it prints its URLs once it listens
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=30)


# -- fan-out -----------------------------------------------------------------------------------


async def bare_fan_out(base_url: str, requests: int) -> float:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    start = time.perf_counter()
    await asyncio.gather(
        *(
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"question {n}"}]
            )
            for n in range(requests)
        )
    )
    elapsed = time.perf_counter() - start
    await client.close()
    return elapsed


def asking_agent() -> Agent:
    def ask(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(
            ChatRequestEvent(
                model="model", messages=[ChatMessage(content=f"question {event.input}")]
            )
        )

    def answer(event: ChatResponseEvent, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=event.response.content))

    return (
        Agent()
        .add_action("ask", [InputEvent], ask)
        .add_action("answer", [ChatResponseEvent], answer)
    )


def environment(base_url: str, **options: Any) -> Any:
    env = AgentsExecutionEnvironment.get_execution_environment(**options)
    names = ResourceName.ChatModel
    env.add_resource(
        "connection",
        ResourceType.CHAT_MODEL_CONNECTION,
        ResourceDescriptor(clazz=names.OPENAI_CONNECTION, api_base_url=base_url, api_key="b"),
    )
    env.add_resource(
        "model",
        ResourceType.CHAT_MODEL,
        ResourceDescriptor(clazz=names.OPENAI_SETUP, connection="connection", model=MODEL),
    )
    return env


async def runtime_fan_out(base_url: str, requests: int, **options: Any) -> float:
    env = environment(base_url, **options)
    outputs = env.from_list([{"key": n, "value": n} for n in range(requests)])
    collected = outputs.apply(asking_agent()).to_list()
    start = time.perf_counter()
    await env.execute()
    elapsed = time.perf_counter() - start
    assert len(collected) == requests
    return elapsed


# -- ReAct -------------------------------------------------------------------------------------


def lookup_price(item: str) -> float:
    """The price of an item.

    Args:
        item: the item's name
    """
    return float(len(item))


def react_script(request: Any) -> Any:
    """Two tool rounds, then the answer (what a ReAct round with two tool calls looks like)."""
    from flink_agents_async.testing import Reply, ToolCall

    if len(request.tool_results) < 2:
        return Reply.tools(ToolCall("lookup_price", {"item": "tea"}))
    return Reply("the price is 3")


async def bare_react_round(client: openai.AsyncOpenAI) -> None:
    """Three model calls and two tool calls, made by hand."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "price of tea"}]
    for _ in range(3):
        answer = await client.chat.completions.create(model=MODEL, messages=messages)
        message = answer.choices[0].message
        if not message.tool_calls:
            return
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            result = lookup_price("tea")
            messages.append({"role": "tool", "tool_call_id": call.id, "content": str(result)})


async def react_rounds(latency: float, runs: int) -> tuple[float, float]:
    """Seconds per round by hand and through ``ReActAgent`` (a server in this process, scripted
    with the two tool rounds)."""
    from flink_agents_async.testing import ModelServer

    async with ModelServer(latency=latency) as server:
        server.respond_with(react_script)
        base_url = server.url("openai")
        client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
        start = time.perf_counter()
        for _ in range(runs):
            await bare_react_round(client)
        bare = (time.perf_counter() - start) / runs
        await client.close()

        env = environment(base_url)
        env.add_resource("lookup_price", ResourceType.TOOL, Tool.from_callable(lookup_price))
        agent = ReActAgent(
            chat_model=ResourceDescriptor(
                clazz=ResourceName.ChatModel.OPENAI_SETUP,
                connection="connection",
                model=MODEL,
                tools=["lookup_price"],
            )
        )
        items = [{"key": "k", "value": f"price of tea {n}"} for n in range(runs)]
        outputs = env.from_list(items).apply(agent).to_list()
        start = time.perf_counter()
        await env.execute()
        runtime = (time.perf_counter() - start) / runs
        assert len(outputs) == runs and server.count() == 6 * runs
    return bare, runtime


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {}
    with model_server(args.latency) as base_url:
        report["requests"] = args.requests
        report["latency_s"] = args.latency
        bare = await bare_fan_out(base_url, args.requests)
        memory = await runtime_fan_out(base_url, args.requests)
        with tempfile.TemporaryDirectory() as directory:
            sqlite = await runtime_fan_out(
                base_url, args.requests, journal_dir=Path(directory) / "journal"
            )
        report["fan_out"] = {
            "bare_gather_s": round(bare, 3),
            "runtime_memory_journal_s": round(memory, 3),
            "runtime_sqlite_batch_s": round(sqlite, 3),
            "ratio_memory": round(memory / bare, 2),
            "ratio_sqlite": round(sqlite / bare, 2),
            "targets": {"ratio_memory": 1.3, "ratio_sqlite": 1.5},
        }
    bare_round, runtime_round = await react_rounds(args.latency, args.react_runs)
    report["react"] = {
        "runs": args.react_runs,
        "bare_round_s": round(bare_round, 4),
        "runtime_round_s": round(runtime_round, 4),
        "overhead_per_round_ms": round((runtime_round - bare_round) * 1000, 2),
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--react-runs", type=int, default=20)
    emit("llm", asyncio.run(measure(parser.parse_args())))


if __name__ == "__main__":
    main()

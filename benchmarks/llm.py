"""LLM agents against a local model server with a fixed answer latency.

A model server (``flink_agents_async.testing.model_server``, OpenAI protocol) runs in a process of
its own with ``--latency`` seconds per answer. Measured in the same run:

* ``fan_out``: N concurrent chat requests (N keys, one input each) through the built-in chat
  action, against the baseline of a bare ``asyncio.gather`` of N ``AsyncOpenAI`` calls to the
  same server; with the in-memory journal and with the SQLite journal (``batch``). Targets: at
  most 1.3x and 1.5x the bare wall time. The three take turns ``--rounds`` times (the machine's
  speed drifts by more than the runtime costs); each round's ratios compare runs made back to
  back, and the report gives their median and the best run of each against the best bare one.
  ``bounded_s`` is the in-memory case again with the connection's ``max_concurrency=100``.
* ``react``: one ReAct round trip with two tool calls (three model answers), sequential runs,
  against the same three calls and two tool calls made by hand: the runtime's overhead per
  round.

The server shares the machine's cores with the client, so both absolute times are reported.
With thousands of requests in flight the client, not the server, is what saturates a core:
the SDK's connection pool costs time in proportion to the requests waiting in it, for each
request, which is why bounding the requests in flight makes the same work finish sooner.

    python benchmarks/llm.py [--requests 1000] [--latency 0.05] [--rounds 3] [--react-runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
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


def environment(base_url: str, max_concurrency: int | None = None, **options: Any) -> Any:
    env = AgentsExecutionEnvironment.get_execution_environment(**options)
    names = ResourceName.ChatModel
    connection = ResourceDescriptor(
        clazz=names.OPENAI_CONNECTION,
        api_base_url=base_url,
        api_key="b",
        max_concurrency=max_concurrency,
    )
    env.add_resource("connection", ResourceType.CHAT_MODEL_CONNECTION, connection)
    env.add_resource(
        "model",
        ResourceType.CHAT_MODEL,
        ResourceDescriptor(clazz=names.OPENAI_SETUP, connection="connection", model=MODEL),
    )
    return env


async def runtime_fan_out(
    base_url: str, requests: int, max_concurrency: int | None = None, **options: Any
) -> float:
    env = environment(base_url, max_concurrency, **options)
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


async def fan_out_round(base_url: str, requests: int) -> dict[str, float]:
    """One turn of each fan-out case, back to back."""
    bare = await bare_fan_out(base_url, requests)
    memory = await runtime_fan_out(base_url, requests)
    with tempfile.TemporaryDirectory() as directory:
        sqlite = await runtime_fan_out(base_url, requests, journal_dir=Path(directory) / "journal")
    bounded = await runtime_fan_out(base_url, requests, max_concurrency=100)
    return {
        "bare_gather_s": round(bare, 3),
        "runtime_memory_journal_s": round(memory, 3),
        "runtime_sqlite_batch_s": round(sqlite, 3),
        "bounded_s": round(bounded, 3),
        "ratio_memory": round(memory / bare, 2),
        "ratio_sqlite": round(sqlite / bare, 2),
    }


def fan_out_summary(rounds: list[dict[str, float]]) -> dict[str, Any]:
    def best(name: str) -> float:
        return min(round_[name] for round_ in rounds)

    bare = best("bare_gather_s")
    return {
        "bare_gather_s": bare,
        "runtime_memory_journal_s": best("runtime_memory_journal_s"),
        "runtime_sqlite_batch_s": best("runtime_sqlite_batch_s"),
        "bounded_s": best("bounded_s"),
        "ratio_memory": round(best("runtime_memory_journal_s") / bare, 2),
        "ratio_sqlite": round(best("runtime_sqlite_batch_s") / bare, 2),
        "median_round_ratio_memory": statistics.median(r["ratio_memory"] for r in rounds),
        "median_round_ratio_sqlite": statistics.median(r["ratio_sqlite"] for r in rounds),
        "targets": {"ratio_memory": 1.3, "ratio_sqlite": 1.5},
        "rounds": rounds,
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"requests": args.requests, "latency_s": args.latency}
    with model_server(args.latency) as base_url:
        rounds = [await fan_out_round(base_url, args.requests) for _ in range(args.rounds)]
    report["fan_out"] = fan_out_summary(rounds)
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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--react-runs", type=int, default=20)
    emit("llm", asyncio.run(measure(parser.parse_args())))


if __name__ == "__main__":
    main()

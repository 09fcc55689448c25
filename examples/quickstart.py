"""Quickstart: a two-action agent with short-term memory, run over a few keys.

Run it with ``make demo`` (or ``python examples/quickstart.py`` inside the venv).

* ``remember`` (on every input) counts the key's messages in short-term memory, keeps the last
  three, and sends a typed ``Summarize`` event.
* ``summarize`` (on ``Summarize``) waits on a simulated model call through
  ``durable_execute_async`` and emits the output.

Keys are actors: each key sees its own inputs one at a time, in order; different keys run
concurrently on one event loop.
"""

from __future__ import annotations

import asyncio

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    Event,
    InputEvent,
    OutputEvent,
    RunnerContext,
    action,
)


class Summarize(Event):
    """Sent by ``remember`` to ask ``summarize`` for a reply."""

    count: int


async def fake_model(recent: list[str]) -> str:
    """Stands in for a chat model: a short pause, then a reply."""
    await asyncio.sleep(0.01)
    return " | ".join(recent)


class ChatMemoryAgent(Agent):
    @action(InputEvent)
    @staticmethod
    def remember(event: InputEvent, ctx: RunnerContext) -> None:
        memory = ctx.short_term_memory
        count = (memory.get("count") or 0) + 1
        recent = [*(memory.get("recent") or []), event.input][-3:]
        memory.set("count", count)
        memory.set("recent", recent)
        ctx.send_event(Summarize(count=count))

    @action(Summarize)
    @staticmethod
    async def summarize(event: Summarize, ctx: RunnerContext) -> None:
        recent = ctx.short_term_memory.get("recent")
        reply = await ctx.durable_execute_async(fake_model, recent)
        ctx.send_event(OutputEvent(output=f"message #{event.count}: {reply}"))


async def main() -> list[dict[object, object]]:
    env = AgentsExecutionEnvironment.get_execution_environment()
    inputs = [
        {"key": "alice", "value": "hi"},
        {"key": "bob", "value": "hello"},
        {"key": "alice", "value": "how are you?"},
        {"key": "carol", "value": "hey"},
        {"key": "bob", "value": "what's new?"},
        {"key": "alice", "value": "bye"},
    ]
    outputs = env.from_list(inputs).apply(ChatMemoryAgent()).to_list()
    await env.execute()
    for entry in outputs:
        for key, output in entry.items():
            print(f"{key:>6}: {output}")
    return outputs


if __name__ == "__main__":
    asyncio.run(main())

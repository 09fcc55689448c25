"""An LLM job for the crash test, run as a subprocess and killed with SIGKILL.

Usage: python llm_crash_job.py JOURNAL_DIR BASE_URL [--hang]

Each input asks a chat model (OpenAI protocol at BASE_URL) one question, with the SQLite
journal in ``sync`` durability (an answer is on disk before the action sees it). With
``--hang``, once every answer is in, the job prints ``answered`` and waits forever, to be
killed; without, it prints the outputs as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    ChatMessage,
    ChatRequestEvent,
    ChatResponseEvent,
    InputEvent,
    OutputEvent,
    ResourceDescriptor,
    ResourceName,
    ResourceType,
    RunnerContext,
)


def make_agent(hang: bool, inputs: int) -> Agent:
    answered: list[str] = []

    def ask(event: InputEvent, ctx: RunnerContext) -> None:
        for aspect in ("taste", "price"):  # two requests of one run, in flight together
            ctx.send_event(
                ChatRequestEvent(
                    model="model",
                    messages=[ChatMessage(content=f"{aspect} of {event.input}")],
                )
            )

    async def collect(event: ChatResponseEvent, ctx: RunnerContext) -> None:
        answered.append(event.response.content)
        if hang and len(answered) == 2 * inputs:
            print("answered", flush=True)
            await asyncio.Event().wait()  # killed here: every answer is journaled
        ctx.send_event(OutputEvent(output=event.response.content))

    return (
        Agent()
        .add_action("ask", [InputEvent], ask)
        .add_action("collect", [ChatResponseEvent], collect)
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("journal")
    parser.add_argument("base_url")
    parser.add_argument("--hang", action="store_true")
    args = parser.parse_args()
    names = ResourceName.ChatModel
    env = AgentsExecutionEnvironment.get_execution_environment(
        journal_dir=args.journal, durability="sync"
    )
    env.add_resource(
        "connection",
        ResourceType.CHAT_MODEL_CONNECTION,
        ResourceDescriptor(clazz=names.OPENAI_CONNECTION, api_base_url=args.base_url, api_key="t"),
    )
    env.add_resource(
        "model",
        ResourceType.CHAT_MODEL,
        ResourceDescriptor(clazz=names.OPENAI_SETUP, connection="connection", model="m"),
    )
    items = [{"key": f"dish-{n}", "value": f"dish {n}"} for n in range(3)]
    outputs = env.from_list(items).apply(make_agent(args.hang, len(items))).to_list()
    await env.execute()
    print(json.dumps(sorted(value for entry in outputs for value in entry.values())), flush=True)


if __name__ == "__main__":
    asyncio.run(main())

"""The same kind of agent as the quickstart, run as a PyFlink job through the ``bridge``.

Locally (a MiniCluster inside this process)::

    .venv/bin/python examples/flink_job.py                  # thread mode
    .venv/bin/python examples/flink_job.py --mode process   # process mode

On a standalone cluster, see the README ("Running on Flink") for the exact commands.

Each customer is a key, so an actor: its messages run one at a time, in order, with its own
short-term memory in Flink keyed state; different customers run concurrently. The simulated
model call goes through ``durable_execute_async``, so after a failure Flink restores the state
from the last checkpoint and journaled calls are replayed instead of being made again.
"""

from __future__ import annotations

import argparse
import asyncio

from pyflink.common import Configuration, Types
from pyflink.datastream import StreamExecutionEnvironment

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    Event,
    InputEvent,
    OutputEvent,
    RunnerContext,
    action,
)


class Reply(Event):
    """Asks ``answer`` to reply to message number ``count`` of the customer."""

    count: int
    text: str


async def model_call(customer: str, text: str) -> str:
    """Stands in for a chat model call."""
    await asyncio.sleep(0.05)
    return f"re: {text}"


class SupportAgent(Agent):
    @action(InputEvent)
    @staticmethod
    def remember(event: InputEvent, ctx: RunnerContext) -> None:
        count = (ctx.short_term_memory.get("messages") or 0) + 1
        ctx.short_term_memory.set("messages", count)
        ctx.send_event(Reply(count=count, text=event.input["text"]))

    @action(Reply)
    @staticmethod
    async def answer(event: Reply, ctx: RunnerContext) -> None:
        reply = await ctx.durable_execute_async(model_call, ctx.key, event.text)
        ctx.send_event(OutputEvent(output=f"{ctx.key} #{event.count}: {reply}"))


MESSAGES = [
    {"customer": "alice", "text": "where is my order?"},
    {"customer": "bob", "text": "hello"},
    {"customer": "alice", "text": "it was due Monday"},
    {"customer": "carol", "text": "refund please"},
    {"customer": "bob", "text": "thanks"},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["thread", "process"], default="thread")
    parser.add_argument("--subtasks", type=int, default=2, help="parallelism of the job")
    args = parser.parse_args()

    config = Configuration()
    config.set_string("python.execution-mode", args.mode)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(args.subtasks)
    agents_env = AgentsExecutionEnvironment.get_execution_environment(env)

    messages = env.from_collection(MESSAGES)
    replies = (
        agents_env.from_datastream(messages, key_selector=lambda message: message["customer"])
        .apply(SupportAgent())
        .to_datastream(Types.STRING())
    )
    for reply in replies.execute_and_collect("flink-agents-async example"):
        print(reply)


if __name__ == "__main__":
    main()

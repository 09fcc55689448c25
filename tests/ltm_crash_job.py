"""A long-term memory job for the crash test, run as a subprocess and killed with SIGKILL.

Usage: python ltm_crash_job.py JOURNAL_DIR STORE_DIR [--hang | --fail]

Each input is remembered twice in its key's memory set ``facts``: once by a direct ``aadd``
(made again when the run runs again) and once inside a durable call (upstream's pattern,
replayed from the journal). The store is the embedded ``LocalVectorStore`` in STORE_DIR and the
journal is SQLite in ``sync`` durability. With ``--hang``, once every input's items are written,
the job prints ``added`` and waits forever, to be killed before any run commits; with
``--fail``, every run fails after its writes (``error-handling-strategy: ignore``); without
either, it prints each key's memory size as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from knowledge_helpers import WordCounts, WordCountSetup

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    InputEvent,
    LongTermMemoryOptions,
    OutputEvent,
    ResourceDescriptor,
    ResourceName,
    ResourceType,
    RunnerContext,
)

INPUTS = 3


def make_agent(mode: str) -> Agent:
    written: list[str] = []

    async def remember(event: InputEvent, ctx: RunnerContext) -> None:
        memory_set = ctx.long_term_memory.get_memory_set("facts")
        await memory_set.aadd(f"{event.input} (direct)")
        await ctx.durable_execute_async(memory_set.add, items=f"{event.input} (durable)")
        written.append(event.input)
        if mode == "hang":  # every run waits here, so that none commits before the kill
            if len(written) == INPUTS:
                print("added", flush=True)
            await asyncio.Event().wait()
        if mode == "fail":
            raise RuntimeError("this run fails after its writes")
        ctx.send_event(OutputEvent(output=await memory_set.asize()))

    return Agent().add_action("remember", [InputEvent], remember)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("journal")
    parser.add_argument("store")
    parser.add_argument("--hang", dest="mode", action="store_const", const="hang")
    parser.add_argument("--fail", dest="mode", action="store_const", const="fail")
    args = parser.parse_args()
    env = AgentsExecutionEnvironment.get_execution_environment(
        journal_dir=args.journal, durability="sync"
    )
    config = env.get_config()
    config.set(LongTermMemoryOptions.EXTERNAL_VECTOR_STORE_NAME, "memory")
    config.set_str("error-handling-strategy", "ignore")
    env.add_resource(
        "words", ResourceType.EMBEDDING_MODEL_CONNECTION, ResourceDescriptor(clazz=WordCounts)
    )
    env.add_resource(
        "embedder",
        ResourceType.EMBEDDING_MODEL,
        ResourceDescriptor(clazz=WordCountSetup, connection="words", model="words"),
    )
    env.add_resource(
        "memory",
        ResourceType.VECTOR_STORE,
        ResourceDescriptor(
            clazz=ResourceName.VectorStore.LOCAL_VECTOR_STORE,
            path=args.store,
            embedding_model="embedder",
        ),
    )
    items = [{"key": f"customer-{n}", "value": f"fact {n}"} for n in range(INPUTS)]
    outputs = env.from_list(items).apply(make_agent(args.mode)).to_list()
    await env.execute()
    print(json.dumps(sorted(outputs, key=str)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())

"""Dispatch throughput: the echo agent over many keys, versus bare asyncio doing the same work.

The echo agent: action 1 increments a short-term counter and sends a typed ``Step`` event,
action 2 emits an output with the count. The baseline is the idiomatic hand-written asyncio
program for the same job: one queue and one worker task per key, a dict as the key's state, the
same pydantic events built and the same two functions called. Both run in the same process.

Prints JSON: inputs/s for both, and runtime/baseline ratio (time per input).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, emit, now

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    Event,
    InputEvent,
    OutputEvent,
    RunnerContext,
    action,
)


class Step(Event):
    count: int


class EchoAgent(Agent):
    @action(InputEvent)
    @staticmethod
    def count(event: InputEvent, ctx: RunnerContext) -> None:
        memory = ctx.short_term_memory
        count = (memory.get("count") or 0) + 1
        memory.set("count", count)
        ctx.send_event(Step(count=count))

    @action(Step)
    @staticmethod
    def reply(event: Step, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=event.count))


def make_inputs(keys: int, total: int) -> list[dict[str, object]]:
    return [{"key": f"key-{i % keys}", "value": i} for i in range(total)]


async def run_runtime(inputs: list[dict[str, object]]) -> float:
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list(inputs).apply(EchoAgent()).to_list()
    start = now()
    await env.execute()
    elapsed = now() - start
    assert len(outputs) == len(inputs), (len(outputs), len(inputs))
    return elapsed


async def run_baseline(inputs: list[dict[str, object]]) -> float:
    """Bare asyncio: a queue and a worker task per key, same events and functions."""
    state: dict[object, dict[str, int]] = {}
    outputs: list[dict[object, object]] = []
    queues: dict[object, asyncio.Queue[object]] = {}
    workers: list[asyncio.Task[None]] = []

    def count(event: InputEvent, memory: dict[str, int]) -> Step:
        value = memory.get("count", 0) + 1
        memory["count"] = value
        return Step(count=value)

    def reply(event: Step) -> OutputEvent:
        return OutputEvent(output=event.count)

    async def worker(key: object, queue: asyncio.Queue[object]) -> None:
        memory = state.setdefault(key, {})
        while True:
            value = await queue.get()
            if value is None:
                return
            step = count(InputEvent(input=value), memory)
            outputs.append({key: reply(step).output})

    start = now()
    for item in inputs:
        key = item["key"]
        queue = queues.get(key)
        if queue is None:
            queue = queues[key] = asyncio.Queue(maxsize=1000)
            workers.append(asyncio.create_task(worker(key, queue)))
        await queue.put(item["value"])
    for queue in queues.values():
        await queue.put(None)
    await asyncio.gather(*workers)
    elapsed = now() - start
    assert len(outputs) == len(inputs)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--inputs", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    inputs = make_inputs(args.keys, args.inputs)
    gc.collect()
    runtime = best_of(args.repeats, lambda: asyncio.run(run_runtime(inputs)))
    baseline = best_of(args.repeats, lambda: asyncio.run(run_baseline(inputs)))
    emit(
        "dispatch",
        {
            "keys": args.keys,
            "inputs": args.inputs,
            "runtime_inputs_per_s": round(args.inputs / runtime),
            "baseline_inputs_per_s": round(args.inputs / baseline),
            "ratio_runtime_to_baseline_time": round(runtime / baseline, 3),
            "target_inputs_per_s": 60_000,
            "target_ratio": 2.5,
        },
    )


if __name__ == "__main__":
    main()

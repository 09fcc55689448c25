"""I/O concurrency: many keys, each run awaiting one blocking durable call.

200 keys; each run awaits ``durable_execute_async`` of a sync function that blocks for 20 ms
(a stand-in for a blocking client library). The sync function runs in the runtime's thread pool
(``num-async-threads``, default 64), so the wall time should be a few multiples of 20 ms, not the
serial sum. The baseline is bare asyncio doing the same with ``run_in_executor`` on a thread
pool of the same size.

Prints JSON: wall time, serial sum, and the baseline's wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, emit, now

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    InputEvent,
    OutputEvent,
    RunnerContext,
    action,
)

BLOCK_SECONDS = 0.02


def blocking_call(value: int) -> int:
    time.sleep(BLOCK_SECONDS)
    return value


class BlockingIOAgent(Agent):
    @action(InputEvent)
    @staticmethod
    async def call(event: InputEvent, ctx: RunnerContext) -> None:
        result = await ctx.durable_execute_async(blocking_call, event.input)
        ctx.send_event(OutputEvent(output=result))


async def run_runtime(keys: int, threads: int) -> float:
    env = AgentsExecutionEnvironment.get_execution_environment(num_async_threads=threads)
    outputs = env.from_list([{"key": k, "value": k} for k in range(keys)])
    collected = outputs.apply(BlockingIOAgent()).to_list()
    start = now()
    await env.execute()
    elapsed = now() - start
    assert len(collected) == keys
    return elapsed


async def run_baseline(keys: int, threads: int) -> float:
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        start = now()
        results = await asyncio.gather(
            *(loop.run_in_executor(pool, blocking_call, k) for k in range(keys))
        )
        elapsed = now() - start
    assert len(results) == keys
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runtime = best_of(args.repeats, lambda: asyncio.run(run_runtime(args.keys, args.threads)))
    baseline = best_of(args.repeats, lambda: asyncio.run(run_baseline(args.keys, args.threads)))
    emit(
        "io_concurrency",
        {
            "keys": args.keys,
            "threads": args.threads,
            "block_ms": BLOCK_SECONDS * 1000,
            "wall_s": round(runtime, 4),
            "serial_sum_s": round(args.keys * BLOCK_SECONDS, 3),
            "baseline_wall_s": round(baseline, 4),
            "target_wall_s": 0.2,
        },
    )


if __name__ == "__main__":
    main()

"""Event-loop lag with many keys awaiting slow async calls.

10,000 keys; each run awaits ``durable_execute_async`` of an ``async def`` call that takes 1-3 s
(a model call). A monitor task asks to wake every 5 ms and records how late it actually woke:
that lateness is what every other coroutine in the program (an HTTP handler, a heartbeat) would
suffer. The baseline runs the same monitor while bare asyncio awaits the same calls via
``asyncio.gather``.

Prints JSON: lag p50/p99/max in ms for both.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    InputEvent,
    OutputEvent,
    RunnerContext,
    action,
)

INTERVAL = 0.005


async def model_call(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


class SlowModelAgent(Agent):
    @action(InputEvent)
    @staticmethod
    async def ask(event: InputEvent, ctx: RunnerContext) -> None:
        answer = await ctx.durable_execute_async(model_call, event.input)
        ctx.send_event(OutputEvent(output=answer))


async def monitor(lags: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(INTERVAL)
        lags.append(loop.time() - before - INTERVAL)


async def measure(workload: Callable[[], Awaitable[None]]) -> dict[str, float]:
    lags: list[float] = []
    stop = asyncio.Event()
    watcher = asyncio.create_task(monitor(lags, stop))
    await asyncio.sleep(INTERVAL * 2)
    await workload()
    stop.set()
    await watcher
    ordered = sorted(lags)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {
        "samples": len(ordered),
        "lag_p50_ms": pct(0.50),
        "lag_p99_ms": pct(0.99),
        "lag_max_ms": round(ordered[-1] * 1000, 3),
        "lag_mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


def durations(keys: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(1.0, 3.0) for _ in range(keys)]


async def runtime_workload(keys: int) -> dict[str, float]:
    env = AgentsExecutionEnvironment.get_execution_environment()
    inputs = [{"key": k, "value": d} for k, d in enumerate(durations(keys, 1))]
    outputs = env.from_list(inputs).apply(SlowModelAgent()).to_list()
    result = await measure(env.execute)
    assert len(outputs) == keys
    return result


async def baseline_workload(keys: int) -> dict[str, float]:
    async def work() -> None:
        await asyncio.gather(*(model_call(d) for d in durations(keys, 1)))

    return await measure(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=10_000)
    args = parser.parse_args()
    runtime = asyncio.run(runtime_workload(args.keys))
    baseline = asyncio.run(baseline_workload(args.keys))
    emit(
        "loop_lag",
        {
            "keys": args.keys,
            "call_seconds": [1.0, 3.0],
            "runtime": runtime,
            "baseline": baseline,
            "target_lag_p99_ms": 10,
        },
    )


if __name__ == "__main__":
    main()

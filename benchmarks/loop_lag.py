"""Event-loop lag with many keys awaiting slow async calls.

10,000 keys; each run awaits ``durable_execute_async`` of an ``async def`` call that takes 1-3 s
(a model call). A monitor task asks to wake every 5 ms and records how late it actually woke:
that lateness is what every other coroutine in the program (an HTTP handler, a heartbeat) would
suffer. The baseline runs the same monitor while bare asyncio awaits the same calls via
``asyncio.gather``.

Lag is reported over all samples and over the samples after the ramp-up (once every run is in
flight), together with CPython's full (generation 2) garbage collections: while the heap grows
to hold 10,000 in-flight runs, each full pass scans everything, and those passes are what the
ramp-up's worst samples measure.

The runtime is measured twice: with CPython's default GC thresholds, and with the third
threshold raised to 1000 (``gc.set_threshold(700, 10, 1000)``), an application-level setting
that makes full passes rare while a service holds many in-flight tasks.

Prints JSON: lag p50/p99/max in ms, and the full-GC passes seen.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
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


class LagMonitor:
    """Wakes every INTERVAL and records how late it woke; also times full (gen 2) GC passes."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (when, lag)
        self.gc_pauses: list[float] = []
        self._gc_started = 0.0
        self._stop = asyncio.Event()

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses.append(time.perf_counter() - self._gc_started)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            before = loop.time()
            await asyncio.sleep(INTERVAL)
            self.samples.append((before, loop.time() - before - INTERVAL))

    async def run(self, workload: Callable[[], Awaitable[float]]) -> dict[str, object]:
        """Run ``workload`` (which returns when its ramp-up ended, in loop time) under watch."""
        gc.callbacks.append(self._on_gc)
        watcher = asyncio.create_task(self._watch())
        try:
            await asyncio.sleep(INTERVAL * 2)
            ramp_end = await workload()
        finally:
            self._stop.set()
            await watcher
            gc.callbacks.remove(self._on_gc)
        return {
            "samples": len(self.samples),
            "all": percentiles([lag for _, lag in self.samples]),
            "after_ramp": percentiles([lag for when, lag in self.samples if when >= ramp_end]),
            "full_gc_passes": len(self.gc_pauses),
            "full_gc_pause_ms_total": round(sum(self.gc_pauses) * 1000, 1),
            "full_gc_pause_ms_max": round(max(self.gc_pauses, default=0) * 1000, 1),
        }


def percentiles(lags: list[float]) -> dict[str, float]:
    ordered = sorted(lags) or [0.0]

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {
        "lag_p50_ms": pct(0.50),
        "lag_p99_ms": pct(0.99),
        "lag_max_ms": round(ordered[-1] * 1000, 3),
        "lag_mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


CALL_SECONDS = [1.0, 3.0]
TUNED_THRESHOLD2 = 1000


def durations(keys: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(*CALL_SECONDS) for _ in range(keys)]


async def runtime_workload(keys: int) -> dict[str, object]:
    env = AgentsExecutionEnvironment.get_execution_environment()
    loop = asyncio.get_running_loop()
    ramp_end = [0.0]

    async def inputs() -> AsyncIterator[dict[str, object]]:
        for key, seconds in enumerate(durations(keys, 1)):
            yield {"key": key, "value": seconds}
        ramp_end[0] = loop.time()  # every run is in flight from here on

    outputs = env.from_iterable(inputs()).apply(SlowModelAgent()).to_list()

    async def work() -> float:
        await env.execute()
        return ramp_end[0]

    result = await LagMonitor().run(work)
    assert len(outputs) == keys
    return result


async def baseline_workload(keys: int) -> dict[str, object]:
    loop = asyncio.get_running_loop()

    async def work() -> float:
        calls = [asyncio.ensure_future(model_call(d)) for d in durations(keys, 1)]
        ramp_end = loop.time()
        await asyncio.gather(*calls)
        return ramp_end

    return await LagMonitor().run(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--call-seconds", type=float, nargs=2, default=CALL_SECONDS)
    args = parser.parse_args()
    CALL_SECONDS[:] = args.call_seconds
    runtime = asyncio.run(runtime_workload(args.keys))
    baseline = asyncio.run(baseline_workload(args.keys))
    # The same run with CPython's full collections made rarer, as a service with many
    # in-flight tasks may choose to (gc.set_threshold is the application's call, never ours).
    default_thresholds = gc.get_threshold()
    gc.set_threshold(default_thresholds[0], default_thresholds[1], TUNED_THRESHOLD2)
    try:
        tuned = asyncio.run(runtime_workload(args.keys))
    finally:
        gc.set_threshold(*default_thresholds)
    emit(
        "loop_lag",
        {
            "keys": args.keys,
            "call_seconds": CALL_SECONDS,
            "runtime": runtime,
            "baseline": baseline,
            f"runtime_gc_threshold2_{TUNED_THRESHOLD2}": tuned,
            "target_lag_p99_ms": 10,
        },
    )


if __name__ == "__main__":
    main()

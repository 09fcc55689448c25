"""The Flink bridge on a local MiniCluster: echo throughput against plain PyFlink, and concurrency.

Every job runs at parallelism 1 on a fresh ``StreamExecutionEnvironment`` with the bridge's
PyFlink defaults (``bridge.settings.apply_defaults``: interpreter, Python path, state caches in
``process`` mode, 10 ms buffer timeout), in each Python execution mode asked for (``thread``,
``process``).

1. Echo throughput. ``N`` records, the ints 0..N-1 (``from_collection``, or with ``--source
   sequence`` a FLIP-27 ``NumberSequenceSource``), keyed by ``value % keys``, go to the echo
   agent: one sync action that reads a counter from short-term memory, increments it, writes it
   back and sends it as the output. The baseline, in the same run and mode, is the plain
   ``KeyedProcessFunction`` one would write by hand for the same job, keeping the key's memory
   as the bridge does (see ``BASELINE_WORK``). Both feed the same chained ``OutputTally`` (fused
   into the keyed operator, so no extra hop) that counts the outputs, checks the counters and
   stamps the first and the last output with ``time.time()``: records/s = N / (last - first),
   so job start-up and shutdown are left out. The two jobs take turns ``--rounds`` times and
   the best round of each counts (the one least disturbed by the rest of the machine); every
   round is reported too, with the wall time of each job and the round's own ratio (its two
   jobs ran back to back), and the median of those ratios.
2. Concurrency. ``keys`` keys get one input each; the agent's async action awaits
   ``asyncio.sleep(0.1)`` (or, in the durable variant, ``ctx.durable_execute_async`` of a
   function that does) and outputs its start and end stamps. Span = last end - first start;
   running the keys one after another would take keys x 0.1 s.

A warm-up job (the baseline over at most 10,000 records, unreported) runs first in each mode, and
a job that does not end within ``--job-timeout`` seconds fails the run. ``--quick``: 2,000
records over 100 keys.

Prints JSON: per mode, records/s of the bridge and the baseline with their ratio (target
>= 0.5), and the spans (target <= 0.3 s).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import msgpack
from _common import emit, now
from pyflink.common import Configuration, Types, WatermarkStrategy
from pyflink.datastream import (
    DataStream,
    FlatMapFunction,
    KeyedProcessFunction,
    RuntimeContext,
    StreamExecutionEnvironment,
)
from pyflink.datastream.connectors.number_seq import NumberSequenceSource
from pyflink.datastream.state import ValueStateDescriptor

from bridge.settings import apply_defaults
from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    InputEvent,
    OutputEvent,
    RunnerContext,
    action,
    configure_logging,
)

SLEEP_SECONDS = 0.1
TARGET_RATIO = 0.5
WARM_UP_RECORDS = 10_000
TARGET_SPAN_S = round(3 * SLEEP_SECONDS, 3)

BASELINE_WORK = (
    "per record, in process_element: ValueState memory.value() (PICKLED_BYTE_ARRAY) + msgpack "
    "unpack of {'count': n}; increment; msgpack pack + memory.update(bytes); yield the count. "
    "That is the agent's memory work done by hand; the bridge keeps the key's actor between "
    "records, so it writes the memory snapshot once per record and reads it only when a key "
    "comes back."
)


# -- echo: the agent, the baselines, the tally ----------------------------------------------


class EchoAgent(Agent):
    @action(InputEvent)
    @staticmethod
    def count(event: InputEvent, ctx: RunnerContext) -> None:
        memory = ctx.short_term_memory
        count = (memory.get("count") or 0) + 1
        memory.set("count", count)
        ctx.send_event(OutputEvent(output=count))


class PlainEcho(KeyedProcessFunction):
    """The echo agent written by hand as a keyed process function."""

    def open(self, runtime_context: RuntimeContext) -> None:
        memory = ValueStateDescriptor("memory", Types.PICKLED_BYTE_ARRAY())
        self._memory = runtime_context.get_state(memory)

    def process_element(self, value: int, ctx: KeyedProcessFunction.Context) -> Iterator[int]:
        packed = self._memory.value()
        memory = msgpack.unpackb(packed) if packed else {}
        count = memory["count"] = memory.get("count", 0) + 1
        self._memory.update(msgpack.packb(memory))
        yield count


class OutputTally(FlatMapFunction):
    """Counts the outputs (counter values), sums them and stamps the first and the last.

    Yields (count, sum, first stamp, stamp) every ``every`` outputs and for each output from the
    ``expected``-th on, so a short or a long output stream shows in the last tally.
    """

    def __init__(self, expected: int) -> None:
        self._expected = expected
        self._every = max(1, expected // 10)

    def open(self, runtime_context: RuntimeContext) -> None:
        self._count = 0
        self._sum = 0
        self._first = 0.0

    def flat_map(self, value: int) -> Iterator[tuple[int, int, float, float]]:
        stamp = time.time()
        if not self._count:
            self._first = stamp
        self._count += 1
        self._sum += value
        if self._count % self._every == 0 or self._count >= self._expected:
            yield self._count, self._sum, self._first, stamp


# -- concurrency agents ---------------------------------------------------------------------


async def nap() -> None:
    await asyncio.sleep(SLEEP_SECONDS)


class SleepAgent(Agent):
    @action(InputEvent)
    @staticmethod
    async def sleep(event: InputEvent, ctx: RunnerContext) -> None:
        start = time.time()
        await asyncio.sleep(SLEEP_SECONDS)
        ctx.send_event(OutputEvent(output=(start, time.time())))


class DurableSleepAgent(Agent):
    @action(InputEvent)
    @staticmethod
    async def sleep(event: InputEvent, ctx: RunnerContext) -> None:
        start = time.time()
        await ctx.durable_execute_async(nap)
        ctx.send_event(OutputEvent(output=(start, time.time())))


# -- jobs -----------------------------------------------------------------------------------


def flink_env(mode: str) -> StreamExecutionEnvironment:
    """A fresh environment in ``mode`` with the bridge's defaults, for bridge and baseline."""
    config = Configuration()
    config.set_string("python.execution-mode", mode)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(1)
    apply_defaults(env)
    return env


def numbers(env: StreamExecutionEnvironment, records: int, source: str) -> DataStream:
    """The ints 0..records-1: a FLIP-27 ``NumberSequenceSource`` or ``from_collection``."""
    if source == "sequence":
        sequence = NumberSequenceSource(0, records - 1)
        return env.from_source(sequence, WatermarkStrategy.no_watermarks(), "numbers")
    return env.from_collection(list(range(records)), type_info=Types.INT())


class JobTimeout(Exception):
    pass


def _timed_out(signum: int, frame: Any) -> None:
    raise JobTimeout


def collect(stream: DataStream, timeout: int) -> tuple[list[Any], float]:
    """Run the job; its results and its wall time in seconds (submission included). A job
    that has not ended after ``timeout`` seconds fails the benchmark instead of hanging it."""
    previous = signal.signal(signal.SIGALRM, _timed_out)
    signal.alarm(timeout)
    start = now()
    try:
        results = list(stream.execute_and_collect())
    except JobTimeout:
        raise SystemExit(f"a job did not end within {timeout} s") from None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return results, now() - start


@dataclass(frozen=True)
class Run:
    """What every job of one execution mode shares."""

    mode: str
    records: int
    keys: int
    concurrency_keys: int
    source: str
    timeout: int
    rounds: int


Keyed = Callable[[StreamExecutionEnvironment, DataStream, Callable[[int], int]], DataStream]


def echo_bridge(
    env: StreamExecutionEnvironment, ds: DataStream, key: Callable[[int], int]
) -> DataStream:
    agents_env = AgentsExecutionEnvironment.get_execution_environment(env)
    return agents_env.from_datastream(ds, key_selector=key).apply(EchoAgent()).to_datastream()


def baseline(function: type[KeyedProcessFunction]) -> Keyed:
    def build(
        env: StreamExecutionEnvironment, ds: DataStream, key: Callable[[int], int]
    ) -> DataStream:
        return ds.key_by(key).process(function(), output_type=Types.PICKLED_BYTE_ARRAY())

    return build


def expected_sum(records: int, keys: int) -> int:
    """Sum of all counter outputs: key k counts 1..m_k over its m_k records."""
    total = 0
    for k in range(min(keys, records)):
        m = (records - 1 - k) // keys + 1
        total += m * (m + 1) // 2
    return total


def run_echo(run: Run, name: str, build: Keyed) -> dict[str, Any]:
    env = flink_env(run.mode)
    ds = numbers(env, run.records, run.source)
    outputs = build(env, ds, lambda value, keys=run.keys: value % keys)
    tally = outputs.flat_map(OutputTally(run.records), Types.PICKLED_BYTE_ARRAY())
    tallies, wall = collect(tally, run.timeout)
    count, total, first, last = max(tallies) if tallies else (0, 0, 0.0, 0.0)
    expected = expected_sum(run.records, run.keys)
    if count != run.records or total != expected:
        raise SystemExit(
            f"{name} ({run.mode}): {count} outputs summing to {total}, expected {run.records} "
            f"summing to {expected}"
        )
    return {
        "records_per_s": round(run.records / (last - first)),
        "processing_s": round(last - first, 3),
        "wall_s": round(wall, 2),
    }


def run_concurrency(run: Run, agent: Agent) -> dict[str, Any]:
    env = flink_env(run.mode)
    agents_env = AgentsExecutionEnvironment.get_execution_environment(env)
    ds = env.from_collection(list(range(run.concurrency_keys)), type_info=Types.INT())
    builder = agents_env.from_datastream(ds, key_selector=lambda value: value).apply(agent)
    results, wall = collect(builder.to_datastream(), run.timeout)
    if len(results) != run.concurrency_keys:
        raise SystemExit(
            f"{type(agent).__name__} ({run.mode}): {len(results)} outputs, not "
            f"{run.concurrency_keys}"
        )
    span = max(end for _, end in results) - min(start for start, _ in results)
    return {"span_s": round(span, 3), "wall_s": round(wall, 2)}


def run_mode(run: Run) -> dict[str, Any]:
    # Unreported: the first job of a JVM also pays for JIT compilation and class loading.
    warm_up = replace(run, records=min(run.records, WARM_UP_RECORDS))
    run_echo(warm_up, "warm-up", baseline(PlainEcho))
    rounds: list[dict[str, Any]] = []
    for _ in range(run.rounds):
        rounds.append(
            {
                "bridge": run_echo(run, "bridge", echo_bridge),
                "baseline": run_echo(run, "baseline", baseline(PlainEcho)),
            }
        )
    best = {
        name: max(round_[name]["records_per_s"] for round_ in rounds)
        for name in ("bridge", "baseline")
    }
    for round_ in rounds:  # each round's own ratio: its two jobs ran back to back
        round_["ratio"] = round(
            round_["bridge"]["records_per_s"] / round_["baseline"]["records_per_s"], 3
        )
    sleep = run_concurrency(run, SleepAgent())
    durable = run_concurrency(run, DurableSleepAgent())
    return {
        "echo": {
            "bridge_records_per_s": best["bridge"],
            "baseline_records_per_s": best["baseline"],
            "ratio": round(best["bridge"] / best["baseline"], 3),
            "target_ratio": f">= {TARGET_RATIO}",
            "median_round_ratio": statistics.median(round_["ratio"] for round_ in rounds),
            "rounds": rounds,
        },
        "concurrency": {
            "keys": run.concurrency_keys,
            "sleep_s": SLEEP_SECONDS,
            "serial_s": round(run.concurrency_keys * SLEEP_SECONDS, 3),
            "target_span_s": f"<= {TARGET_SPAN_S}",
            "sleep": sleep,
            "durable_execute_async": durable,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--modes", default="thread,process", help="comma-separated")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=1_000)
    parser.add_argument("--concurrency-keys", type=int, default=100)
    parser.add_argument("--source", choices=["collection", "sequence"], default="collection")
    parser.add_argument("--rounds", type=int, default=3, help="turns of bridge and baseline")
    parser.add_argument("--job-timeout", type=int, default=600, help="seconds per job")
    parser.add_argument("--quick", action="store_true", help="2,000 records over 100 keys, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.records, args.keys, args.rounds = 2_000, 100, 1
    configure_logging(level=logging.WARNING)  # on stderr: stdout is for the JSON
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    results = {
        mode: run_mode(
            Run(
                mode,
                args.records,
                args.keys,
                args.concurrency_keys,
                args.source,
                args.job_timeout,
                max(1, args.rounds),
            )
        )
        for mode in modes
    }
    emit(
        "flink_bridge",
        {
            "records": args.records,
            "keys": args.keys,
            "source": args.source,
            "parallelism": 1,
            "rounds": max(1, args.rounds),
            "baseline_work": BASELINE_WORK,
            "modes": results,
        },
    )


if __name__ == "__main__":
    main()

"""Durable execution: call overhead, journaled call throughput, replay and recovery speed.

* ``overhead``: one ``ctx.durable_execute`` of a no-op with the in-memory journal, minus a direct
  call of the same no-op (so the function is excluded): p50/p99 in µs, for a journal that records
  (a store the caller keeps, so it can resume) and the private default one.
* ``sqlite``: journaled calls/s and per-call p50/p99 with the SQLite store in ``batch`` and
  ``sync`` durability: 50 keys, each run making 40 sequential ``durable_execute`` calls. The
  baseline inserts the same number of call rows straight into SQLite with group commit
  (one writer thread, one transaction per group) in the same process.
* ``recovery``: a journal with 10,000 keys x 20 recorded calls left by a crash; the time to open
  it (load and decode everything), replay speed (entries/s answered from the journal, timed
  around the calls), and the whole resumed job (open, 10,000 runs, their commits, compaction).
  Baseline: reading the same rows with plain ``sqlite3``.

Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, now, percentiles

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    InputEvent,
    OutputEvent,
    RunnerContext,
)
from flink_agents_async.journal import Codec, Journal, MemoryJournalStore, SQLiteJournalStore


def noop(value: int) -> int:
    return value


# -- overhead -----------------------------------------------------------------------------------


def overhead_agent(samples: list[float], calls: int) -> Agent:
    def act(event: InputEvent, ctx: RunnerContext) -> None:
        for index in range(calls):
            start = time.perf_counter()
            noop(index)
            direct = time.perf_counter() - start
            start = time.perf_counter()
            ctx.durable_execute(noop, index)
            samples.append(time.perf_counter() - start - direct)
        ctx.send_event(OutputEvent(output=None))

    return Agent().add_action("act", [InputEvent], act)


async def measure_overhead(recording: bool) -> dict[str, float]:
    samples: list[float] = []
    store = MemoryJournalStore() if recording else None
    env = AgentsExecutionEnvironment.get_execution_environment(journal_store=store)
    env.from_list([{"key": k, "value": k} for k in range(200)]).apply(overhead_agent(samples, 100))
    await env.execute()
    return percentiles(samples[1000:], "us")  # skip the warm-up


# -- SQLite throughput --------------------------------------------------------------------------


def sqlite_agent(latencies: list[float], calls: int) -> Agent:
    def act(event: InputEvent, ctx: RunnerContext) -> None:
        for index in range(calls):
            start = time.perf_counter()
            ctx.durable_execute(noop, index)
            latencies.append(time.perf_counter() - start)
        ctx.send_event(OutputEvent(output=None))

    return Agent().add_action("act", [InputEvent], act)


async def measure_sqlite(durability: str, keys: int, calls: int) -> dict[str, float]:
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as directory:
        env = AgentsExecutionEnvironment.get_execution_environment(
            journal_dir=directory, durability=durability
        )
        env.from_list([{"key": k, "value": k} for k in range(keys)]).apply(
            sqlite_agent(latencies, calls)
        )
        start = now()
        await env.execute()
        elapsed = now() - start
    return {"calls_per_s": round(len(latencies) / elapsed), **percentiles(latencies, "us")}


def raw_sqlite_group_commit(rows: int, synchronous: str) -> float:
    """Insert ``rows`` call-sized rows from a producer through one writer thread that commits
    whatever is queued in one transaction: the floor for a journal on SQLite."""
    with tempfile.TemporaryDirectory() as directory:
        connection = sqlite3.connect(
            Path(directory) / "raw.sqlite3", isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={synchronous}")
        connection.execute(
            "CREATE TABLE calls (seq INTEGER, slot INTEGER, record BLOB, PRIMARY KEY (seq, slot))"
        )
        queue: list[tuple[int, int, bytes]] = []
        condition = threading.Condition()
        done = threading.Event()
        record = Codec().encode(["fn", b"0" * 16, 1, True, b"\x01"])

        def writer() -> None:
            written = 0
            while written < rows:
                with condition:
                    while not queue:
                        condition.wait()
                    group = queue[:]
                    queue.clear()
                connection.execute("BEGIN")
                connection.executemany("INSERT INTO calls VALUES (?, ?, ?)", group)
                connection.execute("COMMIT")
                written += len(group)
            done.set()

        thread = threading.Thread(target=writer)
        start = now()
        thread.start()
        for index in range(rows):
            with condition:
                queue.append((index // 40, index % 40, record))
                condition.notify()
        done.wait()
        elapsed = now() - start
        thread.join()
        connection.close()
    return round(rows / elapsed)


# -- recovery and replay ------------------------------------------------------------------------


def replay_agent(calls: int, replaying: list[float]) -> Agent:
    def act(event: InputEvent, ctx: RunnerContext) -> None:
        total = 0
        start = time.perf_counter()
        for index in range(calls):
            total += ctx.durable_execute(noop, index)  # answered from the journal
        replaying.append(time.perf_counter() - start)
        ctx.send_event(OutputEvent(output=total))

    return Agent().add_action("act", [InputEvent], act)


def crash_last_agent(calls: int) -> Any:
    """Every run journals its calls, then never commits: stays pending, like after a crash."""

    async def act(event: InputEvent, ctx: RunnerContext) -> None:
        for index in range(calls):
            ctx.durable_execute(noop, index)
        await asyncio.Event().wait()

    return act


async def open_journal(directory: Path) -> float:
    journal = Journal(SQLiteJournalStore(directory, "none"), Codec())
    start = now()
    recovered = await journal.open(asyncio.get_running_loop(), {"agent": "Agent", "mode": "batch"})
    elapsed = now() - start
    assert recovered.pending
    journal.store.close()
    return elapsed


async def replay(directory: Path, keys: int, calls: int) -> tuple[float, float]:
    """(seconds spent answering calls from the journal, seconds of the whole resumed job)."""
    replaying: list[float] = []
    env = AgentsExecutionEnvironment.get_execution_environment(
        journal_dir=directory, durability="none"
    )
    builder = env.from_list([{"key": k, "value": k} for k in range(keys)])
    outputs = builder.apply(replay_agent(calls, replaying)).to_list()
    start = now()
    await env.execute()
    elapsed = now() - start
    assert len(outputs) == keys
    return sum(replaying), elapsed


def raw_read(directory: Path) -> float:
    connection = sqlite3.connect(directory / "journal.sqlite3")
    start = now()
    rows = connection.execute("SELECT seq, slot, record FROM calls").fetchall()
    elapsed = now() - start
    connection.close()
    assert rows
    return elapsed


async def measure_recovery(keys: int, calls: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name) / "journal"
        env = AgentsExecutionEnvironment.get_execution_environment(
            journal_dir=directory, durability="none"
        )
        env.from_list([{"key": k, "value": k} for k in range(keys)]).apply(
            Agent().add_action("act", [InputEvent], crash_last_agent(calls))
        )
        job = asyncio.ensure_future(env.execute())
        while True:  # wait until every input has journaled its calls, then "crash"
            await asyncio.sleep(0.05)
            rows = (
                sqlite3.connect(directory / "journal.sqlite3")
                .execute("SELECT COUNT(*) FROM calls")
                .fetchone()[0]
            )
            if rows >= keys * calls:
                break
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job
        entries = keys * calls
        open_seconds = await open_journal(directory)
        raw_seconds = raw_read(directory)
        replay_seconds, job_seconds = await replay(directory, keys, calls)
    return {
        "keys": keys,
        "entries": entries,
        "recovery_open_s": round(open_seconds, 3),
        "recovery_decoded_entries_per_s": round(entries / open_seconds),
        "replay_s": round(replay_seconds, 3),
        "replay_entries_per_s": round(entries / replay_seconds),
        "resumed_job_s": round(job_seconds, 3),
        "baseline_raw_sqlite_read_s": round(raw_seconds, 3),
        "baseline_raw_sqlite_rows_per_s": round(entries / raw_seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--sqlite-keys", type=int, default=50)
    parser.add_argument("--sqlite-calls", type=int, default=40)
    args = parser.parse_args()
    rows = args.sqlite_keys * args.sqlite_calls
    results = {
        "overhead_memory_recording": asyncio.run(measure_overhead(recording=True)),
        "overhead_memory_private": asyncio.run(measure_overhead(recording=False)),
        "sqlite_batch": asyncio.run(measure_sqlite("batch", args.sqlite_keys, args.sqlite_calls)),
        "sqlite_sync": asyncio.run(measure_sqlite("sync", args.sqlite_keys, args.sqlite_calls)),
        "baseline_raw_group_commit_normal_rows_per_s": raw_sqlite_group_commit(rows, "NORMAL"),
        "baseline_raw_group_commit_full_rows_per_s": raw_sqlite_group_commit(rows, "FULL"),
        "recovery": asyncio.run(measure_recovery(args.keys, args.calls)),
        "targets": {
            "overhead_p50_us": 20,
            "sqlite_batch_calls_per_s": 20_000,
            "replay_entries_per_s": 200_000,
        },
    }
    emit("durable", results)


if __name__ == "__main__":
    main()

"""The embedded service mode: in-process round trips, HTTP, and memory per key.

* ``in_process``: ``await runtime.send(key, value)`` round trips/s and p50/p99 latency with 1,
  100 and 10,000 keys (up to 100 concurrent clients, each cycling over its share of the keys),
  with the in-memory journal and with SQLite ``batch``. Baseline: the same agent work done by
  bare asyncio (a queue and a worker task per key, a future per request) in the same process.
* ``paced_sqlite_batch``: 1,000 runs/s offered at a steady pace to the SQLite ``batch`` store;
  p50/p99 latency of ``send`` (target: p50 <= 1 ms).
* ``http``: requests/s and p50/p99 against the example app (uvicorn on 127.0.0.1) from a local
  httpx load generator; baseline: ``GET /health`` on the same server (no agent).
* ``memory``: resident memory (RSS) per active key and per passivated key with 100,000 keys,
  each measured in a fresh process (target: <= 2 KB per passivated key).

Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import subprocess
import sys
import tempfile
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

ROOT = Path(__file__).resolve().parent.parent


def counter_agent() -> Agent:
    def count(event: InputEvent, ctx: RunnerContext) -> None:
        memory = ctx.short_term_memory
        total = (memory.get("count") or 0) + 1
        memory.set("count", total)
        ctx.send_event(OutputEvent(output=total))

    return Agent().add_action("count", [InputEvent], count)


async def clients_loop(
    send: Any, keys: int, requests: int, clients: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    per_client = requests // clients

    async def client(index: int) -> None:
        mine = [k for k in range(keys) if k % clients == index] or [index % keys]
        for n in range(per_client):
            key = f"key-{mine[n % len(mine)]}"
            start = time.perf_counter()
            await send(key, n)
            latencies.append(time.perf_counter() - start)

    start = now()
    await asyncio.gather(*(client(index) for index in range(clients)))
    return now() - start, latencies


async def runtime_round_trips(keys: int, requests: int, journal_dir: str | None) -> dict[str, Any]:
    env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=journal_dir)
    async with env.serve(counter_agent(), max_pending=100_000) as runtime:
        elapsed, latencies = await clients_loop(runtime.send, keys, requests, min(keys, 100))
    return {"round_trips_per_s": round(len(latencies) / elapsed), **percentiles(latencies)}


async def baseline_round_trips(keys: int, requests: int) -> dict[str, Any]:
    """Bare asyncio: a queue and a worker per key, a future per request, the same work."""
    queues: dict[str, asyncio.Queue[Any]] = {}
    workers: list[asyncio.Task[None]] = []

    async def worker(queue: asyncio.Queue[Any]) -> None:
        state: dict[str, int] = {}
        while True:
            value, future = await queue.get()
            event = InputEvent(input=value)
            state["count"] = state.get("count", 0) + 1
            future.set_result([OutputEvent(output=state["count"]).output, event.input])

    async def send(key: str, value: Any) -> Any:
        queue = queues.get(key)
        if queue is None:
            queue = queues[key] = asyncio.Queue()
            workers.append(asyncio.create_task(worker(queue)))
        future = asyncio.get_running_loop().create_future()
        await queue.put((value, future))
        return await future

    elapsed, latencies = await clients_loop(send, keys, requests, min(keys, 100))
    for task in workers:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    return {"round_trips_per_s": round(len(latencies) / elapsed), **percentiles(latencies)}


async def paced(rate: int, seconds: float, journal_dir: str) -> dict[str, Any]:
    env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=journal_dir)
    latencies: list[float] = []
    async with env.serve(counter_agent()) as runtime:

        async def one(n: int) -> None:
            start = time.perf_counter()
            await runtime.send(f"key-{n % 100}", n)
            latencies.append(time.perf_counter() - start)

        tasks = []
        begin = time.perf_counter()
        for n in range(int(rate * seconds)):
            delay = begin + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
        achieved = len(latencies) / (time.perf_counter() - begin)
    return {"offered_runs_per_s": rate, "achieved_runs_per_s": round(achieved),
            **percentiles(latencies)}  # fmt: skip


# -- HTTP -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def http_load(url: str, path: str, body: Any, requests: int, clients: int) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def worker(index: int) -> None:
            for n in range(requests // clients):
                start = time.perf_counter()
                if body is None:
                    response = await client.get(path)
                else:
                    response = await client.post(
                        path.format(key=f"user-{index}"),
                        json={"message": "hi", "request_id": f"{index}-{n}"},
                    )
                response.raise_for_status()
                latencies.append(time.perf_counter() - start)

        start = now()
        await asyncio.gather(*(worker(index) for index in range(clients)))
        elapsed = now() - start
    return {"requests_per_s": round(len(latencies) / elapsed), **percentiles(latencies)}


def measure_http(requests: int, clients: int) -> dict[str, Any]:
    import httpx

    port = free_port()
    with tempfile.TemporaryDirectory() as journal:
        environment = {**os.environ, "JOURNAL_DIR": journal, "MAX_PENDING": "100000"}
        server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "examples.webapp.app:app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning"],
            cwd=ROOT, env=environment,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    httpx.get(f"{url}/health", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            agent = asyncio.run(http_load(url, "/agents/{key}", True, requests, clients))
            baseline = asyncio.run(http_load(url, "/health", None, requests, clients))
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {"clients": clients, "post_agents_key": agent, "baseline_get_health": baseline}


# -- memory -----------------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def memory_probe(mode: str, keys: int, journal_dir: str | None) -> dict[str, Any]:
    env = AgentsExecutionEnvironment.get_execution_environment(journal_dir=journal_dir)
    idle = 0.2 if mode == "passivated" else None
    async with env.serve(counter_agent(), idle_timeout=idle, max_pending=100_000) as runtime:
        for n in range(keys):  # warm up the code paths before the baseline reading
            await runtime.send(f"warm-{n}", 0)
        await asyncio.sleep(0.5 if idle else 0)
        gc.collect()
        before = rss_bytes()
        batch = 2000
        for start in range(0, keys, batch):
            await asyncio.gather(
                *(runtime.send(f"key-{n}", n) for n in range(start, min(keys, start + batch)))
            )
        if idle:  # give the sweeper time to passivate every key (a timer, not a handshake)
            deadline = time.monotonic() + 60
            while runtime.stats()["keys_active"] and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        gc.collect()
        after = rss_bytes()
        stats = runtime.stats()
    return {"keys": keys, "bytes_per_key": round((after - before) / keys), "stats": stats}


def measure_memory(mode: str, keys: int, store: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as journal:
        argv = [sys.executable, __file__, "--memory-probe", mode, "--keys", str(keys)]
        if store == "sqlite":
            argv += ["--journal", journal]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=True)
    return json.loads(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--http-requests", type=int, default=4_000)
    parser.add_argument("--memory-keys", type=int, default=100_000)
    parser.add_argument("--memory-probe", choices=["active", "passivated"])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--journal")
    args = parser.parse_args()
    if args.memory_probe:
        print(json.dumps(asyncio.run(memory_probe(args.memory_probe, args.keys, args.journal))))
        return
    in_process: dict[str, Any] = {}
    for keys in (1, 100, 10_000):
        entry: dict[str, Any] = {}
        entry["memory"] = asyncio.run(runtime_round_trips(keys, args.requests, None))
        with tempfile.TemporaryDirectory() as journal:
            entry["sqlite_batch"] = asyncio.run(runtime_round_trips(keys, args.requests, journal))
        entry["baseline_bare_asyncio"] = asyncio.run(baseline_round_trips(keys, args.requests))
        in_process[f"{keys}_keys"] = entry
    with tempfile.TemporaryDirectory() as journal:
        paced_result = asyncio.run(paced(1000, 3.0, journal))
    results = {
        "in_process": in_process,
        "paced_sqlite_batch": paced_result,
        "http": measure_http(args.http_requests, 32),
        "memory": {
            "active_memory_store": measure_memory("active", args.memory_keys, "memory"),
            "passivated_memory_store": measure_memory("passivated", args.memory_keys, "memory"),
            "passivated_sqlite": measure_memory("passivated", args.memory_keys, "sqlite"),
        },
        "targets": {"paced_p50_ms": 1.0, "passivated_bytes_per_key": 2048},
    }
    emit("serve", results)


if __name__ == "__main__":
    main()

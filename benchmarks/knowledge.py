"""Knowledge: the embedded vector store, long-term memory and MCP (one function per section).

* ``vector_store``: ``LocalVectorStore`` (SQLite + sqlite-vec) adding and querying 384-dim
  random unit vectors (numpy, fixed seed) at 10k and 100k vectors: adds/s in batches of 1,000
  (each ``aadd`` a transaction: an upsert of every document and its vector), and the p50/p99 of
  a limit-10 query. The baseline, measured in the same run on the same machine, is the raw
  library doing the same operations directly: the same SQL on an ``apsw`` connection with
  sqlite-vec loaded, in the calling thread. ``ratio`` is ours over raw (goal: at most 1.2).
* ``long_term_memory``: an agent run whose action adds a fact to its key's memory set
  ``facts`` and searches it (``aadd``, then ``asearch(..., limit=3)``), long-term memory kept in
  a ``LocalVectorStore`` pre-filled with 1,000 items (growing by one a run) and embedded by a
  cheap deterministic hash of the words (384 floats; the model's cost is not the point). Two
  baselines, in the same run: the same agent without long-term memory (what a run costs anyway)
  and the same add + query straight on a store of the same size (``aadd([Document])``,
  ``aquery(VectorStoreQuery)``, same vectors, metadata, filter and concurrency), outside any
  agent. Per-run µs (a job's wall time over its runs, the best of the rounds) for the three,
  ``ltm_overhead_per_run_us`` (ltm run minus plain run) and its ratio to the direct ops; and the
  p50/p99 of the memory operations timed inside the action against the direct ones. Once with
  200 runs over 20 keys (concurrent: a key's latency includes waiting for the others' writes,
  which the store serialises) and once with 100 runs of one key (one after another).
* ``mcp``: one call of the ``add`` tool of the tests' MCP server (``tests/mcp_server_app.py``:
  over streamable HTTP in a subprocess, and over stdio): p50/p99 µs through the ``mcp`` SDK's
  own ``ClientSession`` (the baseline, kept open), through our ``MCPServer``'s tool
  (``get_tool("add")``, ``await tool.call(...)``) and through an agent's built-in tool-call
  action (a ``ToolRequestEvent`` to the ``ToolResponseEvent``, one key, runs one after another),
  with the ratios to the baseline. The three take turns in segments.

``--sections vector_store,...`` picks sections; ``--quick`` runs 10k vectors and fewer queries,
runs and calls, one round. Prints JSON.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import logging
import math
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, now, percentiles

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    BaseEmbeddingModelConnection,
    BaseEmbeddingModelSetup,
    Document,
    EmbeddingResult,
    Event,
    InputEvent,
    LongTermMemoryOptions,
    OutputEvent,
    ResourceDescriptor,
    ResourceName,
    ResourceType,
    RunnerContext,
    VectorStoreQuery,
)
from flink_agents_async.logging import LOGGER_NAME

DIM = 384
BATCH = 1_000
# Unmeasured queries first, on both sides.
WARM_UP = 5


def unit_vectors(count: int, seed: int) -> list[list[float]]:
    """``count`` random unit vectors of ``DIM`` floats (numpy, fixed seed)."""
    import numpy as np

    vectors = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [row.tolist() for row in vectors]


async def ours(
    directory: Path, vectors: list[list[float]], queries: list[list[float]]
) -> dict[str, Any]:
    """Our store: ``aadd`` in batches, then ``aquery`` with the query vectors."""
    from flink_agents_async.integrations.local_vector_store import LocalVectorStore
    from flink_agents_async.llm.vector_stores import Document, VectorStoreQuery

    store = LocalVectorStore(path=directory)
    documents = [
        Document(
            id=f"d{index}", content=f"document {index}", metadata={"n": index % 7}, embedding=vector
        )
        for index, vector in enumerate(vectors)
    ]
    start = now()
    for offset in range(0, len(documents), BATCH):
        await store.aadd(documents[offset : offset + BATCH])
    add_seconds = now() - start
    latencies = []
    for vector in queries[:WARM_UP]:  # the pages into the cache, as the raw run does
        await store.aquery(VectorStoreQuery(query_text="", extra_args={"query_embedding": vector}))
    for vector in queries:
        query = VectorStoreQuery(query_text="", limit=10, extra_args={"query_embedding": vector})
        start = now()
        found = await store.aquery(query)
        latencies.append(now() - start)
        assert len(found.documents) == 10
    await store.aclose()
    return {"adds_per_s": round(len(vectors) / add_seconds), **percentiles(latencies)}


def raw(directory: Path, vectors: list[list[float]], queries: list[list[float]]) -> dict[str, Any]:
    """The raw library: the same tables and statements on an apsw connection, no threads."""
    import json

    import apsw
    import sqlite_vec

    directory.mkdir(parents=True)
    connection = apsw.Connection(str(directory / "raw.sqlite3"))
    connection.enable_load_extension(True)
    connection.load_extension(sqlite_vec.loadable_path())
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute(
        "CREATE TABLE documents (rowid INTEGER PRIMARY KEY, collection INTEGER, id TEXT, "
        "content TEXT, metadata TEXT, UNIQUE (collection, id))"
    )
    connection.execute(
        f"CREATE VIRTUAL TABLE vectors USING vec0(embedding float[{DIM}] distance_metric=cosine)"
    )
    start = now()
    for offset in range(0, len(vectors), BATCH):
        with connection:
            for index in range(offset, min(offset + BATCH, len(vectors))):
                (rowid,) = next(
                    iter(
                        connection.execute(
                            "INSERT INTO documents (collection, id, content, metadata) "
                            "VALUES (1, ?, ?, ?) ON CONFLICT (collection, id) DO UPDATE SET "
                            "content = excluded.content, metadata = excluded.metadata "
                            "RETURNING rowid",
                            (f"d{index}", f"document {index}", json.dumps({"n": index % 7})),
                        )
                    )
                )
                connection.execute("DELETE FROM vectors WHERE rowid = ?", (rowid,))
                connection.execute(
                    "INSERT INTO vectors (rowid, embedding) VALUES (?, ?)",
                    (rowid, array.array("f", vectors[index]).tobytes()),
                )
    add_seconds = now() - start
    latencies = []
    for warm_up, vector in enumerate([*queries[:WARM_UP], *queries]):
        start = now()
        rows = list(
            connection.execute(
                "WITH knn AS (SELECT rowid, distance FROM vectors WHERE embedding MATCH ? "
                "AND k = 10) SELECT d.id, d.content, d.metadata, knn.distance FROM knn "
                "JOIN documents d ON d.rowid = knn.rowid ORDER BY knn.distance",
                (array.array("f", vector).tobytes(),),
            )
        )
        if warm_up >= WARM_UP:
            latencies.append(now() - start)
        assert len(rows) == 10
    connection.close()
    return {"adds_per_s": round(len(vectors) / add_seconds), **percentiles(latencies)}


def best(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The best of several rounds: the highest add rate, the lowest query latencies."""
    return {
        name: (max if name == "adds_per_s" else min)(one[name] for one in rounds)
        for name in rounds[0]
    }


def vector_store(quick: bool) -> dict[str, Any]:
    """Our store against the raw library, at each size."""
    sizes = [10_000] if quick else [10_000, 100_000]
    query_count = 30 if quick else 100
    queries = unit_vectors(query_count, seed=1)
    results: dict[str, Any] = {"dimensions": DIM, "batch": BATCH, "queries": query_count}
    for size in sizes:
        vectors = unit_vectors(size, seed=0)
        # Alternated, each side taking turns at going first (the page cache and the disk favour
        # one order on a busy machine); each side's best round counts.
        mine_rounds, raw_rounds = [], []
        for round_number in range(1 if quick else 2):
            with tempfile.TemporaryDirectory() as scratch:
                if round_number % 2:
                    raw_rounds.append(raw(Path(scratch) / "raw", vectors, queries))
                    mine_rounds.append(asyncio.run(ours(Path(scratch) / "ours", vectors, queries)))
                else:
                    mine_rounds.append(asyncio.run(ours(Path(scratch) / "ours", vectors, queries)))
                    raw_rounds.append(raw(Path(scratch) / "raw", vectors, queries))
        mine, baseline = best(mine_rounds), best(raw_rounds)
        results[str(size)] = {
            "ours": mine,
            "baseline_raw_library": baseline,
            "ratio": {
                "add_time": round(baseline["adds_per_s"] / mine["adds_per_s"], 3),
                "query_p50": round(mine["p50_ms"] / baseline["p50_ms"], 3),
                "query_p99": round(mine["p99_ms"] / baseline["p99_ms"], 3),
            },
        }
    results["target_ratio_at_most"] = 1.2
    return results


# -- long-term memory ---------------------------------------------------------------------------

LTM_SET = "facts"
TOPICS = ("tea", "coffee", "cats", "dogs", "rain", "sun", "paris", "london", "stocks", "music")


def hashed_embedding(text: str) -> list[float]:
    """A cheap, deterministic ``DIM``-float unit vector: each word counted in a slot chosen by
    its CRC-32 (so the model's cost, not the point here, stays out of the measurement)."""
    vector = [0.0] * DIM
    for word in text.lower().split():
        vector[zlib.crc32(word.encode()) % DIM] += 1.0
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return [value / norm for value in vector]


class HashedWords(BaseEmbeddingModelConnection):
    """The embedding connection of the long-term memory runs: ``hashed_embedding``."""

    async def aembed_with_usage(self, text: str | Sequence[str], **kwargs: Any) -> Any:
        """One vector for a text, a list of them for a sequence."""
        if isinstance(text, str):
            return EmbeddingResult(hashed_embedding(text))
        return EmbeddingResult([hashed_embedding(one) for one in text])


class HashedWordsSetup(BaseEmbeddingModelSetup):
    """The embedding model setup over ``HashedWords``."""

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """No arguments: the connection has no model to choose."""
        return {}


def fact(key: str, number: int) -> str:
    """The text run ``number`` of ``key`` remembers."""
    return f"{key} likes {TOPICS[number % len(TOPICS)]} number {number}"


def question(key: str, number: int) -> str:
    """The text run ``number`` of ``key`` searches its memory for."""
    return f"what does {key} like about {TOPICS[(number + 3) % len(TOPICS)]}"


def scope(key: str) -> dict[str, Any]:
    """The metadata long-term memory filters a key's memory set on (its ``_scope``)."""
    return {"ltm_key": repr(key), "ltm_set": LTM_SET}


async def prefill(directory: Path, keys: int, count: int) -> None:
    """``count`` items in the store at ``directory``, spread over the keys' memory sets and
    shaped as long-term memory writes them, so both sides search a store of the same size."""
    from flink_agents_async.integrations.local_vector_store import LocalVectorStore

    store = LocalVectorStore(path=directory)
    documents = []
    for number in range(count):
        key = f"k{number % keys}"
        text = fact(key, -1 - number)
        metadata = {
            **scope(key),
            "ltm_run": "prefill",
            "ltm_id": f"pre-{number}",
            "ltm_created": datetime.now(UTC).isoformat(),
            "ltm_compacted": False,
        }
        documents.append(
            Document(
                id=f"pre-{number}",
                content=text,
                metadata=metadata,
                embedding=hashed_embedding(text),
            )
        )
    await store.aadd(documents)
    await store.aclose()


def ltm_inputs(runs: int, keys: int) -> list[dict[str, Any]]:
    """``runs`` inputs, round-robin over ``keys`` keys; the value numbers the run."""
    return [{"key": f"k{number % keys}", "value": number} for number in range(runs)]


async def agent_runs(
    runs: int, keys: int, directory: Path | None
) -> tuple[float, list[float], list[int]]:
    """The agent's job: with long-term memory in the store at ``directory`` (each run adds a
    fact and searches for three), or without (``None``: the run only emits its output).
    (Wall seconds, the memory operations' seconds per run, the number of items found.)"""
    samples: list[float] = []
    found: list[int] = []

    async def remember(event: InputEvent, ctx: RunnerContext) -> None:
        key, number = str(ctx.key), int(event.input)
        start = time.perf_counter()
        memory_set = ctx.long_term_memory.get_memory_set(LTM_SET)
        await memory_set.aadd(fact(key, number))
        items = await memory_set.asearch(question(key, number), limit=3)
        samples.append(time.perf_counter() - start)
        found.append(len(items))
        ctx.send_event(OutputEvent(output=number))

    def plain(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=int(event.input)))

    env = AgentsExecutionEnvironment.get_execution_environment()
    if directory is not None:
        env.get_config().set(LongTermMemoryOptions.EXTERNAL_VECTOR_STORE_NAME, "memory")
        env.add_resource(
            "hashed", ResourceType.EMBEDDING_MODEL_CONNECTION, ResourceDescriptor(clazz=HashedWords)
        )
        env.add_resource(
            "embedder",
            ResourceType.EMBEDDING_MODEL,
            ResourceDescriptor(clazz=HashedWordsSetup, connection="hashed", model="hashed"),
        )
        env.add_resource(
            "memory",
            ResourceType.VECTOR_STORE,
            ResourceDescriptor(
                clazz=ResourceName.VectorStore.LOCAL_VECTOR_STORE,
                path=str(directory),
                embedding_model="embedder",
            ),
        )
    agent = Agent().add_action("act", [InputEvent], remember if directory is not None else plain)
    outputs = env.from_list(ltm_inputs(runs, keys)).apply(agent).to_list()
    start = now()
    await env.execute()
    elapsed = now() - start
    assert len(outputs) == runs
    return elapsed, samples, found


async def direct_runs(
    runs: int, keys: int, directory: Path
) -> tuple[float, list[float], list[int]]:
    """The same adds and searches straight on a ``LocalVectorStore``, with the same
    concurrency as the runtime's (a task per key, its runs one after another), the same
    embedding, metadata and filter. (Wall seconds, seconds per add + search, items found.)"""
    from flink_agents_async.integrations.local_vector_store import LocalVectorStore

    store = LocalVectorStore(path=directory)
    samples: list[float] = []
    found: list[int] = []

    async def key_runs(key: str, numbers: list[int]) -> None:
        for number in numbers:
            start = time.perf_counter()
            text = fact(key, number)
            metadata = {
                **scope(key),
                "ltm_run": str(number),
                "ltm_id": f"{key}-{number}",
                "ltm_created": datetime.now(UTC).isoformat(),
                "ltm_compacted": False,
            }
            document = Document(
                id=f"{key}-{number}",
                content=text,
                metadata=metadata,
                embedding=hashed_embedding(text),
            )
            await store.aadd([document])
            query = question(key, number)
            result = await store.aquery(
                VectorStoreQuery(
                    query_text=query,
                    limit=3,
                    filters=scope(key),
                    extra_args={"query_embedding": hashed_embedding(query)},
                )
            )
            samples.append(time.perf_counter() - start)
            found.append(len(result.documents))

    by_key: dict[str, list[int]] = {}
    for item in ltm_inputs(runs, keys):
        by_key.setdefault(item["key"], []).append(item["value"])
    start = now()
    await asyncio.gather(*(key_runs(key, numbers) for key, numbers in by_key.items()))
    elapsed = now() - start
    await store.aclose()
    return elapsed, samples, found


def measure_ltm(runs: int, keys: int, prefilled: int, rounds: int) -> dict[str, Any]:
    """One configuration: ``runs`` runs over ``keys`` keys, in a store of ``prefilled``
    items; the three sides take turns ``rounds`` times (the machine's speed drifts), each on
    a fresh store. Per-run times are the best round's; the ops' percentiles pool the rounds."""
    walls: dict[str, list[float]] = {"plain": [], "ltm": [], "direct": []}
    ops: dict[str, list[float]] = {"ltm": [], "direct": []}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as scratch:
            ltm_dir, direct_dir = Path(scratch) / "ltm", Path(scratch) / "direct"
            asyncio.run(prefill(ltm_dir, keys, prefilled))
            asyncio.run(prefill(direct_dir, keys, prefilled))
            wall, _, _ = asyncio.run(agent_runs(runs, keys, None))
            walls["plain"].append(wall)
            wall, samples, found = asyncio.run(agent_runs(runs, keys, ltm_dir))
            assert min(found) == 3, found
            walls["ltm"].append(wall)
            ops["ltm"] += samples
            wall, samples, found = asyncio.run(direct_runs(runs, keys, direct_dir))
            assert min(found) == 3, found
            walls["direct"].append(wall)
            ops["direct"] += samples
    per_run = {name: min(seconds) / runs * 1e6 for name, seconds in walls.items()}
    overhead = per_run["ltm"] - per_run["plain"]
    ltm_ops, direct_ops = percentiles(ops["ltm"], "us"), percentiles(ops["direct"], "us")
    return {
        "runs": runs,
        "keys": keys,
        "store_items_at_end": prefilled + runs,
        "plain_run_us": round(per_run["plain"], 1),
        "ltm_run_us": round(per_run["ltm"], 1),
        "ltm_overhead_per_run_us": round(overhead, 1),
        "baseline_direct_store_ops_per_run_us": round(per_run["direct"], 1),
        "overhead_over_direct": round(overhead / per_run["direct"], 3),
        "ltm_memory_ops_in_action": ltm_ops,
        "baseline_direct_store_ops": direct_ops,
        "ops_ratio": {
            "p50": round(ltm_ops["p50_us"] / direct_ops["p50_us"], 3),
            "p99": round(ltm_ops["p99_us"] / direct_ops["p99_us"], 3),
        },
    }


def long_term_memory(quick: bool) -> dict[str, Any]:
    """Long-term memory's cost per run against a run without it and the bare store ops, with
    20 keys' runs concurrent and with one key's runs one after another."""
    prefilled = 1_000
    rounds = 1 if quick else 3
    return {
        "prefilled_items": prefilled,
        "rounds": rounds,
        "concurrent_20_keys": measure_ltm(100 if quick else 200, 20, prefilled, rounds),
        "sequential_1_key": measure_ltm(50 if quick else 100, 1, prefilled, rounds),
    }


# -- MCP ----------------------------------------------------------------------------------------

TESTS = Path(__file__).resolve().parent.parent / "tests"
SERVER_APP = TESTS / "mcp_server_app.py"


@contextlib.contextmanager
def http_mcp_server() -> Iterator[str]:
    """The tests' MCP server over streamable HTTP, in a subprocess on a free port: its URL."""
    sys.path.insert(0, str(TESTS))
    from mcp_server_app import free_port, wait_for_port  # type: ignore[import-not-found]

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(SERVER_APP), "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.asynccontextmanager
async def sdk_session(endpoint: str | None) -> AsyncIterator[Any]:
    """A session of the ``mcp`` SDK itself, over HTTP to ``endpoint`` or (``None``) stdio to a
    server process of its own, initialised."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client
    from mcp.client.streamable_http import streamablehttp_client

    async with contextlib.AsyncExitStack() as stack:
        if endpoint is None:
            parameters = StdioServerParameters(
                command=sys.executable, args=[str(SERVER_APP), "stdio"]
            )
            read, write = await stack.enter_async_context(stdio_client(parameters))
        else:
            read, write, _ = await stack.enter_async_context(streamablehttp_client(endpoint))
        session = await stack.enter_async_context(ClientSession(read, write))
        await session.initialize()
        yield session


def agent_job(server: dict[str, Any], runs: int) -> tuple[AgentsExecutionEnvironment, Any]:
    """A job calling ``add`` through the built-in tool-call action: one key, ``runs`` runs,
    each sending a ``ToolRequestEvent``; (the environment, the list its latencies go to: the
    seconds from the run's first action to the action that receives the ``ToolResponseEvent``,
    the first ``WARM_UP`` runs left out)."""
    from flink_agents_async import ToolRequestEvent, ToolResponseEvent

    starts: list[float] = []
    latencies: list[float] = []

    def ask(event: InputEvent, ctx: RunnerContext) -> None:
        starts.append(time.perf_counter())
        call = {"id": str(uuid.uuid4()), "function": {"name": "add", "arguments": {"a": 1, "b": 2}}}
        ctx.send_event(ToolRequestEvent(model="none", tool_calls=[call]))

    def answer(event: Event, ctx: RunnerContext) -> None:
        if len(starts) > WARM_UP:
            latencies.append(time.perf_counter() - starts[-1])
        response = ToolResponseEvent.from_event(event)
        assert list(response.responses.values()) == [["3"]], response
        ctx.send_event(OutputEvent(output=None))

    env = AgentsExecutionEnvironment.get_execution_environment()
    env.add_resource(
        "calculator",
        ResourceType.MCP_SERVER,
        ResourceDescriptor(clazz=ResourceName.MCP_SERVER, timeout=10, **server),
    )
    agent = Agent().add_action("ask", [InputEvent], ask)
    agent.add_action("answer", [ToolResponseEvent], answer)
    inputs = [{"key": "one", "value": number} for number in range(runs + WARM_UP)]
    env.from_list(inputs).apply(agent)
    return env, latencies


async def compare_mcp(calls: int, segments: int, endpoint: str | None) -> dict[str, Any]:
    """``add`` called ``calls`` times by the SDK's own session and by our ``MCPServer``'s
    tool, and through an agent's tool-call action; the three take turns in ``segments``
    segments (both sessions stay open; each segment's agent job opens its own)."""
    from flink_agents_async.integrations.mcp import MCPServer

    server: dict[str, Any] = (
        {"endpoint": endpoint}
        if endpoint is not None
        else {"command": sys.executable, "args": [str(SERVER_APP), "stdio"]}
    )
    direct: list[float] = []
    ours: list[float] = []
    in_agent: list[float] = []
    per_segment = calls // segments
    resource = MCPServer(timeout=10, **server)
    await asyncio.to_thread(resource.open)
    try:
        tool = resource.get_tool("add")
        async with sdk_session(endpoint) as session:
            for _ in range(WARM_UP * 4):
                await session.call_tool("add", {"a": 1, "b": 2})
                await tool.call(a=1, b=2)
            for segment in range(segments):
                numbers = range(segment * per_segment, (segment + 1) * per_segment)
                for number in numbers:
                    start = now()
                    result = await session.call_tool("add", {"a": number, "b": 1})
                    direct.append(now() - start)
                    assert not result.isError
                for number in numbers:
                    start = now()
                    content = await tool.call(a=number, b=1)
                    ours.append(now() - start)
                    assert content == [str(number + 1)]
                env, latencies = agent_job(server, per_segment)
                await env.execute()
                assert len(latencies) == per_segment
                in_agent += latencies
    finally:
        await resource.aclose()
    sdk, mine, agent = (percentiles(samples, "us") for samples in (direct, ours, in_agent))
    return {
        "baseline_sdk_session": sdk,
        "ours_mcp_tool": mine,
        "ours_in_agent_tool_call_action": agent,
        "ratio_tool": {
            "p50": round(mine["p50_us"] / sdk["p50_us"], 3),
            "p99": round(mine["p99_us"] / sdk["p99_us"], 3),
        },
        "ratio_in_agent": {
            "p50": round(agent["p50_us"] / sdk["p50_us"], 3),
            "p99": round(agent["p99_us"] / sdk["p99_us"], 3),
        },
    }


def mcp(quick: bool) -> dict[str, Any]:
    """An MCP tool call: the SDK's session against our ``MCPServer``, over HTTP and stdio."""
    # The tests' server describes one tool ("broken") with an unusable schema on purpose: the
    # warning every connection logs about it is expected, and kept off the output.
    logging.getLogger(LOGGER_NAME).setLevel(logging.ERROR)
    calls, segments = (200, 2) if quick else (1_000, 5)
    results: dict[str, Any] = {"tool": "add", "calls": calls, "segments": segments}
    with http_mcp_server() as endpoint:
        results["streamable_http"] = asyncio.run(compare_mcp(calls, segments, endpoint))
    results["stdio"] = asyncio.run(compare_mcp(calls, segments, None))
    return results


SECTIONS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "vector_store": vector_store,
    "long_term_memory": long_term_memory,
    "mcp": mcp,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated, of: {', '.join(SECTIONS)}",
    )
    parser.add_argument("--quick", action="store_true", help="10k vectors, fewer queries")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.sections.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown sections {unknown}; known: {list(SECTIONS)}")
    emit("knowledge", {name: SECTIONS[name](args.quick) for name in chosen})


if __name__ == "__main__":
    main()

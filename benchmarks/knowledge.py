"""Knowledge: the embedded vector store, long-term memory and MCP (one function per section).

* ``vector_store``: ``LocalVectorStore`` (SQLite + sqlite-vec) adding and querying 384-dim
  random unit vectors (numpy, fixed seed) at 10k and 100k vectors: adds/s in batches of 1,000
  (each ``aadd`` a transaction: an upsert of every document and its vector), and the p50/p99 of
  a limit-10 query. The baseline, measured in the same run on the same machine, is the raw
  library doing the same operations directly: the same SQL on an ``apsw`` connection with
  sqlite-vec loaded, in the calling thread. ``ratio`` is ours over raw (goal: at most 1.2).
* ``long_term_memory`` and ``mcp``: placeholders, filled in by their own work.

``--sections vector_store,...`` picks sections; ``--quick`` runs 10k vectors and fewer queries.
Prints JSON.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, now, percentiles

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


def vector_store(quick: bool) -> dict[str, Any]:
    """Our store against the raw library, at each size."""
    sizes = [10_000] if quick else [10_000, 100_000]
    query_count = 30 if quick else 100
    queries = unit_vectors(query_count, seed=1)
    results: dict[str, Any] = {"dimensions": DIM, "batch": BATCH, "queries": query_count}
    for size in sizes:
        vectors = unit_vectors(size, seed=0)
        with tempfile.TemporaryDirectory() as scratch:
            mine = asyncio.run(ours(Path(scratch) / "ours", vectors, queries))
            baseline = raw(Path(scratch) / "raw", vectors, queries)
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


def long_term_memory(quick: bool) -> dict[str, Any]:
    """Placeholder: long-term memory's benchmark goes here."""
    return {"status": "not measured yet"}


def mcp(quick: bool) -> dict[str, Any]:
    """Placeholder: the MCP integration's benchmark goes here."""
    return {"status": "not measured yet"}


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

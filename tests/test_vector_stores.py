"""The vector stores, on real directories: ``LocalVectorStore`` (SQLite + sqlite-vec) and
``ChromaVectorStore`` (an embedded ``PersistentClient``), through one suite, plus each one's
errors, an agent querying a store it declares, and a writer SIGKILLed right after an add.

Vectors come from a tiny deterministic embedding model (hashed bag of words), so neighbours
are checkable; Chroma's own embedding function (a model download) is never used.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("chromadb")
pytest.importorskip("sqlite_vec")
pytest.importorskip("apsw")

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    InputEvent,
    OutputEvent,
    ResourceDescriptor,
    ResourceError,
    ResourceName,
    ResourceType,
    RunnerContext,
    action,
    embedding_model_connection,
    embedding_model_setup,
    vector_store,
)
from flink_agents_async.integrations.chroma import ChromaVectorStore
from flink_agents_async.integrations.local_vector_store import (
    EmbeddingDimensionError,
    LocalVectorStore,
)
from flink_agents_async.llm.embedding_models import (
    BaseEmbeddingModelConnection,
    BaseEmbeddingModelSetup,
    EmbeddingResult,
)
from flink_agents_async.llm.names import UPSTREAM_CLASS_PATHS
from flink_agents_async.llm.vector_stores import (
    CollectionManageableVectorStore,
    CollectionNotFoundError,
    Document,
    VectorStoreQuery,
)

DIM = 64


def bag_of_words(text: str) -> list[float]:
    """A unit vector: each word hashed into one of ``DIM`` buckets."""
    vector = [0.0] * DIM
    for word in re.findall(r"\w+", text.lower()):
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % DIM] += 1.0
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return [value / norm for value in vector]


class HashingConnection(BaseEmbeddingModelConnection):
    """Deterministic embeddings, no service."""

    async def aembed_with_usage(
        self, text: str | Sequence[str], **kwargs: Any
    ) -> EmbeddingResult[Any]:
        if isinstance(text, str):
            return EmbeddingResult(bag_of_words(text))
        return EmbeddingResult([bag_of_words(item) for item in text])


class HashingSetup(BaseEmbeddingModelSetup):
    """The setup of ``HashingConnection``."""

    @property
    def model_kwargs(self) -> dict[str, Any]:
        return {"model": self.model}


def model() -> HashingSetup:
    return HashingSetup(connection=HashingConnection(), model="hash")


StoreFactory = Callable[..., CollectionManageableVectorStore]


def make_local(directory: Path, **fields: Any) -> CollectionManageableVectorStore:
    return LocalVectorStore(path=directory / "local", embedding_model=model(), **fields)


def make_chroma(directory: Path, **fields: Any) -> CollectionManageableVectorStore:
    fields.setdefault("collection_metadata", {"hnsw:space": "cosine"})
    return ChromaVectorStore(
        persist_directory=str(directory / "chroma"), embedding_model=model(), **fields
    )


@pytest.fixture(params=[make_local, make_chroma], ids=["local", "chroma"])
def factory(request: pytest.FixtureRequest) -> StoreFactory:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
async def store(
    factory: StoreFactory, tmp_path: Path
) -> AsyncIterator[CollectionManageableVectorStore]:
    made = factory(tmp_path)
    yield made
    await made.aclose()


FRUITS = [
    Document(id="apple", content="red apple fruit sweet", metadata={"kind": "fruit", "n": 1}),
    Document(id="banana", content="yellow banana fruit", metadata={"kind": "fruit", "n": 2}),
    Document(id="car", content="fast red car engine", metadata={"kind": "vehicle", "n": 3}),
    Document(id="bus", content="big city bus engine", metadata={"kind": "vehicle", "n": 4}),
]


def copies() -> list[Document]:
    return [document.model_copy(deep=True) for document in FRUITS]


def ids_of(documents: Sequence[Document]) -> list[str | None]:
    return [document.id for document in documents]


# -- the shared suite ------------------------------------------------------------------------


async def test_add_query_get_delete(store: CollectionManageableVectorStore) -> None:
    assert await store.aadd(copies()) == ["apple", "banana", "car", "bus"]

    found = await store.aquery(VectorStoreQuery(query_text="engine of a car", limit=2))
    assert ids_of(found.documents) == ["car", "bus"]
    assert found.documents[0].metadata == {"kind": "vehicle", "n": 3}
    assert found.documents[0].content == "fast red car engine"
    filtered = await store.aquery(
        VectorStoreQuery(query_text="red", limit=5, filters={"kind": "fruit"})
    )
    assert ids_of(filtered.documents)[0] == "apple"
    assert set(ids_of(filtered.documents)) == {"apple", "banana"}
    both = await store.aquery(
        VectorStoreQuery(query_text="red", filters={"kind": "vehicle", "n": 4})
    )
    assert ids_of(both.documents) == ["bus"]

    assert ids_of(await store.aget(ids=["bus", "apple", "missing"])) == ["bus", "apple"]
    assert ids_of(await store.aget(ids="car")) == ["car"]
    assert len(await store.aget()) == 4
    assert len(await store.aget(limit=3)) == 3
    assert {d.id for d in await store.aget(filters={"kind": "vehicle"})} == {"car", "bus"}

    await store.adelete(ids="apple")
    await store.adelete(filters={"kind": "vehicle"})
    assert ids_of(await store.aget()) == ["banana"]
    await store.adelete()
    assert await store.aget() == []


async def test_add_upserts_and_makes_up_missing_ids(
    store: CollectionManageableVectorStore,
) -> None:
    await store.aadd(copies())
    await store.aadd(copies())  # a replayed add
    await store.aadd(Document(id="apple", content="green apple", metadata={"kind": "fruit"}))
    assert len(await store.aget(limit=None)) == 4
    (apple,) = await store.aget(ids="apple")
    assert apple.content == "green apple"

    await store.aadd(
        [
            Document(id="x", content="first", metadata={"a": 1}),
            Document(id="y", content="plain"),
            Document(id="x", content="second", metadata={"b": 2}),
        ]
    )
    assert [(d.content, d.metadata) for d in await store.aget(ids=["x", "y"])] == [
        ("second", {"b": 2}),
        ("plain", {}),
    ]
    with pytest.raises(ValueError, match="dimension"):
        await store.aadd(Document(id="x", content="bad", embedding=[1.0, 2.0]))
    assert [d.content for d in await store.aget(ids="x")] == ["second"]

    (made_up,) = await store.aadd(Document(content="no id here"))
    assert made_up
    assert ids_of(await store.aget(ids=made_up)) == [made_up]


async def test_update_replaces_content_metadata_and_vector(
    store: CollectionManageableVectorStore,
) -> None:
    await store.aadd(copies())
    await store.aupdate(Document(id="apple", content="slow bus engine", metadata={"n": 9}))

    (apple,) = await store.aget(ids="apple")
    assert (apple.content, apple.metadata) == ("slow bus engine", {"n": 9})
    found = await store.aquery(VectorStoreQuery(query_text="slow bus engine", limit=1))
    assert ids_of(found.documents) == ["apple"]


async def test_collections_are_separate(store: CollectionManageableVectorStore) -> None:
    await store.acreate_collection_if_not_exists("other")
    await store.acreate_collection_if_not_exists("other")
    await store.aadd(copies()[:1], collection_name="other")
    await store.aadd(copies()[1:])

    assert ids_of(await store.aget(collection_name="other")) == ["apple"]
    assert "apple" not in ids_of(await store.aget())
    other = await store.aquery(VectorStoreQuery(query_text="car", collection_name="other"))
    assert ids_of(other.documents) == ["apple"]

    await store.adelete_collection("other")
    with pytest.raises(CollectionNotFoundError, match="other"):
        await store.aget(collection_name="other")
    assert len(await store.aget()) == 3


async def test_data_survives_close_and_reopen(factory: StoreFactory, tmp_path: Path) -> None:
    first = factory(tmp_path)
    await first.aadd(copies())
    await first.aclose()
    if isinstance(first, ChromaVectorStore):
        del first  # Chroma's client lives as long as the process's shared system

    again = factory(tmp_path)
    found = await again.aquery(VectorStoreQuery(query_text="yellow banana", limit=1))
    assert ids_of(found.documents) == ["banana"]
    assert len(await again.aget()) == 4
    await again.aclose()


async def test_upstream_sync_entry_points(store: CollectionManageableVectorStore) -> None:
    # upstream's sync methods, called off the loop as an upstream-style caller would
    import anyio.to_thread

    def sync_calls() -> list[str | None]:
        store.add(copies())
        store.update(Document(id="car", content="fast red car", metadata={"kind": "vehicle"}))
        store.delete(ids=["bus"])
        return ids_of(store.query(VectorStoreQuery(query_text="red car", limit=1)).documents)

    assert await anyio.to_thread.run_sync(sync_calls) == ["car"]
    assert len(await store.aget()) == 3


async def test_an_unknown_collection_is_named(store: CollectionManageableVectorStore) -> None:
    with pytest.raises(CollectionNotFoundError, match=r"'nope'"):
        await store.aget(collection_name="nope")
    with pytest.raises(CollectionNotFoundError, match=r"'nope'"):
        await store.adelete(collection_name="nope")
    with pytest.raises(CollectionNotFoundError, match=r"'nope'"):
        await store.adelete_collection("nope")


async def test_operator_filters_are_refused(store: CollectionManageableVectorStore) -> None:
    await store.aadd(copies())
    with pytest.raises(NotImplementedError, match="equality"):
        await store.aquery(VectorStoreQuery(query_text="x", filters={"n": {"$gt": 1}}))


# -- each store's own errors and choices ------------------------------------------------------


async def test_local_query_of_an_unknown_collection_names_store_and_collection(
    tmp_path: Path,
) -> None:
    store = make_local(tmp_path)
    with pytest.raises(CollectionNotFoundError, match=r"LocalVectorStore.*'ghost'"):
        await store.aquery(VectorStoreQuery(query_text="x", collection_name="ghost"))
    with pytest.raises(CollectionNotFoundError, match="ghost"):
        await store.aupdate(Document(id="a", content="x"), collection_name="ghost")
    await store.aclose()


async def test_local_refuses_a_vector_of_another_dimension(tmp_path: Path) -> None:
    store = LocalVectorStore(path=tmp_path / "v")
    await store.aadd(Document(id="a", content="x", embedding=[1.0, 0.0, 0.0]))

    with pytest.raises(EmbeddingDimensionError, match=r"'default'.*3-dimensional.*2 dimensions"):
        await store.aadd(Document(id="b", content="y", embedding=[1.0, 0.0]))
    with pytest.raises(ValueError, match="3-dimensional"):
        await store.aquery(VectorStoreQuery(query_text="q", extra_args={"query_embedding": [1.0]}))
    await store.acreate_collection_if_not_exists("fixed", dimension=4)
    with pytest.raises(EmbeddingDimensionError, match="'fixed'"):
        await store.aadd(Document(content="z", embedding=[1.0]), collection_name="fixed")
    assert ids_of(await store.aget()) == ["a"]  # the failed add changed nothing
    await store.aclose()


async def test_update_of_an_unknown_id_changes_nothing(
    store: CollectionManageableVectorStore,
) -> None:
    await store.aadd(copies())
    with pytest.raises(KeyError, match="ghost"):
        await store.aupdate([Document(id="apple", content="x"), Document(id="ghost", content="y")])
    (apple,) = await store.aget(ids="apple")
    assert apple.content == "red apple fruit sweet"


async def test_local_scores_are_cosine_similarity(tmp_path: Path) -> None:
    store = LocalVectorStore(path=tmp_path / "v")
    await store.aadd(
        [
            Document(id="same", content="a", embedding=[1.0, 0.0]),
            Document(id="right", content="b", embedding=[0.0, 2.0]),
            Document(id="opposite", content="c", embedding=[-3.0, 0.0]),
        ]
    )
    found = await store.aquery(
        VectorStoreQuery(query_text="q", extra_args={"query_embedding": [2.0, 0.0]})
    )
    scores = {d.id: round(d.score or 0.0, 6) for d in found.documents}
    assert scores == {"same": 1.0, "right": 0.0, "opposite": -1.0}
    assert ids_of(found.documents) == ["same", "right", "opposite"]
    empty = LocalVectorStore(path=tmp_path / "empty")
    await empty.acreate_collection_if_not_exists("default")
    assert (
        await empty.aquery(VectorStoreQuery(query_text="q", extra_args={"query_embedding": [1.0]}))
    ).documents == []
    await store.aclose()
    await empty.aclose()


async def test_local_filters_mean_what_matches_filters_means(tmp_path: Path) -> None:
    store = LocalVectorStore(path=tmp_path / "v")
    metadata: list[dict[str, Any]] = [
        {"flag": True},
        {"flag": 1},
        {"flag": "1"},
        {"flag": None},
        {"other": 1},
        {'we"ird': 2.5},
    ]
    await store.aadd(
        [
            Document(id=str(i), content="x", metadata=m, embedding=[1.0, float(i)])
            for i, m in enumerate(metadata)
        ]
    )

    async def matching(filters: dict[str, Any]) -> set[str | None]:
        return {d.id for d in await store.aget(filters=filters)}

    assert await matching({"flag": True}) == {"0", "1"}
    assert await matching({"flag": "1"}) == {"2"}
    assert await matching({"flag": None}) == {"3"}
    assert await matching({'we"ird': 2.5}) == {"5"}
    await store.aclose()


async def test_local_path_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = LocalVectorStore(path=blocker / "sub", embedding_model=model())
    with pytest.raises(ResourceError, match=r"LocalVectorStore: cannot create the directory"):
        await store.aadd(Document(content="x"))


async def test_local_two_stores_share_one_directory(tmp_path: Path) -> None:
    first, second = make_local(tmp_path), make_local(tmp_path)
    await first.aadd(copies()[:2])
    await second.aadd(copies()[2:])
    assert len(await first.aget()) == 4
    await first.aclose()
    await second.aclose()


async def test_chroma_keeps_upstream_fields(tmp_path: Path) -> None:
    store = ChromaVectorStore(embedding_model="embedding", create_collection_if_not_exists=False)
    assert store.collection == "flink_agents_chroma_collection"
    assert store.auto_create_collection is False
    assert (store.port, store.tenant, store.database) == (
        8000,
        "default_tenant",
        "default_database",
    )
    with pytest.raises(CollectionNotFoundError, match="ChromaVectorStore"):
        await store.aadd(Document(content="x", embedding=[1.0]))


async def test_chroma_names_a_dimension_mismatch(tmp_path: Path) -> None:
    store = make_chroma(tmp_path)
    await store.aadd(Document(id="a", content="x", embedding=[1.0, 0.0]))
    with pytest.raises(ValueError, match=r"ChromaVectorStore.*dimension"):
        await store.aadd(Document(id="b", content="x", embedding=[1.0, 0.0, 1.0]))


def test_both_stores_are_named() -> None:
    assert ResourceName.VectorStore.LOCAL_VECTOR_STORE.endswith("LocalVectorStore")
    assert (
        UPSTREAM_CLASS_PATHS[
            "flink_agents.integrations.vector_stores.chroma.chroma_vector_store.ChromaVectorStore"
        ]
        == ResourceName.VectorStore.CHROMA_VECTOR_STORE
    )


# -- an agent using a store it declares ------------------------------------------------------

STORE_DIR: dict[str, str] = {}


class SearchAgent(Agent):
    """Answers each input with the id of the closest stored document."""

    @embedding_model_connection
    @staticmethod
    def hashing() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=HashingConnection)

    @embedding_model_setup
    @staticmethod
    def embedding() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=HashingSetup, connection="hashing", model="hash")

    @vector_store
    @staticmethod
    def knowledge() -> ResourceDescriptor:
        return ResourceDescriptor(
            clazz=ResourceName.VectorStore.LOCAL_VECTOR_STORE,
            embedding_model="embedding",
            path=STORE_DIR["path"],
        )

    @action(InputEvent)
    @staticmethod
    async def search(event: InputEvent, ctx: RunnerContext) -> None:
        store = ctx.get_resource("knowledge", ResourceType.VECTOR_STORE)
        found = await store.aquery(VectorStoreQuery(query_text=event.input, limit=1))
        ctx.send_event(OutputEvent(output=found.documents[0].id))


async def test_an_agent_queries_a_declared_store(tmp_path: Path) -> None:
    seeded = make_local(tmp_path)
    await seeded.aadd(copies())
    await seeded.aclose()
    STORE_DIR["path"] = str(tmp_path / "local")

    env = AgentsExecutionEnvironment.get_execution_environment()
    inputs = [{"key": "a", "value": "yellow banana"}, {"key": "b", "value": "city bus"}]
    outputs = env.from_list(inputs).apply(SearchAgent()).to_list()
    await env.execute()

    assert outputs == [{"a": "banana"}, {"b": "bus"}]


# -- a writer killed right after its add returned ---------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys, time, anyio
    from flink_agents_async.integrations.local_vector_store import LocalVectorStore
    from flink_agents_async.llm.vector_stores import Document

    async def main() -> None:
        store = LocalVectorStore(path=sys.argv[1])
        for batch in range(1000):
            await store.aadd([
                Document(id=f"{batch}-{i}", content="x", embedding=[1.0, float(i)])
                for i in range(50)
            ])
            print(f"added {batch}", flush=True)
            if batch >= 2:
                time.sleep(60)  # killed here, with the connection still open

    anyio.run(main)
    """
)


@pytest.mark.slow
def test_an_add_that_returned_survives_sigkill(tmp_path: Path) -> None:
    directory = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    assert process.stdout is not None
    acknowledged = -1
    for line in process.stdout:
        acknowledged = int(line.split()[1])
        if acknowledged >= 2:
            break
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL
    assert acknowledged == 2

    reopened = LocalVectorStore(path=directory)  # upstream's sync entry points, off any loop
    assert len(reopened.get(limit=None)) == 150
    assert ids_of(reopened.get(ids="2-49")) == ["2-49"]
    reopened.close()


@pytest.mark.parametrize("attempt", range(5))  # a race: each attempt is a fresh directory
def test_stores_opened_together_on_a_new_directory_all_write(tmp_path: Path, attempt: int) -> None:
    """Several connections making the same new store at once (two Flink subtasks, two
    processes): each waits for the others instead of failing with "database is locked"."""
    writers = 6
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(number: int) -> None:
        async def add() -> None:
            store = LocalVectorStore(path=tmp_path / "shared")
            barrier.wait()  # every store opens its connection on this first add, together
            try:
                document = Document(id=str(number), content=str(number), embedding=[1.0, number])
                await store.aadd([document])
            finally:
                await store.aclose()

        try:
            asyncio.run(add())
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    reader = LocalVectorStore(path=tmp_path / "shared")
    found = asyncio.run(reader.aget(limit=None))
    reader.close()
    assert sorted(int(document.id or -1) for document in found) == list(range(writers))

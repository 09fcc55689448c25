"""Small, exact parts for knowledge tests: an embedding model whose neighbours are predictable
(word counts over a fixed vocabulary) and a vector store kept in a list (cosine similarity,
upstream's equality filters). The real embedded store and embedding models have tests of their
own; these keep the runtime's tests about the runtime."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

from flink_agents_async import (
    BaseEmbeddingModelConnection,
    BaseEmbeddingModelSetup,
    BaseVectorStore,
    Document,
    EmbeddingResult,
)
from flink_agents_async.llm.vector_stores import matches_filters

WORDS = (
    "cat", "dog", "pet", "stock", "market", "price", "rain", "weather", "sun", "tea", "coffee",
    "likes", "lives", "paris", "london",
)  # fmt: skip


class WordCounts(BaseEmbeddingModelConnection):
    """A vector of word counts over ``WORDS`` (plus one, so no vector is zero)."""

    async def aembed_with_usage(self, text: str | Sequence[str], **kwargs: Any) -> Any:
        texts = [text] if isinstance(text, str) else list(text)
        vectors = [[float(t.lower().count(word)) for word in WORDS] + [0.1] for t in texts]
        return EmbeddingResult(vectors[0] if isinstance(text, str) else vectors)


class WordCountSetup(BaseEmbeddingModelSetup):
    @property
    def model_kwargs(self) -> dict[str, Any]:
        return {}


class ListStore(BaseVectorStore):
    """Documents in a class-level dict (shared by every instance: tests read it after a run),
    by id; adding an existing id replaces it."""

    documents: ClassVar[dict[str, Document]] = {}

    async def _aadd_embedding(
        self, *, documents: list[Document], collection_name: str | None = None, **kwargs: Any
    ) -> list[str]:
        for document in documents:
            document.id = document.id or f"doc-{len(self.documents)}"
            ListStore.documents[document.id] = document
        return [str(document.id) for document in documents]

    async def _aquery_embedding(
        self,
        embedding: list[float],
        limit: int = 10,
        collection_name: str | None = None,
        filters: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        scored = [
            document.model_copy(update={"score": cosine(embedding, document.embedding or [])})
            for document in ListStore.documents.values()
            if matches_filters(document.metadata, filters)
        ]
        scored.sort(key=lambda document: -(document.score or 0.0))
        return scored[:limit]

    async def aget(
        self,
        ids: str | list[str] | None = None,
        collection_name: str | None = None,
        filters: dict[str, Any] | None = None,
        limit: int | None = 100,
        **kwargs: Any,
    ) -> list[Document]:
        wanted = [ids] if isinstance(ids, str) else ids
        found = [
            document
            for document in ListStore.documents.values()
            if (wanted is None or document.id in wanted)
            and matches_filters(document.metadata, filters)
        ]
        return found if limit is None or wanted is not None else found[:limit]

    async def adelete(
        self,
        ids: str | list[str] | None = None,
        collection_name: str | None = None,
        filters: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        for document in await self.aget(ids, filters=filters, limit=None):
            ListStore.documents.pop(str(document.id), None)


def cosine(a: list[float], b: list[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0

"""Vector stores: documents with metadata, embedded and searched by meaning.

The names and fields are upstream Flink Agents' (``flink_agents.api.vector_stores``):
``Document``, ``VectorStoreQuery``, ``VectorStoreQueryResult``, ``VectorStoreQueryMode``,
``BaseVectorStore`` and ``CollectionManageableVectorStore``.

A store names an embedding model setup (``embedding_model``, a resource name) that embeds
documents without an ``embedding`` on ``add`` / ``update`` and the query text on ``query``.

The primary contract is async (``aadd``, ``aquery``, ``aupdate``, ``aget``, ``adelete``), so
vector I/O never blocks the event loop. A store implements either the async hooks
(``_aadd_embedding``, ``_aquery_embedding``, ``_aupdate_embedding``, ``aget``, ``adelete``) or,
in upstream's style, the sync ones (``_add_embedding``, ``_query_embedding``,
``_update_embedding``, ``get``, ``delete``), which then run in a worker thread. Upstream's sync
methods (``add``, ``query``...) work on every store.

Filters are upstream's unified DSL: ``{"field": value, ...}``, equality on metadata fields,
the fields AND-ed; ``None`` is no filter. ``matches_filters`` is its reference meaning.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Any, TypeVar

import anyio.to_thread
from pydantic import BaseModel, Field

from ..errors import ResourceError
from ..resources import Resource, ResourceType
from .embedding_models import BaseEmbeddingModelSetup
from .remote import run_async_from_sync

__all__ = [
    "BaseVectorStore",
    "CollectionManageableVectorStore",
    "CollectionNotFoundError",
    "Document",
    "VectorStoreQuery",
    "VectorStoreQueryMode",
    "VectorStoreQueryResult",
    "matches_filters",
]

T = TypeVar("T")


class VectorStoreQueryMode(StrEnum):
    """How a query searches: ``SEMANTIC`` compares embedding vectors."""

    SEMANTIC = "semantic"


class VectorStoreQuery(BaseModel):
    """A search: the text (embedded by the store's model), how many results, the collection
    (None: the store's default), metadata ``filters`` and store-specific ``extra_args``."""

    mode: VectorStoreQueryMode = VectorStoreQueryMode.SEMANTIC
    query_text: str
    limit: int = Field(default=10, ge=1)
    collection_name: str | None = None
    filters: dict[str, Any] | None = None
    extra_args: dict[str, Any] = Field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.mode.value} query: '{self.query_text}' (limit={self.limit})"


class Document(BaseModel):
    """A piece of text with its metadata, id, embedding and (in query results) score.

    What ``score`` means (a distance or a similarity, which metric) is each store's to say.
    """

    content: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None
    embedding: list[float] | None = None
    score: float | None = None

    def __str__(self) -> str:
        preview = self.content[:50] + "..." if len(self.content) > 50 else self.content
        return f"Document: {preview}"


class VectorStoreQueryResult(BaseModel):
    """The documents a query found, best first."""

    documents: list[Document]

    def __str__(self) -> str:
        return f"QueryResult: {len(self.documents)} documents"


class CollectionNotFoundError(ResourceError, KeyError):
    """A collection that does not exist was named."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def matches_filters(metadata: Mapping[str, Any], filters: Mapping[str, Any] | None) -> bool:
    """Whether ``metadata`` passes ``filters`` (upstream's DSL: every field equals its value)."""
    if not filters:
        return True
    return all(name in metadata and metadata[name] == value for name, value in filters.items())


def check_filters(filters: Mapping[str, Any] | None, store: str) -> None:
    """Refuse what the DSL does not have (operators such as ``{"$gt": 1}``) with an error
    naming the store, as upstream asks implementations to."""
    for name, value in (filters or {}).items():
        if name.startswith("$") or isinstance(value, Mapping | list | tuple | set):
            raise NotImplementedError(
                f"{store}: filter {name!r}: {value!r} is not an equality on a metadata field; "
                "the unified filter DSL has the equality shorthand only (pass store-specific "
                "filters in extra_args)"
            )


def as_list(value: T | list[T] | None) -> list[T] | None:
    """A single value as a one-element list; lists and None as they are."""
    if value is None:
        return None
    return value if isinstance(value, list) else [value]


class BaseVectorStore(Resource):
    """A store of documents searched by meaning; see the module's docstring for the contract.

    ``embedding_model`` names the embedding model setup that embeds documents and queries
    (leave it unset when every document and query comes with its vector); ``collection`` is
    the default collection.
    """

    embedding_model: str | BaseEmbeddingModelSetup | None = None
    collection: str | None = None

    @classmethod
    def resource_type(cls) -> ResourceType:
        return ResourceType.VECTOR_STORE

    @property
    def store_kwargs(self) -> dict[str, Any]:
        """Settings of this store passed to every operation (merged under each call's own)."""
        return {}

    def open(self) -> None:
        if isinstance(self.embedding_model, str):
            self.embedding_model = self._lookup_model(self.embedding_model)

    def _lookup_model(self, name: str) -> BaseEmbeddingModelSetup:
        model = self.find_resource("vector store", name, ResourceType.EMBEDDING_MODEL)
        if not isinstance(model, BaseEmbeddingModelSetup):
            raise ResourceError(
                f"vector store {type(self).__name__}: resource {name!r} is a "
                f"{type(model).__name__}, not an embedding model setup"
            )
        return model

    def _get_embedding_model(self) -> BaseEmbeddingModelSetup:
        model = self.embedding_model
        if isinstance(model, str):
            model = self.embedding_model = self._lookup_model(model)
        if model is None:
            raise ResourceError(
                f"vector store {type(self).__name__} has no embedding model: set "
                "embedding_model, or give every document and query its embedding"
            )
        return model

    def _merged(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        return {**self.store_kwargs, **kwargs}

    # -- the async contract -----------------------------------------------------------------

    async def aadd(
        self,
        documents: Document | list[Document],
        collection_name: str | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Store ``documents`` (embedding those without an embedding); returns their ids,
        made up for documents without one."""
        listed = as_list(documents) or []
        await self._ensure_embeddings(listed)
        return await self._aadd_embedding(
            documents=listed, collection_name=collection_name, **self._merged(kwargs)
        )

    async def aquery(self, query: VectorStoreQuery) -> VectorStoreQueryResult:
        """The documents closest in meaning to ``query.query_text``, best first."""
        check_filters(query.filters, type(self).__name__)
        embedding = query.extra_args.get("query_embedding")
        if embedding is None:
            embedding = await self._get_embedding_model().aembed(query.query_text)
        arguments = self._merged(
            {name: value for name, value in query.extra_args.items() if name != "query_embedding"}
        )
        documents = await self._aquery_embedding(
            embedding,
            limit=query.limit,
            collection_name=query.collection_name,
            filters=query.filters,
            **arguments,
        )
        return VectorStoreQueryResult(documents=documents)

    async def aupdate(
        self,
        documents: Document | list[Document],
        collection_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Replace stored documents (each names its ``id``) with new content, metadata and
        embedding."""
        listed = as_list(documents) or []
        if not listed:
            raise ValueError(f"{type(self).__name__}.update: `documents` must be non-empty")
        for document in listed:
            if document.id is None:
                raise ValueError(
                    f"{type(self).__name__}.update: every document must have its id set"
                )
        await self._ensure_embeddings(listed)
        await self._aupdate_embedding(
            documents=listed, collection_name=collection_name, **self._merged(kwargs)
        )

    async def aget(
        self,
        ids: str | list[str] | None = None,
        collection_name: str | None = None,
        filters: dict[str, Any] | None = None,
        limit: int | None = 100,
        **kwargs: Any,
    ) -> list[Document]:
        """Documents by id, or up to ``limit`` matching ``filters`` (None: no bound)."""
        return await self._in_thread(
            "get", self.get, ids, collection_name, filters, limit, **kwargs
        )

    async def adelete(
        self,
        ids: str | list[str] | None = None,
        collection_name: str | None = None,
        filters: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Delete documents by id, or those matching ``filters``, or (neither) all."""
        await self._in_thread("delete", self.delete, ids, collection_name, filters, **kwargs)

    async def _ensure_embeddings(self, documents: list[Document]) -> None:
        missing = [document for document in documents if document.embedding is None]
        if not missing:
            return
        vectors = await self._get_embedding_model().aembed([doc.content for doc in missing])
        for document, vector in zip(missing, vectors, strict=True):
            document.embedding = list(vector)

    # -- what a store implements: async hooks, or upstream's sync ones ----------------------

    async def _aadd_embedding(
        self, *, documents: list[Document], collection_name: str | None = None, **kwargs: Any
    ) -> list[str]:
        return await self._in_thread(
            "_add_embedding",
            functools.partial(
                self._add_embedding, documents=documents, collection_name=collection_name
            ),
            **kwargs,
        )

    async def _aquery_embedding(
        self,
        embedding: list[float],
        limit: int = 10,
        collection_name: str | None = None,
        filters: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        return await self._in_thread(
            "_query_embedding",
            self._query_embedding,
            embedding,
            limit,
            collection_name,
            filters,
            **kwargs,
        )

    async def _aupdate_embedding(
        self, *, documents: list[Document], collection_name: str | None = None, **kwargs: Any
    ) -> None:
        await self._in_thread(
            "_update_embedding",
            functools.partial(
                self._update_embedding, documents=documents, collection_name=collection_name
            ),
            **kwargs,
        )

    def _add_embedding(
        self, *, documents: list[Document], collection_name: str | None = None, **kwargs: Any
    ) -> list[str]:
        return self._sync("_aadd_embedding")(
            documents=documents, collection_name=collection_name, **kwargs
        )

    def _query_embedding(
        self,
        embedding: list[float],
        limit: int = 10,
        collection_name: str | None = None,
        filters: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        return self._sync("_aquery_embedding")(embedding, limit, collection_name, filters, **kwargs)

    def _update_embedding(
        self, *, documents: list[Document], collection_name: str | None = None, **kwargs: Any
    ) -> None:
        self._sync("_aupdate_embedding")(
            documents=documents, collection_name=collection_name, **kwargs
        )

    def get(
        self,
        ids: str | list[str] | None = None,
        collection_name: str | None = None,
        filters: dict[str, Any] | None = None,
        limit: int | None = 100,
        **kwargs: Any,
    ) -> list[Document]:
        """Sync ``aget`` (upstream's entry point)."""
        return self._sync("aget")(ids, collection_name, filters, limit, **kwargs)

    def delete(
        self,
        ids: str | list[str] | None = None,
        collection_name: str | None = None,
        filters: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Sync ``adelete`` (upstream's entry point)."""
        self._sync("adelete")(ids, collection_name, filters, **kwargs)

    # -- upstream's sync entry points -------------------------------------------------------

    def add(
        self,
        documents: Document | list[Document],
        collection_name: str | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Sync ``aadd`` (upstream's entry point)."""
        return self._run(functools.partial(self.aadd, documents, collection_name, **kwargs))

    def query(self, query: VectorStoreQuery) -> VectorStoreQueryResult:
        """Sync ``aquery`` (upstream's entry point)."""
        return self._run(functools.partial(self.aquery, query))

    def update(
        self,
        documents: Document | list[Document],
        collection_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Sync ``aupdate`` (upstream's entry point)."""
        self._run(functools.partial(self.aupdate, documents, collection_name, **kwargs))

    # -- bridging the two styles ------------------------------------------------------------

    async def _in_thread(self, sync_name: str, call: Callable[..., T], *args: Any, **kw: Any) -> T:
        """The upstream-style sync hook ``sync_name`` in a worker thread; a store that
        implements neither style is told which methods to write."""
        if not _implements(type(self), sync_name):
            raise NotImplementedError(
                f"{type(self).__qualname__} implements neither {sync_name} nor its async "
                "counterpart"
            )
        return await anyio.to_thread.run_sync(functools.partial(call, *args, **kw))

    def _sync(self, async_name: str) -> Callable[..., Any]:
        """The async hook ``async_name`` for sync callers."""
        method: Callable[..., Awaitable[Any]] = getattr(self, async_name)
        if not _implements(type(self), async_name):
            raise NotImplementedError(
                f"{type(self).__qualname__} implements neither {async_name} nor its sync "
                "counterpart"
            )

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._run(functools.partial(method, *args, **kwargs))

        return call

    def _run(self, call: Callable[[], Any]) -> Any:
        return run_async_from_sync(call, self.release_loop)

    async def release_loop(self) -> None:
        """Release what this store holds for the running event loop: called when a sync call
        ran on a loop of its own, which closes next."""
        model = self.embedding_model
        if isinstance(model, BaseEmbeddingModelSetup) and not model.embeds_by_itself():
            connection = model._get_connection()
            await connection.release_loop()


class CollectionManageableVectorStore(BaseVectorStore):
    """A vector store whose collections can be created and deleted."""

    async def acreate_collection_if_not_exists(self, name: str, **kwargs: Any) -> None:
        """Create collection ``name`` unless it exists (``kwargs``: store-specific options
        used only when it is created)."""
        await self._in_thread(
            "create_collection_if_not_exists", self.create_collection_if_not_exists, name, **kwargs
        )

    async def adelete_collection(self, name: str) -> None:
        """Delete collection ``name`` and its documents."""
        await self._in_thread("delete_collection", self.delete_collection, name)

    def create_collection_if_not_exists(self, name: str, **kwargs: Any) -> None:
        """Sync ``acreate_collection_if_not_exists`` (upstream's entry point)."""
        self._sync("acreate_collection_if_not_exists")(name, **kwargs)

    def delete_collection(self, name: str) -> None:
        """Sync ``adelete_collection`` (upstream's entry point)."""
        self._sync("adelete_collection")(name)


def _implements(cls: type, name: str) -> bool:
    """Whether ``cls`` has its own ``name``, not the default of the base classes here."""
    for klass in cls.__mro__:
        if name in vars(klass):
            return klass not in (BaseVectorStore, CollectionManageableVectorStore)
    return False

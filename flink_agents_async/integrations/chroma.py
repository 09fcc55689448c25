"""``ChromaVectorStore``: upstream Flink Agents' Chroma vector store
(``flink_agents.integrations.vector_stores.chroma.chroma_vector_store``), async-native
(``pip install 'flink-agents-async[chroma]'``).

The fields and defaults are upstream's: ``persist_directory`` (a ``PersistentClient``),
``host`` / ``port`` (an ``HttpClient``), ``api_key`` with ``tenant`` / ``database`` (a
``CloudClient``), none of them (an in-memory ``EphemeralClient``), ``client_settings``,
``collection`` (default ``flink_agents_chroma_collection``), ``collection_metadata`` (used when
a collection is created) and ``auto_create_collection`` (0.3; 0.2 spelt it
``create_collection_if_not_exists``, accepted too). As upstream: ``score`` is Chroma's distance
(smaller is closer; the collection's ``hnsw:space``, L2 unless ``collection_metadata`` says
otherwise), ``add`` and ``query`` create a missing collection unless ``auto_create_collection``
is off, ``get`` / ``delete`` / ``update`` of a missing collection fail, and a native ``where`` /
``where_document`` may be passed as keyword arguments.

What differs from upstream, and why:

* every Chroma call runs in a worker thread (``anyio.to_thread``), so the event loop never
  waits on Chroma; embedded clients (persistent, in-memory) are used under one lock per store,
  remote ones concurrently;
* ``add`` replaces a stored id (a replayed add does not fail or duplicate), and like ``update``
  it replaces metadata whole: Chroma's ``upsert`` / ``update`` would merge the old keys in;
* Chroma's own embedding function is never used (it would download an ONNX model at run
  time): collections are opened with ``embedding_function=None`` and every call passes its
  vectors, embedded by the store's ``embedding_model``;
* ``update`` raises ``KeyError`` for ids that are not stored, changing nothing (Chroma ignores
  them);
* a missing collection raises ``CollectionNotFoundError`` (a Chroma ``NotFoundError`` too, as
  upstream's is) naming the store and the collection,
  a vector of the wrong size ``ValueError`` naming both sizes; empty metadata is sent as
  ``None`` (Chroma refuses an empty dict).
"""

from __future__ import annotations

import contextlib
import functools
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import anyio.to_thread
from pydantic import Field, PrivateAttr, model_validator

from ..llm.vector_stores import (
    CollectionManageableVectorStore,
    CollectionNotFoundError,
    Document,
    check_filters,
)

try:
    import chromadb
    from chromadb.config import Settings
    from chromadb.errors import InvalidArgumentError, NotFoundError
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "ChromaVectorStore needs the chromadb package: pip install 'flink-agents-async[chroma]'"
    ) from error

__all__ = ["DEFAULT_COLLECTION", "ChromaCollectionNotFoundError", "ChromaVectorStore"]

DEFAULT_COLLECTION = "flink_agents_chroma_collection"


class ChromaCollectionNotFoundError(CollectionNotFoundError, NotFoundError):
    """A missing collection: this library's ``CollectionNotFoundError``, and Chroma's own
    ``NotFoundError`` too, which upstream's store lets through (and its users catch)."""


# Chroma refuses more records than this in one add.
_MAX_CHUNK_SIZE = 41665
# Chroma's embedded clients share a process-wide system whose first start is not
# synchronised: clients are made one at a time.
_CLIENT_CREATION_LOCK = threading.Lock()

T = TypeVar("T")


class ChromaVectorStore(CollectionManageableVectorStore):
    """A Chroma collection searched by distance; see the module's docstring."""

    persist_directory: str | None = Field(
        default=None, description="Directory for persistent storage; None: in memory."
    )
    host: str | None = Field(default=None, description="Host of a Chroma server.")
    port: int | None = Field(default=8000, description="Port of a Chroma server.")
    api_key: str | None = Field(default=None, description="API key for Chroma Cloud.")
    client_settings: Settings | None = Field(default=None, description="Chroma client settings.")
    tenant: str = Field(default="default_tenant", description="Chroma tenant.")
    database: str = Field(default="default_database", description="Chroma database.")
    collection: str = Field(default=DEFAULT_COLLECTION, description="The default collection.")
    collection_metadata: dict[str, Any] = Field(
        default_factory=dict, description="Metadata of collections this store creates."
    )
    auto_create_collection: bool = Field(
        default=True, description="Whether add and query create a missing collection."
    )

    _client: Any = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="before")
    @classmethod
    def _upstream_02_spelling(cls, data: Any) -> Any:
        """Upstream 0.2's ``create_collection_if_not_exists`` flag is ``auto_create_collection``
        (the name is this class's method's)."""
        if isinstance(data, dict) and "create_collection_if_not_exists" in data:
            data = dict(data)
            flag = data.pop("create_collection_if_not_exists")
            data.setdefault("auto_create_collection", flag)
        if isinstance(data, dict) and data.get("collection_metadata") is None:
            data.pop("collection_metadata", None)
        return data

    @property
    def store_kwargs(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "collection_metadata": self.collection_metadata,
            "auto_create_collection": self.auto_create_collection,
        }

    # -- the client ---------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The Chroma client, made on first use: cloud, else server, else persistent, else in
        memory (upstream's order)."""
        if self._client is not None:
            return self._client
        with _CLIENT_CREATION_LOCK:
            if self._client is None:
                self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        if self.api_key is not None:
            return chromadb.CloudClient(
                tenant=self.tenant, database=self.database, api_key=self.api_key
            )
        if self.host is not None:
            return chromadb.HttpClient(
                host=self.host,
                port=self.port or 8000,
                settings=self.client_settings or Settings(),
                tenant=self.tenant,
                database=self.database,
            )
        if self.persist_directory is not None:
            return chromadb.PersistentClient(
                path=self.persist_directory,
                settings=self.client_settings or Settings(),
                tenant=self.tenant,
                database=self.database,
            )
        return chromadb.EphemeralClient(
            settings=self.client_settings or Settings(),
            tenant=self.tenant,
            database=self.database,
        )

    def _embedded(self) -> bool:
        return self.api_key is None and self.host is None

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """The store's lock around a call to an embedded client, nothing around a remote one."""
        if self._embedded():
            with self._lock:
                yield
        else:
            yield

    async def _call(self, name: str, function: Callable[[], T]) -> T:
        """``function()`` in a worker thread; Chroma's errors become ours, naming the
        collection ``name``."""

        def guarded() -> T:
            with self._guard():
                try:
                    return function()
                except NotFoundError as error:
                    raise ChromaCollectionNotFoundError(
                        f"{type(self).__name__}: collection {name!r} does not exist ({error})"
                    ) from error
                except InvalidArgumentError as error:
                    raise ValueError(
                        f"{type(self).__name__}: collection {name!r}: {error}"
                    ) from error

        return await anyio.to_thread.run_sync(guarded)

    def _collection(self, name: str, create: bool, metadata: dict[str, Any] | None) -> Any:
        if create:
            return self.client.get_or_create_collection(
                name=name, metadata=metadata or None, embedding_function=None
            )
        return self.client.get_collection(name=name, embedding_function=None)

    def _resolve(
        self, collection_name: str | None, kwargs: dict[str, Any]
    ) -> tuple[str, Callable[[], Any]]:
        """The collection for add and query: created when missing unless
        ``auto_create_collection`` (the store's, or the call's) is off."""
        name = collection_name or self.collection
        create = kwargs.get("auto_create_collection", self.auto_create_collection)
        metadata = kwargs.get("collection_metadata", self.collection_metadata)
        return name, functools.partial(self._collection, name, create, metadata)

    # -- collections --------------------------------------------------------------------------

    async def acreate_collection_if_not_exists(self, name: str, **kwargs: Any) -> None:
        """Create collection ``name`` unless it exists (``metadata=``: Chroma's collection
        metadata, e.g. ``{"hnsw:space": "cosine"}``)."""
        metadata = kwargs.get("metadata")
        await self._call(name, lambda: self._collection(name, True, metadata))

    async def adelete_collection(self, name: str) -> None:
        """Delete collection ``name`` and its documents."""
        await self._call(name, lambda: self.client.delete_collection(name=name))

    # -- documents ----------------------------------------------------------------------------

    async def _aadd_embedding(
        self, *, documents: list[Document], collection_name: str | None = None, **kwargs: Any
    ) -> list[str]:
        name, open_collection = self._resolve(collection_name, kwargs)
        ids = [document.id or str(uuid.uuid4()) for document in documents]

        def add() -> None:
            collection = open_collection()
            for start in range(0, len(documents), _MAX_CHUNK_SIZE):
                chunk = documents[start : start + _MAX_CHUNK_SIZE]
                _replace(collection, ids[start : start + _MAX_CHUNK_SIZE], chunk)

        if documents:
            await self._call(name, add)
        return ids

    async def _aupdate_embedding(
        self, *, documents: list[Document], collection_name: str | None = None, **kwargs: Any
    ) -> None:
        name = collection_name or self.collection

        ids = [str(document.id) for document in documents]

        def update() -> None:
            collection = self.client.get_collection(name=name, embedding_function=None)
            stored = set(collection.get(ids=ids, include=[])["ids"])
            missing = [doc_id for doc_id in ids if doc_id not in stored]
            if missing:
                raise KeyError(
                    f"{type(self).__name__}: collection {name!r} has no documents with ids "
                    f"{missing!r} to update"
                )
            _replace(collection, ids, documents)

        await self._call(name, update)

    async def _aquery_embedding(
        self,
        embedding: list[float],
        limit: int = 10,
        collection_name: str | None = None,
        filters: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        name, open_collection = self._resolve(collection_name, kwargs)
        where = _where(filters, kwargs, type(self).__name__)

        def query() -> dict[str, Any]:
            result: dict[str, Any] = open_collection().query(
                query_embeddings=[embedding],
                n_results=limit,
                where=where,
                where_document=kwargs.get("where_document"),
                include=["documents", "metadatas", "distances"],
            )
            return result

        result = await self._call(name, query)
        ids = result["ids"][0] if result.get("ids") else []
        contents = (result.get("documents") or [[]])[0] or []
        metadatas = (result.get("metadatas") or [[]])[0] or [None] * len(ids)
        distances = (result.get("distances") or [[]])[0] or [None] * len(ids)
        return [
            Document(id=doc_id, content=content or "", metadata=dict(metadata or {}), score=score)
            for doc_id, content, metadata, score in zip(
                ids, contents, metadatas, distances, strict=False
            )
        ]

    async def aget(
        self,
        ids: str | list[str] | None = None,
        collection_name: str | None = None,
        filters: dict[str, Any] | None = None,
        limit: int | None = 100,
        **kwargs: Any,
    ) -> list[Document]:
        """Documents by id, or up to ``limit`` matching ``filters``."""
        name = collection_name or self.collection
        where = _where(filters, kwargs, type(self).__name__)
        wanted = [ids] if isinstance(ids, str) else ids

        def get() -> dict[str, Any]:
            result: dict[str, Any] = self.client.get_collection(
                name=name, embedding_function=None
            ).get(
                ids=wanted,
                where=where,
                limit=limit,
                offset=kwargs.get("offset"),
                where_document=kwargs.get("where_document"),
                include=["documents", "metadatas"],
            )
            return result

        result = await self._call(name, get)
        found = {
            doc_id: Document(id=doc_id, content=content or "", metadata=dict(metadata or {}))
            for doc_id, content, metadata in zip(
                result["ids"],
                result.get("documents") or [],
                result.get("metadatas") or [None] * len(result["ids"]),
                strict=False,
            )
        }
        order = wanted if wanted is not None else list(found)
        return [found[doc_id] for doc_id in order if doc_id in found]

    async def adelete(
        self,
        ids: str | list[str] | None = None,
        collection_name: str | None = None,
        filters: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Delete documents by id, or those matching ``filters``, or (neither) all."""
        name = collection_name or self.collection
        where = _where(filters, kwargs, type(self).__name__)
        where_document = kwargs.get("where_document")
        wanted = [ids] if isinstance(ids, str) else ids

        def delete() -> None:
            collection = self.client.get_collection(name=name, embedding_function=None)
            selected = wanted
            if selected is None and where is None and where_document is None:
                # Chroma refuses a delete without a selector: name every id.
                selected = collection.get(include=[])["ids"]
                if not selected:
                    return
            if selected is not None and not selected:
                return
            collection.delete(ids=selected, where=where, where_document=where_document)

        await self._call(name, delete)


def _replace(collection: Any, ids: list[str], documents: list[Document]) -> None:
    """Store ``documents`` under ``ids`` in one upsert, replacing what is stored under them:
    Chroma's upsert merges the old metadata's keys into the new, so the old keys the new
    metadata lacks are sent as None (which removes them). A repeated id: the last one wins."""
    latest = dict(zip(ids, documents, strict=True))
    ids = list(latest)
    documents = list(latest.values())
    stored = collection.get(ids=ids, include=["metadatas"])
    old_keys = {
        doc_id: set(metadata or {})
        for doc_id, metadata in zip(stored["ids"], stored.get("metadatas") or [], strict=False)
    }
    metadatas: list[Any] = []
    for doc_id, document in zip(ids, documents, strict=True):
        removed = {key: None for key in old_keys.get(doc_id, set()) - set(document.metadata)}
        metadatas.append({**document.metadata, **removed} or None)
    collection.upsert(
        ids=ids,
        documents=[document.content for document in documents],
        embeddings=[document.embedding for document in documents],
        metadatas=None if all(metadata is None for metadata in metadatas) else metadatas,
    )


def _where(
    filters: dict[str, Any] | None, kwargs: dict[str, Any], store: str
) -> dict[str, Any] | None:
    """The unified DSL's ``filters`` as Chroma's ``where`` (several fields under ``$and``), or
    the native ``where`` keyword argument when there are no filters."""
    if not filters:
        native: dict[str, Any] | None = kwargs.get("where")
        return native
    check_filters(filters, store)
    if len(filters) > 1:
        return {"$and": [{name: value} for name, value in filters.items()]}
    return dict(filters)

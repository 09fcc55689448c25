"""Long-term memory kept in a vector store: what ``ctx.long_term_memory`` is.

Every item is a ``Document`` of the configured vector store (one collection for all keys),
tagged in its metadata with the key (``ltm_key``), the memory set (``ltm_set``) and the input
whose run wrote it (``ltm_run``: a tag made by a durable call when the run first asks for
``ctx.long_term_memory``, so an input has the same tag whenever it runs again, after a crash or
as a retry, on either host). Reads filter on key and set, so a key sees only its own memory.

How writes stay exact across failures and crashes, without a transaction spanning the journal
and the store:

* ids are deterministic (the key, the tag, the set, the text and its occurrence in the run), and
  a store ``add`` of an existing id replaces it: a run that runs again writes the same items
  instead of adding copies;
* an input that fails for good undoes its writes (every item tagged with its tag), so a failed
  run adds nothing, whichever of its attempts wrote; a run that is retried undoes nothing, since
  the retry replays the writes made in durable calls and makes the others again;
* a write made inside a durable call (upstream's ``ctx.durable_execute_async(memory_set.add,
  ...)``) is not made again on replay: the item the first attempt wrote is still there.

What is not covered: a crash after an input failed for good and before its undo finished leaves
its items (their ``ltm_run`` tells which), and compaction deletes the items it summarises at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import PrivateAttr

from .errors import ResourceError
from .llm.chat_models import BaseChatModelSetup
from .llm.embedding_models import BaseEmbeddingModelSetup
from .llm.messages import ChatMessage, MessageRole
from .llm.prompts import Prompt
from .llm.remote import run_async_from_sync
from .llm.vector_stores import (
    BaseVectorStore,
    CollectionNotFoundError,
    Document,
    VectorStoreQuery,
)
from .logging import library_logger
from .long_term_memory import (
    BaseLongTermMemory,
    CompactionConfig,
    DatetimeRange,
    ItemType,
    LongTermMemoryOptions,
    MemorySet,
    MemorySetItem,
)
from .resources import ResourceNotFoundError, ResourceType

if TYPE_CHECKING:
    from .config import ReadableConfiguration
    from .resources import ResourceCache

__all__ = ["LongTermMemoryProvider", "VectorStoreLongTermMemory", "new_run_tag"]

logger = library_logger()
T = TypeVar("T")

# The metadata names this module keeps its own facts under (users' metadata may not use them).
_RESERVED = (
    "ltm_key", "ltm_set", "ltm_run", "ltm_id", "ltm_compacted", "ltm_created", "ltm_message",
    "ltm_span",
)  # fmt: skip
DEFAULT_COMPACTION_PROMPT = (
    "Summarise these memories into {limit} short statement(s) that keep every fact worth "
    "remembering, one per line, nothing else:\n{items}"
)


def new_run_tag() -> str:
    """A new tag for one input's long-term memory writes (made in a durable call, so the input
    gets the same tag whenever it runs again)."""
    return uuid.uuid4().hex


@dataclass
class LongTermMemoryProvider:
    """Makes each run's long-term memory: which store, embedding and chat model to use (from
    ``LongTermMemoryOptions``), and the memory sets declared so far, per key."""

    resources: ResourceCache
    store_name: str | None
    embedding_model: str | None = None
    chat_model: str | None = None
    sets: dict[tuple[str, str], MemorySet] = field(default_factory=dict)

    @classmethod
    def from_config(
        cls, config: ReadableConfiguration, resources: ResourceCache
    ) -> LongTermMemoryProvider:
        store = config.get(LongTermMemoryOptions.EXTERNAL_VECTOR_STORE_NAME) or config.get(
            LongTermMemoryOptions.Mem0.VECTOR_STORE
        )
        return cls(
            resources,
            store,
            config.get(LongTermMemoryOptions.Mem0.EMBEDDING_MODEL_SETUP),
            config.get(LongTermMemoryOptions.Mem0.CHAT_MODEL_SETUP),
        )

    def for_run(self, key: Hashable, tag: str) -> VectorStoreLongTermMemory:
        """The long-term memory of ``key`` as the run whose writes are tagged ``tag`` sees
        it."""
        memory = VectorStoreLongTermMemory()
        memory._provider = self
        memory._key = repr(key)
        memory._run = tag
        return memory

    def store(self) -> BaseVectorStore:
        if self.store_name is None:
            raise ResourceError(
                "ctx.long_term_memory needs a vector store: declare one (@vector_store) and name "
                f"it in {LongTermMemoryOptions.EXTERNAL_VECTOR_STORE_NAME.key!r} (or "
                f"{LongTermMemoryOptions.Mem0.VECTOR_STORE.key!r})"
            )
        try:
            store = self.resources.get(self.store_name, ResourceType.VECTOR_STORE)
        except ResourceNotFoundError as error:
            raise ResourceNotFoundError(
                f"long-term memory names the vector store {self.store_name!r}, which is not "
                f"declared: {error}"
            ) from None
        if not isinstance(store, BaseVectorStore):
            raise ResourceError(
                f"long-term memory: resource {self.store_name!r} is a {type(store).__name__}, "
                "not a vector store"
            )
        return store

    def embedder(self) -> BaseEmbeddingModelSetup | None:
        """The embedding model named in the configuration (None: the store's own)."""
        if self.embedding_model is None:
            return None
        model = self.resources.get(self.embedding_model, ResourceType.EMBEDDING_MODEL)
        if not isinstance(model, BaseEmbeddingModelSetup):
            raise ResourceError(
                f"long-term memory: resource {self.embedding_model!r} is a "
                f"{type(model).__name__}, not an embedding model setup"
            )
        return model


class VectorStoreLongTermMemory(BaseLongTermMemory):
    """One key's long-term memory, as one run sees it (see the module's docstring)."""

    _provider: LongTermMemoryProvider = PrivateAttr()
    _key: str = PrivateAttr()
    _run: str = PrivateAttr()
    _occurrences: Counter[tuple[str, str]] = PrivateAttr(default_factory=Counter)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _wrote: bool = PrivateAttr(default=False)
    _undone: bool = PrivateAttr(default=False)

    # -- memory sets ------------------------------------------------------------------------

    def get_or_create_memory_set(
        self,
        name: str,
        item_type: Any = str,
        capacity: int | None = None,
        compaction_config: CompactionConfig | None = None,
    ) -> MemorySet:
        slot = (self._key, name)
        with self._lock:
            memory_set = self._provider.sets.get(slot)
            if memory_set is None:
                memory_set = MemorySet(
                    name=name,
                    item_type=item_type,
                    capacity=capacity,
                    compaction_config=compaction_config,
                )
                self._provider.sets[slot] = memory_set
        return memory_set.model_copy(update={"ltm": self})

    def get_memory_set(self, name: str) -> MemorySet:
        return self.get_or_create_memory_set(name)

    def delete_memory_set(self, name: str) -> bool:
        return self._blocking(lambda: self.adelete_memory_set(name))

    async def adelete_memory_set(self, name: str) -> bool:
        """``delete_memory_set`` for async actions."""
        memory_set = self.get_memory_set(name)
        existed = await self.asize(memory_set) > 0
        with self._lock:
            existed = self._provider.sets.pop((self._key, name), None) is not None or existed
        self._wrote = True
        await _delete(self._provider.store(), filters=self._scope(memory_set))
        return existed

    # -- items ------------------------------------------------------------------------------

    async def aadd(
        self,
        memory_set: MemorySet,
        memory_items: ItemType | list[ItemType],
        ids: str | list[str] | None = None,
        metadatas: dict[str, Any] | list[dict[str, Any]] | None = None,
    ) -> list[str]:
        items = memory_items if isinstance(memory_items, list) else [memory_items]
        given_ids = [ids] if isinstance(ids, str) else ids
        extra = _per_item(metadatas, len(items), memory_set.name)
        if given_ids is not None and len(given_ids) != len(items):
            raise ValueError(
                f"memory set {memory_set.name!r}: {len(given_ids)} ids for {len(items)} items"
            )
        now = datetime.now(UTC)
        documents = []
        item_ids = []
        for index, item in enumerate(items):
            content, kept = _stored_value(item, memory_set)
            item_id = given_ids[index] if given_ids else self._new_id(memory_set.name, content)
            item_ids.append(item_id)
            metadata = {**extra[index], **kept, **self._scope(memory_set)}
            metadata.update(ltm_run=self._run, ltm_id=item_id, ltm_created=now.isoformat())
            metadata["ltm_compacted"] = False
            documents.append(
                Document(
                    id=self._doc_id(memory_set.name, item_id), content=content, metadata=metadata
                )
            )
        await self._embed(documents)
        self._wrote = True  # before the write: an interrupted write is undone too
        await self._provider.store().aadd(documents)
        # Upstream compacts a set once it holds ``capacity`` items (``size >= capacity``).
        if memory_set.capacity is not None and await self.asize(memory_set) >= memory_set.capacity:
            await self._compact(memory_set)
        return item_ids

    async def aget(
        self,
        memory_set: MemorySet,
        ids: str | list[str] | None = None,
        filters: dict[str, Any] | None = None,
        limit: int | None = 100,
    ) -> Any:
        store = self._provider.store()
        if ids is not None:
            wanted = [ids] if isinstance(ids, str) else list(ids)
            documents = await _get(
                store,
                ids=[self._doc_id(memory_set.name, item_id) for item_id in wanted],
                filters=self._scope(memory_set),
            )
            items = [self._item(memory_set, document) for document in documents]
            return items[0] if isinstance(ids, str) and items else items
        documents = await _get(
            store, filters={**(filters or {}), **self._scope(memory_set)}, limit=limit
        )
        items = [self._item(memory_set, document) for document in documents]
        items.sort(key=lambda item: item.created_at or datetime.min.replace(tzinfo=UTC))
        return items

    async def asearch(
        self,
        memory_set: MemorySet,
        query: str,
        limit: int,
        filters: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[MemorySetItem]:
        extra_args = dict(kwargs)
        embedder = self._provider.embedder()
        if embedder is not None:
            extra_args["query_embedding"] = await embedder.aembed(query)
        documents = await _query(
            self._provider.store(),
            VectorStoreQuery(
                query_text=query,
                limit=limit,
                filters={**(filters or {}), **self._scope(memory_set)},
                extra_args=extra_args,
            ),
        )
        return [self._item(memory_set, document) for document in documents]

    async def adelete(self, memory_set: MemorySet, ids: str | list[str] | None = None) -> None:
        self._wrote = True
        store = self._provider.store()
        if ids is None:
            await _delete(store, filters=self._scope(memory_set))
            return
        wanted = [ids] if isinstance(ids, str) else list(ids)
        await _delete(store, ids=[self._doc_id(memory_set.name, item_id) for item_id in wanted])

    async def asize(self, memory_set: MemorySet) -> int:
        store = self._provider.store()
        documents = await _get(store, filters=self._scope(memory_set), limit=None)
        return len(documents)

    # -- upstream's sync methods ------------------------------------------------------------

    def add(
        self,
        memory_set: MemorySet,
        memory_items: ItemType | list[ItemType],
        ids: str | list[str] | None = None,
        metadatas: dict[str, Any] | list[dict[str, Any]] | None = None,
    ) -> list[str]:
        return self._blocking(lambda: self.aadd(memory_set, memory_items, ids, metadatas))

    def get(
        self,
        memory_set: MemorySet,
        ids: str | list[str] | None = None,
        filters: dict[str, Any] | None = None,
        limit: int | None = 100,
    ) -> Any:
        return self._blocking(lambda: self.aget(memory_set, ids, filters, limit))

    def search(
        self,
        memory_set: MemorySet,
        query: str,
        limit: int,
        filters: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[MemorySetItem]:
        return self._blocking(lambda: self.asearch(memory_set, query, limit, filters, **kwargs))

    def delete(self, memory_set: MemorySet, ids: str | list[str] | None = None) -> None:
        self._blocking(lambda: self.adelete(memory_set, ids))

    def size(self, memory_set: MemorySet) -> int:
        return self._blocking(lambda: self.asize(memory_set))

    # -- the run's end ----------------------------------------------------------------------

    @property
    def wrote(self) -> bool:
        """Whether this run wrote (or tried to write) to the store."""
        return self._wrote

    @property
    def undone(self) -> bool:
        """Whether ``undo`` was started."""
        return self._undone

    async def undo(self) -> None:
        """Forget every item this run (or a crashed attempt of its input) wrote."""
        self._undone = True
        await _delete(self._provider.store(), filters={"ltm_key": self._key, "ltm_run": self._run})

    # -- helpers ----------------------------------------------------------------------------

    def _scope(self, memory_set: MemorySet) -> dict[str, Any]:
        return {"ltm_key": self._key, "ltm_set": memory_set.name}

    def _doc_id(self, set_name: str, item_id: str) -> str:
        return _digest(f"{self._key}\x00{set_name}\x00{item_id}")

    def _new_id(self, set_name: str, content: str) -> str:
        with self._lock:
            self._occurrences[(set_name, content)] += 1
            occurrence = self._occurrences[(set_name, content)]
        return _digest(f"{self._key}\x00{self._run}\x00{set_name}\x00{content}\x00{occurrence}")

    async def _embed(self, documents: list[Document]) -> None:
        embedder = self._provider.embedder()
        if embedder is None or not documents:
            return
        vectors = await embedder.aembed([document.content for document in documents])
        for document, vector in zip(documents, vectors, strict=True):
            document.embedding = list(vector)

    def _item(self, memory_set: MemorySet, document: Document) -> MemorySetItem:
        metadata = dict(document.metadata)
        created = _parse_time(metadata.get("ltm_created"))
        compacted = bool(metadata.get("ltm_compacted"))
        value: Any = document.content
        message = metadata.pop("ltm_message", None)
        if message is not None:
            value = ChatMessage.model_validate_json(message)
        span = metadata.pop("ltm_span", None)
        created_time: datetime | DatetimeRange | None = created
        if span is not None:
            created_time = _parse_span(span)
        item_id = str(metadata.get("ltm_id", document.id))
        for name in _RESERVED:
            metadata.pop(name, None)
        return MemorySetItem(
            memory_set_name=memory_set.name,
            id=item_id,
            value=value,
            compacted=compacted,
            created_time=created_time,
            last_accessed_time=created,
            created_at=created,
            updated_at=created,
            additional_metadata=metadata or None,
        )

    async def _compact(self, memory_set: MemorySet) -> None:
        """Summarise the set's items with its chat model into ``limit`` compacted items."""
        config = memory_set.compaction_config
        model_name = config.model if config is not None else self._provider.chat_model
        if model_name is None:
            raise ResourceError(
                f"memory set {memory_set.name!r} reached its capacity of {memory_set.capacity} "
                "and has no compaction model: give it a CompactionConfig(model=...) or set "
                f"{LongTermMemoryOptions.Mem0.CHAT_MODEL_SETUP.key!r}"
            )
        limit = config.limit if config is not None else 1
        items = await self.aget(memory_set, limit=None)
        setup = self._provider.resources.get(model_name, ResourceType.CHAT_MODEL)
        if not isinstance(setup, BaseChatModelSetup):
            raise ResourceError(
                f"memory set {memory_set.name!r}: compaction model {model_name!r} is a "
                f"{type(setup).__name__}, not a chat model setup"
            )
        text = "\n".join(f"- {_as_text(item.value)}" for item in items)
        prompt = self._compaction_prompt(config)
        answer = await setup.achat(
            [ChatMessage(role=MessageRole.USER, content=prompt.format(items=text, limit=limit))]
        )
        summaries = [line.strip("- ").strip() for line in answer.content.splitlines()]
        summaries = [line for line in summaries if line][:limit] or [answer.content.strip()]
        times = [item.created_at for item in items if item.created_at is not None]
        span = DatetimeRange(start=min(times), end=max(times)) if times else None
        now = datetime.now(UTC).isoformat()
        documents = [
            Document(
                id=self._doc_id(memory_set.name, item_id),
                content=summary,
                metadata={
                    **self._scope(memory_set),
                    "ltm_run": self._run,
                    "ltm_id": item_id,
                    "ltm_created": now,
                    "ltm_compacted": True,
                    **({"ltm_span": span.model_dump_json()} if span is not None else {}),
                    **_as_item_type(summary, memory_set),
                },
            )
            for summary in summaries
            for item_id in [self._new_id(memory_set.name, "\x01compacted\x01" + summary)]
        ]
        await self._embed(documents)
        await _delete(
            self._provider.store(), ids=[self._doc_id(memory_set.name, item.id) for item in items]
        )
        await self._provider.store().aadd(documents)

    def _compaction_prompt(self, config: CompactionConfig | None) -> str:
        prompt = config.prompt if config is not None else None
        if isinstance(prompt, str):
            found = self._provider.resources.get(prompt, ResourceType.PROMPT)
            prompt = found if isinstance(found, Prompt) else None
        if isinstance(prompt, Prompt):
            return prompt.format_string(items="{items}", limit="{limit}")
        return DEFAULT_COMPACTION_PROMPT

    def _blocking(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run an async method for a sync caller: on the runtime's loop from its thread pool
        (``ctx.durable_execute_async(memory_set.add, ...)``), else on a loop of its own; on a
        thread whose loop is running (a sync action), that loop of its own is in a helper
        thread, which blocks the caller's loop: async actions should await ``aadd``,
        ``asearch``..."""
        release = self._provider.resources.release_loop
        if not _loop_running_here():
            return run_async_from_sync(make, release)
        with concurrent.futures.ThreadPoolExecutor(1, "long-term-memory") as helper:
            return helper.submit(run_async_from_sync, make, release).result()


def _loop_running_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


# A memory nobody wrote yet has no collection in a store that makes collections on first add:
# reading or deleting from it finds nothing, instead of failing.


async def _get(store: BaseVectorStore, **arguments: Any) -> list[Document]:
    try:
        return await store.aget(**arguments)
    except CollectionNotFoundError:
        return []


async def _query(store: BaseVectorStore, query: VectorStoreQuery) -> list[Document]:
    try:
        return (await store.aquery(query)).documents
    except CollectionNotFoundError:
        return []


async def _delete(store: BaseVectorStore, **arguments: Any) -> None:
    with contextlib.suppress(CollectionNotFoundError):
        await store.adelete(**arguments)


def _per_item(metadatas: Any, count: int, set_name: str) -> list[dict[str, Any]]:
    """Each item's own metadata: none, one dict for every item, or a dict per item."""
    if metadatas is None:
        metadatas = [{}] * count
    elif isinstance(metadatas, dict):
        metadatas = [metadatas] * count
    elif len(metadatas) != count:
        raise ValueError(f"memory set {set_name!r}: {len(metadatas)} metadatas for {count} items")
    reserved = sorted({name for metadata in metadatas for name in metadata if name in _RESERVED})
    if reserved:
        raise ValueError(f"memory set {set_name!r}: metadata names {reserved} are reserved")
    return [dict(metadata) for metadata in metadatas]


def _stored_value(item: Any, memory_set: MemorySet) -> tuple[str, dict[str, Any]]:
    """The text a store embeds for ``item``, and metadata to rebuild it."""
    if isinstance(item, ChatMessage):
        return item.content, {"ltm_message": item.model_dump_json()}
    if isinstance(item, str):
        if memory_set.item_type is ChatMessage:
            raise TypeError(f"memory set {memory_set.name!r} holds ChatMessage items, not str")
        return item, {}
    raise TypeError(
        f"memory set {memory_set.name!r} holds str or ChatMessage items, not {type(item).__name__}"
    )


def _as_item_type(summary: str, memory_set: MemorySet) -> dict[str, Any]:
    """Metadata that makes a summary an item of the set's type: in a set of ``ChatMessage``
    items, a user message (as upstream's compaction makes it)."""
    if memory_set.item_type is ChatMessage:
        message = ChatMessage(role=MessageRole.USER, content=summary)
        return {"ltm_message": message.model_dump_json()}
    return {}


def _as_text(value: Any) -> str:
    return value.content if isinstance(value, ChatMessage) else str(value)


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _parse_span(text: str) -> DatetimeRange:
    """A compacted item's time span, its times in ``datetime.timezone`` zones: pydantic's own
    JSON parsing gives its ``TzInfo``, which the journal refuses, and ``get`` inside a durable
    call (upstream's pattern) would then fail."""
    raw = json.loads(text)
    return DatetimeRange(
        start=datetime.fromisoformat(raw["start"]), end=datetime.fromisoformat(raw["end"])
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]

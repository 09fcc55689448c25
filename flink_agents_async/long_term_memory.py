"""Long-term memory: named sets of remembered items per key, searched by meaning.

The names are upstream Flink Agents' (``flink_agents.api.memory.long_term_memory``), and one
API serves agents written for each upstream version:

* 0.2's ``get_or_create_memory_set(name, item_type, capacity, compaction_config)``, a set's
  ``size``, ``add(items, ids)``, and ``CompactionConfig``: once an ``add`` fills a set to
  ``capacity`` items, they are summarised by a chat model into ``limit`` compacted items;
* 0.3's and main's ``get_memory_set(name)`` (made on first use), ``add(items, metadatas)``,
  ``get(ids, filters, limit)``, ``search(query, limit, filters)`` and ``delete(ids)``.

Each method has an async twin (``aadd``, ``aget``, ``asearch``, ``adelete``, ``asize``) for
async actions; the sync ones also work inside ``ctx.durable_execute_async(memory_set.add, ...)``
(upstream's pattern), where they run in the runtime's thread pool.

``ctx.long_term_memory`` is the running key's memory (``VectorStoreLongTermMemory``, in
``vector_store_memory``), configured with ``LongTermMemoryOptions``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from .config import ConfigOption
from .llm.messages import ChatMessage
from .llm.prompts import Prompt

__all__ = [
    "BaseLongTermMemory",
    "CompactionConfig",
    "DatetimeRange",
    "ItemType",
    "LongTermMemoryBackend",
    "LongTermMemoryOptions",
    "MemorySet",
    "MemorySetItem",
]

ItemType = str | ChatMessage
"""What a memory set holds: text, or chat messages."""


class CompactionConfig(BaseModel):
    """How a full memory set is compacted: the chat model setup that summarises (``model``, a
    resource name), an optional prompt (a ``Prompt`` or its resource name; it gets the items as
    ``{items}``), and how many summaries to make (``limit``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str
    prompt: str | Prompt | None = None
    limit: int = Field(default=1, ge=1)


class LongTermMemoryBackend(Enum):
    """Where long-term memory is kept: a vector store declared on the agent."""

    EXTERNAL_VECTOR_STORE = "external_vector_store"


class LongTermMemoryOptions:
    """Configuration of long-term memory (upstream 0.2's keys, and 0.3's under ``Mem0``)."""

    BACKEND = ConfigOption("long-term-memory.backend", LongTermMemoryBackend, None)
    """The backend; only ``EXTERNAL_VECTOR_STORE`` exists (and is the default)."""

    EXTERNAL_VECTOR_STORE_NAME = ConfigOption(
        "long-term-memory.external-vector-store-name", str, None
    )
    """The vector store resource that keeps the memory."""

    ASYNC_COMPACTION = ConfigOption("long-term-memory.async-compaction", bool, True)
    """Accepted for upstream 0.2; compaction runs within the ``add`` that fills a set here, so
    that it is journaled with the run."""

    class Mem0:
        """Upstream 0.3's keys (its mem0 backend); here they name the same parts."""

        CHAT_MODEL_SETUP = ConfigOption("long-term-memory.mem0.chat-model-setup", str, None)
        """The chat model setup that compacts a full set (when no set names one)."""

        EMBEDDING_MODEL_SETUP = ConfigOption(
            "long-term-memory.mem0.embedding-model-setup", str, None
        )
        """The embedding model setup (else the vector store's own)."""

        VECTOR_STORE = ConfigOption("long-term-memory.mem0.vector-store", str, None)
        """The vector store resource that keeps the memory."""


class DatetimeRange(BaseModel):
    """The time span of the items a compacted item summarises."""

    start: datetime
    end: datetime


class MemorySetItem(BaseModel):
    """One remembered item: its set, id and value, whether it is a compaction summary, when it
    was made, and its metadata. (0.2 names the times ``created_time`` /
    ``last_accessed_time``, 0.3 ``created_at`` / ``updated_at``: both are filled.)"""

    memory_set_name: str
    id: str
    value: Any
    compacted: bool = False
    created_time: datetime | DatetimeRange | None = None
    last_accessed_time: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    additional_metadata: dict[str, Any] | None = None


class MemorySet(BaseModel):
    """A named set of items of one key: text (``item_type=str``) or ``ChatMessage``, with an
    optional ``capacity``: reaching it, it is compacted as ``compaction_config`` says."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    item_type: Any = str
    capacity: int | None = Field(default=None, ge=1)
    compaction_config: CompactionConfig | None = None
    ltm: Any = Field(default=None, exclude=True)

    @field_validator("item_type", mode="before")
    @classmethod
    def _known_item_type(cls, value: Any) -> Any:
        if isinstance(value, Mapping):  # 0.2's serialised form: {"module": ..., "name": ...}
            value = {"str": str, "ChatMessage": ChatMessage}.get(str(value.get("name")), value)
        if value not in (str, ChatMessage):
            raise ValueError(f"a memory set holds str or ChatMessage items, not {value!r}")
        return value

    @field_serializer("item_type")
    def _item_type_name(self, item_type: Any) -> dict[str, str]:
        return {"module": item_type.__module__, "name": item_type.__name__}

    def _memory(self) -> BaseLongTermMemory:
        if self.ltm is None:
            raise RuntimeError(
                f"memory set {self.name!r} is not attached to a long-term memory: get it from "
                "ctx.long_term_memory"
            )
        memory: BaseLongTermMemory = self.ltm
        return memory

    @property
    def size(self) -> int:
        """How many items the set holds."""
        return self._memory().size(self)

    def add(
        self,
        items: ItemType | list[ItemType],
        ids: Any = None,
        metadatas: dict[str, Any] | list[dict[str, Any]] | None = None,
    ) -> list[str]:
        """Remember ``items``; returns their ids. The second argument is 0.2's ``ids`` or, when
        it holds dicts, 0.3's ``metadatas``."""
        ids, metadatas = _ids_or_metadatas(ids, metadatas)
        return self._memory().add(self, items, ids=ids, metadatas=metadatas)

    async def aadd(
        self,
        items: ItemType | list[ItemType],
        ids: Any = None,
        metadatas: dict[str, Any] | list[dict[str, Any]] | None = None,
    ) -> list[str]:
        """``add`` for async actions."""
        ids, metadatas = _ids_or_metadatas(ids, metadatas)
        return await self._memory().aadd(self, items, ids=ids, metadatas=metadatas)

    def get(
        self,
        ids: str | list[str] | None = None,
        filters: dict[str, Any] | None = None,
        limit: int | None = 100,
    ) -> Any:
        """Items by id (0.2: one item for one id), or up to ``limit`` matching ``filters``."""
        return self._memory().get(self, ids=ids, filters=filters, limit=limit)

    async def aget(
        self,
        ids: str | list[str] | None = None,
        filters: dict[str, Any] | None = None,
        limit: int | None = 100,
    ) -> Any:
        """``get`` for async actions."""
        return await self._memory().aget(self, ids=ids, filters=filters, limit=limit)

    def search(
        self, query: str, limit: int = 10, filters: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[MemorySetItem]:
        """The ``limit`` items closest in meaning to ``query``, best first."""
        return self._memory().search(self, query, limit, filters=filters, **kwargs)

    async def asearch(
        self, query: str, limit: int = 10, filters: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[MemorySetItem]:
        """``search`` for async actions."""
        return await self._memory().asearch(self, query, limit, filters=filters, **kwargs)

    def delete(self, ids: str | list[str] | None = None) -> None:
        """Forget items by id, or (no ids) all of them."""
        self._memory().delete(self, ids=ids)

    async def adelete(self, ids: str | list[str] | None = None) -> None:
        """``delete`` for async actions."""
        await self._memory().adelete(self, ids=ids)

    async def asize(self) -> int:
        """``size`` for async actions."""
        return await self._memory().asize(self)


def _ids_or_metadatas(ids: Any, metadatas: Any) -> tuple[Any, Any]:
    """0.2's ``add(items, ids)`` and 0.3's ``add(items, metadatas)`` share a position."""
    if metadatas is None and (
        isinstance(ids, Mapping)
        or (
            (isinstance(ids, Sequence) and not isinstance(ids, str) and ids)
            and all(isinstance(entry, Mapping) for entry in ids)
        )
    ):
        return None, ids
    return ids, metadatas


class BaseLongTermMemory(ABC, BaseModel):
    """Long-term memory: memory sets and their items. Implementations supply the async
    methods; the sync ones (upstream's) run them."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    @abstractmethod
    def get_or_create_memory_set(
        self,
        name: str,
        item_type: Any = str,
        capacity: int | None = None,
        compaction_config: CompactionConfig | None = None,
    ) -> MemorySet:
        """The memory set ``name``, made with these settings if it is new (0.2)."""

    @abstractmethod
    def get_memory_set(self, name: str) -> MemorySet:
        """The memory set ``name``, made with default settings if it is new."""

    @abstractmethod
    def delete_memory_set(self, name: str) -> bool:
        """Forget the memory set ``name`` and its items; whether it existed."""

    @abstractmethod
    def size(self, memory_set: MemorySet) -> int:
        """How many items ``memory_set`` holds."""

    @abstractmethod
    def add(
        self,
        memory_set: MemorySet,
        memory_items: ItemType | list[ItemType],
        ids: str | list[str] | None = None,
        metadatas: dict[str, Any] | list[dict[str, Any]] | None = None,
    ) -> list[str]:
        """Remember items in ``memory_set`` (compacting it when it reaches its capacity)."""

    @abstractmethod
    def get(
        self,
        memory_set: MemorySet,
        ids: str | list[str] | None = None,
        filters: dict[str, Any] | None = None,
        limit: int | None = 100,
    ) -> Any:
        """Items of ``memory_set`` by id, or up to ``limit`` matching ``filters``."""

    @abstractmethod
    def delete(self, memory_set: MemorySet, ids: str | list[str] | None = None) -> None:
        """Forget items of ``memory_set`` by id, or all of them."""

    @abstractmethod
    def search(
        self,
        memory_set: MemorySet,
        query: str,
        limit: int,
        filters: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[MemorySetItem]:
        """The ``limit`` items of ``memory_set`` closest in meaning to ``query``."""

    async def aadd(
        self,
        memory_set: MemorySet,
        memory_items: ItemType | list[ItemType],
        ids: str | list[str] | None = None,
        metadatas: dict[str, Any] | list[dict[str, Any]] | None = None,
    ) -> list[str]:
        """``add`` for async callers."""
        raise NotImplementedError(f"{type(self).__name__} has no async add")

    async def aget(
        self,
        memory_set: MemorySet,
        ids: str | list[str] | None = None,
        filters: dict[str, Any] | None = None,
        limit: int | None = 100,
    ) -> Any:
        """``get`` for async callers."""
        raise NotImplementedError(f"{type(self).__name__} has no async get")

    async def adelete(self, memory_set: MemorySet, ids: str | list[str] | None = None) -> None:
        """``delete`` for async callers."""
        raise NotImplementedError(f"{type(self).__name__} has no async delete")

    async def asearch(
        self,
        memory_set: MemorySet,
        query: str,
        limit: int,
        filters: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> list[MemorySetItem]:
        """``search`` for async callers."""
        raise NotImplementedError(f"{type(self).__name__} has no async search")

    async def asize(self, memory_set: MemorySet) -> int:
        """``size`` for async callers."""
        raise NotImplementedError(f"{type(self).__name__} has no async size")

    def close(self) -> None:
        """Release what the memory holds (the runtime closes the stores it uses)."""

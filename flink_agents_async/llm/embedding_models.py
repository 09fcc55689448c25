"""Embedding models: a connection (the client of a model service) and a setup (which model).

The names and fields are upstream Flink Agents' (``flink_agents.api.embedding_models``):

* ``BaseEmbeddingModelConnection`` turns text into vectors. Its primary contract is async,
  ``aembed_with_usage(text, **kwargs)``; a subclass written in upstream's style implements only
  the sync ``embed`` and still works, run in a worker thread, never on the event loop. Upstream's
  sync ``embed`` / ``embed_with_usage`` work on every connection.
* ``RemoteEmbeddingModelConnection`` is the base of the built-in provider integrations: batches
  (``max_batch_size`` texts per request, the batches sent concurrently up to
  ``max_concurrency``), retries with backoff honouring ``Retry-After`` and a timeout per request
  (``RemoteService``), and token metrics (``embeddingPromptTokens``, ``embeddingTotalTokens``,
  ``embeddingRequests`` on the connection's metric group, under the model's name).
* ``BaseEmbeddingModelSetup`` names a connection (by resource name) and a model, and adds the
  model's arguments (``model_kwargs``) to every request.

A single text gives one vector (``list[float]``), a sequence of texts a vector per text, in
order.
"""

from __future__ import annotations

import asyncio
import functools
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anyio.to_thread
from pydantic import Field, PrivateAttr

from ..errors import ResourceError
from ..resources import Resource, ResourceType
from .remote import RemoteService, overrides, run_async_from_sync
from .retry import Retryable, RetryOutcome

__all__ = [
    "BaseEmbeddingModelConnection",
    "BaseEmbeddingModelSetup",
    "EmbeddingResult",
    "EmbeddingTokenUsage",
    "RemoteEmbeddingModelConnection",
    "Vector",
    "embedding_result",
]

Vector = list[float]
EmbeddingValue = TypeVar("EmbeddingValue", list[float], list[list[float]])


@dataclass(frozen=True)
class EmbeddingTokenUsage:
    """Token usage reported by an embedding service."""

    prompt_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: EmbeddingTokenUsage) -> EmbeddingTokenUsage:
        return EmbeddingTokenUsage(
            self.prompt_tokens + other.prompt_tokens, self.total_tokens + other.total_tokens
        )


@dataclass(frozen=True)
class EmbeddingResult(Generic[EmbeddingValue]):
    """Vectors, and the token usage the service reported (None when it reported none)."""

    embeddings: EmbeddingValue
    token_usage: EmbeddingTokenUsage | None = None


def embedding_result(
    text: str | Sequence[str], vectors: list[Vector], usage: EmbeddingTokenUsage | None
) -> EmbeddingResult[Any]:
    """The result for ``text``: one vector for a single text, the list for a sequence."""
    if isinstance(text, str):
        return EmbeddingResult(vectors[0], usage)
    return EmbeddingResult(vectors, usage)


def texts_of(text: str | Sequence[str], owner: str) -> list[str]:
    """``text`` as a list of strings, or a ``ResourceError`` naming ``owner``."""
    texts = [text] if isinstance(text, str) else list(text)
    for index, item in enumerate(texts):
        if not isinstance(item, str):
            raise ResourceError(
                f"{owner}: text {index} to embed is a {type(item).__name__}, not a str"
            )
    return texts


class BaseEmbeddingModelConnection(Resource, ABC):
    """The client of an embedding model service. Implement ``aembed_with_usage`` (async,
    preferred) or ``embed`` (sync, upstream's style: run in a worker thread)."""

    @classmethod
    def resource_type(cls) -> ResourceType:
        return ResourceType.EMBEDDING_MODEL_CONNECTION

    async def aembed_with_usage(
        self, text: str | Sequence[str], **kwargs: Any
    ) -> EmbeddingResult[Any]:
        """Vectors for ``text`` and the token usage (the primary contract). By default, the
        sync ``embed_with_usage`` in a worker thread, for subclasses that implement only
        ``embed``."""
        cls = type(self)
        if not self._is_sync():
            raise NotImplementedError(
                f"{cls.__qualname__} implements neither aembed_with_usage nor embed"
            )
        call = functools.partial(self.embed_with_usage, text, **kwargs)
        return await anyio.to_thread.run_sync(call)

    async def aembed(self, text: str | Sequence[str], **kwargs: Any) -> Any:
        """The vector of ``text`` (a vector per text for a sequence)."""
        return (await self.aembed_with_usage(text, **kwargs)).embeddings

    def embed(self, text: str | Sequence[str], **kwargs: Any) -> Any:
        """The vector of ``text`` for sync callers (upstream's entry point)."""
        return self.embed_with_usage(text, **kwargs).embeddings

    def embed_with_usage(self, text: str | Sequence[str], **kwargs: Any) -> EmbeddingResult[Any]:
        """Vectors and token usage for sync callers: ``aembed_with_usage`` run on the event
        loop that started this thread, or on a loop of its own; for an upstream-style
        connection, its ``embed``."""
        cls = type(self)
        if overrides(cls, "aembed_with_usage", BaseEmbeddingModelConnection):
            call = functools.partial(self.aembed_with_usage, text, **kwargs)
            return run_async_from_sync(call, self.release_loop)
        if overrides(cls, "embed", BaseEmbeddingModelConnection):
            return EmbeddingResult(self.embed(text, **kwargs))
        raise NotImplementedError(
            f"{cls.__qualname__} implements neither aembed_with_usage nor embed"
        )

    async def release_loop(self) -> None:
        """Release what this connection holds for the running event loop (its async clients):
        called when a sync ``embed`` ran on a loop of its own, which closes next."""

    def record_usage(
        self, model: str | None, requests: int, usage: EmbeddingTokenUsage | None
    ) -> None:
        """Count ``requests`` and their token ``usage`` on this connection's metric group,
        under the model's name: the metrics every embedding connection reports."""
        group = self.metric_group
        if group is None:
            return
        model_group = group.get_sub_group(str(model or "default"))
        model_group.get_counter("embeddingRequests").inc(requests)
        if usage is not None:
            model_group.get_counter("embeddingPromptTokens").inc(usage.prompt_tokens)
            model_group.get_counter("embeddingTotalTokens").inc(usage.total_tokens)

    def _is_sync(self) -> bool:
        cls = type(self)
        return overrides(cls, "embed", BaseEmbeddingModelConnection) or overrides(
            cls, "embed_with_usage", BaseEmbeddingModelConnection
        )


class RemoteEmbeddingModelConnection(RemoteService, BaseEmbeddingModelConnection):
    """An embedding model served over the network: texts sent in batches of at most
    ``max_batch_size``, the batches concurrently (bounded by ``max_concurrency``), each
    retried and timed as ``RemoteService`` says. A subclass implements one request
    (``_request``) and says which errors are retryable (``_classify``)."""

    max_batch_size: int = Field(default=64, ge=1)

    async def aembed_with_usage(
        self, text: str | Sequence[str], **kwargs: Any
    ) -> EmbeddingResult[Any]:
        texts = texts_of(text, type(self).__name__)
        batches = [
            texts[start : start + self.max_batch_size]
            for start in range(0, len(texts), self.max_batch_size)
        ]
        answers = await asyncio.gather(*(self._embed_batch(batch, kwargs) for batch in batches))
        vectors = [vector for batch_vectors, _ in answers for vector in batch_vectors]
        usages = [usage for _, usage in answers if usage is not None]
        usage = functools.reduce(EmbeddingTokenUsage.__add__, usages) if usages else None
        self.record_usage(kwargs.get("model"), len(batches), usage)
        return embedding_result(text, vectors, usage)

    async def _embed_batch(
        self, texts: list[str], kwargs: dict[str, Any]
    ) -> tuple[list[Vector], EmbeddingTokenUsage | None]:
        vectors, usage = await self.call_with_retries(
            functools.partial(self._request, texts, kwargs), self._classify, RetryOutcome()
        )
        if len(vectors) != len(texts):
            raise ResourceError(
                f"{type(self).__name__}: asked for {len(texts)} embeddings, the service "
                f"answered {len(vectors)}"
            )
        return vectors, usage

    @abstractmethod
    async def _request(
        self, texts: list[str], kwargs: dict[str, Any]
    ) -> tuple[list[Vector], EmbeddingTokenUsage | None]:
        """One request for ``texts`` (batching, retries and limits are done around it)."""

    @abstractmethod
    def _classify(self, error: BaseException) -> Retryable | None:
        """Whether ``error`` of a request is worth retrying, and the server's wait hint."""


class BaseEmbeddingModelSetup(Resource, ABC):
    """Which model to ask on which connection (by resource name, or the connection itself),
    with the model's arguments (``model_kwargs``) added to every request."""

    connection: str | BaseEmbeddingModelConnection = Field(
        description="The connection, or its resource name."
    )
    model: str = Field(description="Name of the embedding model to use.")
    _resolved: BaseEmbeddingModelConnection | None = PrivateAttr(default=None)

    @classmethod
    def resource_type(cls) -> ResourceType:
        return ResourceType.EMBEDDING_MODEL

    @property
    @abstractmethod
    def model_kwargs(self) -> dict[str, Any]:
        """The arguments every request of this setup passes (``model``, ``dimensions``...)."""

    def open(self) -> None:
        self._resolved = self._get_connection()

    def _get_connection(self) -> BaseEmbeddingModelConnection:
        if self._resolved is not None:
            return self._resolved
        connection: Any = self.connection
        if isinstance(connection, str):
            connection = self.find_resource(
                "embedding model setup", connection, ResourceType.EMBEDDING_MODEL_CONNECTION
            )
        if not isinstance(connection, BaseEmbeddingModelConnection):
            raise ResourceError(
                f"embedding model setup {type(self).__name__}: its connection "
                f"{self.connection!r} is a {type(connection).__name__}, not an embedding "
                "model connection"
            )
        return connection

    def _arguments(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {**self.model_kwargs, **kwargs}

    async def aembed_with_usage(
        self, text: str | Sequence[str], **kwargs: Any
    ) -> EmbeddingResult[Any]:
        """Vectors for ``text`` from this setup's model, and the token usage; a setup that
        embeds by itself (``embeds_by_itself``) in a worker thread."""
        if self.embeds_by_itself():
            call = functools.partial(self._embed_by_itself, text, kwargs)
            return await anyio.to_thread.run_sync(call)
        return await self._get_connection().aembed_with_usage(text, **self._arguments(kwargs))

    @classmethod
    def embeds_by_itself(cls) -> bool:
        """Whether the class overrides the sync ``embed`` or ``embed_with_usage`` (and neither
        async method), as upstream's test doubles do: upstream's stores call ``embed``, so the
        override is what embeds, and its connection may be a mere name."""
        base = BaseEmbeddingModelSetup
        return not (
            overrides(cls, "aembed_with_usage", base) or overrides(cls, "aembed", base)
        ) and (overrides(cls, "embed", base) or overrides(cls, "embed_with_usage", base))

    def _embed_by_itself(self, text: str | Sequence[str], kwargs: dict[str, Any]) -> Any:
        if overrides(type(self), "embed_with_usage", BaseEmbeddingModelSetup):
            return self.embed_with_usage(text, **kwargs)
        if isinstance(text, str):
            return EmbeddingResult(self.embed(text, **kwargs))
        # One text a call: upstream's stores embed document by document.
        return EmbeddingResult([self.embed(one, **kwargs) for one in text])

    async def aembed(self, text: str | Sequence[str], **kwargs: Any) -> Any:
        """The vector of ``text`` (a vector per text for a sequence)."""
        return (await self.aembed_with_usage(text, **kwargs)).embeddings

    def embed(self, text: str | Sequence[str], **kwargs: Any) -> Any:
        """Sync ``aembed`` (upstream's entry point)."""
        return self._get_connection().embed(text, **self._arguments(kwargs))

    def embed_with_usage(self, text: str | Sequence[str], **kwargs: Any) -> EmbeddingResult[Any]:
        """Sync ``aembed_with_usage`` (upstream's entry point)."""
        return self._get_connection().embed_with_usage(text, **self._arguments(kwargs))

"""The built-in context-retrieval action, as upstream Flink Agents adds it to every plan.

``context_retrieval_action`` (on ``ContextRetrievalRequestEvent``) asks the vector store the
request names for the ``max_results`` documents closest to its query, as a durable call (after
a crash the run replays the documents the journal holds instead of searching again), and sends
them back in a ``ContextRetrievalResponseEvent`` whose ``request_id`` is the request's id.

With ``rag.async`` (the default) the search runs on the event loop through the store's async
API; with it off, the store's sync ``query`` runs in the thread pool (upstream's setting).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import AgentExecutionOptions
from ..errors import ResourceError
from ..events import ContextRetrievalRequestEvent, ContextRetrievalResponseEvent
from ..resources import ResourceNotFoundError, ResourceType
from .vector_stores import BaseVectorStore, Document, VectorStoreQuery

if TYPE_CHECKING:
    from ..context import RunnerContext

__all__ = ["CONTEXT_RETRIEVAL_ACTION", "process_context_retrieval_request"]

CONTEXT_RETRIEVAL_ACTION = "context_retrieval_action"


async def process_context_retrieval_request(
    event: ContextRetrievalRequestEvent, ctx: RunnerContext
) -> None:
    """Answer a ``ContextRetrievalRequestEvent`` with the documents its store finds."""
    store = _store(event, ctx)
    query = VectorStoreQuery(query_text=event.query, limit=event.max_results)
    if ctx.config.get(AgentExecutionOptions.RAG_ASYNC):
        documents = await ctx.durable_execute_async(_search, store, query)
    else:
        documents = await ctx.durable_execute_async(_search_sync, store, query)
    ctx.send_event(
        ContextRetrievalResponseEvent(request_id=event.id, query=event.query, documents=documents)
    )


def _store(event: ContextRetrievalRequestEvent, ctx: RunnerContext) -> BaseVectorStore:
    try:
        store = ctx.get_resource(event.vector_store, ResourceType.VECTOR_STORE)
    except ResourceNotFoundError as error:
        raise ResourceNotFoundError(
            f"context retrieval request {event.id} names the vector store "
            f"{event.vector_store!r}, which is not declared: {error}"
        ) from None
    if not isinstance(store, BaseVectorStore):
        raise ResourceError(
            f"context retrieval request {event.id}: resource {event.vector_store!r} is a "
            f"{type(store).__name__}, not a vector store"
        )
    return store


async def _search(store: BaseVectorStore, query: VectorStoreQuery) -> list[Document]:
    return (await store.aquery(query)).documents


def _search_sync(store: BaseVectorStore, query: VectorStoreQuery) -> list[Document]:
    return store.query(query).documents

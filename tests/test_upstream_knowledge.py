"""Upstream Flink Agents' knowledge agents, with only their imports changed, run offline.

Each agent here is written as upstream writes it, in each generation's spelling:

* the RAG example (``examples/rag``): a prompt resource, an embedding model setup, a Chroma
  vector store, ``ContextRetrievalRequestEvent`` -> ``ContextRetrievalResponseEvent`` ->
  ``ChatRequestEvent`` -> output; main's ``EventType.*`` triggers with ``X.from_event(event)``,
  0.3's ``X.EVENT_TYPE`` triggers, 0.2's typed triggers and typed event parameters;
* the long-term memory e2e test: 0.2's ``get_or_create_memory_set(..., capacity=5,
  compaction_config=CompactionConfig(...))`` configured by ``LongTermMemoryOptions.BACKEND`` /
  ``EXTERNAL_VECTOR_STORE_NAME``, and 0.3's / main's ``get_memory_set(name=...)`` configured by
  ``LongTermMemoryOptions.Mem0.*``, with ``MemorySetItem`` lists in pydantic outputs;
* the MCP e2e test: ``@mcp_server`` over streamable HTTP and a chat setup naming the server's
  tool and prompt (main's ``prompt_args``, 0.2's ``extra_args`` on the message, and main's mode
  without a prompt);
* upstream's unit tests of these APIs (``EmbeddingResult``, ``MemorySet`` serialisation, the
  Chroma vector store, the 0.2 vector-store long-term memory), where they test API behaviour.

What stands in for upstream's services: the chat and Ollama embedding models are the local
``ModelServer`` (``server`` fixture; upstream's Ollama descriptors reach it through
``OLLAMA_HOST``, which the Ollama client reads too), the semantic embeddings are the in-process
all-MiniLM-L6-v2 (``ResourceName.EmbeddingModel.LOCAL_*``, loaded once for the module), Chroma
is embedded (a ``persist_directory`` under ``tmp_path``, or in memory as 0.2's / 0.3's
examples have it) and the MCP server is ``mcp_server_app.py`` on 127.0.0.1.

Left out, and why:

* ``test_rag_agent.py``'s ``PythonFunction.from_callable`` check: it tests how upstream's plan
  serialises actions for the JVM, which has no counterpart here;
* the Chroma translator tests of ``_translate_filters_to_chroma_where`` (a private function):
  the same filters are checked through ``query`` / ``get`` / ``delete`` instead;
* the 0.2 e2e test's raw look at the store (collection ``<job>-<key>-<set>``, metadata key
  ``compacted``) and its ``not items[0].compacted`` after the 5th add: upstream keeps one
  collection per key and set and compacts in a background thread; here one collection holds
  every key's items (tagged) and compaction runs inside the ``add`` that fills the set, so that
  it is journaled with the run. The compacted item is checked through the API instead;
* the 0.2 ``VectorStoreLongTermMemory(ctx=..., job_id=..., key=...)`` constructor and its
  ``MockEmbeddingModel`` (a bare ``Resource``, not an embedding model setup): the same
  behaviours are checked through ``ctx.long_term_memory`` in a running agent;
* the mem0 backend's own tests (``runtime/memory/mem0``): there is no mem0 here, and items are
  stored as given rather than extracted by a model;
* Chroma Cloud (it needs an account) and the concurrent client-creation test (two threads
  racing for ``store.client``: it needs a sleep inside the client factory to widen the race,
  and a sleep is no way to synchronise a test).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from unittest.mock import MagicMock

import pytest
from pydantic import BaseModel

chromadb = pytest.importorskip("chromadb")
pytest.importorskip("numpy")
pytest.importorskip("tokenizers")
pytest.importorskip("mcp")

from chromadb.errors import NotFoundError  # noqa: E402 - after the importorskips
from journal_helpers import GUARD_TIMEOUT  # noqa: E402
from mcp_server_app import HttpServer  # noqa: E402

from flink_agents_async import (  # noqa: E402
    Agent,
    AgentConfigOptions,
    AgentsExecutionEnvironment,
    BaseEmbeddingModelConnection,
    BaseEmbeddingModelSetup,
    ChatMessage,
    ChatRequestEvent,
    ChatResponseEvent,
    CompactionConfig,
    ContextRetrievalRequestEvent,
    ContextRetrievalResponseEvent,
    DatetimeRange,
    Document,
    EmbeddingResult,
    EmbeddingTokenUsage,
    Event,
    EventType,
    InputEvent,
    LongTermMemoryBackend,
    LongTermMemoryOptions,
    MemorySet,
    MemorySetItem,
    MessageRole,
    OutputEvent,
    Prompt,
    Resource,
    ResourceContext,
    ResourceDescriptor,
    ResourceName,
    ResourceType,
    RunnerContext,
    VectorStoreQuery,
    action,
    chat_model_connection,
    chat_model_setup,
    embedding_model_connection,
    embedding_model_setup,
    mcp_server,
    prompt,
    vector_store,
)
from flink_agents_async.integrations import local_embeddings  # noqa: E402
from flink_agents_async.integrations.chroma import ChromaVectorStore  # noqa: E402
from flink_agents_async.integrations.local_embeddings import (  # noqa: E402
    BertSentenceEncoder,
    LocalEmbeddingModelConnection,
)
from flink_agents_async.integrations.ollama import OllamaEmbeddingModelConnection  # noqa: E402
from flink_agents_async.testing import ModelRequest, ModelServer, Reply, ToolCall  # noqa: E402

MINILM = "all-MiniLM-L6-v2"
CHAT_MODEL = "qwen3:8b"
EMBEDDING_MODEL = "nomic-embed-text"

# The knowledge base of the RAG example: five short texts on its topics (rewritten), with
# upstream's metadata and ids.
KNOWLEDGE = [
    "Apache Flink is a framework for stateful computations over unbounded and bounded data "
    "streams, distributed and highly available.",
    "Flink guarantees exactly-once consistency for application state and processes events "
    "with low latency at high throughput.",
    "Apache Flink Agents is an agentic AI framework on top of Apache Flink for running "
    "event-driven AI agents in a distributed, stateful way.",
    "A vector store is a database built to store high-dimensional vectors and to find the "
    "nearest ones quickly, as retrieval applications need.",
    "Context retrieval finds the information relevant to a question and hands it to a language "
    "model so that its answer is grounded in it.",
]
KNOWLEDGE_METADATA = [
    {"topic": "flink", "source": "documentation"},
    {"topic": "flink", "source": "documentation"},
    {"topic": "flink_agents", "source": "documentation"},
    {"topic": "vector_stores", "source": "ai_concepts"},
    {"topic": "context_retrieval", "source": "ai_concepts"},
]
KNOWLEDGE_IDS = [f"doc{i + 1}" for i in range(len(KNOWLEDGE))]
RAG_TEMPLATE = """Based on the following context, please answer the user's question.

Context:
{context}

User Question:
{user_query}

Please provide a helpful answer based on the context provided."""


@pytest.fixture(scope="module")
def minilm() -> Iterator[BertSentenceEncoder]:
    """all-MiniLM-L6-v2, loaded once for the module: every local embedding connection the jobs
    here create encodes with it instead of loading its own copy."""
    encoder = BertSentenceEncoder()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            local_embeddings,
            "BertSentenceEncoder",
            lambda source=None: encoder if source is None else BertSentenceEncoder(source),
        )
        yield encoder


@pytest.fixture
def ollama_host(server: ModelServer, monkeypatch: pytest.MonkeyPatch) -> ModelServer:
    """Upstream's Ollama descriptors (no ``base_url``) reach the model server."""
    monkeypatch.setenv("OLLAMA_HOST", server.url("ollama"))
    return server


def run_job(env: AgentsExecutionEnvironment) -> None:
    """``env.execute()`` as upstream's scripts call it: without await, from a sync test."""
    assert env.execute() is None


async def run_async(env: AgentsExecutionEnvironment) -> None:
    """``await env.execute()``, failing instead of hanging if a job never ends."""
    await asyncio.wait_for(env.execute(), GUARD_TIMEOUT)


def values_by_key(outputs: list[dict[Any, Any]]) -> dict[Any, list[Any]]:
    """``to_list()``'s ``{key: value}`` entries as each key's values, in order."""
    by_key: dict[Any, list[Any]] = {}
    for entry in outputs:
        for key, value in entry.items():
            by_key.setdefault(key, []).append(value)
    return by_key


# -- 4. the names upstream's files import --------------------------------------------------------


def test_every_name_the_upstream_knowledge_files_use_is_exported() -> None:
    import flink_agents_async

    names = [
        # examples/rag
        "Agent", "ChatMessage", "MessageRole", "action", "chat_model_setup",
        "embedding_model_setup", "prompt", "vector_store", "ChatRequestEvent",
        "ChatResponseEvent", "ContextRetrievalRequestEvent", "ContextRetrievalResponseEvent",
        "Event", "InputEvent", "OutputEvent", "EventType", "Prompt", "ResourceDescriptor",
        "ResourceName", "ResourceType", "RunnerContext", "AgentsExecutionEnvironment",
        # long_term_memory_test (0.2, 0.3, main)
        "AgentConfigOptions", "chat_model_connection", "embedding_model_connection",
        "CompactionConfig", "LongTermMemoryBackend", "LongTermMemoryOptions", "MemorySetItem",
        # e2e_tests_mcp
        "mcp_server",
        # the unit tests
        "BaseEmbeddingModelConnection", "BaseEmbeddingModelSetup", "EmbeddingResult",
        "EmbeddingTokenUsage", "Resource", "ResourceContext", "MemorySet", "DatetimeRange",
        "Document", "VectorStoreQuery", "MetricGroup",
    ]  # fmt: skip
    missing = [name for name in names if not hasattr(flink_agents_async, name)]
    assert missing == []
    assert set(names) <= set(flink_agents_async.__all__)

    for event in ("InputEvent", "OutputEvent", "ChatRequestEvent", "ChatResponseEvent"):
        assert getattr(EventType, event) == getattr(flink_agents_async, event).EVENT_TYPE
    assert EventType.ContextRetrievalRequestEvent == ContextRetrievalRequestEvent.EVENT_TYPE
    assert EventType.ContextRetrievalResponseEvent == ContextRetrievalResponseEvent.EVENT_TYPE
    for path in (
        ResourceName.MCP_SERVER,
        ResourceName.VectorStore.CHROMA_VECTOR_STORE,
        ResourceName.ChatModel.OLLAMA_CONNECTION,
        ResourceName.ChatModel.OLLAMA_SETUP,
        ResourceName.ChatModel.OPENAI_COMPLETIONS_CONNECTION,
        ResourceName.ChatModel.OPENAI_COMPLETIONS_SETUP,
        ResourceName.EmbeddingModel.OLLAMA_CONNECTION,
        ResourceName.EmbeddingModel.OLLAMA_SETUP,
    ):
        assert isinstance(ResourceDescriptor(clazz=path).clazz, type)
    upstream_chroma = (
        "flink_agents.integrations.vector_stores.chroma.chroma_vector_store.ChromaVectorStore"
    )
    for path in (ResourceName.VectorStore.CHROMA_VECTOR_STORE, upstream_chroma):
        assert ResourceDescriptor(clazz=path).clazz is ChromaVectorStore
    assert AgentConfigOptions.JOB_IDENTIFIER.key == "job-identifier"
    assert LongTermMemoryBackend.EXTERNAL_VECTOR_STORE.value == "external_vector_store"
    for option in (
        LongTermMemoryOptions.BACKEND,
        LongTermMemoryOptions.EXTERNAL_VECTOR_STORE_NAME,
        LongTermMemoryOptions.ASYNC_COMPACTION,
        LongTermMemoryOptions.Mem0.CHAT_MODEL_SETUP,
        LongTermMemoryOptions.Mem0.EMBEDDING_MODEL_SETUP,
        LongTermMemoryOptions.Mem0.VECTOR_STORE,
    ):
        assert option.key.startswith("long-term-memory.")


# -- 1. the RAG example ----------------------------------------------------------------------


def rag_agent_main(persist_directory: str) -> type[Agent]:
    """Upstream main's ``MyRAGAgent`` (``agents/rag_agent.py``): ``EventType`` triggers and
    ``from_event`` views; Chroma persisted on disk. Its embedder is the local model here
    (upstream's is Ollama's nomic-embed-text)."""

    class MyRAGAgent(Agent):
        @prompt
        @staticmethod
        def context_enhanced_prompt() -> Prompt:
            return Prompt.from_text(RAG_TEMPLATE)

        @embedding_model_setup
        @staticmethod
        def text_embedder() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.EmbeddingModel.LOCAL_SETUP,
                connection="local_embedding_connection",
                model=MINILM,
            )

        @vector_store
        @staticmethod
        def knowledge_base() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.VectorStore.CHROMA_VECTOR_STORE,
                embedding_model="text_embedder",
                collection="example_knowledge_base",
                persist_directory=persist_directory,
            )

        @chat_model_setup
        @staticmethod
        def chat_model() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.ChatModel.OLLAMA_SETUP,
                connection="ollama_chat_connection",
                model=CHAT_MODEL,
                think=False,
            )

        @action(EventType.InputEvent)
        @staticmethod
        def process_input(event: Event, ctx: RunnerContext) -> None:
            user_query = str(InputEvent.from_event(event).input)
            ctx.send_event(
                ContextRetrievalRequestEvent(
                    query=user_query, vector_store="knowledge_base", max_results=3
                )
            )

        @action(EventType.ContextRetrievalResponseEvent)
        @staticmethod
        def process_retrieved_context(event: Event, ctx: RunnerContext) -> None:
            retrieval_event = ContextRetrievalResponseEvent.from_event(event)
            context_text = "\n\n".join(
                f"{i + 1}. {doc.content}" for i, doc in enumerate(retrieval_event.documents)
            )
            prompt_resource = ctx.get_resource("context_enhanced_prompt", ResourceType.PROMPT)
            enhanced_prompt = prompt_resource.format_string(
                context=context_text, user_query=retrieval_event.query
            )
            ctx.send_event(
                ChatRequestEvent(
                    model="chat_model",
                    messages=[ChatMessage(role=MessageRole.USER, content=enhanced_prompt)],
                )
            )

        @action(EventType.ChatResponseEvent)
        @staticmethod
        def process_chat_response(event: Event, ctx: RunnerContext) -> None:
            chat_response = ChatResponseEvent.from_event(event)
            if chat_response.response and chat_response.response.content:
                ctx.send_event(OutputEvent(output=chat_response.response.content))

    return MyRAGAgent


class MyRAGAgent03(Agent):
    """Upstream 0.3's ``MyRAGAgent`` (``rag_agent_example.py``): ``X.EVENT_TYPE`` triggers,
    Ollama embeddings, an in-memory Chroma the example fills through its own client."""

    @prompt
    @staticmethod
    def context_enhanced_prompt() -> Prompt:
        return Prompt.from_text(RAG_TEMPLATE)

    @embedding_model_setup
    @staticmethod
    def text_embedder() -> ResourceDescriptor:
        return ResourceDescriptor(
            clazz=ResourceName.EmbeddingModel.OLLAMA_SETUP,
            connection="ollama_embedding_connection",
            model=EMBEDDING_MODEL,
        )

    @vector_store
    @staticmethod
    def knowledge_base() -> ResourceDescriptor:
        return ResourceDescriptor(
            clazz=ResourceName.VectorStore.CHROMA_VECTOR_STORE,
            embedding_model="text_embedder",
            collection="example_knowledge_base",
        )

    @chat_model_setup
    @staticmethod
    def chat_model() -> ResourceDescriptor:
        return ResourceDescriptor(
            clazz=ResourceName.ChatModel.OLLAMA_SETUP,
            connection="ollama_chat_connection",
            model=CHAT_MODEL,
        )

    @action(InputEvent.EVENT_TYPE)
    @staticmethod
    def process_input(event: Event, ctx: RunnerContext) -> None:
        user_query = str(InputEvent.from_event(event).input)
        ctx.send_event(
            ContextRetrievalRequestEvent(
                query=user_query, vector_store="knowledge_base", max_results=3
            )
        )

    @action(ContextRetrievalResponseEvent.EVENT_TYPE)
    @staticmethod
    def process_retrieved_context(event: Event, ctx: RunnerContext) -> None:
        retrieval_event = ContextRetrievalResponseEvent.from_event(event)
        context_text = "\n\n".join(
            [f"{i + 1}. {doc.content}" for i, doc in enumerate(retrieval_event.documents)]
        )
        prompt_resource = ctx.get_resource("context_enhanced_prompt", ResourceType.PROMPT)
        enhanced_prompt = prompt_resource.format_string(
            context=context_text, user_query=retrieval_event.query
        )
        ctx.send_event(
            ChatRequestEvent(
                model="chat_model",
                messages=[ChatMessage(role=MessageRole.USER, content=enhanced_prompt)],
            )
        )

    @action(ChatResponseEvent.EVENT_TYPE)
    @staticmethod
    def process_chat_response(event: Event, ctx: RunnerContext) -> None:
        chat_response = ChatResponseEvent.from_event(event)
        if chat_response.response and chat_response.response.content:
            ctx.send_event(OutputEvent(output=chat_response.response.content))


class MyRAGAgent02(MyRAGAgent03):
    """Upstream 0.2's ``MyRAGAgent``: typed triggers, and actions that take the typed event
    (its resources are 0.3's)."""

    @action(InputEvent)
    @staticmethod
    def process_input(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(
            ContextRetrievalRequestEvent(
                query=str(event.input), vector_store="knowledge_base", max_results=3
            )
        )

    @action(ContextRetrievalResponseEvent)
    @staticmethod
    def process_retrieved_context(event: ContextRetrievalResponseEvent, ctx: RunnerContext) -> None:
        context_text = "\n\n".join(
            [f"{i + 1}. {doc.content}" for i, doc in enumerate(event.documents)]
        )
        prompt_resource = ctx.get_resource("context_enhanced_prompt", ResourceType.PROMPT)
        enhanced_prompt = prompt_resource.format_string(
            context=context_text, user_query=event.query
        )
        ctx.send_event(
            ChatRequestEvent(
                model="chat_model",
                messages=[ChatMessage(role=MessageRole.USER, content=enhanced_prompt)],
            )
        )

    @action(ChatResponseEvent)
    @staticmethod
    def process_chat_response(event: ChatResponseEvent, ctx: RunnerContext) -> None:
        if event.response and event.response.content:
            ctx.send_event(OutputEvent(output=event.response.content))


def populate_persistent_knowledge_base(persist_directory: str) -> None:
    """Upstream main's ``populate_knowledge_base``: Chroma's own persistent client, the
    documents embedded one by one through a connection's sync ``embed``."""
    connection = LocalEmbeddingModelConnection()
    client = chromadb.PersistentClient(path=persist_directory)
    collection = client.get_or_create_collection(name="example_knowledge_base", metadata=None)
    embeddings = [connection.embed(text, model=MINILM) for text in KNOWLEDGE]
    collection.upsert(
        documents=KNOWLEDGE, embeddings=embeddings, metadatas=KNOWLEDGE_METADATA, ids=KNOWLEDGE_IDS
    )


def context_of(prompt_text: str) -> list[str]:
    """The numbered context entries of a prompt made from ``RAG_TEMPLATE``."""
    context = prompt_text.split("Context:\n", 1)[1].split("\n\nUser Question:", 1)[0]
    return [re.sub(r"^\d+\. ", "", entry) for entry in context.split("\n\n")]


def test_the_main_rag_agent_declares_its_store_as_upstream_does(tmp_path: Path) -> None:
    """What upstream's ``test_rag_agent.py`` checks of the descriptor, on this runtime's."""
    agent = rag_agent_main(str(tmp_path))
    descriptor = agent.knowledge_base()  # type: ignore[attr-defined]
    assert descriptor.arguments["persist_directory"] == str(tmp_path)
    assert descriptor.clazz is ChromaVectorStore


async def test_the_main_rag_agent_answers_from_the_retrieved_context(
    minilm: BertSentenceEncoder, server: ModelServer, tmp_path: Path
) -> None:
    directory = str(tmp_path / "chroma")
    await asyncio.to_thread(populate_persistent_knowledge_base, directory)
    env = AgentsExecutionEnvironment.get_execution_environment()
    env.add_resource(
        "local_embedding_connection",
        ResourceType.EMBEDDING_MODEL_CONNECTION,
        ResourceDescriptor(clazz=ResourceName.EmbeddingModel.LOCAL_CONNECTION),
    )
    env.add_resource(
        "ollama_chat_connection",
        ResourceType.CHAT_MODEL_CONNECTION,
        ResourceDescriptor(
            clazz=ResourceName.ChatModel.OLLAMA_CONNECTION,
            base_url=server.url("ollama"),
            request_timeout=240.0,
        ),
    )
    queries = ["What is Apache Flink Agents?", "What is a vector store?", "What is Python?"]
    outputs = (
        env.from_list([{"key": query, "value": query} for query in queries])
        .apply(rag_agent_main(directory)())
        .to_list()
    )

    await run_async(env)

    answers = {key: value for entry in outputs for key, value in entry.items()}
    assert sorted(answers) == sorted(queries)
    chats = [request for request in server.requests if request.kind == "chat"]
    assert len(chats) == 3
    assert {request.protocol for request in chats} == {"ollama"}
    assert {request.model for request in chats} == {CHAT_MODEL}
    for query, answer in answers.items():
        # The echoing model answers with the prompt it got: the retrieved context reached it.
        assert answer.startswith("echo: Based on the following context")
        assert answer.endswith(
            f"User Question:\n{query}\n\nPlease provide a helpful answer based on the "
            "context provided."
        )
        context = context_of(answer)
        assert len(context) == 3 and set(context) <= set(KNOWLEDGE)
    # Real semantic neighbours: each question's best document is the one about it.
    assert context_of(answers[queries[0]])[0] == KNOWLEDGE[2]
    assert context_of(answers[queries[1]])[0] == KNOWLEDGE[3]


@pytest.fixture
def example_collection() -> Iterator[None]:
    """0.2's and 0.3's examples fill an in-memory Chroma (``chromadb.EphemeralClient()``), which
    every in-memory client of the process shares: the collection goes afterwards."""
    yield
    client = chromadb.EphemeralClient()
    if "example_knowledge_base" in [c.name for c in client.list_collections()]:
        client.delete_collection("example_knowledge_base")


def populate_in_memory_knowledge_base() -> None:
    """Upstream 0.2's / 0.3's ``populate_knowledge_base``: Ollama embeddings (the model server
    here), an in-memory Chroma client, ``collection.add``."""
    connection = OllamaEmbeddingModelConnection()
    client = chromadb.EphemeralClient()
    collection = client.get_or_create_collection(name="example_knowledge_base", metadata=None)
    embeddings = [connection.embed(text, model=EMBEDDING_MODEL) for text in KNOWLEDGE]
    collection.add(
        documents=KNOWLEDGE, embeddings=embeddings, metadatas=KNOWLEDGE_METADATA, ids=KNOWLEDGE_IDS
    )


@pytest.mark.parametrize("agent_class", [MyRAGAgent02, MyRAGAgent03], ids=["0.2", "0.3"])
def test_the_02_and_03_rag_example_scripts_run_as_written(
    agent_class: type[Agent], ollama_host: ModelServer, example_collection: None
) -> None:
    """The examples' ``__main__``, as written: Ollama connections from the environment (the
    chat one registered as ``ResourceType.EMBEDDING_MODEL``, as those examples do), a sync
    ``execute()``, outputs printed from ``to_list()``. The model server's embeddings are not
    semantic, so the questions are documents' own texts: those come first (distance 0)."""
    populate_in_memory_knowledge_base()
    agents_env = AgentsExecutionEnvironment.get_execution_environment()
    agents_env.add_resource(
        "ollama_embedding_connection",
        ResourceType.EMBEDDING_MODEL_CONNECTION,
        ResourceDescriptor(clazz=ResourceName.EmbeddingModel.OLLAMA_CONNECTION),
    )
    agents_env.add_resource(
        "ollama_chat_connection",
        ResourceType.EMBEDDING_MODEL,
        ResourceDescriptor(clazz=ResourceName.ChatModel.OLLAMA_CONNECTION),
    )
    input_list = [
        {"key": "001", "value": KNOWLEDGE[0]},
        {"key": "002", "value": KNOWLEDGE[2]},
        {"key": "003", "value": "What is Python?"},
    ]
    output_list = agents_env.from_list(input_list).apply(agent_class()).to_list()

    run_job(agents_env)

    answers = {key: value for output in output_list for key, value in output.items()}
    assert sorted(answers) == ["001", "002", "003"]
    assert context_of(answers["001"])[0] == KNOWLEDGE[0]
    assert context_of(answers["002"])[0] == KNOWLEDGE[2]
    assert all(len(context_of(answer)) == 3 for answer in answers.values())
    assert ollama_host.count(kind="embeddings") == len(KNOWLEDGE) + 3  # the base, the queries


# -- 2. long-term memory ------------------------------------------------------------------------

REVIEWS = [
    (1, "Great product, it works perfectly and lasts."),
    (2, "It arrived damaged and the box was torn."),
    (3, "Very happy with how it performs for the price."),
    (3, "Not as good as hoped, it broke after a week."),
    (1, "Shipping was fast and the support was excellent."),
    (2, "Setting it up was too complicated."),
    (2, "Good quality, but expensive for what it does."),
    (1, "Exactly what I needed, easy and reliable."),
    (2, "The worst purchase I have made."),
    (2, "Looks nice and works, could be sturdier."),
]
REVIEW_SUMMARY = "Mixed reviews: damage, hard set-up, price and durability concerns."


class ItemData(BaseModel):
    """0.2's input record."""

    id: int
    review: str
    review_score: float
    memory_info: dict[str, Any] | None = None


class Record(BaseModel):
    """0.2's output record."""

    id: int
    count: int
    timestamp_before_add: str
    timestamp_after_add: str
    timestamp_second_action: str | None = None
    items: list[MemorySetItem] | None = None


class MyEvent(Event):
    """0.2's custom event: a pydantic field."""

    value: Any


def long_term_memory_agent_02(chromadb_path: str) -> type[Agent]:
    """Upstream 0.2's ``LongTermMemoryAgent``: Ollama chat and embedding models, Chroma on
    disk, a memory set of capacity 5 compacted by the chat model."""

    class LongTermMemoryAgent(Agent):
        @chat_model_connection
        @staticmethod
        def ollama_connection() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.ChatModel.OLLAMA_CONNECTION, request_timeout=480.0
            )

        @chat_model_setup
        @staticmethod
        def ollama_qwen3() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.ChatModel.OLLAMA_SETUP,
                connection="ollama_connection",
                model=CHAT_MODEL,
                extract_reasoning=True,
                think=False,
            )

        @embedding_model_connection
        @staticmethod
        def ollama_embedding_connection() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.EmbeddingModel.OLLAMA_CONNECTION, request_timeout=240.0
            )

        @embedding_model_setup
        @staticmethod
        def ollama_nomic_embed_text() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.EmbeddingModel.OLLAMA_SETUP,
                connection="ollama_embedding_connection",
                model=EMBEDDING_MODEL,
            )

        @vector_store
        @staticmethod
        def chroma_vector_store() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.VectorStore.CHROMA_VECTOR_STORE,
                embedding_model="ollama_nomic_embed_text",
                persist_directory=chromadb_path,
            )

        @action(InputEvent)
        @staticmethod
        async def add_items(event: Event, ctx: RunnerContext) -> None:
            input_data = event.input  # type: ignore[attr-defined]
            ltm = ctx.long_term_memory
            timestamp_before_add = datetime.now().astimezone().isoformat()
            memory_set = ltm.get_or_create_memory_set(
                name="test_ltm",
                item_type=str,
                capacity=5,
                compaction_config=CompactionConfig(model="ollama_qwen3"),
            )
            await ctx.durable_execute_async(memory_set.add, items=input_data.review)
            timestamp_after_add = datetime.now().astimezone().isoformat()

            stm = ctx.short_term_memory
            count = stm.get("count") or 1
            stm.set("count", count + 1)
            ctx.send_event(
                MyEvent(
                    value=Record(
                        id=input_data.id,
                        count=count,
                        timestamp_before_add=timestamp_before_add,
                        timestamp_after_add=timestamp_after_add,
                    )
                )
            )

        @action(MyEvent)
        @staticmethod
        async def retrieve_items(event: Event, ctx: RunnerContext) -> None:
            record: Record = event.value  # type: ignore[attr-defined]
            record.timestamp_second_action = datetime.now().astimezone().isoformat()
            memory_set = ctx.long_term_memory.get_memory_set(name="test_ltm")
            items = await ctx.durable_execute_async(memory_set.get)
            if (
                (record.id == 1 and record.count == 3)
                or (record.id == 2 and record.count == 5)
                or (record.id == 3 and record.count == 2)
            ):
                record.items = items
            ctx.send_event(OutputEvent(output=record))

    return LongTermMemoryAgent


def summarising_model(request: ModelRequest) -> Reply:
    """The chat model compaction asks: one summary (and it was asked about the reviews)."""
    assert "damaged" in request.last_user_text
    return Reply(REVIEW_SUMMARY)


async def test_the_02_long_term_memory_e2e_agent(ollama_host: ModelServer, tmp_path: Path) -> None:
    ollama_host.respond_with(summarising_model)
    agents_env = AgentsExecutionEnvironment.get_execution_environment()
    agents_config = agents_env.get_config()
    agents_config.set(AgentConfigOptions.JOB_IDENTIFIER, "LTM_TEST_JOB")
    agents_config.set(LongTermMemoryOptions.BACKEND, LongTermMemoryBackend.EXTERNAL_VECTOR_STORE)
    agents_config.set(LongTermMemoryOptions.EXTERNAL_VECTOR_STORE_NAME, "chroma_vector_store")
    agents_config.set(LongTermMemoryOptions.ASYNC_COMPACTION, True)
    inputs = [
        {"key": key, "value": ItemData(id=key, review=review, review_score=8.0)}
        for key, review in REVIEWS
    ]
    chromadb_path = str(tmp_path / "chroma")
    outputs = (
        agents_env.from_list(inputs).apply(long_term_memory_agent_02(chromadb_path)()).to_list()
    )

    await run_async(agents_env)

    records = {f"{r.id}.{r.count}": r for entry in outputs for r in entry.values()}
    assert sorted(records) == ["1.1", "1.2", "1.3", "2.1", "2.2", "2.3", "2.4", "2.5", "3.1", "3.2"]
    assert all(isinstance(record, Record) for record in records.values())
    # Adding to one key's memory does not hold up the other keys.
    assert datetime.fromisoformat(records["2.1"].timestamp_before_add) < datetime.fromisoformat(
        records["1.1"].timestamp_after_add
    )
    assert datetime.fromisoformat(records["3.1"].timestamp_before_add) < datetime.fromisoformat(
        records["1.1"].timestamp_after_add
    )
    reviews = {key: [text for k, text in REVIEWS if k == key] for key in (1, 2, 3)}
    for name, key in (("1.3", 1), ("3.2", 3)):  # under capacity: the reviews, in order
        items = records[name].items
        assert items is not None and all(isinstance(item, MemorySetItem) for item in items)
        assert [item.value for item in items] == reviews[key]
        assert not any(item.compacted for item in items)
        assert all(isinstance(item.created_time, datetime) for item in items)
        assert {item.memory_set_name for item in items} == {"test_ltm"}
    # Key 2 reached its capacity of 5: its set was compacted into one summary.
    [compacted] = records["2.5"].items or []
    assert compacted.compacted and compacted.value == REVIEW_SUMMARY
    assert isinstance(compacted.created_time, DatetimeRange)
    assert compacted.created_time.start <= compacted.created_time.end
    [compaction] = [r for r in ollama_host.requests if r.kind == "chat"]
    assert all(text in compaction.last_user_text for text in reviews[2])
    assert not any(text in compaction.last_user_text for text in reviews[1] + reviews[3])


class FactData(BaseModel):
    """0.3's and main's input record."""

    name: str
    fact: str


class FactRecord(BaseModel):
    """0.3's and main's output record."""

    name: str
    count: int
    timestamp_before_add: str
    timestamp_after_add: str
    timestamp_second_action: str | None = None
    items: list[MemorySetItem] | None = None


class FactEvent(Event):
    """0.3's and main's custom event: its value in ``attributes``, a ``from_event`` view."""

    EVENT_TYPE: ClassVar[str] = "_my_event"

    def __init__(self, value: Any) -> None:
        super().__init__(type=FactEvent.EVENT_TYPE, attributes={"value": value})

    @classmethod
    def from_event(cls, event: Event) -> FactEvent:
        assert "value" in event.attributes
        result = cls(value=FactRecord.model_validate(event.attributes["value"]))
        return result.reconstruct_from(event)

    @property
    def value(self) -> Any:
        return self.attributes["value"]


def long_term_memory_agent_03(
    chromadb_path: str, openai_url: str, input_trigger: str
) -> type[Agent]:
    """Upstream 0.3's / main's ``LongTermMemoryAgent``: an OpenAI-compatible chat model,
    Ollama embeddings, Chroma on disk; memory through ``get_memory_set(name=...)``."""

    class LongTermMemoryAgent(Agent):
        @chat_model_connection
        @staticmethod
        def openai_connection() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.ChatModel.OPENAI_COMPLETIONS_CONNECTION,
                api_key="test",
                api_base_url=openai_url,
                request_timeout=300,
            )

        @chat_model_setup
        @staticmethod
        def ollama_qwen3() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.ChatModel.OPENAI_COMPLETIONS_SETUP,
                connection="openai_connection",
                model="qwen3.6-plus",
                extract_reasoning=True,
                think=False,
            )

        @embedding_model_connection
        @staticmethod
        def ollama_embedding_connection() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.EmbeddingModel.OLLAMA_CONNECTION, request_timeout=240.0
            )

        @embedding_model_setup
        @staticmethod
        def ollama_nomic_embed_text() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.EmbeddingModel.OLLAMA_SETUP,
                connection="ollama_embedding_connection",
                model=EMBEDDING_MODEL,
                think=False,
            )

        @vector_store
        @staticmethod
        def chroma_ltm_store() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.VectorStore.CHROMA_VECTOR_STORE,
                embedding_model="ollama_nomic_embed_text",
                persist_directory=chromadb_path,
                collection="context",
            )

        @action(input_trigger)
        @staticmethod
        async def add_items(event: Event, ctx: RunnerContext) -> None:
            input_data = FactData.model_validate(InputEvent.from_event(event).input)
            ltm = ctx.long_term_memory
            timestamp_before_add = datetime.now().astimezone().isoformat()
            memory_set = ltm.get_memory_set(name="test_ltm")
            await ctx.durable_execute_async(memory_set.add, items=f"{input_data.fact}")
            timestamp_after_add = datetime.now().astimezone().isoformat()

            stm = ctx.short_term_memory
            count = stm.get("count") or 1
            stm.set("count", count + 1)
            ctx.send_event(
                FactEvent(
                    value=FactRecord(
                        name=input_data.name,
                        count=count,
                        timestamp_before_add=timestamp_before_add,
                        timestamp_after_add=timestamp_after_add,
                    )
                )
            )

        @action(FactEvent.EVENT_TYPE)
        @staticmethod
        async def retrieve_items(event: Event, ctx: RunnerContext) -> None:
            record: FactRecord = FactEvent.from_event(event).value
            record.timestamp_second_action = datetime.now().astimezone().isoformat()
            memory_set = ctx.long_term_memory.get_memory_set(name="test_ltm")
            items = await ctx.durable_execute_async(memory_set.get)
            if (record.name == "alice" and record.count == 2) or (
                record.name == "bob" and record.count == 2
            ):
                record.items = items
            ctx.send_event(OutputEvent(output=record))

    return LongTermMemoryAgent


FACTS = [
    {"name": "alice", "fact": "My favourite fruit is watermelon."},
    {"name": "bob", "fact": "I like swimming."},
    {"name": "bob", "fact": "I'm a vegetarian and allergic to nuts."},
    {"name": "alice", "fact": "My favourite fruit is bananas now."},
]


@pytest.mark.parametrize(
    "input_trigger", [InputEvent.EVENT_TYPE, EventType.InputEvent], ids=["0.3", "main"]
)
async def test_the_03_and_main_long_term_memory_e2e_agent(
    input_trigger: str, ollama_host: ModelServer, tmp_path: Path
) -> None:
    agents_env = AgentsExecutionEnvironment.get_execution_environment()
    agents_config = agents_env.get_config()
    agents_config.set(AgentConfigOptions.JOB_IDENTIFIER, "LTM_TEST_JOB")
    agents_config.set(LongTermMemoryOptions.Mem0.CHAT_MODEL_SETUP, "ollama_qwen3")
    agents_config.set(LongTermMemoryOptions.Mem0.EMBEDDING_MODEL_SETUP, "ollama_nomic_embed_text")
    agents_config.set(LongTermMemoryOptions.Mem0.VECTOR_STORE, "chroma_ltm_store")
    agent = long_term_memory_agent_03(
        str(tmp_path / "chroma"), ollama_host.url("openai"), input_trigger
    )()
    # The records go in as JSON-shaped dicts (upstream maps its text lines through the model).
    inputs = [{"key": fact["name"], "value": FactData(**fact).model_dump()} for fact in FACTS]
    outputs = agents_env.from_list(inputs).apply(agent).to_list()

    await run_async(agents_env)

    records = {f"{r.name}.{r.count}": r for entry in outputs for r in entry.values()}
    assert sorted(records) == ["alice.1", "alice.2", "bob.1", "bob.2"]
    values = [item.value for item in records["alice.2"].items or []]
    bob_values = [item.value for item in records["bob.2"].items or []]
    assert bob_values == [FACTS[1]["fact"], FACTS[2]["fact"]]
    assert not [v for v in bob_values if "watermelon" in v.lower() or "bananas" in v.lower()]
    assert any("bananas" in value.lower() for value in values)
    assert not [v for v in values if "swimming" in v.lower() or "vegetarian" in v.lower()]
    items = records["alice.2"].items or []
    assert all(item.created_at and item.updated_at for item in items)
    assert datetime.fromisoformat(records["alice.1"].timestamp_before_add) < datetime.fromisoformat(
        records["bob.1"].timestamp_after_add
    )
    assert ollama_host.count(kind="chat") == 0  # nothing to compact: no capacity
    assert ollama_host.count(kind="embeddings") == len(FACTS)


# -- 3. MCP --------------------------------------------------------------------------------------


class CalculationInput(BaseModel):
    """The MCP e2e test's input."""

    a: int
    b: int


def adding_model(request: ModelRequest) -> Reply:
    """A chat model that calls the MCP ``add`` tool with the two numbers it was asked about,
    then answers with the tool's result."""
    if request.tool_results:
        return Reply(f"The sum is {request.tool_results[-1].content}.")
    a, b = map(int, re.findall(r"\d+", request.last_user_text)[:2])
    return Reply.tools(ToolCall("add", {"a": a, "b": b}))


def mcp_agent_main(endpoint: str, with_prompts: bool) -> type[Agent]:
    """Upstream main's ``MyMCPAgent``: ``EventType`` triggers, the prompt's arguments in
    ``prompt_args``; with ``with_prompts`` off, no MCP prompt, a plain question."""

    class MyMCPAgent(Agent):
        @mcp_server
        @staticmethod
        def my_mcp_server() -> ResourceDescriptor:
            return ResourceDescriptor(clazz=ResourceName.MCP_SERVER, endpoint=endpoint)

        @chat_model_connection
        @staticmethod
        def ollama_connection() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.ChatModel.OLLAMA_CONNECTION, request_timeout=240.0
            )

        @chat_model_setup
        @staticmethod
        def math_chat_model() -> ResourceDescriptor:
            descriptor_kwargs: dict[str, Any] = {
                "clazz": ResourceName.ChatModel.OLLAMA_SETUP,
                "connection": "ollama_connection",
                "model": "qwen3:1.7b",
                "tools": ["add"],
            }
            if with_prompts:
                descriptor_kwargs["prompt"] = "ask_sum"
            return ResourceDescriptor(**descriptor_kwargs)

        @action(EventType.InputEvent)
        @staticmethod
        def process_input(event: Event, ctx: RunnerContext) -> None:
            input_data = CalculationInput.model_validate(InputEvent.from_event(event).input)
            if with_prompts:
                ctx.send_event(
                    ChatRequestEvent(
                        model="math_chat_model",
                        messages=[ChatMessage(role=MessageRole.USER)],
                        prompt_args={"a": str(input_data.a), "b": str(input_data.b)},
                    )
                )
            else:
                msg = ChatMessage(
                    role=MessageRole.USER,
                    content=f"Please use the add tool to calculate the sum of {input_data.a} "
                    f"and {input_data.b}.",
                )
                ctx.send_event(ChatRequestEvent(model="math_chat_model", messages=[msg]))

        @action(EventType.ChatResponseEvent)
        @staticmethod
        def process_chat_response(event: Event, ctx: RunnerContext) -> None:
            response = ChatResponseEvent.from_event(event).response
            if response and response.content:
                ctx.send_event(OutputEvent(output=response.content))

    return MyMCPAgent


def mcp_agent_02(endpoint: str) -> type[Agent]:
    """Upstream 0.2's ``MyMCPAgent``: typed triggers, the prompt's arguments in the message's
    ``extra_args``."""

    class MyMCPAgent(Agent):
        @mcp_server
        @staticmethod
        def my_mcp_server() -> ResourceDescriptor:
            return ResourceDescriptor(clazz=ResourceName.MCP_SERVER, endpoint=endpoint)

        @chat_model_connection
        @staticmethod
        def ollama_connection() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.ChatModel.OLLAMA_CONNECTION, request_timeout=240.0
            )

        @chat_model_setup
        @staticmethod
        def math_chat_model() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.ChatModel.OLLAMA_SETUP,
                connection="ollama_connection",
                model="qwen3:1.7b",
                prompt="ask_sum",
                tools=["add"],
                extract_reasoning=True,
            )

        @action(InputEvent)
        @staticmethod
        def process_input(event: InputEvent, ctx: RunnerContext) -> None:
            input_data: CalculationInput = event.input
            msg = ChatMessage(
                role=MessageRole.USER,
                extra_args={"a": str(input_data.a), "b": str(input_data.b)},
            )
            ctx.send_event(ChatRequestEvent(model="math_chat_model", messages=[msg]))

        @action(ChatResponseEvent)
        @staticmethod
        def process_chat_response(event: ChatResponseEvent, ctx: RunnerContext) -> None:
            response = event.response
            if response and response.content:
                ctx.send_event(OutputEvent(output=response.content))

    return MyMCPAgent


@pytest.fixture
def mcp_http() -> Iterator[HttpServer]:
    server = HttpServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("variant", ["main-with-prompts", "main-without-prompts", "0.2"])
async def test_the_mcp_e2e_agent_uses_the_servers_tool_and_prompt(
    variant: str, ollama_host: ModelServer, mcp_http: HttpServer
) -> None:
    ollama_host.respond_with(adding_model)
    if variant == "0.2":
        agent = mcp_agent_02(mcp_http.url)()
        inputs = [
            {"key": "calc1", "value": CalculationInput(a=1, b=2)},
            {"key": "calc2", "value": CalculationInput(a=12, b=34)},
        ]
    else:
        agent = mcp_agent_main(mcp_http.url, with_prompts=variant == "main-with-prompts")()
        inputs = [{"key": str(a), "value": {"a": a, "b": b}} for a, b in ((1, 2), (12, 34))]
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list(inputs).apply(agent).to_list()

    await run_async(env)

    answers = sorted(value for entry in outputs for value in entry.values())
    assert answers == ["The sum is ['3'].", "The sum is ['46']."]
    asks = [r for r in ollama_host.requests if r.kind == "chat" and not r.tool_results]
    assert {r.tools for r in asks} == {("add",)}
    questions = sorted(r.last_user_text for r in asks)
    if variant == "main-without-prompts":
        assert questions[0].startswith("Please use the add tool to calculate the sum of 1 and 2")
    else:  # the MCP server's prompt, filled with the request's arguments
        assert questions == [
            "Can you please calculate the sum of 1 and 2?",
            "Can you please calculate the sum of 12 and 34?",
        ]


# -- 4. upstream's unit tests of these APIs -----------------------------------------------------


class TwoNumbers(BaseEmbeddingModelConnection):
    """``test_embedding_result.py``'s connection: sync ``embed`` and ``embed_with_usage``."""

    def embed(self, text: Any, **kwargs: Any) -> Any:
        return [0.1, 0.2] if isinstance(text, str) else [[0.1, 0.2] for _ in text]

    def embed_with_usage(self, text: Any, **kwargs: Any) -> EmbeddingResult[Any]:
        return EmbeddingResult(
            embeddings=self.embed(text, **kwargs),
            token_usage=EmbeddingTokenUsage(prompt_tokens=7, total_tokens=9),
        )


class TwoNumbersWithoutUsage(BaseEmbeddingModelConnection):
    """A connection implementing ``embed`` only."""

    def embed(self, text: Any, **kwargs: Any) -> Any:
        return [0.1, 0.2] if isinstance(text, str) else [[0.1, 0.2] for _ in text]


class UsageElsewhere(TwoNumbers):
    """``embed`` and ``embed_with_usage`` disagree: ``embed`` must go to ``embed``."""

    def embed_with_usage(self, text: Any, **kwargs: Any) -> EmbeddingResult[Any]:
        return EmbeddingResult(
            embeddings=[0.3, 0.4] if isinstance(text, str) else [[0.3, 0.4] for _ in text],
            token_usage=EmbeddingTokenUsage(prompt_tokens=7, total_tokens=9),
        )


class PlainSetup(BaseEmbeddingModelSetup):
    @property
    def model_kwargs(self) -> dict[str, Any]:
        return {}


def setup_over(connection: BaseEmbeddingModelConnection) -> PlainSetup:
    """A setup whose resource context is a mock, as upstream's test builds it."""

    def get_resource(name: str, resource_type: ResourceType) -> Resource:
        assert name == "mock-connection"
        assert resource_type == ResourceType.EMBEDDING_MODEL_CONNECTION
        return connection

    ctx = MagicMock(spec=ResourceContext)
    ctx.get_resource = get_resource
    setup = PlainSetup(
        name="embedding", connection="mock-connection", model="mock-model", resource_context=ctx
    )
    setup.open()
    return setup


def test_embedding_result_carries_the_providers_usage() -> None:
    result = setup_over(TwoNumbers(name="connection")).embed_with_usage("hello")
    assert result.embeddings == [0.1, 0.2]
    assert result.token_usage == EmbeddingTokenUsage(prompt_tokens=7, total_tokens=9)

    without = setup_over(TwoNumbersWithoutUsage(name="connection")).embed_with_usage("hello")
    assert without.embeddings == [0.1, 0.2] and without.token_usage is None

    assert setup_over(TwoNumbers(name="connection")).embed("hello") == [0.1, 0.2]
    assert setup_over(UsageElsewhere(name="connection")).embed("hello") == [0.1, 0.2]


def test_a_memory_set_survives_json() -> None:
    """0.2's ``api/memory/tests/test_long_term_memory.py``."""
    memory_set = MemorySet(
        name="chat_history",
        item_type=ChatMessage,
        capacity=100,
        compaction_config=CompactionConfig(model="llm"),
    )
    assert MemorySet.model_validate_json(memory_set.model_dump_json()) == memory_set


class FirstFiveDims(BaseEmbeddingModelSetup):
    """The Chroma tests' ``MockEmbeddingModel``: two fixed vectors, by whether the text names
    ChromaDB."""

    name: str
    connection: str = "mock"
    model: str = "mock"

    def open(self) -> None:
        pass

    @property
    def model_kwargs(self) -> dict[str, Any]:
        return {}

    def embed(self, text: Any, **kwargs: Any) -> Any:
        if "ChromaDB" in text:
            return [0.2, 0.3, 0.4, 0.5, 0.6]
        return [0.1, 0.2, 0.3, 0.4, 0.5]


class AlwaysFirst(FirstFiveDims):
    """The filter tests' model: every query is ``doc1``'s vector."""

    def embed(self, text: Any, **kwargs: Any) -> Any:
        return [1.0, 0.0, 0.0, 0.0, 0.0]


def chroma_store(model: BaseEmbeddingModelSetup, **fields: Any) -> ChromaVectorStore:
    """A store built as upstream's tests build it: a mock resource context, then ``open()``."""

    def get_resource(name: str, resource_type: ResourceType) -> Resource:
        if resource_type == ResourceType.EMBEDDING_MODEL:
            return model
        raise ValueError(f"Unknown resource type: {resource_type}")

    ctx = MagicMock(spec=ResourceContext)
    ctx.get_resource = get_resource
    store = ChromaVectorStore(
        name="chroma_vector_store",
        embedding_model="mock_embeddings",
        resource_context=ctx,
        **fields,
    )
    store.open()
    return store


@pytest.fixture
def in_memory_chroma() -> Iterator[str]:
    """A collection name of its own in the process's in-memory Chroma, removed afterwards."""
    name = f"upstream_{os.getpid()}_{id(object())}"
    yield name
    client = chromadb.EphemeralClient()
    if name in [c.name for c in client.list_collections()]:
        client.delete_collection(name)


def two_documents() -> list[Document]:
    return [
        Document(
            id="doc1",
            content="ChromaDB is a vector database for AI applications",
            metadata={"category": "database", "source": "test"},
        ),
        Document(
            id="doc2",
            content="Apache Flink Agents is an agentic AI framework based on Apache Flink.",
            metadata={"category": "ai-agent", "source": "test"},
        ),
    ]


def test_chroma_query_collections_and_documents(in_memory_chroma: str) -> None:
    """``test_local_chroma_vector_store``, ``test_collection_management`` and
    ``test_document_management``."""
    store = chroma_store(FirstFiveDims(name="mock_embeddings"), collection=in_memory_chroma)
    store.create_collection_if_not_exists(name=in_memory_chroma)
    expected = two_documents()
    store.add(documents=expected, collection_name=in_memory_chroma)

    result = store.query(VectorStoreQuery(query_text="What is Flink Agent?", limit=1))
    assert [document.id for document in result.documents] == ["doc2"]

    for document in expected:
        document.embedding = None
    assert store.get(collection_name=in_memory_chroma) == expected
    assert store.get(ids="doc1", collection_name=in_memory_chroma) == expected[:1]
    store.delete(ids="doc1", collection_name=in_memory_chroma)
    assert store.get(collection_name=in_memory_chroma) == expected[1:]
    store.delete(collection_name=in_memory_chroma)
    assert store.get(collection_name=in_memory_chroma) == []
    store.delete(collection_name=in_memory_chroma)  # deleting from an empty one is fine
    assert store.get(collection_name=in_memory_chroma) == []

    other = in_memory_chroma + "_managed"
    store.create_collection_if_not_exists(name=other, metadata={"key1": "value1", "key2": "v"})
    assert store.get(collection_name=other) == []
    store.delete_collection(name=other)
    with pytest.raises(NotFoundError):  # Chroma's own error, as upstream's store raises it
        store.get(collection_name=other)


@pytest.fixture
def filter_store(in_memory_chroma: str) -> ChromaVectorStore:
    """The filter tests' store: three documents with their own vectors."""
    store = chroma_store(AlwaysFirst(name="mock_embeddings"), collection=in_memory_chroma)
    store.create_collection_if_not_exists(name=in_memory_chroma)
    store.add(
        documents=[
            Document(
                id="doc1",
                content="alpha",
                metadata={"category": "a", "score": 10},
                embedding=[1.0, 0.0, 0.0, 0.0, 0.0],
            ),
            Document(
                id="doc2",
                content="beta",
                metadata={"category": "a", "score": 20},
                embedding=[0.0, 1.0, 0.0, 0.0, 0.0],
            ),
            Document(
                id="doc3",
                content="gamma",
                metadata={"category": "b", "score": 30},
                embedding=[0.0, 0.0, 1.0, 0.0, 0.0],
            ),
        ],
        collection_name=in_memory_chroma,
    )
    return store


def test_chroma_filters_scores_limits_and_update(filter_store: ChromaVectorStore) -> None:
    """The Chroma tests' end-to-end filter, score, limit and update cases."""
    name = filter_store.collection

    def ids(**query: Any) -> list[str | None]:
        result = filter_store.query(VectorStoreQuery(query_text="x", collection_name=name, **query))
        return [document.id for document in result.documents]

    assert sorted(ids(limit=5, filters={"category": "a"})) == ["doc1", "doc2"]  # type: ignore[type-var]
    assert ids(limit=5, filters={"category": "a", "score": 20}) == ["doc2"]
    native = ids(limit=5, extra_args={"where": {"score": {"$gte": 20}}})
    assert sorted(native) == ["doc2", "doc3"]  # type: ignore[type-var]
    with pytest.raises(NotImplementedError, match=r"equality shorthand"):
        ids(limit=5, filters={"score": {"$gte": 20}})

    scores = {
        document.id: document.score
        for document in filter_store.query(
            VectorStoreQuery(query_text="x", limit=3, collection_name=name)
        ).documents
    }
    assert scores["doc1"] == pytest.approx(0.0, abs=1e-6)
    assert (scores["doc2"] or 0) > 0 and (scores["doc3"] or 0) > 0

    assert [d.id for d in filter_store.get(collection_name=name, filters={"category": "b"})] == [
        "doc3"
    ]
    assert len(filter_store.get(collection_name=name, limit=2)) == 2
    assert len(filter_store.get(collection_name=name, limit=None)) == 3

    filter_store.update(
        documents=Document(
            id="doc1",
            content="alpha-v2",
            metadata={"category": "a", "score": 99},
            embedding=[0.5, 0.5, 0.0, 0.0, 0.0],
        ),
        collection_name=name,
    )
    [updated] = filter_store.get(ids="doc1", collection_name=name)
    assert updated.content == "alpha-v2" and updated.metadata["score"] == 99

    filter_store.delete(collection_name=name, filters={"category": "a"})
    assert [d.id for d in filter_store.get(collection_name=name)] == ["doc3"]


class ChatHistoryAgent(Agent):
    """0.2's ``test_vector_store_long_term_memory.py`` through ``ctx.long_term_memory``: a
    ``ChatMessage`` memory set on Chroma with semantic embeddings (upstream's test embeds with
    Chroma's default function, all-MiniLM-L6-v2 too)."""

    @embedding_model_connection
    @staticmethod
    def local() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=ResourceName.EmbeddingModel.LOCAL_CONNECTION)

    @embedding_model_setup
    @staticmethod
    def embedding_model() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=ResourceName.EmbeddingModel.LOCAL_SETUP, connection="local")

    @chat_model_connection
    @staticmethod
    def chat_connection() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=ResourceName.ChatModel.OLLAMA_CONNECTION)

    @chat_model_setup
    @staticmethod
    def llm() -> ResourceDescriptor:
        return ResourceDescriptor(
            clazz=ResourceName.ChatModel.OLLAMA_SETUP, connection="chat_connection", model="m"
        )

    @action(InputEvent)
    @staticmethod
    def check(event: InputEvent, ctx: RunnerContext) -> None:
        ltm = ctx.long_term_memory
        results: dict[str, Any] = {}
        memory_set = ltm.get_or_create_memory_set(
            name="chat_history",
            item_type=ChatMessage,
            capacity=100,
            compaction_config=CompactionConfig(model="llm"),
        )
        msgs = [
            ChatMessage(role=MessageRole.USER, content=f"This is the no.{i} message.")
            for i in range(20)
        ]
        memory_set.add(items=msgs)
        results["same_set"] = ltm.get_memory_set(memory_set.name) == memory_set
        results["in_order"] = [item.value for item in memory_set.get()] == msgs
        found = memory_set.search(query="The no.10 message", limit=1)
        results["found"] = [item.value for item in found] == msgs[10:11]
        ltm.delete_memory_set(name="chat_history")

        small = ltm.get_or_create_memory_set(
            name="chat_history",
            item_type=ChatMessage,
            capacity=8,
            compaction_config=CompactionConfig(model="llm", limit=2),
        )
        conversation = [
            ChatMessage(role=MessageRole.USER, content="What is flink?"),
            ChatMessage(role=MessageRole.ASSISTANT, content="A stream processing engine."),
            ChatMessage(role=MessageRole.USER, content="What is flink agents?"),
            ChatMessage(role=MessageRole.ASSISTANT, content="Agents on Flink."),
            ChatMessage(role=MessageRole.USER, content="What's the weather tomorrow in london?"),
            ChatMessage(
                role=MessageRole.ASSISTANT,
                content="",
                tool_calls=[
                    {
                        "id": "186780f8",
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": {"position": "london", "time": "tomorrow"},
                        },
                    }
                ],
            ),
            ChatMessage(role=MessageRole.TOOL, content="snow"),
            ChatMessage(role=MessageRole.ASSISTANT, content="Tomorrow it snows in london."),
        ]
        small.add(items=conversation)
        retrieved: list[MemorySetItem] = small.get()
        results["compacted"] = [
            (item.compacted, isinstance(item.created_time, DatetimeRange)) for item in retrieved
        ]
        results["summaries"] = [
            item.value.content if isinstance(item.value, ChatMessage) else item.value
            for item in retrieved
        ]
        results["size"] = small.size
        ltm.delete_memory_set(name="chat_history")
        ctx.send_event(OutputEvent(output=results))


def test_the_02_vector_store_long_term_memory_cases(
    minilm: BertSentenceEncoder, ollama_host: ModelServer, tmp_path: Path
) -> None:
    ollama_host.script("Flink and Flink Agents were explained.\nIt snows in london tomorrow.")
    env = AgentsExecutionEnvironment.get_execution_environment()
    env.add_resource(
        "vector_store",
        ResourceType.VECTOR_STORE,
        ResourceDescriptor(
            clazz=ResourceName.VectorStore.CHROMA_VECTOR_STORE,
            persist_directory=str(tmp_path / "chroma"),
            embedding_model="embedding_model",
        ),
    )
    env.get_config().set(LongTermMemoryOptions.EXTERNAL_VECTOR_STORE_NAME, "vector_store")
    outputs = env.from_list([{"key": "00001", "value": 0}]).apply(ChatHistoryAgent()).to_list()

    run_job(env)

    [results] = values_by_key(outputs)["00001"]
    assert results == {
        "same_set": True,
        "in_order": True,
        "found": True,
        "compacted": [(True, True), (True, True)],
        "summaries": ["Flink and Flink Agents were explained.", "It snows in london tomorrow."],
        "size": 2,
    }
    [compaction] = ollama_host.requests
    assert "What is flink agents?" in compaction.last_user_text

"""Retrieval-augmented generation: a knowledge base, then questions answered from it.

The shape of upstream Flink Agents' RAG example, on the embedded runtime:

    python examples/llm/rag_agent.py                      # offline stand-in chat model
    LLM_PROVIDER=ollama python examples/llm/rag_agent.py  # a real chat model (see model.py)

``populate_knowledge_base`` embeds a few documents into the embedded vector store (a directory,
``LocalVectorStore``) with the offline all-MiniLM-L6-v2 model (real semantic vectors, nothing
downloaded). Then each question is an input: the agent asks the built-in context-retrieval
action for the closest documents (``ContextRetrievalRequestEvent``), fills its prompt with them
and asks the chat model (``ChatRequestEvent``), and outputs the answer.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile

from model import ChatModel, chat_model

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    ChatMessage,
    ChatRequestEvent,
    ChatResponseEvent,
    ContextRetrievalRequestEvent,
    ContextRetrievalResponseEvent,
    Document,
    Event,
    EventType,
    InputEvent,
    MessageRole,
    OutputEvent,
    Prompt,
    ResourceDescriptor,
    ResourceName,
    ResourceType,
    RunnerContext,
    action,
    embedding_model_connection,
    embedding_model_setup,
    prompt,
    vector_store,
)
from flink_agents_async.integrations.local_embeddings import (
    LocalEmbeddingModelConnection,
    LocalEmbeddingModelSetup,
)
from flink_agents_async.integrations.local_vector_store import LocalVectorStore

KNOWLEDGE = [
    "Apache Flink is a framework and distributed processing engine for stateful computations "
    "over unbounded and bounded data streams.",
    "Apache Flink Agents is a framework for building event-driven AI agents that run on "
    "Apache Flink, with durable execution of their model and tool calls.",
    "Python is a high-level programming language known for its readability and its large "
    "ecosystem of libraries.",
    "A vector store keeps documents with their embeddings so that they can be searched by "
    "meaning instead of by keywords.",
]

QUESTIONS = ["What is Apache Flink?", "What is Apache Flink Agents?", "What is Python?"]


async def populate_knowledge_base(path: str) -> None:
    """Embed ``KNOWLEDGE`` into the store at ``path`` (what upstream's knowledge_base_setup
    does with Chroma and Ollama)."""
    embedder = LocalEmbeddingModelSetup(connection=LocalEmbeddingModelConnection())
    store = LocalVectorStore(path=path, embedding_model=embedder)
    try:
        await store.aadd(
            [Document(id=f"doc-{n}", content=text) for n, text in enumerate(KNOWLEDGE)]
        )
    finally:
        await store.aclose()


def make_agent(model: ChatModel, store_path: str) -> Agent:
    class RagAgent(Agent):
        """Retrieve context, ask the model with it, output the answer."""

        @prompt
        @staticmethod
        def context_enhanced_prompt() -> Prompt:
            return Prompt.from_text(
                "Based on the following context, please answer the user's question.\n"
                "Context:\n{context}\n\nUser Question:\n{user_query}\n\n"
                "Please provide a helpful answer based on the context provided."
            )

        @embedding_model_connection
        @staticmethod
        def minilm() -> ResourceDescriptor:
            return ResourceDescriptor(clazz=ResourceName.EmbeddingModel.LOCAL_CONNECTION)

        @embedding_model_setup
        @staticmethod
        def text_embedder() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.EmbeddingModel.LOCAL_SETUP, connection="minilm"
            )

        @vector_store
        @staticmethod
        def knowledge_base() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.VectorStore.LOCAL_VECTOR_STORE,
                path=store_path,
                embedding_model="text_embedder",
            )

        @action(EventType.InputEvent)
        @staticmethod
        def process_input(event: Event, ctx: RunnerContext) -> None:
            query = str(InputEvent.from_event(event).input)
            ctx.send_event(
                ContextRetrievalRequestEvent(
                    query=query, vector_store="knowledge_base", max_results=2
                )
            )

        @action(EventType.ContextRetrievalResponseEvent)
        @staticmethod
        def process_retrieved_context(event: Event, ctx: RunnerContext) -> None:
            retrieved = ContextRetrievalResponseEvent.from_event(event)
            context = "\n".join(
                f"{n + 1}. {document.content}" for n, document in enumerate(retrieved.documents)
            )
            template = ctx.get_resource("context_enhanced_prompt", ResourceType.PROMPT)
            question = template.format_string(context=context, user_query=retrieved.query)
            ctx.send_event(
                ChatRequestEvent(
                    model="chat_model",
                    messages=[ChatMessage(role=MessageRole.USER, content=question)],
                )
            )

        @action(EventType.ChatResponseEvent)
        @staticmethod
        def process_chat_response(event: Event, ctx: RunnerContext) -> None:
            ctx.send_event(OutputEvent(output=ChatResponseEvent.from_event(event).response.content))

    agent = RagAgent()
    agent.add_resource("connection", ResourceType.CHAT_MODEL_CONNECTION, model.connection)
    agent.add_resource("chat_model", ResourceType.CHAT_MODEL, model.setup())
    return agent


async def main(store_path: str) -> None:
    await populate_knowledge_base(store_path)
    with chat_model() as model:
        env = AgentsExecutionEnvironment.get_execution_environment()
        questions = [{"key": question, "value": question} for question in QUESTIONS]
        answers = env.from_list(questions).apply(make_agent(model, store_path)).to_list()
        await env.execute()
    for answer in answers:
        for question, text in answer.items():
            print(f"{question} => {text}")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="rag-knowledge-") as directory:
        asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else directory))

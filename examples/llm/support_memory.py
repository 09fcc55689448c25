"""A support agent that remembers each customer across sessions (long-term memory).

    python examples/llm/support_memory.py                      # offline stand-in chat model
    LLM_PROVIDER=ollama python examples/llm/support_memory.py  # a real chat model (model.py)

Each message is an input keyed by its customer. The agent remembers what the customer tells it
(``ctx.long_term_memory``, a memory set per customer in the embedded vector store, embedded by
the offline all-MiniLM-L6-v2 model), looks up what it remembers that is closest in meaning to
the message, and answers with that in the model's system prompt.

The example runs two sessions, each a runtime of its own, over the same store directory: in the
second, the agent answers from what the customers said in the first. A run that fails adds
nothing to the memory, and a run repeated after a crash does not add twice (see README).
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
    InputEvent,
    LongTermMemoryOptions,
    MessageRole,
    OutputEvent,
    ResourceDescriptor,
    ResourceName,
    ResourceType,
    RunnerContext,
    action,
    embedding_model_connection,
    embedding_model_setup,
    vector_store,
)

SESSIONS = [
    [
        ("alice", "Please contact me by email, I never pick up phone calls."),
        ("bob", "I am vegetarian, so no meat in my meal boxes."),
        ("alice", "My dog Rex is allergic to chicken."),
    ],
    [
        ("alice", "How should you get in touch with me about my order?"),
        ("bob", "Which meals can you recommend for me?"),
    ],
]


def make_agent(model: ChatModel, store_path: str) -> Agent:
    class SupportAgent(Agent):
        @embedding_model_connection
        @staticmethod
        def minilm() -> ResourceDescriptor:
            return ResourceDescriptor(clazz=ResourceName.EmbeddingModel.LOCAL_CONNECTION)

        @embedding_model_setup
        @staticmethod
        def embedder() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.EmbeddingModel.LOCAL_SETUP, connection="minilm"
            )

        @vector_store
        @staticmethod
        def customer_memory() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.VectorStore.LOCAL_VECTOR_STORE,
                path=store_path,
                embedding_model="embedder",
            )

        @action(InputEvent)
        @staticmethod
        async def answer(event: InputEvent, ctx: RunnerContext) -> None:
            message = str(event.input)
            facts = ctx.long_term_memory.get_memory_set("customer_facts")
            remembered = await facts.asearch(message, limit=1)
            if not message.rstrip().endswith("?"):  # statements are worth remembering
                await facts.aadd(message)
            known = "\n".join(f"- {item.value}" for item in remembered)
            system = (
                "You are a friendly support agent. What you remember about this customer:\n"
                f"{known or '(nothing yet)'}"
            )
            ctx.send_event(
                ChatRequestEvent(
                    model="chat_model",
                    messages=[
                        ChatMessage(role=MessageRole.SYSTEM, content=system),
                        ChatMessage(role=MessageRole.USER, content=message),
                    ],
                )
            )

        @action(ChatResponseEvent)
        @staticmethod
        def reply(event: ChatResponseEvent, ctx: RunnerContext) -> None:
            ctx.send_event(OutputEvent(output=event.response.content))

    agent = SupportAgent()
    agent.add_resource("connection", ResourceType.CHAT_MODEL_CONNECTION, model.connection)
    agent.add_resource("chat_model", ResourceType.CHAT_MODEL, model.setup())
    return agent


async def session(number: int, model: ChatModel, store_path: str) -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    env.get_config().set(LongTermMemoryOptions.EXTERNAL_VECTOR_STORE_NAME, "customer_memory")
    messages = [{"key": customer, "value": text} for customer, text in SESSIONS[number - 1]]
    replies = env.from_list(messages).apply(make_agent(model, store_path)).to_list()
    await env.execute()
    print(f"-- session {number}")
    for entry in replies:
        for customer, text in entry.items():
            print(f"{customer}: {text}")


async def main(store_path: str) -> None:
    with chat_model() as model:
        for number in range(1, len(SESSIONS) + 1):
            await session(number, model, store_path)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="support-memory-") as directory:
        asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else directory))

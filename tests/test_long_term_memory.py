"""``ctx.long_term_memory``: memory sets per key in a vector store, with upstream 0.2's and
0.3's APIs, writes that a failed run takes back, and compaction by a chat model."""

from __future__ import annotations

from typing import Any

import pytest
from knowledge_helpers import ListStore, WordCounts, WordCountSetup

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    ChatMessage,
    CompactionConfig,
    Event,
    InputEvent,
    LongTermMemoryBackend,
    LongTermMemoryOptions,
    MemorySetItem,
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


class WithMemory(Agent):
    """The resources every agent here declares: a word-count embedder and a list store."""

    @embedding_model_connection
    @staticmethod
    def words() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=WordCounts)

    @embedding_model_setup
    @staticmethod
    def embedder() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=WordCountSetup, connection="words", model="words")

    @vector_store
    @staticmethod
    def memory() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=ListStore, embedding_model="embedder")


class Remembered(Event):
    fact: str


class FactAgent(WithMemory):
    """Upstream 0.3's shape: ``add`` inside a durable call, then ``get`` and ``search`` in the
    next action."""

    @action(InputEvent)
    @staticmethod
    async def remember(event: InputEvent, ctx: RunnerContext) -> None:
        memory_set = ctx.long_term_memory.get_memory_set(name="facts")
        await ctx.durable_execute_async(memory_set.add, items=event.input)
        ctx.send_event(Remembered(fact=event.input))

    @action(Remembered)
    @staticmethod
    async def recall(event: Remembered, ctx: RunnerContext) -> None:
        memory_set = ctx.long_term_memory.get_memory_set(name="facts")
        items = await ctx.durable_execute_async(memory_set.get)
        found = await memory_set.asearch("which pet?", limit=1)
        ctx.send_event(OutputEvent(output={"all": [i.value for i in items], "pet": found[0].value}))


def environment(**options: Any) -> AgentsExecutionEnvironment:
    env = AgentsExecutionEnvironment.get_execution_environment()
    env.get_config().set(LongTermMemoryOptions.EXTERNAL_VECTOR_STORE_NAME, "memory")
    for option, value in options.items():
        env.get_config().set_str(option, value)
    return env


@pytest.fixture(autouse=True)
def empty_store() -> None:
    ListStore.documents.clear()


async def test_each_key_remembers_its_own_facts() -> None:
    env = environment()
    facts = [
        {"key": "ann", "value": "ann likes tea"},
        {"key": "bob", "value": "bob lives in paris"},
        {"key": "ann", "value": "ann has a cat as a pet"},
    ]
    outputs = env.from_list(facts).apply(FactAgent()).to_list()

    await env.execute()

    assert outputs[-1] == {
        "ann": {"all": ["ann likes tea", "ann has a cat as a pet"], "pet": "ann has a cat as a pet"}
    }
    assert {"bob": {"all": ["bob lives in paris"], "pet": "bob lives in paris"}} in outputs
    assert len(ListStore.documents) == 3


async def test_a_failed_run_adds_nothing() -> None:
    class Failing(WithMemory):
        @action(InputEvent)
        @staticmethod
        async def remember(event: InputEvent, ctx: RunnerContext) -> None:
            memory_set = ctx.long_term_memory.get_memory_set("facts")
            await memory_set.aadd(event.input)
            if "fail" in event.input:
                raise RuntimeError("the run fails after its add")
            ctx.send_event(OutputEvent(output=await memory_set.asize()))

    env = environment(**{"error-handling-strategy": "ignore"})
    inputs = [
        {"key": "k", "value": "one"},
        {"key": "k", "value": "fail"},
        {"key": "k", "value": "two"},
    ]
    outputs = env.from_list(inputs).apply(Failing()).to_list()

    await env.execute()

    assert outputs == [{"k": 1}, {"k": 2}]
    assert sorted(doc.content for doc in ListStore.documents.values()) == ["one", "two"]


async def test_a_retried_run_writes_its_items_once() -> None:
    attempts: list[int] = []

    class Flaky(WithMemory):
        @action(InputEvent)
        @staticmethod
        async def remember(event: InputEvent, ctx: RunnerContext) -> None:
            await ctx.long_term_memory.get_memory_set("facts").aadd([event.input, event.input])
            attempts.append(1)
            if len(attempts) == 1:
                raise RuntimeError("first attempt fails")
            ctx.send_event(OutputEvent(output="ok"))

    env = environment(**{"error-handling-strategy": "retry", "max-retries": "2"})
    env.from_list([{"key": "k", "value": "same text twice"}]).apply(Flaky()).to_list()

    await env.execute()

    assert len(attempts) == 2
    assert [doc.content for doc in ListStore.documents.values()] == ["same text twice"] * 2


async def test_ids_metadata_filters_and_delete_of_the_03_api() -> None:
    class Curator(WithMemory):
        @action(InputEvent)
        @staticmethod
        async def curate(event: InputEvent, ctx: RunnerContext) -> None:
            memory_set = ctx.long_term_memory.get_memory_set("notes")
            ids = await memory_set.aadd(
                ["rain all day", "sun at noon"], [{"kind": "weather"}, {"kind": "sky"}]
            )
            weather = await memory_set.aget(filters={"kind": "weather"})
            one = await memory_set.aget(ids=ids[1])
            await memory_set.adelete(ids[0])
            ctx.send_event(
                OutputEvent(
                    output={
                        "weather": [item.value for item in weather],
                        "meta": weather[0].additional_metadata,
                        "one": one.value,
                        "left": [item.value for item in await memory_set.aget()],
                    }
                )
            )

    env = environment()
    outputs = env.from_list([{"key": "k", "value": 0}]).apply(Curator()).to_list()

    await env.execute()

    assert outputs == [
        {
            "k": {
                "weather": ["rain all day"],
                "meta": {"kind": "weather"},
                "one": "sun at noon",
                "left": ["sun at noon"],
            }
        }
    ]


async def test_chat_messages_and_compaction_of_the_02_api(server: Any) -> None:
    server.script("ann likes tea and coffee", "ann likes tea, coffee and x")

    class Compacting(WithMemory):
        @action(InputEvent)
        @staticmethod
        def remember(event: InputEvent, ctx: RunnerContext) -> None:
            memory_set = ctx.long_term_memory.get_or_create_memory_set(
                name="chat",
                item_type=ChatMessage,
                capacity=2,
                compaction_config=CompactionConfig(model="summariser"),
            )
            memory_set.add(ChatMessage(role=MessageRole.USER, content=event.input))
            items: list[MemorySetItem] = memory_set.get()
            ctx.send_event(
                OutputEvent(
                    output=[(item.value.role, item.value.content, item.compacted) for item in items]
                )
            )

    agent = Compacting()
    agent.add_resource(
        "chat_connection",
        ResourceType.CHAT_MODEL_CONNECTION,
        ResourceDescriptor(
            clazz="flink_agents_async.integrations.openai.OpenAIChatModelConnection",
            api_base_url=server.url("openai"),
            api_key="test",
        ),
    )
    agent.add_resource(
        "summariser",
        ResourceType.CHAT_MODEL,
        ResourceDescriptor(
            clazz="flink_agents_async.integrations.openai.OpenAIChatModelSetup",
            connection="chat_connection",
            model="summary-model",
        ),
    )
    env = environment()
    env.get_config().set(LongTermMemoryOptions.BACKEND, LongTermMemoryBackend.EXTERNAL_VECTOR_STORE)
    inputs = [{"key": "ann", "value": text} for text in ("ann likes tea", "ann likes coffee", "x")]
    outputs = env.from_list(inputs[:3]).apply(agent).to_list()

    await env.execute()

    # As upstream: a set that reaches its capacity is compacted, into items of its type.
    user = MessageRole.USER
    assert outputs[0] == {"ann": [(user, "ann likes tea", False)]}
    assert outputs[1] == {"ann": [(user, "ann likes tea and coffee", True)]}
    assert outputs[2] == {"ann": [(user, "ann likes tea, coffee and x", True)]}
    assert "ann likes coffee" in server.requests[0].messages[-1].content
    assert "ann likes tea and coffee" in server.requests[1].messages[-1].content


def _text(value: Any) -> str:
    return value.content if isinstance(value, ChatMessage) else str(value)


async def test_without_a_configured_store_the_error_says_what_to_set() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    env.from_list([{"key": "k", "value": "x"}]).apply(FactAgent()).to_list()

    with pytest.raises(Exception, match=r"long-term-memory\.external-vector-store-name"):
        await env.execute()


async def test_a_memory_nobody_wrote_reads_as_empty(tmp_path: Any) -> None:
    """The embedded store makes its collection on the first add: before that, a key's memory
    is empty, not an error."""
    pytest.importorskip("sqlite_vec")

    class Reader(WithMemory):
        @vector_store
        @staticmethod
        def memory() -> ResourceDescriptor:
            return ResourceDescriptor(
                clazz=ResourceName.VectorStore.LOCAL_VECTOR_STORE,
                path=str(tmp_path),
                embedding_model="embedder",
            )

        @action(InputEvent)
        @staticmethod
        async def read(event: InputEvent, ctx: RunnerContext) -> None:
            memory_set = ctx.long_term_memory.get_memory_set("facts")
            found = await memory_set.asearch("anything", limit=3)
            await memory_set.adelete()
            ctx.send_event(OutputEvent(output=[found, await memory_set.aget()]))

    env = environment()
    outputs = env.from_list([{"key": "k", "value": 1}]).apply(Reader()).to_list()

    await env.execute()

    assert outputs == [{"k": [[], []]}]


async def test_a_retry_keeps_what_a_durable_call_wrote() -> None:
    """Upstream's pattern: the add runs inside a durable call, which the retry replays (it does
    not add again), so the failed attempt's item must stay."""
    attempts: list[int] = []

    class AddsThenFails(WithMemory):
        @action(InputEvent)
        @staticmethod
        async def remember(event: InputEvent, ctx: RunnerContext) -> None:
            memory_set = ctx.long_term_memory.get_memory_set("facts")
            await ctx.durable_execute_async(memory_set.add, items=event.input)
            attempts.append(1)
            if len(attempts) == 1:
                raise RuntimeError("first attempt fails after its add")
            ctx.send_event(OutputEvent(output=await memory_set.asize()))

    env = environment(**{"error-handling-strategy": "retry", "max-retries": "2"})
    outputs = env.from_list([{"key": "k", "value": "tea"}]).apply(AddsThenFails()).to_list()

    await env.execute()

    assert outputs == [{"k": 1}]
    assert [doc.content for doc in ListStore.documents.values()] == ["tea"]


async def test_a_later_session_failing_does_not_undo_an_earlier_one() -> None:
    """Two runtimes (no journal, so their inputs are numbered from 0 each): the second one's
    failed run takes back only its own writes."""

    class Session(WithMemory):
        @action(InputEvent)
        @staticmethod
        async def remember(event: InputEvent, ctx: RunnerContext) -> None:
            await ctx.long_term_memory.get_memory_set("facts").aadd(event.input)
            if event.input == "fail":
                raise RuntimeError("this run fails")

    for text in ("kept", "fail"):
        env = environment(**{"error-handling-strategy": "ignore"})
        env.from_list([{"key": "k", "value": text}]).apply(Session()).to_list()
        await env.execute()

    assert [doc.content for doc in ListStore.documents.values()] == ["kept"]

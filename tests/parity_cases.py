"""The behaviour cases both hosts must agree on: one table, imported by the local parity test
(``test_parity.py``) and the Flink one (``flink/test_parity_flink.py``).

Each case is an agent, its inputs (values; ``key_of`` picks each one's key, as a Flink key
selector does), the runtime configuration, and the outputs expected per key, in order. Outputs
are compared per key (ordered) and across keys as a set, since keys run concurrently.

Agents and helper functions live at module level so the Flink workers import them by name.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
    InputEvent,
    LongTermMemoryOptions,
    MemoryRef,
    OutputEvent,
    ResourceDescriptor,
    ResourceName,
    RunnerContext,
    action,
    chat_model_connection,
    chat_model_setup,
    embedding_model_connection,
    embedding_model_setup,
    mcp_server,
    tool,
    vector_store,
)


@dataclass
class Case:
    name: str
    agent: Callable[[], Agent]
    inputs: list[Any]
    key_of: Callable[[Any], Any]
    expected: dict[Any, list[Any]]
    config: dict[str, Any] | Callable[[], dict[str, Any]] = field(default_factory=dict)

    def settings(self) -> dict[str, Any]:
        """The case's configuration (made when first needed: some start a model server)."""
        return self.config() if callable(self.config) else dict(self.config)


def last_word(text: str) -> str:
    return text.split()[-1]


def field_user(value: dict[str, Any]) -> str:
    return value["user"]


# -- visits: the upstream visit counter (typed event carrying a MemoryRef) ----------------------


class RefEvent(Event):
    payload: MemoryRef


class VisitCounterAgent(Agent):
    @action(InputEvent)
    @staticmethod
    def first_action(event: InputEvent, ctx: RunnerContext) -> None:
        memory = ctx.short_term_memory
        visits = (memory.get("action_counter") or 0) + 1
        memory.set("action_counter", visits)
        content = f"{event.input} -> processed_by_first_action"
        ref = memory.set(f"processed_data.run_{visits}", {"content": content, "visits": visits})
        ctx.send_event(RefEvent(payload=ref))
        ctx.send_event(OutputEvent(output={f"(visit {visits} times)": content}))

    @action(RefEvent)
    @staticmethod
    def second_action(event: RefEvent, ctx: RunnerContext) -> None:
        memory = ctx.short_term_memory
        base = event.payload.resolve(ctx)["content"].split("->")[0].strip()
        visits = memory.get("action_counter") + 1
        memory.set("action_counter", visits)
        ctx.send_event(
            OutputEvent(output={f"(visit {visits} times)": f"{base} -> processed by second_action"})
        )


def _visit(n: int, text: str, by: str) -> dict[str, str]:
    return {f"(visit {n} times)": f"{text} -> {by}"}


VISITS = Case(
    "visits",
    VisitCounterAgent,
    [
        "The message from bob",
        "The message from john",
        "Second message from john",
        "Second message from bob",
    ],
    last_word,
    {
        "bob": [
            _visit(1, "The message from bob", "processed_by_first_action"),
            _visit(2, "The message from bob", "processed by second_action"),
            _visit(3, "Second message from bob", "processed_by_first_action"),
            _visit(4, "Second message from bob", "processed by second_action"),
        ],
        "john": [
            _visit(1, "The message from john", "processed_by_first_action"),
            _visit(2, "The message from john", "processed by second_action"),
            _visit(3, "Second message from john", "processed_by_first_action"),
            _visit(4, "Second message from john", "processed by second_action"),
        ],
    },
)


# -- durable: sync and async durable calls, several in flight at once ---------------------------


def price(item: str) -> int:
    return len(item) * 10


async def stock(item: str) -> int:
    await asyncio.sleep(0.01)
    return len(item)


class DurableAgent(Agent):
    @action(InputEvent)
    @staticmethod
    async def quote(event: InputEvent, ctx: RunnerContext) -> None:
        items = event.input["items"]
        total = ctx.durable_execute(price, items[0])
        stocks = await asyncio.gather(*(ctx.durable_execute_async(stock, i) for i in items))
        prices = await asyncio.gather(*(ctx.durable_execute_async(price, i) for i in items))
        ctx.send_event(OutputEvent(output={"first": total, "stock": stocks, "prices": prices}))


DURABLE = Case(
    "durable",
    DurableAgent,
    [
        {"user": "ann", "items": ["tea", "cake"]},
        {"user": "ben", "items": ["coffee"]},
        {"user": "ann", "items": ["scone", "jam", "butter"]},
    ],
    field_user,
    {
        "ann": [
            {"first": 30, "stock": [3, 4], "prices": [30, 40]},
            {"first": 50, "stock": [5, 3, 6], "prices": [50, 30, 60]},
        ],
        "ben": [{"first": 60, "stock": [6], "prices": [60]}],
    },
)


# -- untyped: events routed by their type string --------------------------------------------------


class UntypedAgent(Agent):
    @action(InputEvent)
    @staticmethod
    def start(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(Event(type="Step", attributes={"n": event.input["n"], "trail": []}))

    @action("Step")
    @staticmethod
    def step(event: Event, ctx: RunnerContext) -> None:
        n = event.get_attr("n")
        trail = [*event.get_attr("trail"), n]
        if n > 0:
            ctx.send_event(Event(type="Step", attributes={"n": n - 1, "trail": trail}))
        else:
            ctx.send_event(Event(type="Nobody listens", attributes={}))  # dropped, warned once
            ctx.send_event(OutputEvent(output=trail))


UNTYPED = Case(
    "untyped",
    UntypedAgent,
    [{"user": "a", "n": 3}, {"user": "b", "n": 0}, {"user": "a", "n": 1}],
    field_user,
    {"a": [[3, 2, 1, 0], [1, 0]], "b": [[0]]},
)


# -- typed: typed events with fields, two actions on one type, plan order -----------------------


class Order(Event):
    item: str
    qty: int


class TypedAgent(Agent):
    @action(InputEvent)
    @staticmethod
    def receive(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(Order(item=event.input["item"], qty=event.input["qty"]))

    @action(Order)
    @staticmethod
    def bill(event: Order, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=f"bill {event.qty} x {event.item}"))

    @action(Order)
    @staticmethod
    def ship(event: Order, ctx: RunnerContext) -> None:
        count = (ctx.short_term_memory.get("shipped") or 0) + event.qty
        ctx.short_term_memory.set("shipped", count)
        ctx.send_event(OutputEvent(output=f"ship {event.item}, {count} shipped so far"))


TYPED = Case(
    "typed",
    TypedAgent,
    [
        {"user": "x", "item": "pen", "qty": 2},
        {"user": "y", "item": "ink", "qty": 1},
        {"user": "x", "item": "pad", "qty": 3},
    ],
    field_user,
    {
        "x": [
            "bill 2 x pen",
            "ship pen, 2 shipped so far",
            "bill 3 x pad",
            "ship pad, 5 shipped so far",
        ],
        "y": ["bill 1 x ink", "ship ink, 1 shipped so far"],
    },
)


# -- sensory: sensory memory lives for one run ---------------------------------------------------


class SensoryAgent(Agent):
    @action(InputEvent)
    @staticmethod
    def remember(event: InputEvent, ctx: RunnerContext) -> None:
        seen_before = ctx.sensory_memory.is_exist("note")
        ctx.sensory_memory.set("note", event.input["text"])
        ctx.send_event(Event(type="Recall", attributes={"seen_before": seen_before}))

    @action("Recall")
    @staticmethod
    def recall(event: Event, ctx: RunnerContext) -> None:
        note = ctx.sensory_memory.get("note")
        ctx.send_event(OutputEvent(output={"note": note, "stale": event.get_attr("seen_before")}))


SENSORY = Case(
    "sensory",
    SensoryAgent,
    [{"user": "s", "text": "one"}, {"user": "s", "text": "two"}],
    field_user,
    {"s": [{"note": "one", "stale": False}, {"note": "two", "stale": False}]},
)


# -- errors: a failing run is skipped and leaves the key as before it -----------------------------


class FlakyAgent(Agent):
    @action(InputEvent)
    @staticmethod
    def count(event: InputEvent, ctx: RunnerContext) -> None:
        total = (ctx.short_term_memory.get("total") or 0) + event.input["add"]
        ctx.short_term_memory.set("total", total)
        ctx.send_event(OutputEvent(output=total))
        if event.input.get("boom"):
            raise ValueError(f"boom at {total}")


ERRORS = Case(
    "errors_ignored",
    FlakyAgent,
    [
        {"user": "e", "add": 1},
        {"user": "e", "add": 10, "boom": True},
        {"user": "e", "add": 100},
        {"user": "f", "add": 5, "boom": True},
        {"user": "f", "add": 7},
    ],
    field_user,
    {"e": [1, 101], "f": [7]},
    config={"error-handling-strategy": "ignore"},
)


# -- async: async actions that await, fan out tasks, and send events while awaiting --------------


class FanOutAgent(Agent):
    @action(InputEvent)
    @staticmethod
    async def fan_out(event: InputEvent, ctx: RunnerContext) -> None:
        words = event.input["words"]
        ctx.send_event(Event(type="Started", attributes={"n": len(words)}))

        async def shout(word: str, delay: float) -> str:
            await asyncio.sleep(delay)
            return word.upper()

        tasks = [asyncio.create_task(shout(w, 0.002 * (len(words) - i))) for i, w in
                 enumerate(words)]  # fmt: skip
        shouted = await asyncio.gather(*tasks)
        ctx.send_event(OutputEvent(output=" ".join(shouted)))

    @action("Started")
    @staticmethod
    def started(event: Event, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=f"started {event.get_attr('n')}"))


FAN_OUT = Case(
    "async_fan_out",
    FanOutAgent,
    [
        {"user": "q", "words": ["a", "b", "c"]},
        {"user": "q", "words": ["d"]},
        {"user": "r", "words": ["e", "f"]},
    ],
    field_user,
    {"q": ["started 3", "A B C", "started 1", "D"], "r": ["started 2", "E F"]},
)


# -- retries: a retried run replays the durable calls its failed attempt completed ---------------

# Per process: runs of this case on several hosts of one process add up, so each successful run
# must add exactly two attempts and one real call.
_ATTEMPTS: Counter[str] = Counter()
_CHARGES: Counter[str] = Counter()


def charge(order: str) -> str:
    _CHARGES[order] += 1
    return f"charged {order}"


class RetriedAgent(Agent):
    @action(InputEvent)
    @staticmethod
    async def pay(event: InputEvent, ctx: RunnerContext) -> None:
        order = event.input["order"]
        receipt = await ctx.durable_execute_async(charge, order)
        _ATTEMPTS[order] += 1
        if _ATTEMPTS[order] % 2:
            raise ConnectionError("the shop is unreachable (this time)")
        ctx.send_event(OutputEvent(output=[receipt, _ATTEMPTS[order] == 2 * _CHARGES[order]]))


RETRIES = Case(
    "retries_replay_completed_calls",
    RetriedAgent,
    [{"user": "p", "order": "o1"}, {"user": "p", "order": "o2"}, {"user": "q", "order": "o3"}],
    field_user,
    {"p": [["charged o1", True], ["charged o2", True]], "q": [["charged o3", True]]},
    config={"error-handling-strategy": "retry", "max-retries": 2},
)


# -- llm: a chat model with a tool, over HTTP to a local model server ---------------------------

_MODEL_SERVER: Any = None


def _model_server_settings() -> dict[str, Any]:
    """The connection's address, given through the configuration (shipped to Flink's workers
    with the plan); the server runs in this process for the whole test session."""
    global _MODEL_SERVER
    if _MODEL_SERVER is None:
        from flink_agents_async.testing import ModelServer

        _MODEL_SERVER = ModelServer().start()
        _MODEL_SERVER.respond_with(_scripted_models)
        atexit.register(_MODEL_SERVER.stop)
    return {"OpenAIChatModelConnection.api_base_url": _MODEL_SERVER.url("openai")}


def _scripted_models(request: Any) -> Any:
    """The model server's answers: the ``adder`` model's, else the shouting one's."""
    return _adding_model(request) if request.model == "adder" else _shouting_model(request)


def _adding_model(request: Any) -> Any:
    """A model that has the two numbers of the question added by the MCP server's ``add``."""
    from flink_agents_async.testing import Reply, ToolCall

    if request.tool_results:
        return Reply(f"the sum is {request.tool_results[-1].content}")
    a, b = (int(word) for word in request.last_user_text.split() if word.isdigit())
    return Reply.tools(ToolCall("add", {"a": a, "b": b}))


def _shouting_model(request: Any) -> Any:
    """A model that has every question shouted by the ``shout`` tool, then answers with it."""
    from flink_agents_async.testing import Reply, ToolCall

    if request.tool_results:
        return Reply(f"the answer is {request.tool_results[-1].content}")
    return Reply.tools(ToolCall("shout", {"text": request.last_user_text}))


def shout(text: str) -> str:
    """Shout a text.

    Args:
        text: what to shout
    """
    return text.upper() + "!"


class ShoutingChatAgent(Agent):
    @chat_model_connection
    @staticmethod
    def connection() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=ResourceName.ChatModel.OPENAI_CONNECTION, api_key="test")

    @chat_model_setup
    @staticmethod
    def model() -> ResourceDescriptor:
        return ResourceDescriptor(
            clazz=ResourceName.ChatModel.OPENAI_SETUP,
            connection="connection",
            model="shouter",
            tools=["shout"],
        )

    @tool
    @staticmethod
    def shout(text: str) -> str:
        """Shout a text.

        Args:
            text: what to shout
        """
        return shout(text)

    @action(InputEvent)
    @staticmethod
    def ask(event: InputEvent, ctx: RunnerContext) -> None:
        for word in event.input["words"]:  # requests in flight together, each with a tool round
            ctx.send_event(ChatRequestEvent(model="model", messages=[ChatMessage(content=word)]))

    @action(ChatResponseEvent)
    @staticmethod
    def answer(event: ChatResponseEvent, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=event.response.content))


LLM = Case(
    "llm_tool_rounds",
    ShoutingChatAgent,
    [
        {"user": "s", "words": ["hi"]},
        {"user": "t", "words": ["yo"]},
        {"user": "s", "words": ["ok"]},
    ],
    field_user,
    {"s": ["the answer is HI!", "the answer is OK!"], "t": ["the answer is YO!"]},
    config=_model_server_settings,
)


_MCP_SERVER: Any = None


def _mcp_settings() -> dict[str, Any]:
    """The model server's settings, and the endpoint of a real MCP server (streamable HTTP, in
    this process for the whole test session), through the configuration."""
    global _MCP_SERVER
    if _MCP_SERVER is None:
        from mcp_server_app import HttpServer

        _MCP_SERVER = HttpServer().start()
        atexit.register(stop_servers)
    return {**_model_server_settings(), "MCPServer.endpoint": _MCP_SERVER.url}


def stop_servers() -> None:
    """Stop the MCP server the cases started (at the end of the test session, while logging
    still works; at exit otherwise)."""
    global _MCP_SERVER
    if _MCP_SERVER is not None:
        _MCP_SERVER.stop()
        _MCP_SERVER = None


class McpChatAgent(Agent):
    """A chat model whose tool is the MCP server's ``add``."""

    @mcp_server
    @staticmethod
    def calculator() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=ResourceName.MCP_SERVER)

    @chat_model_connection
    @staticmethod
    def connection() -> ResourceDescriptor:
        return ResourceDescriptor(clazz=ResourceName.ChatModel.OPENAI_CONNECTION, api_key="test")

    @chat_model_setup
    @staticmethod
    def model() -> ResourceDescriptor:
        return ResourceDescriptor(
            clazz=ResourceName.ChatModel.OPENAI_SETUP,
            connection="connection",
            model="adder",
            tools=["add"],
        )

    @action(InputEvent)
    @staticmethod
    def ask(event: InputEvent, ctx: RunnerContext) -> None:
        question = ChatMessage(content=event.input["q"])
        ctx.send_event(ChatRequestEvent(model="model", messages=[question]))

    @action(ChatResponseEvent)
    @staticmethod
    def answer(event: ChatResponseEvent, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=event.response.content))


MCP = Case(
    "mcp_tools",
    McpChatAgent,
    [{"user": "s", "q": "what is 1 plus 2"}, {"user": "t", "q": "and 20 plus 22"}],
    field_user,
    # Upstream's shape of an MCP tool result: the list of its content items.
    {"s": ["the sum is ['3']"], "t": ["the sum is ['42']"]},
    config=_mcp_settings,
)


def _fresh_store_settings(knowledge: list[str]) -> dict[str, Any]:
    """A new store directory (one per run of a case: each host starts from the same state),
    holding ``knowledge``, with word-count embeddings."""
    from knowledge_helpers import WordCounts

    from flink_agents_async.integrations.local_vector_store import LocalVectorStore

    path = tempfile.mkdtemp(prefix="parity-store-")
    atexit.register(shutil.rmtree, path, True)

    async def fill() -> None:
        vectors = await WordCounts().aembed(knowledge)
        store = LocalVectorStore(path=path)
        try:
            await store.aadd(
                [
                    Document(content=text, embedding=vector)
                    for text, vector in zip(knowledge, vectors, strict=True)
                ]
            )
        finally:
            await store.aclose()

    if knowledge:
        asyncio.run(fill())
    return {
        "LocalVectorStore.path": path,
        LongTermMemoryOptions.EXTERNAL_VECTOR_STORE_NAME.key: "knowledge",
    }


class KnowledgeAgent(Agent):
    """A word-count embedder and the embedded store (its path comes from the configuration)."""

    @embedding_model_connection
    @staticmethod
    def words() -> ResourceDescriptor:
        return ResourceDescriptor(clazz="knowledge_helpers.WordCounts")

    @embedding_model_setup
    @staticmethod
    def embedder() -> ResourceDescriptor:
        return ResourceDescriptor(
            clazz="knowledge_helpers.WordCountSetup", connection="words", model="words"
        )

    @vector_store
    @staticmethod
    def knowledge() -> ResourceDescriptor:
        return ResourceDescriptor(
            clazz=ResourceName.VectorStore.LOCAL_VECTOR_STORE, embedding_model="embedder"
        )


class RagAgent(KnowledgeAgent):
    @action(InputEvent)
    @staticmethod
    def ask(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(ContextRetrievalRequestEvent(event.input["q"], "knowledge", max_results=1))

    @action(ContextRetrievalResponseEvent)
    @staticmethod
    def answer(event: ContextRetrievalResponseEvent, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=[document.content for document in event.documents]))


RAG = Case(
    "rag_context_retrieval",
    RagAgent,
    [{"user": "s", "q": "my cat?"}, {"user": "t", "q": "rain?"}, {"user": "s", "q": "stocks?"}],
    field_user,
    {"s": [["cats are pets"], ["stock market prices move"]], "t": [["rain is weather"]]},
    config=lambda: _fresh_store_settings(
        ["cats are pets", "stock market prices move", "rain is weather"]
    ),
)


class RememberingAgent(KnowledgeAgent):
    @action(InputEvent)
    @staticmethod
    async def remember(event: InputEvent, ctx: RunnerContext) -> None:
        memory_set = ctx.long_term_memory.get_memory_set("facts")
        await memory_set.aadd(event.input["fact"])
        found = await memory_set.asearch("which pet?", limit=1)
        items = await memory_set.aget()
        ctx.send_event(OutputEvent(output=[[i.value for i in items], found[0].value]))


LONG_TERM_MEMORY = Case(
    "long_term_memory",
    RememberingAgent,
    [
        {"user": "s", "fact": "s likes tea"},
        {"user": "t", "fact": "t has a dog as a pet"},
        {"user": "s", "fact": "s has a cat as a pet"},
    ],
    field_user,
    {
        "s": [
            [["s likes tea"], "s likes tea"],
            [["s likes tea", "s has a cat as a pet"], "s has a cat as a pet"],
        ],
        "t": [[["t has a dog as a pet"], "t has a dog as a pet"]],
    },
    config=lambda: _fresh_store_settings([]),
)


CASES = [
    VISITS, DURABLE, UNTYPED, TYPED, SENSORY, ERRORS, FAN_OUT, RETRIES, LLM, RAG, LONG_TERM_MEMORY,
    MCP,
]  # fmt: skip


def run_locally(case: Case) -> list[tuple[Any, Any]]:
    """The case's ``(key, output)`` pairs on the local host, in emission order."""
    env = AgentsExecutionEnvironment.get_execution_environment(config=case.settings())
    builder = env.from_list([{"key": case.key_of(value), "value": value} for value in case.inputs])
    outputs = builder.apply(case.agent()).to_list()
    env.execute()
    return [next(iter(entry.items())) for entry in outputs]


def by_key(pairs: list[tuple[Any, Any]]) -> dict[Any, list[Any]]:
    """Outputs grouped by key, each key's in emission order."""
    grouped: dict[Any, list[Any]] = {}
    for key, output in pairs:
        grouped.setdefault(key, []).append(output)
    return grouped

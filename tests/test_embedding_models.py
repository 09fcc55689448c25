"""Embedding models: the OpenAI and Ollama integrations with their official clients over real
HTTP (``ModelServer`` on 127.0.0.1: deterministic vectors, counted requests, scripted failures),
an upstream-style sync connection, and a setup used from an agent's action in the runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

pytest.importorskip("openai")
pytest.importorskip("ollama")

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    InputEvent,
    OutputEvent,
    ResourceDescriptor,
    ResourceError,
    ResourceName,
    ResourceType,
    RunnerContext,
    action,
    embedding_model_connection,
    embedding_model_setup,
)
from flink_agents_async.integrations._common import EmbeddingModelRequestError
from flink_agents_async.integrations.ollama import (
    OllamaEmbeddingModelConnection,
    OllamaEmbeddingModelSetup,
)
from flink_agents_async.integrations.openai import (
    OpenAIEmbeddingModelConnection,
    OpenAIEmbeddingModelSetup,
)
from flink_agents_async.llm.embedding_models import (
    BaseEmbeddingModelConnection,
    BaseEmbeddingModelSetup,
    EmbeddingResult,
    EmbeddingTokenUsage,
)
from flink_agents_async.metrics import MetricGroup
from flink_agents_async.testing import ModelServer, Reply, fake_embedding

PROVIDERS = ["openai", "ollama"]
OPENED: list[Any] = []


@pytest.fixture(autouse=True)
async def close_connections() -> AsyncIterator[None]:
    """Close the clients of the connections a test made, on the test's own loop."""
    yield
    while OPENED:
        await OPENED.pop().aclose()


def connection_for(provider: str, server: ModelServer, **fields: Any) -> Any:
    connection: Any
    if provider == "openai":
        connection = OpenAIEmbeddingModelConnection(
            base_url=server.url("openai"), api_key="test", retry_wait_interval=0, **fields
        )
    else:
        connection = OllamaEmbeddingModelConnection(
            base_url=server.url("ollama"), retry_wait_interval=0, **fields
        )
    OPENED.append(connection)
    return connection


def setup_for(provider: str, connection: Any, model: str = "embed") -> BaseEmbeddingModelSetup:
    if provider == "openai":
        return OpenAIEmbeddingModelSetup(connection=connection, model=model)
    return OllamaEmbeddingModelSetup(connection=connection, model=model)


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_one_text_gives_a_vector_and_many_give_one_each(
    provider: str, server: ModelServer
) -> None:
    setup = setup_for(provider, connection_for(provider, server))

    one = await setup.aembed("alpha")
    many = await setup.aembed(["alpha", "beta"])

    assert one == pytest.approx(fake_embedding("alpha"))
    assert many[1] == pytest.approx(fake_embedding("beta"))
    assert [request.inputs for request in server.requests] == [("alpha",), ("alpha", "beta")]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_texts_go_in_batches_and_come_back_in_order(
    provider: str, server: ModelServer
) -> None:
    texts = [f"text {n}" for n in range(5)]
    connection = connection_for(provider, server, max_batch_size=2)
    group = MetricGroup("embedding")
    connection.set_metric_group(group)

    result = await setup_for(provider, connection).aembed_with_usage(texts)

    assert result.embeddings == [pytest.approx(fake_embedding(text)) for text in texts]
    assert sorted(len(request.inputs) for request in server.requests) == [1, 2, 2]
    assert result.token_usage is not None and result.token_usage.prompt_tokens > 0
    counters = dict(group.get_sub_group("embed").metrics())
    assert counters["embeddingRequests"].get_count() == 3
    assert counters["embeddingPromptTokens"].get_count() == result.token_usage.prompt_tokens


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_rate_limits_are_retried(provider: str, server: ModelServer) -> None:
    server.script(Reply.error(429, "slow down"), model="embed")
    setup = setup_for(provider, connection_for(provider, server))

    assert await setup.aembed("alpha") == pytest.approx(fake_embedding("alpha"))
    assert len(server.requests) == 2


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_text_too_large_is_a_clear_error(provider: str, server: ModelServer) -> None:
    server.script(Reply.error(400, "input is too long for the model's context"), model="embed")
    setup = setup_for(provider, connection_for(provider, server))

    with pytest.raises(EmbeddingModelRequestError) as caught:
        await setup.aembed("a very long document")

    message = str(caught.value)
    assert "EmbeddingModelConnection" in message and "'embed'" in message
    assert "too long" in message and caught.value.status_code == 400
    assert len(server.requests) == 1  # a 400 is not retried


async def test_an_unreachable_service_names_the_endpoint() -> None:
    connection = OpenAIEmbeddingModelConnection(
        base_url="http://127.0.0.1:9/v1", api_key="test", max_retries=0
    )
    OPENED.append(connection)
    with pytest.raises(EmbeddingModelRequestError, match=r"cannot reach http://127\.0\.0\.1:9/v1"):
        await setup_for("openai", connection).aembed("alpha")


def test_sync_embed_works_outside_a_loop(server: ModelServer) -> None:
    """Upstream's entry point: ``embed`` from sync code runs the request on a loop of its own
    and closes the client made for it."""
    connection = connection_for("openai", server)
    setup = setup_for("openai", connection)

    assert setup.embed("alpha") == pytest.approx(fake_embedding("alpha"))
    assert connection.clients() == []


def test_request_timeout_is_upstreams_name_for_timeout() -> None:
    assert OpenAIEmbeddingModelConnection(request_timeout=5).request_timeout == 5
    assert OllamaEmbeddingModelConnection(request_timeout=7).timeout == 7


class CountingConnection(BaseEmbeddingModelConnection):
    """Upstream's style: a sync ``embed`` only."""

    calls: int = 0

    def embed(self, text: str | Sequence[str], **kwargs: Any) -> Any:
        self.calls += 1
        if isinstance(text, str):
            return [float(len(text)), float(kwargs["scale"])]
        return [[float(len(item)), float(kwargs["scale"])] for item in text]


class ScaledSetup(BaseEmbeddingModelSetup):
    scale: int = 1

    @property
    def model_kwargs(self) -> dict[str, Any]:
        return {"model": self.model, "scale": self.scale}


async def test_an_upstream_style_sync_connection_serves_async_callers() -> None:
    connection = CountingConnection()
    setup = ScaledSetup(connection=connection, model="m", scale=3)

    assert await setup.aembed("abcd") == [4.0, 3.0]
    assert (await setup.aembed_with_usage(["a", "bb"])).embeddings == [[1.0, 3.0], [2.0, 3.0]]
    assert setup.embed_with_usage("x") == EmbeddingResult([1.0, 3.0])


def test_a_connection_implementing_nothing_says_so() -> None:
    class Empty(BaseEmbeddingModelConnection):
        pass

    with pytest.raises(NotImplementedError, match="neither aembed_with_usage nor embed"):
        Empty().embed("x")


def test_usage_adds_up() -> None:
    assert EmbeddingTokenUsage(1, 2) + EmbeddingTokenUsage(3, 4) == EmbeddingTokenUsage(4, 6)


class EmbeddingAgent(Agent):
    """Embeds each input in a durable call, through resources declared on the agent."""

    @embedding_model_connection
    @staticmethod
    def embedder() -> ResourceDescriptor:
        return ResourceDescriptor(
            clazz=ResourceName.EmbeddingModel.OPENAI_CONNECTION, api_key="test"
        )

    @embedding_model_setup
    @staticmethod
    def embedding() -> ResourceDescriptor:
        return ResourceDescriptor(
            clazz=ResourceName.EmbeddingModel.OPENAI_SETUP, connection="embedder", model="embed"
        )

    @action(InputEvent)
    @staticmethod
    async def embed(event: InputEvent, ctx: RunnerContext) -> None:
        setup = ctx.get_resource("embedding", ResourceType.EMBEDDING_MODEL)
        vector = await ctx.durable_execute_async(setup.aembed, event.input)
        ctx.send_event(OutputEvent(output=len(vector)))


async def test_an_agent_embeds_through_declared_resources(server: ModelServer) -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    env.get_config().set_str("OpenAIEmbeddingModelConnection.base_url", server.url("openai"))
    outputs = env.from_list([{"key": "k", "value": "hello"}]).apply(EmbeddingAgent()).to_list()

    await env.execute()

    assert outputs == [{"k": 16}]
    assert server.requests[0].inputs == ("hello",)


def test_a_setup_outside_a_runtime_cannot_find_its_connection() -> None:
    setup = OpenAIEmbeddingModelSetup(connection="embedder", model="embed")
    with pytest.raises(ResourceError, match=r"'embedder'.*not created by a runtime"):
        setup.embed("x")

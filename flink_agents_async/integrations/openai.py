"""OpenAI chat models, and the OpenAI-compatible Azure OpenAI and vLLM, through the official
``openai`` package's async clients (``pip install 'flink-agents-async[openai]'``).

The classes keep upstream Flink Agents' names, fields and defaults
(``flink_agents.integrations.chat_models.openai`` / ``azure`` / ``vllm``), so agents declare
them the same way::

    ResourceDescriptor(clazz=ResourceName.ChatModel.OPENAI_CONNECTION, api_key="sk-...")
    ResourceDescriptor(clazz=ResourceName.ChatModel.OPENAI_SETUP, connection="openai",
                       model="gpt-4o-mini", tools=["get_weather"])

What differs from upstream, and why:

* requests go through ``AsyncOpenAI`` on the event loop (one client per loop), with the SDK's
  own retries off: the connection's ``max_retries`` retries 429, 408, 409, 5xx, timeouts and
  connection failures with backoff honouring ``Retry-After`` (``RemoteChatModelConnection``);
* the API key and base URL are resolved when the first client is made (argument, then
  ``OPENAI_API_KEY`` / ``OPENAI_API_BASE_URL``, then ``openai.api_key`` / ``openai.base_url``),
  and a missing key is a ``ResourceError`` naming the variable;
* tool-call arguments that are not valid JSON are kept as text instead of failing the request,
  so the tool-call action reports them back to the model;
* of a message's ``extra_args`` only ``name`` is sent: upstream merges all of them into the
  provider message, which would send our own keys (``model_name``, token counts...) back;
* the setup's ``strict`` and ``reasoning_effort`` reach the request when set (upstream declares
  them but sends neither).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from ..errors import ResourceError
from ..llm.chat_models import BaseChatModelSetup
from ..llm.embedding_models import BaseEmbeddingModelSetup, EmbeddingTokenUsage
from ..llm.messages import ChatMessage, MessageRole
from ..llm.tools import Tool
from ._common import (
    ChatModelRequestError,
    EmbeddingModelRequestError,
    PreparedRequest,
    ProviderChatModelConnection,
    ProviderEmbeddingModelConnection,
    ServiceFailure,
    assistant_answer,
    call_function,
    call_provider_id,
    first_set,
    from_env,
    function_spec,
    missing_api_key,
    new_tool_call,
    parse_arguments,
    read_stainless_failure,
    require_model,
    timeout_from_request_timeout,
    tool_result_id,
    with_extra_body,
)

try:
    import openai
except ImportError as error:  # pragma: no cover - exercised with the SDK hidden
    raise ImportError(
        "flink_agents_async.integrations.openai needs the openai package: "
        "pip install 'flink-agents-async[openai]'"
    ) from error

__all__ = [
    "AzureOpenAIChatModelConnection",
    "AzureOpenAIChatModelSetup",
    "ChatModelRequestError",
    "EmbeddingModelRequestError",
    "OpenAIChatModelConnection",
    "OpenAIChatModelSetup",
    "OpenAIEmbeddingModelConnection",
    "OpenAIEmbeddingModelSetup",
    "VLLMChatModelConnection",
    "VLLMChatModelSetup",
]

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"  # upstream main's default (0.2/0.3: gpt-3.5-turbo, retired)
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_VLLM_BASE_URL = "http://localhost:8000/v1"


# -- the Chat Completions protocol, shared by OpenAI, Azure and vLLM ----------------------------


class _ChatCompletionsConnection(ProviderChatModelConnection):
    """Requests and answers of the Chat Completions API; subclasses make the client."""

    def _prepare(
        self, messages: list[ChatMessage], tools: list[Tool], arguments: dict[str, Any]
    ) -> PreparedRequest:
        name = type(self).__name__
        model = require_model(arguments, name)
        # Not an API argument: upstream's flag for the tools' function specs.
        strict = bool(arguments.pop("strict", False))
        payload = {**arguments, "messages": [openai_message(m, name) for m in messages]}
        if tools:
            payload["tools"] = [openai_tool(tool, strict) for tool in tools]
        return PreparedRequest(payload, model=model)

    async def _send(self, client: Any, payload: dict[str, Any]) -> Any:
        create = client.chat.completions.create
        return await create(**with_extra_body(create, payload))

    def _answer(self, response: Any, request: PreparedRequest) -> ChatMessage:
        choices = getattr(response, "choices", None)
        if not choices:
            raise self.unreadable(request.model, f"it holds no choices: {response!r:.300}")
        message = choices[0].message
        calls = [self._tool_call(call, request) for call in message.tool_calls or ()]
        usage = getattr(response, "usage", None)
        return assistant_answer(
            message.content or "",
            calls,
            model_name=request.model_name,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
            refusal=getattr(message, "refusal", None),  # as upstream main
        )

    def _tool_call(self, call: Any, request: PreparedRequest) -> dict[str, Any]:
        function = getattr(call, "function", None)
        if function is None:  # a custom tool's call: we only offer function tools
            raise self.unreadable(
                request.model, f"a tool call of type {getattr(call, 'type', '?')!r}"
            )
        name = type(self).__name__
        arguments = parse_arguments(
            function.arguments, connection=name, model=request.model, tool=function.name
        )
        return new_tool_call(function.name, arguments, call.id)

    def _read_failure(self, error: BaseException) -> ServiceFailure:
        return read_stainless_failure(error, openai)


def openai_message(message: ChatMessage, connection: str) -> dict[str, Any]:
    """One message in the Chat Completions format (upstream's conversion, see the module)."""
    if message.role == MessageRole.TOOL:
        return {
            "role": "tool",
            "content": message.content,
            "tool_call_id": tool_result_id(message, connection),
        }
    converted: dict[str, Any] = {"role": message.role.value, "content": message.content}
    if message.role == MessageRole.ASSISTANT and message.tool_calls:
        # The API's own spelling of "said nothing besides the tool calls".
        converted["content"] = message.content or None
        converted["tool_calls"] = [openai_tool_call(call) for call in message.tool_calls]
    name = message.extra_args.get("name")
    if isinstance(name, str) and name:
        converted["name"] = name
    return converted


def openai_tool_call(call: dict[str, Any]) -> dict[str, Any]:
    """A tool call of an earlier answer, as the API takes it back: its own id, and the
    arguments as a JSON string (text the model sent that was not JSON goes back as it was)."""
    name, arguments = call_function(call)
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, default=str)
    return {
        "id": call_provider_id(call),
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def openai_tool(tool: Tool, strict: bool = False) -> dict[str, Any]:
    """A tool as a function spec; as upstream: ``strict`` on every spec and no properties
    beyond the schema's (``additionalProperties: false``, which strict mode requires)."""
    spec = function_spec(tool)
    function = spec["function"]
    function["parameters"] = {**function["parameters"], "additionalProperties": False}
    function["strict"] = strict
    return spec


def _made(connection: str, make: Callable[[], Any]) -> Any:
    """A client from ``make``; the SDK's refusal (no endpoint, no API version...) as a
    ``ResourceError`` naming the connection."""
    try:
        return make()
    except (openai.OpenAIError, ValueError) as error:
        raise ResourceError(f"{connection}: cannot create the client: {error}") from error


def _async_openai(connection: Any, api_key: str | None, **options: Any) -> Any:
    """An ``AsyncOpenAI`` client for ``connection`` (its timeout; the SDK's own retries off:
    ours retry, with ``RetryPolicy``), or the error naming the missing key's variable."""
    name = type(connection).__name__
    if api_key is None:
        raise missing_api_key(name, connection.API_KEY_VARIABLE)
    return _made(
        name,
        lambda: openai.AsyncOpenAI(
            api_key=api_key, timeout=connection.request_timeout, max_retries=0, **options
        ),
    )


# -- OpenAI ------------------------------------------------------------------------------------


class OpenAIChatModelConnection(_ChatCompletionsConnection):
    """A connection to the OpenAI API (or any service speaking it) with ``openai.AsyncOpenAI``.

    Upstream's fields: ``api_key`` (else env ``OPENAI_API_KEY``), ``api_base_url`` (else env
    ``OPENAI_API_BASE_URL``, else the SDK's default), ``max_retries=3``, ``timeout=60.0`` (per
    request; 0: none), ``default_headers``, ``reuse_client`` (False: a new client for every
    request). From ``RemoteChatModelConnection``: ``max_concurrency``, ``retry_wait_interval``,
    ``max_retry_wait``.
    """

    API_KEY_VARIABLE: ClassVar[str] = "OPENAI_API_KEY"
    BASE_URL_VARIABLE: ClassVar[str] = "OPENAI_API_BASE_URL"

    api_key: str | None = Field(default=None, repr=False)
    api_base_url: str | None = None
    default_headers: dict[str, str] | None = None
    reuse_client: bool = True

    def resolved_api_key(self) -> str | None:
        return first_set(
            self.api_key, from_env(self.API_KEY_VARIABLE), getattr(openai, "api_key", None)
        )

    def resolved_base_url(self) -> str | None:
        """The base URL to use; None lets the SDK choose (its ``OPENAI_BASE_URL``, else the
        public API)."""
        module_url = getattr(openai, "base_url", None)
        return first_set(
            self.api_base_url,
            from_env(self.BASE_URL_VARIABLE),
            str(module_url) if module_url else None,
        )

    @property
    def _reuses_client(self) -> bool:
        return self.reuse_client

    def _endpoint(self) -> str:
        return self.resolved_base_url() or DEFAULT_OPENAI_BASE_URL

    def _make_client(self) -> Any:
        return _async_openai(
            self,
            self.resolved_api_key(),
            base_url=self.resolved_base_url(),
            default_headers=self.default_headers,
        )


class OpenAIChatModelSetup(BaseChatModelSetup):
    """What to ask an OpenAI model; upstream's fields and defaults: ``model="gpt-4o-mini"``,
    ``temperature=0.1`` (0..2), ``max_tokens``, ``logprobs`` / ``top_logprobs`` (0..20, sent
    only with ``logprobs``), ``additional_kwargs`` (merged over the rest), ``strict`` (strict
    function schemas) and ``reasoning_effort`` (sent when set). Ours: ``temperature=None``
    sends none, for models that take only their own.
    """

    model: str | None = DEFAULT_OPENAI_MODEL
    temperature: float | None = Field(default=0.1, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0)
    logprobs: bool | None = None
    top_logprobs: int = Field(default=0, ge=0, le=20)
    additional_kwargs: dict[str, Any] = Field(default_factory=dict)
    strict: bool = False
    reasoning_effort: str | None = None

    @property
    def model_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": self.model}
        if self.temperature is not None:  # None: the model's own (reasoning models want that)
            kwargs["temperature"] = self.temperature
        if self.max_tokens is not None:
            kwargs["max_tokens"] = self.max_tokens
        if self.logprobs:
            kwargs.update(logprobs=True, top_logprobs=self.top_logprobs)
        if self.reasoning_effort:
            kwargs["reasoning_effort"] = self.reasoning_effort
        if self.strict:
            kwargs["strict"] = True  # read (and removed) by the connection
        return {**kwargs, **self.additional_kwargs}


# -- vLLM --------------------------------------------------------------------------------------


class VLLMChatModelConnection(OpenAIChatModelConnection):
    """A vLLM server's OpenAI-compatible API. As upstream: ``api_key`` is ``"EMPTY"`` and
    ``api_base_url`` ``http://localhost:8000/v1`` when not given or blank; the ``OPENAI_*``
    environment variables are not read (they belong to OpenAI)."""

    def resolved_api_key(self) -> str | None:
        return first_set(self.api_key) or "EMPTY"

    def resolved_base_url(self) -> str | None:
        return first_set(self.api_base_url) or DEFAULT_VLLM_BASE_URL


class VLLMChatModelSetup(OpenAIChatModelSetup):
    """As ``OpenAIChatModelSetup``, but the model (the one the server serves) is required."""

    model: str  # required here, optional in the base

    @field_validator("model")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("model must name the model the vLLM server serves")
        return value


# -- Azure OpenAI ------------------------------------------------------------------------------

# Arguments the setup sets itself, which additional_kwargs must not override (as upstream 0.3).
_AZURE_RESERVED = frozenset(
    {"model", "model_of_azure_deployment", "temperature", "max_tokens", "logprobs"}
)


class AzureOpenAIChatModelConnection(_ChatCompletionsConnection):
    """A connection to Azure OpenAI with ``openai.AsyncAzureOpenAI``. Upstream's fields:
    ``api_key`` (else env ``AZURE_OPENAI_API_KEY``), ``api_version`` (else env
    ``OPENAI_API_VERSION``), ``azure_endpoint`` (else env ``AZURE_OPENAI_ENDPOINT``),
    ``timeout=60.0``, ``max_retries=3``.

    The request's ``model`` is the deployment name; ``model_of_azure_deployment`` names the
    model behind it for token metrics (the deployment name when not given: upstream counts no
    tokens then); ``additional_kwargs`` are merged into the request, but may not set what the
    setup sets itself.
    """

    API_KEY_VARIABLE: ClassVar[str] = "AZURE_OPENAI_API_KEY"

    api_key: str | None = Field(default=None, repr=False)
    api_version: str | None = None
    azure_endpoint: str | None = None

    def _endpoint(self) -> str:
        return first_set(self.azure_endpoint, from_env("AZURE_OPENAI_ENDPOINT")) or "Azure"

    def _make_client(self) -> Any:
        name = type(self).__name__
        api_key = first_set(self.api_key, from_env(self.API_KEY_VARIABLE))
        if api_key is None and not from_env("AZURE_OPENAI_AD_TOKEN"):
            raise missing_api_key(name, self.API_KEY_VARIABLE)
        endpoint = first_set(self.azure_endpoint, from_env("AZURE_OPENAI_ENDPOINT"))
        if endpoint is None:
            raise ResourceError(
                f"{name}: no endpoint: pass azure_endpoint=... to the connection (in its "
                "ResourceDescriptor) or set the environment variable AZURE_OPENAI_ENDPOINT"
            )
        return _made(
            name,
            lambda: openai.AsyncAzureOpenAI(
                azure_endpoint=endpoint,
                api_key=api_key,
                api_version=self.api_version,
                timeout=self.request_timeout,
                max_retries=0,
            ),
        )

    def _prepare(
        self, messages: list[ChatMessage], tools: list[Tool], arguments: dict[str, Any]
    ) -> PreparedRequest:
        name = type(self).__name__
        deployment = arguments.get("model")
        if not isinstance(deployment, str) or not deployment.strip():
            raise ValueError(f"{name}: model (the Azure deployment name) is required")
        model_name = arguments.pop("model_of_azure_deployment", None) or deployment
        extra = arguments.pop("additional_kwargs", None) or {}
        reserved = sorted(_AZURE_RESERVED.intersection(extra))
        if reserved:
            raise ValueError(
                f"{name}: additional_kwargs may not set {reserved}: set them on the setup"
            )
        request = super()._prepare(messages, tools, {**arguments, **extra})
        request.model_name = model_name
        return request


class AzureOpenAIChatModelSetup(BaseChatModelSetup):
    """What to ask an Azure OpenAI deployment; upstream's fields: ``model`` (the deployment,
    required), ``model_of_azure_deployment``, ``temperature`` (0..2) and ``max_tokens`` (sent
    when set), ``logprobs=False``, ``additional_kwargs`` (passed whole, as upstream 0.3)."""

    model: str  # the deployment: required here
    model_of_azure_deployment: str | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, gt=0)
    logprobs: bool | None = False
    additional_kwargs: dict[str, Any] = Field(default_factory=dict)

    @property
    def model_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "model_of_azure_deployment": self.model_of_azure_deployment,
            "logprobs": self.logprobs,
        }
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if self.max_tokens is not None:
            kwargs["max_tokens"] = self.max_tokens
        if self.additional_kwargs:
            kwargs["additional_kwargs"] = dict(self.additional_kwargs)
        return kwargs


# -- embeddings --------------------------------------------------------------------------------


class OpenAIEmbeddingModelConnection(ProviderEmbeddingModelConnection):
    """Embeddings from the OpenAI API (or any service speaking it: vLLM, LM Studio, llama.cpp's
    server...) with ``openai.AsyncOpenAI``.

    Upstream's fields: ``api_key`` (else env ``OPENAI_API_KEY``), ``base_url`` (else env
    ``OPENAI_API_BASE_URL``, else the public API), ``request_timeout=30.0``, ``max_retries=3``,
    ``organization``, ``project``. From ``RemoteEmbeddingModelConnection``: ``max_batch_size``
    (texts per request), ``max_concurrency``, ``retry_wait_interval``, ``max_retry_wait``.
    """

    API_KEY_VARIABLE: ClassVar[str] = "OPENAI_API_KEY"
    BASE_URL_VARIABLE: ClassVar[str] = "OPENAI_API_BASE_URL"

    api_key: str | None = Field(default=None, repr=False)
    base_url: str | None = None
    timeout: float | None = Field(default=30.0, ge=0)
    organization: str | None = None
    project: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _request_timeout_is_timeout(cls, data: Any) -> Any:
        return timeout_from_request_timeout(data)

    def _endpoint(self) -> str:
        return self._base_url() or DEFAULT_OPENAI_BASE_URL

    def _base_url(self) -> str | None:
        return first_set(self.base_url, from_env(self.BASE_URL_VARIABLE))

    def _make_client(self) -> Any:
        return _async_openai(
            self,
            first_set(self.api_key, from_env(self.API_KEY_VARIABLE)),
            base_url=self._base_url(),
            organization=self.organization,
            project=self.project,
        )

    async def _send(
        self, client: Any, texts: list[str], arguments: dict[str, Any]
    ) -> tuple[list[list[float]], EmbeddingTokenUsage | None]:
        payload = {name: value for name, value in arguments.items() if value is not None}
        response = await client.embeddings.create(
            input=texts, **with_extra_body(client.embeddings.create, payload)
        )
        data = sorted(response.data, key=lambda item: item.index)
        vectors = [_float_vector(item.embedding) for item in data]
        usage = getattr(response, "usage", None)
        if usage is None:
            return vectors, None
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        total = getattr(usage, "total_tokens", None)
        return vectors, EmbeddingTokenUsage(prompt, int(total) if total is not None else prompt)

    def _read_failure(self, error: BaseException) -> ServiceFailure:
        return read_stainless_failure(error, openai)


def _float_vector(embedding: Any) -> list[float]:
    """A vector as floats: the SDK decodes ``encoding_format="base64"`` answers to floats too,
    but a service may still send a string, which is not a vector."""
    if isinstance(embedding, str):
        raise ValueError("the service sent a base64 embedding; ask for encoding_format='float'")
    return [float(value) for value in embedding]


class OpenAIEmbeddingModelSetup(BaseEmbeddingModelSetup):
    """Which OpenAI embedding model to use; upstream's fields: ``encoding_format="float"``,
    ``dimensions`` (text-embedding-3 and later), ``user``, ``additional_kwargs`` (sent with
    the request)."""

    encoding_format: str = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None
    additional_kwargs: dict[str, Any] = Field(default_factory=dict)

    @property
    def model_kwargs(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "encoding_format": self.encoding_format,
            "dimensions": self.dimensions,
            "user": self.user,
            **self.additional_kwargs,
        }

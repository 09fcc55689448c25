"""Ollama chat models through the official ``ollama`` package's async client
(``pip install 'flink-agents-async[ollama]'``).

The classes keep upstream Flink Agents' names, fields and defaults
(``flink_agents.integrations.chat_models.ollama_chat_model``) and its request: a non-streaming
``chat(model, messages, tools, options, think, keep_alive)`` where ``options`` carries every
other argument of the setup (``temperature``, ``num_ctx``, ``additional_kwargs``). Ollama gives
tool calls no ids, so tool calls carry no ``original_id`` and tool results go back without one.
With ``extract_reasoning`` (the default), ``<think>`` blocks and the like are taken out of the
answer's text into ``extra_args["reasoning"]``; Ollama's own ``thinking`` field goes there too.

What differs, and why: requests on the event loop (``ollama.AsyncClient``), retried by the
connection (429, 408, 409, 5xx, timeouts, connection failures; the ``Retry-After`` of an error
response is honoured, which the SDK's exception does not carry, so the client records it);
``request_timeout`` is the connection's ``timeout`` (either spelling is accepted); a tool result
goes back with ``tool_name`` (the call it answers, by position), which Ollama uses to match
results to calls.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Literal

from pydantic import Field, model_validator

from ..llm.chat_models import BaseChatModelSetup
from ..llm.embedding_models import BaseEmbeddingModelSetup, EmbeddingTokenUsage
from ..llm.messages import ChatMessage, MessageRole
from ..llm.tools import Tool
from ._common import (
    ChatModelRequestError,
    EmbeddingModelRequestError,
    PreparedRequest,
    ProviderChatModelConnection,
    ProviderClient,
    ProviderEmbeddingModelConnection,
    ServiceFailure,
    assistant_answer,
    call_function,
    describe,
    function_spec,
    new_tool_call,
    object_or_empty,
    require_model,
    timeout_from_request_timeout,
)

try:
    import httpx
    import ollama
except ImportError as error:  # pragma: no cover - exercised with the SDK hidden
    raise ImportError(
        "flink_agents_async.integrations.ollama needs the ollama package: "
        "pip install 'flink-agents-async[ollama]'"
    ) from error

__all__ = [
    "ChatModelRequestError",
    "EmbeddingModelRequestError",
    "OllamaChatModelConnection",
    "OllamaChatModelSetup",
    "OllamaEmbeddingModelConnection",
    "OllamaEmbeddingModelSetup",
]

DEFAULT_BASE_URL = "http://localhost:11434"

# The headers of the last error response of the current request. ollama.ResponseError keeps only
# the status and the body, so a response hook records the headers (for Retry-After). A hook runs
# inside the awaiting task, whose context this is: concurrent requests do not see each other's.
_error_headers: ContextVar[dict[str, str] | None] = ContextVar(
    "flink_agents_async_ollama_error_headers", default=None
)


async def _remember_error_headers(response: httpx.Response) -> None:
    if response.status_code >= 400:
        _error_headers.set(dict(response.headers))


class _OllamaClient(ProviderClient):
    """What Ollama's chat and embedding connections share: the server (``base_url``, else env
    ``OLLAMA_HOST``, as the Ollama CLI reads it, else ``http://localhost:11434``), the timeout
    per request (``timeout``, or upstream's ``request_timeout``; 30 s; 0: none), the client
    and what its errors mean."""

    base_url: str = Field(default_factory=lambda: os.environ.get("OLLAMA_HOST") or DEFAULT_BASE_URL)
    timeout: float | None = Field(default=30.0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _request_timeout_is_timeout(cls, data: Any) -> Any:
        return timeout_from_request_timeout(data)

    def _endpoint(self) -> str:
        return self.base_url

    def _make_client(self) -> Any:
        return ollama.AsyncClient(
            host=self.base_url,
            timeout=self.request_timeout,
            event_hooks={"response": [_remember_error_headers]},
        )

    def _read_failure(self, error: BaseException) -> ServiceFailure:
        return read_ollama_failure(error)


class OllamaChatModelConnection(_OllamaClient, ProviderChatModelConnection):
    """A connection to an Ollama server with ``ollama.AsyncClient``.

    Upstream's fields: ``base_url`` (else env ``OLLAMA_HOST``, as the Ollama CLI reads it, else
    ``"http://localhost:11434"``), ``request_timeout=30.0`` (per
    request, the same as ``timeout``; 0: none). From ``RemoteChatModelConnection``:
    ``max_retries=3``, ``max_concurrency``, ``retry_wait_interval``, ``max_retry_wait``.
    """

    def _prepare(
        self, messages: list[ChatMessage], tools: list[Tool], arguments: dict[str, Any]
    ) -> PreparedRequest:
        model = require_model(arguments, type(self).__name__)
        del arguments["model"]
        extract_reasoning = bool(arguments.pop("extract_reasoning", True))
        think = arguments.pop("think", True)
        keep_alive = arguments.pop("keep_alive", None)
        payload = {
            "model": model,
            "messages": ollama_messages(messages),
            "tools": [function_spec(tool) for tool in tools] or None,
            "stream": False,
            "think": think,
            "options": arguments or None,  # what is left are the model's options
            "keep_alive": keep_alive,
        }
        return PreparedRequest(payload, model=model, options={"extract": extract_reasoning})

    async def _send(self, client: Any, payload: dict[str, Any]) -> Any:
        _error_headers.set(None)  # this attempt's, not an earlier one's
        return await client.chat(**payload)

    def _answer(self, response: Any, request: PreparedRequest) -> ChatMessage:
        message = getattr(response, "message", None)
        if message is None:
            raise self.unreadable(request.model, f"it holds no message: {response!r:.300}")
        content = message.content or ""
        reasoning = [message.thinking] if getattr(message, "thinking", None) else []
        if request.options["extract"] and content:
            content, extracted = self._extract_reasoning(content)
            if extracted:
                reasoning.append(extracted)
        calls = [
            new_tool_call(call.function.name, _arguments(call.function.arguments))
            for call in message.tool_calls or ()
        ]
        return assistant_answer(
            content,
            calls,
            model_name=request.model_name,
            prompt_tokens=getattr(response, "prompt_eval_count", None),
            completion_tokens=getattr(response, "eval_count", None),
            reasoning="\n\n".join(reasoning) if reasoning else None,
        )


def read_ollama_failure(error: BaseException) -> ServiceFailure:
    """What an error of the ``ollama`` SDK says."""
    if isinstance(error, ollama.ResponseError) and error.status_code >= 0:
        return ServiceFailure(
            "status",
            f"ResponseError: {error.error}",
            status=error.status_code,
            headers=_error_headers.get(),
        )
    if isinstance(error, httpx.TimeoutException):
        return ServiceFailure("timeout", describe(error))
    # The SDK turns a refused connection into the built-in ConnectionError; a connection
    # dropped mid-answer comes as httpx's own error.
    if isinstance(error, ConnectionError | httpx.TransportError):
        return ServiceFailure("connection", describe(error))
    # A body that is not JSON (json's error) or not a chat response (pydantic's).
    if isinstance(error, ValueError):
        return ServiceFailure("malformed", describe(error))
    return ServiceFailure("other", describe(error))


def _arguments(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def ollama_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Messages in Ollama's format; a tool result carries the name of the call it answers
    (the tool-call action sends results in the order of the calls)."""
    converted: list[dict[str, Any]] = []
    pending: list[str] = []  # names of the calls of the last answer not yet answered
    for message in messages:
        if message.role == MessageRole.TOOL:
            entry: dict[str, Any] = {"role": "tool", "content": message.content}
            if pending:
                entry["tool_name"] = pending.pop(0)
            converted.append(entry)
            continue
        entry = {"role": message.role.value, "content": message.content}
        if message.role == MessageRole.ASSISTANT and message.tool_calls:
            functions = [call_function(call) for call in message.tool_calls]
            entry["tool_calls"] = [
                {"function": {"name": name, "arguments": object_or_empty(arguments)}}
                for name, arguments in functions
            ]
            pending = [name for name, _ in functions]
        converted.append(entry)
    return converted


class OllamaChatModelSetup(BaseChatModelSetup):
    """What to ask an Ollama model; upstream's fields and defaults: ``model`` (required),
    ``temperature=0.75`` (0..1), ``num_ctx=2048``, ``request_timeout`` (accepted, unused, as
    upstream: the connection's applies), ``additional_kwargs`` (more options), ``keep_alive``,
    ``think=True`` (or ``"low"``/``"medium"``/``"high"``), ``extract_reasoning=True``."""

    model: str  # required here, optional in the base
    temperature: float = Field(default=0.75, ge=0.0, le=1.0)
    num_ctx: int = Field(default=2048, gt=0)
    request_timeout: float | None = 30.0
    additional_kwargs: dict[str, Any] = Field(default_factory=dict)
    keep_alive: float | str | None = None
    think: bool | Literal["low", "medium", "high"] = True
    extract_reasoning: bool = True

    @property
    def model_kwargs(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "temperature": self.temperature,
            "num_ctx": self.num_ctx,
            "keep_alive": self.keep_alive,
            "think": self.think,
            "extract_reasoning": self.extract_reasoning,
            **self.additional_kwargs,
        }


# -- embeddings --------------------------------------------------------------------------------


class OllamaEmbeddingModelConnection(_OllamaClient, ProviderEmbeddingModelConnection):
    """Embeddings from an Ollama server (``POST /api/embed``) with ``ollama.AsyncClient``.

    Upstream's fields: ``base_url`` (else env ``OLLAMA_HOST``, else ``http://localhost:11434``)
    and ``request_timeout=30.0``. From ``RemoteEmbeddingModelConnection``: ``max_batch_size``,
    ``max_concurrency``, ``max_retries``, ``retry_wait_interval``, ``max_retry_wait``.
    """

    async def _send(
        self, client: Any, texts: list[str], arguments: dict[str, Any]
    ) -> tuple[list[list[float]], EmbeddingTokenUsage | None]:
        _error_headers.set(None)  # this attempt's, not an earlier one's
        model = arguments.pop("model")
        truncate = arguments.pop("truncate", True)
        keep_alive = arguments.pop("keep_alive", None)
        response = await client.embed(
            model=model,
            input=texts,
            truncate=truncate,
            keep_alive=keep_alive,
            options=arguments or None,  # what is left are the model's options
        )
        vectors = [[float(value) for value in vector] for vector in response.embeddings]
        tokens = getattr(response, "prompt_eval_count", None)
        usage = EmbeddingTokenUsage(int(tokens), int(tokens)) if tokens is not None else None
        return vectors, usage


class OllamaEmbeddingModelSetup(BaseEmbeddingModelSetup):
    """Which Ollama embedding model to use; upstream's fields: ``truncate=True`` (cut a text
    longer than the model's context instead of failing), ``keep_alive``, ``additional_kwargs``
    (the model's options, e.g. ``num_ctx``)."""

    truncate: bool = True
    keep_alive: float | str | None = None
    additional_kwargs: dict[str, Any] = Field(default_factory=dict)

    @property
    def model_kwargs(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "truncate": self.truncate,
            "keep_alive": self.keep_alive,
            **self.additional_kwargs,
        }

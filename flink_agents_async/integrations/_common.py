"""What the model integrations share: one request with clear failures, retry verdicts,
clients per event loop and their closing, and the tool-call and answer shapes of the LLM layer.

``ProviderClient`` is what chat and embedding connections of a provider share: the SDK client
per event loop, and every error of an SDK call turned into a ``ModelRequestError`` (a
``ChatModelRequestError`` or an ``EmbeddingModelRequestError``) naming the connection class, the
model and the cause, marked retryable or not.

``ProviderChatModelConnection`` is the base of the built-in chat connections. Its base,
``RemoteChatModelConnection``, retries and bounds requests around ``_request``; this class splits
a request into the steps a provider fills in: ``_prepare`` (our messages and tools to the
provider's payload, pure), ``_send`` (the SDK call), ``_answer`` (the provider's response to a
``ChatMessage``) and ``_read_failure`` (what an SDK error means: an HTTP status with its headers,
a timeout, a connection failure, an unreadable answer). Every error of the SDK call becomes a
``ChatModelRequestError`` naming the connection class, the model and the cause, marked retryable
or not, so that ``_classify`` reads the verdict off it and what finally surfaces is readable.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import uuid
from abc import abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, ClassVar, Literal

from ..errors import FlinkAgentsAsyncError, ResourceError
from ..llm.chat_models import RemoteChatModelConnection
from ..llm.embedding_models import EmbeddingTokenUsage, RemoteEmbeddingModelConnection
from ..llm.messages import ChatMessage, MessageRole
from ..llm.remote import RemoteService
from ..llm.retry import Retryable, retry_after_seconds
from ..llm.tools import Tool
from ..logging import library_logger

__all__ = [
    "ChatModelRequestError",
    "EmbeddingModelRequestError",
    "ModelRequestError",
    "PreparedRequest",
    "ProviderChatModelConnection",
    "ProviderClient",
    "ProviderEmbeddingModelConnection",
    "ServiceFailure",
]

logger = library_logger()

# 408 (request timeout), 409 (conflict: OpenAI's "try again") and 429 (rate limit) are worth
# another try, as is every 5xx (Anthropic's 529 "overloaded" included); the official SDKs retry
# the same set.
RETRYABLE_STATUSES = frozenset({408, 409, 429})

FailureKind = Literal["status", "timeout", "connection", "malformed", "other"]


class ModelRequestError(FlinkAgentsAsyncError):
    """A model service did not answer a request usably: an HTTP error status, a timeout, an
    unreachable service or an answer that cannot be read.

    The message names the connection class, the model and the cause; ``status_code`` is the
    HTTP status (None when there was none), ``retryable`` whether another try could succeed
    (such an error surfaces only once the connection's ``max_retries`` are spent) and
    ``wait_hint`` the wait the service asked for. The SDK's own error is ``__cause__``.
    """

    def __init__(
        self,
        message: str,
        *,
        connection: str,
        model: str | None,
        status_code: int | None = None,
        retryable: bool = False,
        wait_hint: float | None = None,
    ) -> None:
        super().__init__(message)
        # Plain values only: a failed durable call is journaled with its attributes.
        self.connection = connection
        self.model = model
        self.status_code = status_code
        self.retryable = retryable
        self.wait_hint = wait_hint


class ChatModelRequestError(ModelRequestError):
    """A chat model service did not answer a request usably (see ``ModelRequestError``)."""


class EmbeddingModelRequestError(ModelRequestError):
    """An embedding model service did not answer a request usably (see
    ``ModelRequestError``)."""


@dataclass(frozen=True)
class ServiceFailure:
    """What an SDK error says, in the terms retrying and error messages need."""

    kind: FailureKind
    detail: str
    status: int | None = None
    headers: Mapping[str, str] | None = None

    def verdict(self) -> Retryable | None:
        """Retryable (with the service's wait hint) or not (None)."""
        if self.kind in ("timeout", "connection"):
            return Retryable()
        if self.kind != "status" or self.status is None:
            return None
        forced = _should_retry_header(self.headers)
        retry = forced if forced is not None else _retryable_status(self.status)
        return Retryable(retry_after_seconds(self.headers)) if retry else None


def _retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


def _should_retry_header(headers: Mapping[str, str] | None) -> bool | None:
    """The service's own say (``x-should-retry: true|false``, which OpenAI and Anthropic send
    and their SDKs obey), or None when it said nothing."""
    if not headers:
        return None
    for name, value in headers.items():
        if str(name).lower() == "x-should-retry":
            text = str(value).strip().lower()
            return True if text == "true" else False if text == "false" else None
    return None


def service_message(body: Any, fallback: str) -> str:
    """The human-readable message of an error body (``{"error": {"message": ...}}``,
    ``{"message": ...}`` or ``{"error": "..."}``), else ``fallback``."""
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return inner["message"]
        if isinstance(inner, str):
            return inner
    return fallback


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def read_stainless_failure(error: BaseException, sdk: ModuleType) -> ServiceFailure:
    """What an error of the ``openai`` or ``anthropic`` SDK says. Both are generated by
    Stainless and raise the same classes, each from its own module (``sdk``)."""
    if isinstance(error, sdk.APIStatusError):
        return ServiceFailure(
            "status",
            f"{type(error).__name__}: {service_message(error.body, error.message)}",
            status=error.status_code,
            headers=error.response.headers,
        )
    if isinstance(error, sdk.APITimeoutError):
        return ServiceFailure("timeout", describe(error))
    if isinstance(error, sdk.APIConnectionError):
        cause = f" ({describe(error.__cause__)})" if error.__cause__ is not None else ""
        return ServiceFailure("connection", describe(error) + cause)
    # The SDKs let the json module's error through for a body that is not JSON.
    if isinstance(error, ValueError | sdk.APIResponseValidationError):
        return ServiceFailure("malformed", describe(error))
    return ServiceFailure("other", describe(error))


@dataclass
class PreparedRequest:
    """A request in the provider's terms: the SDK call's arguments (``payload``), the model
    asked (``model``), the name token counts are reported under (``model_name``) and options
    that shape the answer rather than the request (``options``)."""

    payload: dict[str, Any]
    model: str | None
    model_name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model_name is None:
            self.model_name = self.model


class ProviderClient(RemoteService):
    """What a provider's chat and embedding connections share: one SDK client per event loop
    (async clients belong to the loop they were made on), the SDK's own retries off (the
    connection's ``max_retries`` retries, honouring ``Retry-After``), and SDK errors turned into
    the connection's ``request_error`` type."""

    request_error: ClassVar[type[ModelRequestError]] = ModelRequestError

    @abstractmethod
    def _make_client(self) -> Any:
        """A new SDK client; raises ``ResourceError`` when it cannot be made (no API key)."""

    @abstractmethod
    def _read_failure(self, error: BaseException) -> ServiceFailure:
        """What an error raised by an SDK call means."""

    def _endpoint(self) -> str:
        """Where requests go, for error messages."""
        return "the service"

    @property
    def _reuses_client(self) -> bool:
        """Whether one client per event loop serves every request (else one per request)."""
        return True

    def _classify(self, error: BaseException) -> Retryable | None:
        if isinstance(error, ModelRequestError):
            return Retryable(error.wait_hint) if error.retryable else None
        return self._read_failure(error).verdict()

    def _failure(self, error: BaseException, model: str | None) -> ModelRequestError:
        failure = self._read_failure(error)
        verdict = failure.verdict()
        cause = {
            "status": f"the service answered HTTP {failure.status}: {failure.detail}",
            "timeout": f"no answer within {self.request_timeout} s ({failure.detail})",
            "connection": f"cannot reach {self._endpoint()}: {failure.detail}",
            "malformed": f"the service's answer cannot be read: {failure.detail}",
            "other": failure.detail,
        }[failure.kind]
        message = f"{type(self).__name__}, model {model!r}: {cause}"
        if verdict is not None:
            # Such an error escapes the retry loop only once every retry was spent.
            message += f" (still failing after max_retries={self.max_retries} retries)"
        return self.request_error(
            message,
            connection=type(self).__name__,
            model=model,
            status_code=failure.status,
            retryable=verdict is not None,
            wait_hint=verdict.wait_hint if verdict is not None else None,
        )

    def unreadable(self, model: str | None, detail: str) -> ModelRequestError:
        """The error for an answer that parsed but holds nothing usable (not retried)."""
        return self.request_error(
            f"{type(self).__name__}, model {model!r}: the service's answer cannot be "
            f"read: {detail}",
            connection=type(self).__name__,
            model=model,
        )

    async def _call(self, model: str | None, send: Callable[[Any], Any]) -> Any:
        """``await send(client)`` with this loop's client, SDK errors made readable."""
        async with self._client() as client:
            try:
                return await send(client)
            except Exception as error:
                raise self._failure(error, model) from error

    @contextlib.asynccontextmanager
    async def _client(self) -> AsyncIterator[Any]:
        if self._reuses_client:
            yield self.client_for_loop(self._make_client)
            return
        client = self._make_client()
        try:
            yield client
        finally:
            await self._close_client(client)


class ProviderChatModelConnection(ProviderClient, RemoteChatModelConnection):
    """A chat connection through a provider's official async client (``ProviderClient``).

    Native structured output is not offered (``supports_native_structured_output`` is False):
    the chat action asks for JSON and validates the answer itself, as upstream does today.
    """

    request_error: ClassVar[type[ModelRequestError]] = ChatModelRequestError

    # -- what a provider fills in ----------------------------------------------------------

    @abstractmethod
    def _prepare(
        self, messages: list[ChatMessage], tools: list[Tool], arguments: dict[str, Any]
    ) -> PreparedRequest:
        """The provider's request for ``messages``, ``tools`` and the setup's arguments
        (``arguments`` is this request's own copy: popping from it is fine)."""

    @abstractmethod
    async def _send(self, client: Any, payload: dict[str, Any]) -> Any:
        """The SDK call; whatever it raises is read by ``_read_failure``."""

    @abstractmethod
    def _answer(self, response: Any, request: PreparedRequest) -> ChatMessage:
        """The provider's response as an assistant ``ChatMessage``."""

    # -- one request -----------------------------------------------------------------------

    def supports_native_structured_output(self, effective_model: str | None) -> bool:
        return False

    async def _request(
        self,
        messages: list[ChatMessage],
        tools: list[Tool],
        output_schema: Any,
        kwargs: dict[str, Any],
    ) -> ChatMessage:
        if output_schema is not None:
            # As upstream's connections do when they cannot honour a schema natively.
            raise NotImplementedError(
                f"{type(self).__name__} does not constrain answers to a schema natively; send "
                "the output_schema with the ChatRequestEvent and the chat action validates the "
                "answer"
            )
        # Retries call again with the same kwargs: each attempt prepares from its own copy.
        request = self._prepare(messages, tools, dict(kwargs))
        response = await self._call(
            request.model, functools.partial(self._send, payload=request.payload)
        )
        return self._answer(response, request)


class ProviderEmbeddingModelConnection(ProviderClient, RemoteEmbeddingModelConnection):
    """An embedding connection through a provider's official async client
    (``ProviderClient``): a provider fills in ``_send`` (one batch) and ``_read_failure``."""

    request_error: ClassVar[type[ModelRequestError]] = EmbeddingModelRequestError

    @abstractmethod
    async def _send(
        self, client: Any, texts: list[str], arguments: dict[str, Any]
    ) -> tuple[list[list[float]], EmbeddingTokenUsage | None]:
        """The SDK call for one batch; whatever it raises is read by ``_read_failure``
        (``arguments`` is this request's own copy: popping from it is fine)."""

    async def _request(
        self, texts: list[str], kwargs: dict[str, Any]
    ) -> tuple[list[list[float]], EmbeddingTokenUsage | None]:
        model = kwargs.get("model")
        if not model:
            raise ResourceError(
                f"{type(self).__name__}: no model to embed with (name it on the setup)"
            )
        return await self._call(
            model, functools.partial(self._send, texts=texts, arguments=dict(kwargs))
        )


# -- tool calls, tool results and answers --------------------------------------------------------


def new_tool_call(name: str, arguments: Any, original_id: str | None = None) -> dict[str, Any]:
    """A tool call as the LLM layer carries it: our own uuid4 id, and the provider's id as
    ``original_id`` (the tool result goes back under it) when the provider gives one."""
    call: dict[str, Any] = {
        "id": uuid.uuid4(),
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }
    if original_id:
        call["original_id"] = original_id
    return call


def parse_arguments(raw: Any, *, connection: str, model: str | None, tool: str) -> Any:
    """A tool call's arguments as the tool-call action takes them: a JSON string parsed (an
    empty one is no arguments). Text that is not JSON is kept as it is, with a warning: the
    tool-call action then answers the model that its arguments are not valid JSON, so that
    it can correct itself, instead of the whole request failing here."""
    if raw is None:
        return {}
    if not isinstance(raw, str):
        return raw
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        logger.warning(
            "tool call arguments are not valid JSON; the tool-call action reports them back",
            connection=connection,
            model=model,
            tool=tool,
            arguments=raw[:200],
        )
        return raw


def call_function(call: Mapping[str, Any]) -> tuple[str, Any]:
    """The tool name and the arguments of a tool call dict."""
    function = call.get("function")
    if not isinstance(function, Mapping):
        return "", {}
    arguments = function.get("arguments")
    return str(function.get("name") or ""), {} if arguments is None else arguments


def object_or_empty(arguments: Any) -> dict[str, Any]:
    """Arguments for a provider that takes only objects (Anthropic's ``tool_use`` input,
    Ollama's arguments): arguments the model sent that were not one (which the tool-call action
    answered as an error) go back as no arguments."""
    return dict(arguments) if isinstance(arguments, Mapping) else {}


def call_provider_id(call: Mapping[str, Any]) -> str:
    """The id a provider knows a call by: its own id, else ours (as upstream sends it)."""
    return str(call.get("original_id") or call.get("id"))


def tool_result_id(message: ChatMessage, connection: str) -> str:
    """The provider's id of the call a tool result answers (``extra_args["external_id"]``)."""
    value = message.extra_args.get("external_id")
    if not isinstance(value, str) or not value:
        raise ValueError(
            f"{connection}: a tool result message needs the provider's id of the call it "
            f"answers in extra_args['external_id'] (the tool-call action sets it); got {value!r}"
        )
    return value


def function_spec(tool: Tool) -> dict[str, Any]:
    """A tool as an OpenAI-style function spec (also Ollama's tool format)."""
    if tool.metadata is None:
        raise ValueError(f"tool {tool!r} has no metadata, so no name or schema to offer")
    return {
        "type": "function",
        "function": {
            "name": tool.metadata.name,
            "description": tool.metadata.description,
            "parameters": tool.metadata.get_parameters_dict(),
        },
    }


def assistant_answer(
    content: str,
    tool_calls: Sequence[dict[str, Any]],
    *,
    model_name: str | None,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    **extra: Any,
) -> ChatMessage:
    """An assistant answer with upstream's ``extra_args``: ``model_name``, ``promptTokens`` and
    ``completionTokens`` (what the chat action counts), then ``extra`` (None values left out)."""
    extra_args: dict[str, Any] = {"model_name": model_name}
    if prompt_tokens is not None:
        extra_args["promptTokens"] = int(prompt_tokens)
    if completion_tokens is not None:
        extra_args["completionTokens"] = int(completion_tokens)
    extra_args.update({name: value for name, value in extra.items() if value is not None})
    return ChatMessage(
        role=MessageRole.ASSISTANT,
        content=content,
        tool_calls=list(tool_calls),
        extra_args=extra_args,
    )


# -- configuration -----------------------------------------------------------------------------


def timeout_from_request_timeout(data: Any) -> Any:
    """Constructor arguments with upstream's ``request_timeout`` given as ``timeout`` (the
    field of ``RemoteService``, whose ``request_timeout`` property reads it back)."""
    if isinstance(data, Mapping) and "request_timeout" in data:
        data = dict(data)
        value = data.pop("request_timeout")
        if data.get("timeout", value) != value:
            raise ValueError("give request_timeout or timeout, not both")
        data["timeout"] = value
    return data


def first_set(*values: str | None) -> str | None:
    """The first value that is set and not blank."""
    return next((value for value in values if value and value.strip()), None)


def from_env(name: str) -> str | None:
    return os.environ.get(name)


def missing_api_key(connection: str, variable: str) -> ResourceError:
    return ResourceError(
        f"{connection}: no API key: pass api_key=... to the connection (in its "
        f"ResourceDescriptor) or set the environment variable {variable}"
    )


def require_model(arguments: Mapping[str, Any], connection: str) -> str:
    """The model a request names; a clear error instead of the SDK's when there is none."""
    model = arguments.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ValueError(
            f"{connection}: no model to ask: set model on the chat model setup (got {model!r})"
        )
    return model


def with_extra_body(method: Callable[..., Any], payload: Mapping[str, Any]) -> dict[str, Any]:
    """``payload`` as keyword arguments of an SDK ``method``: what it does not take by name goes
    into ``extra_body`` (merged with one given), which the OpenAI and Anthropic SDKs send as is.

    So a setup's argument keeps reaching the API whatever the SDK version (the installed
    ``anthropic`` no longer takes ``temperature`` by name, which upstream's setup sends), and
    ``additional_kwargs`` can carry parameters newer than the SDK.
    """
    known = _keyword_names(getattr(method, "__func__", method))
    if known is None:
        return dict(payload)
    arguments = {name: value for name, value in payload.items() if name in known}
    extra = {name: value for name, value in payload.items() if name not in known}
    if extra:
        given = arguments.get("extra_body")
        arguments["extra_body"] = {**(given if isinstance(given, Mapping) else {}), **extra}
    return arguments


@functools.cache
def _keyword_names(function: Callable[..., Any]) -> frozenset[str] | None:
    """The names ``function`` takes as keywords; None when it takes any (``**kwargs``)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters):
        return None
    return frozenset(
        parameter.name
        for parameter in parameters
        if parameter.kind
        in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    )

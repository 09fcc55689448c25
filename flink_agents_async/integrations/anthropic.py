"""Anthropic chat models through the official ``anthropic`` package's async client
(``pip install 'flink-agents-async[anthropic]'``).

The classes keep upstream Flink Agents' names, fields and defaults
(``flink_agents.integrations.chat_models.anthropic``) and its conversions:

* system messages go to the request's ``system`` parameter;
* a tool result goes back as a user message with a ``tool_result`` block whose
  ``tool_use_id`` is the call's id (``extra_args["external_id"]``);
* an answer with tool calls keeps its content blocks in ``extra_args["anthropic_content_blocks"]``
  and they go back as they were in the next round (the API wants the ``tool_use`` blocks, and
  any thinking blocks, repeated). They are stored as plain dicts, since answers are journaled
  and must come back from the journal unchanged;
* tools are ``{"name", "description", "input_schema"}``; ``tool_use`` blocks become tool calls
  (``original_id`` is the block's id);
* ``usage.input_tokens`` / ``output_tokens`` become ``promptTokens`` / ``completionTokens`` on
  every answer (upstream main; 0.2/0.3 did so only on tool-use answers).

What differs, and why: a ``base_url`` field (else env ``ANTHROPIC_BASE_URL``), so that a
connection can point at a proxy or a local server; requests on the event loop with the SDK's
retries off (the connection's ``max_retries`` retries 429, 408, 409, 5xx including 529
"overloaded", timeouts and connection failures, honouring ``retry-after-ms`` / ``Retry-After``);
consecutive messages of one role are merged into one turn (several tool results of one round
become one user turn, as the API asks); all text blocks of an answer make its content (upstream
takes the first); a missing API key is a ``ResourceError`` naming ``ANTHROPIC_API_KEY``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from ..errors import ResourceError
from ..llm.chat_models import BaseChatModelSetup
from ..llm.messages import ChatMessage, MessageRole
from ..llm.tools import Tool
from ._common import (
    ChatModelRequestError,
    PreparedRequest,
    ProviderChatModelConnection,
    ServiceFailure,
    assistant_answer,
    call_function,
    call_provider_id,
    first_set,
    from_env,
    missing_api_key,
    new_tool_call,
    object_or_empty,
    parse_arguments,
    read_stainless_failure,
    require_model,
    tool_result_id,
    with_extra_body,
)

try:
    import anthropic
except ImportError as error:  # pragma: no cover - exercised with the SDK hidden
    raise ImportError(
        "flink_agents_async.integrations.anthropic needs the anthropic package: "
        "pip install 'flink-agents-async[anthropic]'"
    ) from error

__all__ = ["AnthropicChatModelConnection", "AnthropicChatModelSetup", "ChatModelRequestError"]

DEFAULT_ANTHROPIC_MODEL = "claude-sonnet-4-20250514"
DEFAULT_MAX_TOKENS = 1024  # the API requires max_tokens; upstream's setup default
CONTENT_BLOCKS = "anthropic_content_blocks"


class AnthropicChatModelConnection(ProviderChatModelConnection):
    """A connection to the Anthropic Messages API with ``anthropic.AsyncAnthropic``.

    Upstream's fields: ``api_key`` (else env ``ANTHROPIC_API_KEY``), ``max_retries=3``,
    ``timeout=60.0`` (per request; 0: none); and ``base_url`` (else env ``ANTHROPIC_BASE_URL``,
    else the SDK's default). From ``RemoteChatModelConnection``: ``max_concurrency``,
    ``retry_wait_interval``, ``max_retry_wait``.
    """

    API_KEY_VARIABLE: ClassVar[str] = "ANTHROPIC_API_KEY"
    BASE_URL_VARIABLE: ClassVar[str] = "ANTHROPIC_BASE_URL"

    api_key: str | None = Field(default=None, repr=False)
    base_url: str | None = None

    def resolved_base_url(self) -> str | None:
        return first_set(self.base_url, from_env(self.BASE_URL_VARIABLE))

    def _endpoint(self) -> str:
        return self.resolved_base_url() or "https://api.anthropic.com"

    def _make_client(self) -> Any:
        name = type(self).__name__
        api_key = first_set(self.api_key, from_env(self.API_KEY_VARIABLE))
        if api_key is None:
            raise missing_api_key(name, self.API_KEY_VARIABLE)
        try:
            return anthropic.AsyncAnthropic(
                api_key=api_key,
                base_url=self.resolved_base_url(),
                timeout=self.request_timeout,
                max_retries=0,  # ours retry (RetryPolicy), not the SDK's
            )
        except (anthropic.AnthropicError, ValueError) as error:
            raise ResourceError(f"{name}: cannot create the client: {error}") from error

    def _prepare(
        self, messages: list[ChatMessage], tools: list[Tool], arguments: dict[str, Any]
    ) -> PreparedRequest:
        name = type(self).__name__
        model = require_model(arguments, name)
        system, turns = anthropic_messages(messages, name)
        payload: dict[str, Any] = {
            **arguments,
            "max_tokens": arguments.get("max_tokens") or DEFAULT_MAX_TOKENS,
            "messages": turns,
        }
        if system:
            payload["system"] = system
        if tools:
            payload["tools"] = [anthropic_tool(tool) for tool in tools]
        return PreparedRequest(payload, model=model)

    async def _send(self, client: Any, payload: dict[str, Any]) -> Any:
        create = client.messages.create
        return await create(**with_extra_body(create, payload))

    def _answer(self, response: Any, request: PreparedRequest) -> ChatMessage:
        content = getattr(response, "content", None)
        if not isinstance(content, list):
            raise self.unreadable(request.model, f"it holds no content blocks: {response!r:.300}")
        blocks = [plain_block(block) for block in content]
        text = "".join(block["text"] for block in blocks if block.get("type") == "text")
        calls = [
            self._tool_call(block, request)
            for block in content
            if getattr(block, "type", None) == "tool_use"
        ]
        usage = getattr(response, "usage", None)
        return assistant_answer(
            text,
            calls,
            model_name=request.model_name,
            prompt_tokens=getattr(usage, "input_tokens", None),
            completion_tokens=getattr(usage, "output_tokens", None),
            **{CONTENT_BLOCKS: blocks if calls else None},
        )

    def _tool_call(self, block: Any, request: PreparedRequest) -> dict[str, Any]:
        # The API sends the input as an object; anything else is kept for the tool-call
        # action to report back (see parse_arguments).
        name = type(self).__name__
        arguments = parse_arguments(
            block.input, connection=name, model=request.model, tool=block.name
        )
        return new_tool_call(block.name, arguments, block.id)

    def _read_failure(self, error: BaseException) -> ServiceFailure:
        return read_stainless_failure(error, anthropic)


def anthropic_messages(
    messages: list[ChatMessage], connection: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``system`` blocks and the conversation's turns of ``messages``."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == MessageRole.SYSTEM:
            if message.content:  # the API refuses empty text blocks
                system.append({"type": "text", "text": message.content})
            continue
        role, content = _turn(message, connection)
        if turns and turns[-1]["role"] == role:
            # The API wants the tool results of one round in one user turn, and merges other
            # consecutive turns of a role itself: merging here does both.
            turns[-1]["content"] = _as_blocks(turns[-1]["content"]) + _as_blocks(content)
        else:
            turns.append({"role": role, "content": content})
    return system, turns


def _turn(message: ChatMessage, connection: str) -> tuple[str, str | list[dict[str, Any]]]:
    if message.role == MessageRole.TOOL:
        result = {
            "type": "tool_result",
            "tool_use_id": tool_result_id(message, connection),
            "content": message.content,
        }
        return "user", [result]
    if message.role != MessageRole.ASSISTANT:
        return "user", message.content
    blocks = message.extra_args.get(CONTENT_BLOCKS)
    if blocks:
        return "assistant", [dict(block) for block in blocks]
    if message.tool_calls:  # an answer of another provider, or one written by hand
        text = [{"type": "text", "text": message.content}] if message.content else []
        return "assistant", text + [_tool_use(call) for call in message.tool_calls]
    return "assistant", message.content


def _tool_use(call: dict[str, Any]) -> dict[str, Any]:
    name, arguments = call_function(call)
    return {
        "type": "tool_use",
        "id": call_provider_id(call),
        "name": name,
        "input": object_or_empty(arguments),
    }


def _as_blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return content
    return [{"type": "text", "text": content}] if content else []


def plain_block(block: Any) -> dict[str, Any]:
    """A content block of an answer as plain data, in the form the API takes it back."""
    kind = getattr(block, "type", None)
    if kind == "text":
        return {"type": "text", "text": block.text}
    if kind == "tool_use":
        return {
            "type": "tool_use",
            "id": block.id,
            "name": block.name,
            "input": object_or_empty(block.input),
        }
    if kind == "thinking":
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.data}
    dump = getattr(block, "model_dump", None)
    if callable(dump):  # a block type this module does not know: its JSON form
        return dict(dump(mode="json", exclude_none=True))
    return {"type": str(kind)}


def anthropic_tool(tool: Tool) -> dict[str, Any]:
    """A tool in the Messages API's form."""
    if tool.metadata is None:
        raise ValueError(f"tool {tool!r} has no metadata, so no name or schema to offer")
    return {
        "name": tool.metadata.name,
        "description": tool.metadata.description,
        "input_schema": tool.metadata.get_parameters_dict(),
    }


class AnthropicChatModelSetup(BaseChatModelSetup):
    """What to ask a Claude model; upstream's fields and defaults:
    ``model="claude-sonnet-4-20250514"``, ``max_tokens=1024`` (the API requires it),
    ``temperature=0.1`` (0..1). Ours: ``temperature=None`` sends none, and
    ``additional_kwargs`` are merged into the request, for the API's other parameters
    (``top_k``, ``thinking``, ``metadata``...).
    """

    model: str | None = DEFAULT_ANTHROPIC_MODEL
    max_tokens: int = Field(default=DEFAULT_MAX_TOKENS, ge=1)
    temperature: float | None = Field(default=0.1, ge=0.0, le=1.0)
    additional_kwargs: dict[str, Any] = Field(default_factory=dict)

    @property
    def model_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": self.model, "max_tokens": self.max_tokens}
        if self.temperature is not None:  # None: the model's own (some take no temperature)
            kwargs["temperature"] = self.temperature
        return {**kwargs, **self.additional_kwargs}

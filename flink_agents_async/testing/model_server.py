"""A local, scripted LLM server for tests, examples and benchmarks.

``ModelServer`` is a real HTTP server on 127.0.0.1 that speaks enough of three providers' wire
protocols for their official Python clients to work against it unmodified:

* OpenAI Chat Completions (``POST /v1/chat/completions``, plain and ``stream=true``) and
  embeddings (``POST /v1/embeddings``; deterministic vectors, ``fake_embedding``, unless a
  failure is scripted for the model);
* Anthropic Messages (``POST /v1/messages``, plain and ``stream=true``);
* Ollama's native API (``POST /api/chat``, ``POST /api/embed``, ``GET /api/tags``, ...).

Replies are written once, in a protocol-neutral form (:class:`Reply`), and rendered in the
protocol of whichever client asked. Requests are recorded in a neutral form too
(:class:`ModelRequest`), so one test can assert on an agent's conversation whichever provider it
uses::

    from flink_agents_async.testing import ModelServer, Reply, ToolCall

    with ModelServer() as server:
        server.script(
            Reply.tools(ToolCall("get_weather", {"city": "Paris"})),
            Reply("It is sunny in Paris."),
        )
        client = openai.OpenAI(base_url=server.url("openai"), api_key="test")
        ...  # run the agent
        assert server.count() == 2
        assert server.requests[1].tool_results[0].content == "sunny"

Unscripted requests get the answer of the responder installed with
:meth:`ModelServer.respond_with`, or else :func:`echo_reply` (``"echo: <last user message>"``),
so examples run without any scripting.

The server runs uvicorn on its own event loop in a background thread, so synchronous clients,
asynchronous clients and the test's own event loop never block one another. Delays are
``asyncio.sleep`` calls, never threads, so a thousand requests in flight cost a thousand sleeping
coroutines. ``python -m flink_agents_async.testing.model_server`` runs the same server in the
foreground for benchmarks and manual tries.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import inspect
import itertools
import json
import logging
import math
import re
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Literal, Self, TypeAlias

try:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
    from starlette.routing import Route
    from starlette.types import Receive, Scope, Send
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "flink_agents_async.testing.model_server needs starlette and uvicorn; "
        "install them with: pip install 'flink-agents-async[web]'"
    ) from exc

__all__ = [
    "FinishReason",
    "Message",
    "ModelRequest",
    "ModelServer",
    "ProtocolName",
    "Reply",
    "RequestKind",
    "Responder",
    "ToolCall",
    "Usage",
    "echo_reply",
    "fake_embedding",
    "main",
]

ProtocolName: TypeAlias = Literal["openai", "anthropic", "ollama"]
"""The wire protocols the server speaks; also the argument of :meth:`ModelServer.url`."""

RequestKind: TypeAlias = Literal["chat", "embeddings"]
"""What a recorded request asked for."""

FinishReason: TypeAlias = Literal["stop", "length", "tool_calls"]
"""Why a reply ended, in neutral words; each protocol renders its own spelling."""

_log = logging.getLogger(__name__)

DEFAULT_EMBEDDING_DIMENSIONS = 16
# uvicorn's own default; enough for 1,000 clients connecting at once.
DEFAULT_BACKLOG = 2048
# How long start() waits for uvicorn before giving up; startup normally takes milliseconds.
_START_TIMEOUT = 10.0


# ---------------------------------------------------------------------------------------------
# The neutral reply model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    """A tool call, in a reply (the model asks for it) or in a recorded assistant message.

    ``id`` is generated when left ``None`` (``call_<n>`` for OpenAI, ``toolu_<n>`` for
    Anthropic); Ollama's protocol has no tool call ids.
    """

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class Usage:
    """Token counts to report; a count left ``None`` is estimated (one token per word)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class Reply:
    """One scripted answer, independent of the protocol it will be rendered in.

    A reply with ``status < 400`` renders as a normal completion: ``text``, ``tool_calls``,
    ``usage`` and ``finish_reason`` (derived from ``tool_calls`` when ``None``). A reply with
    ``status >= 400`` renders as that protocol's error body carrying ``error_message`` and
    ``error_type``. ``body`` bypasses rendering altogether and is sent as is (for malformed
    answers); ``drop`` closes the connection in the middle of the answer. ``headers`` are added
    to the HTTP response and ``delay`` (seconds) is waited before answering, on top of the
    server's ``latency``.
    """

    text: str = ""
    tool_calls: Sequence[ToolCall] = ()
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: bytes | str | Mapping[str, Any] | list[Any] | None = None
    usage: Usage | None = None
    finish_reason: FinishReason | None = None
    error_message: str | None = None
    error_type: str | None = None
    drop: bool = False

    def __post_init__(self) -> None:
        # Frozen, so normalise through object.__setattr__: lists in, tuples kept, so a reply
        # can be scripted twice without one use seeing the other's mutations.
        object.__setattr__(self, "tool_calls", tuple(self.tool_calls))
        object.__setattr__(self, "headers", dict(self.headers))
        if self.delay < 0:
            raise ValueError(f"delay must be >= 0, got {self.delay}")

    @classmethod
    def tools(
        cls,
        *calls: ToolCall,
        text: str = "",
        usage: Usage | None = None,
        delay: float = 0.0,
    ) -> Reply:
        """A reply asking for one or more tool calls (finish reason ``tool_calls``)."""
        if not calls:
            raise ValueError("Reply.tools() needs at least one ToolCall")
        return cls(text=text, tool_calls=calls, usage=usage, delay=delay)

    @classmethod
    def error(
        cls,
        status: int = 500,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> Reply:
        """An HTTP error with the protocol's error body.

        ``retry_after`` (seconds) sets ``Retry-After`` (whole seconds, rounded up, as the
        standard requires) and ``retry-after-ms`` (exact; the OpenAI and Anthropic clients
        prefer it, which keeps retry tests fast). ``error_type`` overrides the protocol's
        default type for the status (e.g. ``"overloaded_error"``).
        """
        if status < 400:
            raise ValueError(f"an error reply needs a status >= 400, got {status}")
        all_headers = dict(headers or {})
        if retry_after is not None:
            all_headers["retry-after"] = str(math.ceil(retry_after))
            all_headers["retry-after-ms"] = str(round(retry_after * 1000))
        return cls(
            status=status,
            headers=all_headers,
            delay=delay,
            error_message=message,
            error_type=error_type,
        )

    @classmethod
    def malformed(
        cls,
        body: bytes | str = '{"choices": [',
        *,
        status: int = 200,
        content_type: str = "application/json",
    ) -> Reply:
        """A reply whose body is sent verbatim; by default truncated JSON labelled as JSON."""
        return cls(status=status, body=body, headers={"content-type": content_type})

    @classmethod
    def disconnect(cls, *, delay: float = 0.0) -> Reply:
        """Send the response headers, then close the connection before the body."""
        return cls(drop=True, delay=delay)


Responder: TypeAlias = Callable[["ModelRequest"], "Reply | str | Awaitable[Reply | str]"]
"""Answers a request that has no scripted reply; may be sync or async; a ``str`` means text."""


# ---------------------------------------------------------------------------------------------
# The neutral request model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One conversation message, normalised across protocols.

    ``role`` is ``"system"`` (OpenAI's ``developer`` and Anthropic's top-level ``system``
    included), ``"user"``, ``"assistant"`` or ``"tool"``. ``content`` is the text, with the
    text parts of multi-part content joined by newlines (images are dropped). A ``"tool"``
    message is one tool result: Anthropic's ``tool_result`` blocks become one such message each,
    with ``tool_call_id`` from ``tool_use_id``; OpenAI's carry ``tool_call_id``; Ollama's carry
    ``tool_name`` instead.
    """

    role: str
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    tool_name: str | None = None


@dataclass(frozen=True)
class ModelRequest:
    """A request the server received, in a neutral form, recorded when it arrived.

    ``tools`` are the names of the tools offered, ``inputs`` the texts of an embeddings request,
    ``response_format`` the requested output format (OpenAI ``response_format``, Anthropic
    ``output_config.format``, Ollama ``format``), ``body`` the raw JSON body, ``headers`` the
    HTTP headers (lower-case names) and ``received_at`` a ``time.monotonic()`` timestamp.
    """

    protocol: ProtocolName
    kind: RequestKind
    path: str
    model: str
    messages: tuple[Message, ...] = ()
    tools: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()
    stream: bool = False
    response_format: Any = None
    body: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    received_at: float = 0.0

    @property
    def last_user_text(self) -> str:
        """The content of the last user message, or ``""``."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.content
        return ""

    @property
    def tool_results(self) -> tuple[Message, ...]:
        """The tool result messages of the conversation, in order."""
        return tuple(message for message in self.messages if message.role == "tool")


def echo_reply(request: ModelRequest) -> Reply:
    """The default responder: ``"echo: <last user message>"``."""
    return Reply(text=f"echo: {request.last_user_text}")


def fake_embedding(text: str, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS) -> list[float]:
    """A deterministic unit vector for ``text``, derived from SHA-256.

    Equal texts give equal vectors and different texts (almost surely) different ones, which
    is all a test of an embedding pipeline needs.
    """
    if dimensions < 1:
        raise ValueError(f"dimensions must be >= 1, got {dimensions}")
    digest = b""
    for block in itertools.count():
        if len(digest) >= 2 * dimensions:
            break
        digest += hashlib.sha256(f"{block}:{text}".encode()).digest()
    raw = [
        int.from_bytes(digest[2 * i : 2 * i + 2], "big") / 32767.5 - 1.0 for i in range(dimensions)
    ]
    norm = math.sqrt(sum(value * value for value in raw)) or 1.0
    return [value / norm for value in raw]


# ---------------------------------------------------------------------------------------------
# Request parsing: wire JSON -> ModelRequest
# ---------------------------------------------------------------------------------------------


def _text_of(content: Any) -> str:
    """Text of a message content: a string, or the text parts of a list of parts/blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") in ("text", "input_text")
        ]
        return "\n".join(texts)
    return str(content)


def _arguments_of(raw: Any) -> dict[str, Any]:
    """Tool call arguments as a dict; OpenAI sends a JSON string, the others an object."""
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, str) and raw.strip():
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError:
            # Keep what the client sent, so a test can still see it.
            return {"__raw__": raw}
        return parsed if isinstance(parsed, dict) else {"__value__": parsed}
    return {}


def _openai_tool_calls(message: Mapping[str, Any]) -> tuple[ToolCall, ...]:
    calls = []
    for call in message.get("tool_calls") or ():
        if call.get("type") == "custom":
            custom = call.get("custom") or {}
            calls.append(
                ToolCall(custom.get("name", ""), {"input": custom.get("input")}, call.get("id"))
            )
        else:
            function = call.get("function") or {}
            calls.append(
                ToolCall(
                    function.get("name", ""),
                    _arguments_of(function.get("arguments")),
                    call.get("id"),
                )
            )
    if legacy := message.get("function_call"):
        calls.append(ToolCall(legacy.get("name", ""), _arguments_of(legacy.get("arguments"))))
    return tuple(calls)


def _openai_messages(raw_messages: Iterable[Mapping[str, Any]]) -> tuple[Message, ...]:
    messages = []
    for raw in raw_messages:
        role = raw.get("role", "")
        content = _text_of(raw.get("content"))
        if role == "tool":
            messages.append(Message("tool", content, tool_call_id=raw.get("tool_call_id")))
        elif role == "function":  # the deprecated predecessor of "tool"
            messages.append(Message("tool", content, tool_name=raw.get("name")))
        else:
            role = "system" if role == "developer" else role
            messages.append(Message(role, content, tool_calls=_openai_tool_calls(raw)))
    return tuple(messages)


def _function_tool_names(tools: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """Names of OpenAI/Ollama style tools: ``{"type": "function", "function": {"name"}}``."""
    names = []
    for tool in tools:
        inner = tool.get(tool.get("type") or "function") or tool.get("function") or tool
        names.append(str(inner.get("name", "")))
    return tuple(names)


def _anthropic_user_messages(blocks: list[Any]) -> list[Message]:
    """A user turn's blocks, in order: tool results become ``tool`` messages of their own."""
    messages: list[Message] = []
    texts: list[str] = []
    for block in blocks:
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "tool_result":
            if texts:
                messages.append(Message("user", "\n".join(texts)))
                texts = []
            content = _text_of(block.get("content"))
            messages.append(Message("tool", content, tool_call_id=block.get("tool_use_id")))
        elif kind == "text":
            texts.append(str(block.get("text", "")))
    if texts:
        messages.append(Message("user", "\n".join(texts)))
    return messages


def _anthropic_messages(body: Mapping[str, Any]) -> tuple[Message, ...]:
    messages: list[Message] = []
    if system := _text_of(body.get("system")):
        messages.append(Message("system", system))
    for raw in body.get("messages") or ():
        role, content = raw.get("role", ""), raw.get("content")
        if isinstance(content, str):
            messages.append(Message(role, content))
        elif role == "user":
            messages.extend(_anthropic_user_messages(content or []))
        else:
            calls = tuple(
                ToolCall(block.get("name", ""), _arguments_of(block.get("input")), block.get("id"))
                for block in content or []
                if block.get("type") == "tool_use"
            )
            messages.append(Message(role, _text_of(content), tool_calls=calls))
    return tuple(messages)


def _ollama_messages(raw_messages: Iterable[Mapping[str, Any]]) -> tuple[Message, ...]:
    messages = []
    for raw in raw_messages:
        role, content = raw.get("role", ""), _text_of(raw.get("content"))
        if role == "tool":
            name = raw.get("tool_name") or raw.get("name")
            messages.append(
                Message("tool", content, tool_call_id=raw.get("tool_call_id"), tool_name=name)
            )
            continue
        calls = tuple(
            ToolCall(
                (call.get("function") or {}).get("name", ""),
                _arguments_of((call.get("function") or {}).get("arguments")),
                call.get("id"),
            )
            for call in raw.get("tool_calls") or ()
        )
        messages.append(Message(role, content, tool_calls=calls))
    return tuple(messages)


def _embedding_inputs(raw: Any) -> tuple[str, ...]:
    """Texts of an embeddings ``input``: a string, a list of strings, or token lists."""
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, list) and raw and all(isinstance(item, int) for item in raw):
        return (json.dumps(raw),)  # a single pre-tokenised input
    return tuple(item if isinstance(item, str) else json.dumps(item) for item in raw)


def _parse_chat(protocol: ProtocolName, body: Mapping[str, Any]) -> dict[str, Any]:
    """The protocol-specific fields of a chat ``ModelRequest``."""
    if protocol == "openai":
        return {
            "messages": _openai_messages(body.get("messages") or ()),
            "tools": _function_tool_names(body.get("tools") or ())
            + tuple(str(f.get("name", "")) for f in body.get("functions") or ()),
            "stream": bool(body.get("stream", False)),
            "response_format": body.get("response_format"),
        }
    if protocol == "anthropic":
        output_config = body.get("output_config") or {}
        return {
            "messages": _anthropic_messages(body),
            "tools": tuple(str(tool.get("name", "")) for tool in body.get("tools") or ()),
            "stream": bool(body.get("stream", False)),
            "response_format": output_config.get("format") or body.get("output_format"),
        }
    return {
        "messages": _ollama_messages(body.get("messages") or ()),
        "tools": _function_tool_names(body.get("tools") or ()),
        # Ollama streams unless told not to; its Python client always says which it wants.
        "stream": bool(body.get("stream", True)),
        "response_format": body.get("format"),
    }


# ---------------------------------------------------------------------------------------------
# Reply rendering: Reply -> wire JSON
# ---------------------------------------------------------------------------------------------


def _word_count(text: str) -> int:
    return len(text.split())


def _estimate_prompt_tokens(request: ModelRequest) -> int:
    words = sum(_word_count(message.content) for message in request.messages)
    words += sum(_word_count(text) for text in request.inputs)
    return max(1, words)


def _estimate_completion_tokens(reply: Reply) -> int:
    words = _word_count(reply.text)
    words += sum(_word_count(json.dumps(call.arguments)) + 1 for call in reply.tool_calls)
    return max(1, words)


def _token_counts(reply: Reply, request: ModelRequest) -> tuple[int, int]:
    """(prompt, completion) tokens: the reply's ``usage`` where given, estimates otherwise."""
    usage = reply.usage or Usage()
    prompt = usage.prompt_tokens
    completion = usage.completion_tokens
    return (
        _estimate_prompt_tokens(request) if prompt is None else prompt,
        _estimate_completion_tokens(reply) if completion is None else completion,
    )


def _finish_of(reply: Reply) -> FinishReason:
    if reply.finish_reason is not None:
        return reply.finish_reason
    return "tool_calls" if reply.tool_calls else "stop"


_OPENAI_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}
_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
# Ollama reports "stop" after tool calls too.
_OLLAMA_DONE = {"stop": "stop", "length": "length", "tool_calls": "stop"}


class _Ids:
    """Deterministic ids, one counter per prefix (``call_1``, ``call_2``, ``msg_1``, ...)."""

    def __init__(self) -> None:
        self._counters: dict[str, itertools.count[int]] = {}

    def next(self, prefix: str) -> str:
        counter = self._counters.setdefault(prefix, itertools.count(1))
        return f"{prefix}{next(counter)}"


def _text_pieces(text: str) -> list[str]:
    """Split text into streaming deltas of one word each, keeping the whitespace."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def _sse(data: Mapping[str, Any] | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {payload}\n\n".encode()


class _OpenAI:
    """Rendering for OpenAI Chat Completions and embeddings."""

    @staticmethod
    def tool_calls(reply: Reply, ids: _Ids) -> list[dict[str, Any]]:
        return [
            {
                "id": call.id or ids.next("call_"),
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in reply.tool_calls
        ]

    @staticmethod
    def usage(prompt: int, completion: int) -> dict[str, int]:
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    @classmethod
    def completion(cls, reply: Reply, request: ModelRequest, ids: _Ids) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            # The API sends null content next to tool calls when the model said nothing.
            "content": reply.text if reply.text or not reply.tool_calls else None,
            "refusal": None,
        }
        if reply.tool_calls:
            message["tool_calls"] = cls.tool_calls(reply, ids)
        return {
            "id": ids.next("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": _OPENAI_FINISH[_finish_of(reply)],
                }
            ],
            "usage": cls.usage(*_token_counts(reply, request)),
            "system_fingerprint": None,
        }

    @classmethod
    async def stream(cls, reply: Reply, request: ModelRequest, ids: _Ids) -> AsyncIterator[bytes]:
        base = {
            "id": ids.next("chatcmpl-"),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": request.model,
            "system_fingerprint": None,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return _sse({**base, "choices": [choice]})

        yield chunk({"role": "assistant", "content": ""})
        for piece in _text_pieces(reply.text):
            yield chunk({"content": piece})
        for index, call in enumerate(cls.tool_calls(reply, ids)):
            # Name first, arguments after, as the API does; clients must accumulate.
            head = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
            yield chunk({"tool_calls": [{"index": index, **head}]})
            arguments = {"arguments": call["function"]["arguments"]}
            yield chunk({"tool_calls": [{"index": index, "function": arguments}]})
        yield chunk({}, _OPENAI_FINISH[_finish_of(reply)])
        if (request.body.get("stream_options") or {}).get("include_usage"):
            usage = cls.usage(*_token_counts(reply, request))
            yield _sse({**base, "choices": [], "usage": usage})
        yield _sse("[DONE]")

    @staticmethod
    def error(status: int, message: str, error_type: str | None) -> dict[str, Any]:
        default_type, code = {
            401: ("invalid_request_error", "invalid_api_key"),
            404: ("invalid_request_error", "model_not_found"),
            429: ("requests", "rate_limit_exceeded"),
        }.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
        return {
            "error": {
                "message": message,
                "type": error_type or default_type,
                "param": None,
                "code": code,
            }
        }

    @staticmethod
    def embeddings(request: ModelRequest, dimensions: int) -> dict[str, Any]:
        as_base64 = request.body.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(request.inputs):
            vector: list[float] | str = fake_embedding(text, dimensions)
            if as_base64:  # little-endian float32, what the API sends
                vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = _estimate_prompt_tokens(request)
        return {
            "object": "list",
            "data": data,
            "model": request.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }


class _Anthropic:
    """Rendering for Anthropic Messages."""

    _ERROR_TYPES = {
        400: "invalid_request_error",
        401: "authentication_error",
        402: "billing_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        500: "api_error",
        504: "timeout_error",
        529: "overloaded_error",
    }

    @staticmethod
    def blocks(reply: Reply, ids: _Ids) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if reply.text or not reply.tool_calls:
            blocks.append({"type": "text", "text": reply.text})
        for call in reply.tool_calls:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": call.id or ids.next("toolu_"),
                    "name": call.name,
                    "input": dict(call.arguments),
                }
            )
        return blocks

    @classmethod
    def message(cls, reply: Reply, request: ModelRequest, ids: _Ids) -> dict[str, Any]:
        prompt, completion = _token_counts(reply, request)
        return {
            "id": ids.next("msg_"),
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": cls.blocks(reply, ids),
            "stop_reason": _ANTHROPIC_STOP[_finish_of(reply)],
            "stop_sequence": None,
            "usage": {"input_tokens": prompt, "output_tokens": completion},
        }

    @classmethod
    async def stream(cls, reply: Reply, request: ModelRequest, ids: _Ids) -> AsyncIterator[bytes]:
        message = cls.message(reply, request, ids)
        start = {**message, "content": [], "stop_reason": None}
        start["usage"] = {**message["usage"], "output_tokens": 0}
        yield _sse({"type": "message_start", "message": start}, "message_start")
        for index, block in enumerate(message["content"]):
            for event in cls._block_events(index, block):
                yield _sse(event, event["type"])
        yield _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": message["usage"]["output_tokens"]},
            },
            "message_delta",
        )
        yield _sse({"type": "message_stop"}, "message_stop")

    @staticmethod
    def _block_events(index: int, block: dict[str, Any]) -> Iterable[dict[str, Any]]:
        """content_block_start, its deltas and content_block_stop for one content block."""
        if block["type"] == "text":
            yield {
                "type": "content_block_start",
                "index": index,
                "content_block": {**block, "text": ""},
            }
            for piece in _text_pieces(block["text"]):
                delta = {"type": "text_delta", "text": piece}
                yield {"type": "content_block_delta", "index": index, "delta": delta}
        else:
            yield {
                "type": "content_block_start",
                "index": index,
                "content_block": {**block, "input": {}},
            }
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            yield {"type": "content_block_delta", "index": index, "delta": delta}
        yield {"type": "content_block_stop", "index": index}

    @classmethod
    def error(cls, status: int, message: str, error_type: str | None) -> dict[str, Any]:
        default = cls._ERROR_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        return {"type": "error", "error": {"type": error_type or default, "message": message}}


class _Ollama:
    """Rendering for Ollama's native API."""

    @staticmethod
    def message(reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"function": {"name": call.name, "arguments": dict(call.arguments)}}
                for call in reply.tool_calls
            ]
        return message

    @staticmethod
    def _now() -> str:
        return datetime.now(UTC).isoformat().replace("+00:00", "Z")

    @classmethod
    def final(cls, reply: Reply, request: ModelRequest, message: dict[str, Any]) -> dict[str, Any]:
        prompt, completion = _token_counts(reply, request)
        return {
            "model": request.model,
            "created_at": cls._now(),
            "message": message,
            "done": True,
            "done_reason": _OLLAMA_DONE[_finish_of(reply)],
            "total_duration": 0,
            "load_duration": 0,
            "prompt_eval_count": prompt,
            "prompt_eval_duration": 0,
            "eval_count": completion,
            "eval_duration": 0,
        }

    @classmethod
    def chat(cls, reply: Reply, request: ModelRequest) -> dict[str, Any]:
        return cls.final(reply, request, cls.message(reply))

    @classmethod
    async def stream(cls, reply: Reply, request: ModelRequest) -> AsyncIterator[bytes]:
        def line(payload: Mapping[str, Any]) -> bytes:
            return json.dumps(payload).encode() + b"\n"

        for piece in _text_pieces(reply.text):
            message = {"role": "assistant", "content": piece}
            yield line(
                {
                    "model": request.model,
                    "created_at": cls._now(),
                    "message": message,
                    "done": False,
                }
            )
        if reply.tool_calls:
            message = {**cls.message(reply), "content": ""}
            yield line(
                {
                    "model": request.model,
                    "created_at": cls._now(),
                    "message": message,
                    "done": False,
                }
            )
        yield line(cls.final(reply, request, {"role": "assistant", "content": ""}))

    @staticmethod
    def error(status: int, message: str, error_type: str | None) -> dict[str, Any]:
        return {"error": message}

    @staticmethod
    def embed(request: ModelRequest, dimensions: int) -> dict[str, Any]:
        vectors = [fake_embedding(text, dimensions) for text in request.inputs]
        if request.path.endswith("/embeddings"):  # the legacy single-prompt endpoint
            return {"embedding": vectors[0] if vectors else []}
        return {
            "model": request.model,
            "embeddings": vectors,
            "total_duration": 0,
            "load_duration": 0,
            "prompt_eval_count": _estimate_prompt_tokens(request),
        }


_ERROR_BODIES: dict[ProtocolName, Callable[[int, str, str | None], dict[str, Any]]] = {
    "openai": _OpenAI.error,
    "anthropic": _Anthropic.error,
    "ollama": _Ollama.error,
}


def _error_response(
    protocol: ProtocolName,
    status: int,
    message: str | None = None,
    error_type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    if message is None:
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        message = f"{phrase} (scripted by ModelServer)"
    body = _ERROR_BODIES[protocol](status, message, error_type)
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


# ---------------------------------------------------------------------------------------------
# Dropping connections
# ---------------------------------------------------------------------------------------------


class _ConnectionDropped(Exception):
    """Raised after the response headers went out, so uvicorn closes the connection."""


class _DropResponse(Response):
    """Announces a body, then makes uvicorn close the connection before sending it.

    ASGI has no "close the connection" message; an exception after ``http.response.start``
    is the one portable way to get a server to drop it.
    """

    def __init__(self, headers: Mapping[str, str]) -> None:
        super().__init__(
            b"", status_code=200, headers={**headers, "content-type": "application/json"}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        headers.append((b"content-length", b"1024"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        raise _ConnectionDropped("connection dropped on purpose (Reply.disconnect)")


class _QuietDrops(logging.Filter):
    """Hides uvicorn's traceback for connections dropped on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, _ConnectionDropped)


_QUIET_DROPS = _QuietDrops()


def _install_drop_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if _QUIET_DROPS not in logger.filters:
        logger.addFilter(_QUIET_DROPS)


# ---------------------------------------------------------------------------------------------
# Scripts, recording and the ASGI app
# ---------------------------------------------------------------------------------------------


def _as_reply(value: Reply | str) -> Reply:
    if isinstance(value, Reply):
        return value
    if isinstance(value, str):
        return Reply(text=value)
    raise TypeError(f"expected a Reply or a str, got {type(value).__name__}")


class _State:
    """Everything the app shares with the test thread; every access holds ``lock``."""

    def __init__(self, latency: float, models: Sequence[str], dimensions: int) -> None:
        self.lock = threading.Lock()
        self.latency = latency
        self.models = tuple(models)
        self.dimensions = dimensions
        self.script: deque[Reply] = deque()
        self.model_scripts: dict[str, deque[Reply]] = {}
        self.responder: Responder | None = None
        self.requests: list[ModelRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.ids = _Ids()

    def reset(self) -> None:
        with self.lock:
            self.script.clear()
            self.model_scripts.clear()
            self.responder = None
            self.requests.clear()
            # Requests still in flight stay counted: they will leave and decrement.
            self.max_in_flight = self.in_flight
            self.ids = _Ids()

    def record(self, request: ModelRequest) -> None:
        with self.lock:
            self.requests.append(request)

    @contextmanager
    def in_flight_request(self) -> Iterator[None]:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self.lock:
                self.in_flight -= 1

    def pop_scripted(self, model: str, *, shared: bool = True) -> Reply | None:
        """The next scripted reply: the model's own script first, then (with ``shared``) the
        shared one."""
        with self.lock:
            queue = self.model_scripts.get(model)
            if queue:
                return queue.popleft()
            return self.script.popleft() if shared and self.script else None

    async def reply_for(self, request: ModelRequest) -> Reply:
        scripted = self.pop_scripted(request.model)
        if scripted is not None:
            return scripted
        responder = self.responder or echo_reply
        try:
            result = responder(request)
            if inspect.isawaitable(result):
                result = await result
            return _as_reply(result)
        except Exception as exc:
            _log.exception("ModelServer responder failed")
            # Tell the clients not to retry: the same responder would fail the same way.
            return Reply.error(
                500, f"ModelServer responder failed: {exc!r}", headers={"x-should-retry": "false"}
            )


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _pause(seconds: float, receive: Receive, stopping: asyncio.Event) -> bool:
    """Sleep ``seconds``; return early (False) if the client hangs up or the server stops.

    Waking on hang-up matters: a client that timed out must not keep a handler (and server
    shutdown) waiting for the rest of a long scripted delay.
    """
    sleeper = asyncio.ensure_future(asyncio.sleep(seconds))
    watchers = {
        asyncio.ensure_future(_wait_for_disconnect(receive)),
        asyncio.ensure_future(stopping.wait()),
    }
    done, pending = await asyncio.wait({sleeper, *watchers}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return sleeper in done


class _App:
    """The Starlette app: routes every endpoint of the three protocols to ``_State``."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self.stopping = asyncio.Event()

    def starlette(self) -> Starlette:
        routes = [
            Route("/v1/chat/completions", self.openai_chat, methods=["POST"]),
            Route("/v1/embeddings", self.openai_embeddings, methods=["POST"]),
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/messages", self.anthropic_messages, methods=["POST"]),
            Route("/api/chat", self.ollama_chat, methods=["POST"]),
            Route("/api/embed", self.ollama_embed, methods=["POST"]),
            Route("/api/embeddings", self.ollama_embed, methods=["POST"]),
            Route("/api/tags", self.ollama_tags, methods=["GET"]),
            Route("/api/version", self.ollama_version, methods=["GET"]),
            Route("/", self.root, methods=["GET", "HEAD"]),
        ]
        return Starlette(routes=routes)

    async def openai_chat(self, request: Request) -> Response:
        return await self._chat("openai", request)

    async def anthropic_messages(self, request: Request) -> Response:
        return await self._chat("anthropic", request)

    async def ollama_chat(self, request: Request) -> Response:
        return await self._chat("ollama", request)

    async def openai_embeddings(self, request: Request) -> Response:
        return await self._embeddings("openai", request)

    async def ollama_embed(self, request: Request) -> Response:
        return await self._embeddings("ollama", request)

    async def list_models(self, request: Request) -> Response:
        # OpenAI and Anthropic share this path; only Anthropic's client sends this header.
        data: list[dict[str, Any]]
        if "anthropic-version" in request.headers:
            data = [
                {"type": "model", "id": name, "display_name": name, "created_at": _Ollama._now()}
                for name in self.state.models
            ]
            first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
            return JSONResponse(
                {"data": data, "has_more": False, "first_id": first, "last_id": last}
            )
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "model-server"}
            for name in self.state.models
        ]
        return JSONResponse({"object": "list", "data": data})

    async def ollama_tags(self, request: Request) -> Response:
        models = [
            {
                "name": name,
                "model": name,
                "modified_at": _Ollama._now(),
                "size": 0,
                "digest": hashlib.sha256(name.encode()).hexdigest(),
                "details": {"format": "gguf", "family": "scripted", "parameter_size": "0B"},
            }
            for name in self.state.models
        ]
        return JSONResponse({"models": models})

    async def ollama_version(self, request: Request) -> Response:
        return JSONResponse({"version": "0.12.0"})

    async def root(self, request: Request) -> Response:
        return PlainTextResponse("Ollama is running")  # what Ollama answers; also a health check

    async def _read(self, protocol: ProtocolName, request: Request) -> dict[str, Any] | Response:
        """The JSON body, or the protocol's 400 error when it is not a JSON object."""
        try:
            body = json.loads(await request.body() or b"null")
        except json.JSONDecodeError as exc:
            return _error_response(protocol, 400, f"request body is not valid JSON: {exc}")
        if not isinstance(body, dict):
            return _error_response(protocol, 400, "request body must be a JSON object")
        return body

    def _request(
        self,
        protocol: ProtocolName,
        kind: RequestKind,
        request: Request,
        body: dict[str, Any],
        **fields: Any,
    ) -> ModelRequest:
        return ModelRequest(
            protocol=protocol,
            kind=kind,
            path=request.url.path,
            model=str(body.get("model", "")),
            body=body,
            headers=dict(request.headers),
            received_at=time.monotonic(),
            **fields,
        )

    async def _chat(self, protocol: ProtocolName, request: Request) -> Response:
        body = await self._read(protocol, request)
        if isinstance(body, Response):
            return body
        model_request = self._request(
            protocol, "chat", request, body, **_parse_chat(protocol, body)
        )
        self.state.record(model_request)
        with self.state.in_flight_request():
            reply = await self.state.reply_for(model_request)
            delay = self.state.latency + reply.delay
            if delay > 0 and not await _pause(delay, request.receive, self.stopping):
                # Either nobody is listening any more, or the server is going away.
                return _error_response(protocol, 503, "ModelServer is shutting down")
            return self._render(protocol, reply, model_request)

    def _render(self, protocol: ProtocolName, reply: Reply, request: ModelRequest) -> Response:
        headers = dict(reply.headers)
        if reply.drop:
            return _DropResponse(headers)
        if reply.body is not None:
            return self._raw(reply, headers)
        if reply.status >= 400:
            return _error_response(
                protocol, reply.status, reply.error_message, reply.error_type, headers
            )
        ids = self.state.ids
        request_id = ids.next("req_")
        headers.setdefault("x-request-id", request_id)
        headers.setdefault("request-id", request_id)  # Anthropic's client reads this one
        if request.stream:
            return self._stream(protocol, reply, request, headers)
        payload = {
            "openai": lambda: _OpenAI.completion(reply, request, ids),
            "anthropic": lambda: _Anthropic.message(reply, request, ids),
            "ollama": lambda: _Ollama.chat(reply, request),
        }[protocol]()
        return JSONResponse(payload, status_code=reply.status, headers=headers)

    def _stream(
        self, protocol: ProtocolName, reply: Reply, request: ModelRequest, headers: dict[str, str]
    ) -> Response:
        if protocol == "ollama":
            return StreamingResponse(
                _Ollama.stream(reply, request), reply.status, headers, "application/x-ndjson"
            )
        events = (_OpenAI if protocol == "openai" else _Anthropic).stream(
            reply, request, self.state.ids
        )
        headers.setdefault("cache-control", "no-cache")
        return StreamingResponse(events, reply.status, headers, "text/event-stream")

    @staticmethod
    def _raw(reply: Reply, headers: dict[str, str]) -> Response:
        body = reply.body
        if isinstance(body, (Mapping, list)):
            content = json.dumps(body).encode()
        elif isinstance(body, str):
            content = body.encode()
        else:
            content = bytes(body or b"")
        media_type = headers.pop("content-type", "application/json")
        return Response(content, reply.status, headers, media_type)

    async def _embeddings(self, protocol: ProtocolName, request: Request) -> Response:
        body = await self._read(protocol, request)
        if isinstance(body, Response):
            return body
        raw_input = body.get("input", body.get("prompt"))
        model_request = self._request(
            protocol, "embeddings", request, body, inputs=_embedding_inputs(raw_input)
        )
        self.state.record(model_request)
        dimensions = int(body.get("dimensions") or self.state.dimensions)
        with self.state.in_flight_request():
            # A reply scripted for this model name (``script(..., model=...)``; the shared
            # queue is the chat requests') answers an embedding request as it says: an error,
            # a drop or a raw body. What an embedding test scripts is how the service fails.
            scripted = self.state.pop_scripted(model_request.model, shared=False)
            delay = self.state.latency + (scripted.delay if scripted is not None else 0.0)
            if delay > 0 and not await _pause(delay, request.receive, self.stopping):
                return _error_response(protocol, 503, "ModelServer is shutting down")
            if scripted is not None:
                return self._render(protocol, scripted, model_request)
            if protocol == "openai":
                return JSONResponse(_OpenAI.embeddings(model_request, dimensions))
            return JSONResponse(_Ollama.embed(model_request, dimensions))


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


class _Signal:
    """A one-shot flag that threads and coroutines on any event loop can wait for."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def set(self) -> None:
        with self._lock:
            self._event.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            # RuntimeError: that loop is closed, so nobody is waiting any more.
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future)

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    async def wait_async(self) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._event.is_set():
                return
            self._waiters.append((loop, future))
        await future


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening.

    Not ``socket.create_server``: its sockets have ``proto == 0``, and asyncio only sets
    TCP_NODELAY on accepted sockets whose ``proto`` is ``IPPROTO_TCP``. Without NODELAY every
    response waits ~40 ms for Nagle's algorithm and the client's delayed ACK.
    """
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )[0]
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


class _Uvicorn(uvicorn.Server):
    """uvicorn's server with hooks at the end of startup and the start of shutdown."""

    def __init__(
        self,
        config: uvicorn.Config,
        on_started: Callable[[], None],
        on_stopping: Callable[[], None],
    ) -> None:
        super().__init__(config)
        self._on_started = on_started
        self._on_stopping = on_stopping

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self._on_started()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Wake delayed replies first, or shutdown would wait for their whole delay.
        self._on_stopping()
        await super().shutdown(sockets)


class ModelServer:
    """A scripted model server on 127.0.0.1, for the official OpenAI, Anthropic and Ollama clients.

    Use it as a context manager, sync or async; either way it serves from its own thread::

        with ModelServer(latency=0.05) as server:
            client = openai.OpenAI(base_url=server.url("openai"), api_key="test")

        async with ModelServer() as server:
            client = anthropic.AsyncAnthropic(base_url=server.url("anthropic"), api_key="test")

    ``latency`` (seconds) delays every answer; ``models`` are the names listed by the model
    listing endpoints (any model name is accepted in requests); ``embedding_dimensions`` is
    the length of embedding vectors when the request does not ask for one.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        models: Sequence[str] = ("test-model",),
        embedding_dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS,
        backlog: int = DEFAULT_BACKLOG,
    ) -> None:
        if latency < 0:
            raise ValueError(f"latency must be >= 0, got {latency}")
        self._state = _State(latency, models, embedding_dimensions)
        self._host = host
        self._requested_port = port
        self._backlog = backlog
        self._socket: socket.socket | None = None
        self._port: int | None = None
        self._uvicorn: _Uvicorn | None = None
        self._thread: threading.Thread | None = None
        self._started = _Signal()
        self._finished = _Signal()
        self._failure: BaseException | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving in a background thread; returns once the server accepts requests."""
        self._launch()
        if not self._started.wait(_START_TIMEOUT):
            raise RuntimeError(f"ModelServer did not start within {_START_TIMEOUT} s")
        self._raise_failure()
        return self

    async def start_async(self) -> Self:
        """Like :meth:`start`, but waits without blocking the caller's event loop."""
        self._launch()
        try:
            await asyncio.wait_for(self._started.wait_async(), _START_TIMEOUT)
        except TimeoutError:
            raise RuntimeError(f"ModelServer did not start within {_START_TIMEOUT} s") from None
        self._raise_failure()
        return self

    def stop(self) -> None:
        """Stop serving and join the thread; delayed replies are cut short. Idempotent."""
        if self._request_stop():
            self._finished.wait()
            self._join()

    async def stop_async(self) -> None:
        """Like :meth:`stop`, but waits without blocking the caller's event loop."""
        if self._request_stop():
            await self._finished.wait_async()
            self._join()

    def serve_forever(self, on_started: Callable[[], None] | None = None) -> None:
        """Serve in the calling (main) thread until SIGINT/SIGTERM; for the command line."""
        self._bind()
        server = self._make_uvicorn(on_started or (lambda: None))
        asyncio.run(server.serve(sockets=[self._bound_socket()]))

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.start_async()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop_async()

    def _bind(self) -> None:
        if self._socket is not None:
            raise RuntimeError("a ModelServer can only be started once")
        # Bound here, in the caller's thread, so the port is known before the thread runs and
        # clients that connect early simply wait in the backlog.
        self._socket = _listening_socket(self._host, self._requested_port, self._backlog)
        # Kept apart from the socket, which uvicorn closes on shutdown.
        self._port = int(self._socket.getsockname()[1])

    def _bound_socket(self) -> socket.socket:
        if self._socket is None:
            raise RuntimeError("the ModelServer is not started")
        return self._socket

    def _make_uvicorn(self, on_started: Callable[[], None]) -> _Uvicorn:
        _install_drop_filter()
        app = _App(self._state)
        config = uvicorn.Config(
            app.starlette(),
            log_config=None,  # leave the process's logging configuration alone
            log_level="warning",
            access_log=False,
            limit_concurrency=None,
            backlog=self._backlog,
            lifespan="off",
            ws="none",
            proxy_headers=False,
            timeout_graceful_shutdown=2,
        )
        server = _Uvicorn(config, on_started=on_started, on_stopping=app.stopping.set)
        self._uvicorn = server
        return server

    def _launch(self) -> None:
        self._bind()
        server = self._make_uvicorn(self._started.set)
        self._thread = threading.Thread(
            target=self._run, args=(server,), name=f"ModelServer:{self.port}", daemon=True
        )
        self._thread.start()

    def _run(self, server: _Uvicorn) -> None:
        try:
            asyncio.run(server.serve(sockets=[self._bound_socket()]))
        except BaseException as exc:  # uvicorn exits with SystemExit on startup errors
            self._failure = exc
        finally:
            # uvicorn closes the socket only if it started; closing twice is harmless.
            self._bound_socket().close()
            self._started.set()  # so a failed startup does not leave start() waiting
            self._finished.set()

    def _raise_failure(self) -> None:
        if self._failure is not None or self._finished.is_set():
            raise RuntimeError("ModelServer failed to start") from self._failure

    def _request_stop(self) -> bool:
        """Ask uvicorn to exit; False when there is nothing to stop."""
        if self._uvicorn is None or self._thread is None:
            return False
        self._uvicorn.should_exit = True
        return True

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    # -- addresses ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server listens on (known once started)."""
        if self._port is None:
            raise RuntimeError("the ModelServer is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://host:port``, without a path."""
        host = f"[{self._host}]" if ":" in self._host else self._host  # IPv6 literals
        return f"http://{host}:{self.port}"

    def url(self, protocol: ProtocolName | None = None) -> str:
        """The base URL each official client expects.

        ``"openai"`` ends in ``/v1`` (``openai.OpenAI(base_url=...)``); ``"anthropic"`` and
        ``"ollama"`` are the bare ``http://host:port`` (``anthropic.Anthropic(base_url=...)``,
        ``ollama.Client(host=...)``), since those clients add their own path prefixes.
        """
        if protocol == "openai":
            return f"{self.base_url}/v1"
        if protocol in ("anthropic", "ollama", None):
            return self.base_url
        raise ValueError(f"unknown protocol {protocol!r}; expected openai, anthropic or ollama")

    # -- scripting ------------------------------------------------------------------------------

    def script(self, *replies: Reply | str, model: str | None = None) -> None:
        """Queue replies, answered in order; a ``str`` is a text reply.

        With ``model``, the replies answer only requests for that model name, and take
        precedence over the shared queue. Scripts add to what is already queued.
        """
        queued = [_as_reply(reply) for reply in replies]
        with self._state.lock:
            if model is None:
                self._state.script.extend(queued)
            else:
                self._state.model_scripts.setdefault(model, deque()).extend(queued)

    def respond_with(self, responder: Responder | None) -> None:
        """Answer unscripted requests with ``responder(request)``; ``None`` restores the echo."""
        with self._state.lock:
            self._state.responder = responder

    def pending(self, model: str | None = None) -> int:
        """How many scripted replies are still queued (for ``model``, or the shared queue)."""
        with self._state.lock:
            queue = (
                self._state.script if model is None else self._state.model_scripts.get(model, ())
            )
            return len(queue)

    def reset(self) -> None:
        """Forget scripts, the responder, recorded requests and the in-flight maximum."""
        self._state.reset()

    @property
    def latency(self) -> float:
        """Seconds added to every answer; settable while serving."""
        return self._state.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"latency must be >= 0, got {seconds}")
        self._state.latency = seconds

    # -- observations ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[ModelRequest]:
        """A snapshot of the requests received so far, in arrival order."""
        with self._state.lock:
            return list(self._state.requests)

    def count(
        self,
        protocol: ProtocolName | None = None,
        model: str | None = None,
        kind: RequestKind | None = None,
    ) -> int:
        """How many requests arrived, optionally only of one protocol, model or kind."""
        return sum(
            1
            for request in self.requests
            if (protocol is None or request.protocol == protocol)
            and (model is None or request.model == model)
            and (kind is None or request.kind == kind)
        )

    @property
    def in_flight(self) -> int:
        """Requests being answered right now."""
        return self._state.in_flight

    @property
    def max_in_flight(self) -> int:
        """The most requests that were being answered at once (since start or ``reset``)."""
        return self._state.max_in_flight


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _raise_fd_limit() -> None:
    """Raise the soft open-files limit to the hard one: 1,000 connections need 1,000 fds."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        with suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flink_agents_async.testing.model_server``: serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m flink_agents_async.testing.model_server",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--model", action="append", dest="models", help="model names to list")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _raise_fd_limit()
    server = ModelServer(
        host=args.host, port=args.port, latency=args.latency, models=args.models or ("test-model",)
    )

    def announce() -> None:
        print(f"ModelServer on {server.base_url} (latency {server.latency} s); base URLs:")
        protocols: tuple[ProtocolName, ...] = ("openai", "anthropic", "ollama")
        for protocol in protocols:
            print(f"  {protocol:<10} {server.url(protocol)}")
        print("Press Ctrl+C to stop.", flush=True)

    # uvicorn shuts down gracefully on Ctrl+C, then re-raises the SIGINT.
    with suppress(KeyboardInterrupt):
        server.serve_forever(on_started=announce)
    return 0


if __name__ == "__main__":
    sys.exit(main())

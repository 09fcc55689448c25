"""Chat models: a connection (the client of a model service) and a setup (what to ask it).

* ``BaseChatModelConnection`` holds the endpoint, credentials, timeout, retries and a concurrency
  limit, and answers ``achat(messages, tools, **kwargs)``: the primary, async contract. A
  subclass written in upstream's style implements only the sync ``chat``; it still works, run in
  a worker thread, never on the event loop.
* ``RemoteChatModelConnection`` is the base of the built-in provider integrations: it bounds the
  requests in flight (``max_concurrency``) and retries 429, 5xx and connection errors with
  backoff that honours ``Retry-After`` (``RetryPolicy``), reporting the retries it made in the
  answer's ``extra_args`` (``retry_count``, ``retry_wait_sec``). A subclass implements one request
  (``_request``) and says which errors are retryable (``_classify``).
* ``BaseChatModelSetup`` names a connection, a model and its sampling arguments
  (``model_kwargs``), a prompt and tools (by resource name). ``achat(messages, prompt_args)``
  applies the prompt and calls the connection. Actions send a ``ChatRequestEvent`` naming the
  setup; the built-in chat action does the rest (see ``llm.actions``).
"""

from __future__ import annotations

import functools
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import anyio.to_thread
from pydantic import Field, PrivateAttr

from ..errors import ResourceError
from ..resources import Resource, ResourceType
from .messages import ChatMessage, MessageRole
from .prompts import Prompt, prompt_arguments
from .remote import RemoteService, overrides, run_async_from_sync
from .retry import Retryable, RetryOutcome
from .tools import Tool

__all__ = [
    "BaseChatModelConnection",
    "BaseChatModelSetup",
    "RemoteChatModelConnection",
]


class BaseChatModelConnection(Resource, ABC):
    """The client of a chat model service. Implement ``achat`` (async, preferred) or ``chat``
    (sync, upstream's style: run in a worker thread)."""

    DEFAULT_REASONING_PATTERNS: ClassVar[tuple[re.Pattern[str], ...]] = (
        re.compile(r"<think>(.*?)</think>", re.DOTALL | re.IGNORECASE),
        re.compile(r"<analysis>(.*?)</analysis>", re.DOTALL | re.IGNORECASE),
        re.compile(r"<reasoning>(.*?)</reasoning>", re.DOTALL | re.IGNORECASE),
        re.compile(r"```(?:think|reasoning|thought)\s*\n(.*?)\n```", re.DOTALL | re.IGNORECASE),
        re.compile(r"(?:^|\n)Reasoning:\s*(.*?)(?:\n{2,}|$)", re.DOTALL | re.IGNORECASE),
    )

    @classmethod
    def resource_type(cls) -> ResourceType:
        return ResourceType.CHAT_MODEL_CONNECTION

    def supports_native_structured_output(self, effective_model: str | None) -> bool:
        """Whether the service can constrain answers to a schema itself (no by default: the
        chat action then asks for JSON and validates it)."""
        return False

    async def achat(
        self,
        messages: Sequence[ChatMessage],
        tools: list[Tool] | None = None,
        output_schema: Any = None,
        **kwargs: Any,
    ) -> ChatMessage:
        """The model's answer to ``messages`` (the primary contract). By default, the sync
        ``chat`` in a worker thread, for subclasses that implement only that."""
        cls = type(self)
        if not overrides(cls, "chat", BaseChatModelConnection):
            raise NotImplementedError(f"{cls.__qualname__} implements neither achat nor chat")
        call = functools.partial(self.chat, messages, tools, **_with_schema(output_schema, kwargs))
        return await anyio.to_thread.run_sync(call)

    def chat(
        self,
        messages: Sequence[ChatMessage],
        tools: list[Tool] | None = None,
        output_schema: Any = None,
        **kwargs: Any,
    ) -> ChatMessage:
        """The model's answer, for sync callers: ``achat`` run on the event loop that started
        this thread (from the runtime's thread pool), or on a loop of its own."""
        cls = type(self)
        if not overrides(cls, "achat", BaseChatModelConnection):
            raise NotImplementedError(f"{cls.__qualname__} implements neither achat nor chat")
        call = functools.partial(self.achat, messages, tools, output_schema, **kwargs)
        return run_async_from_sync(call, self.release_loop)

    async def release_loop(self) -> None:
        """Release what this connection holds for the running event loop (its async clients):
        called when a sync ``chat`` ran on a loop of its own, which closes next."""

    @staticmethod
    def _extract_reasoning(
        content: str,
        patterns: Sequence[re.Pattern[str]] = DEFAULT_REASONING_PATTERNS,
    ) -> tuple[str, str | None]:
        """``content`` without its reasoning (``<think>`` blocks and the like), and that
        reasoning (None if there was none)."""
        if not content:
            return "", None
        chunks: list[str] = []
        cleaned = content
        for pattern in patterns:
            found = pattern.findall(cleaned)
            if found:
                chunks.extend(part.strip() for part in found if part.strip())
                cleaned = pattern.sub("", cleaned)
        cleaned = re.sub(r" {2,}", " ", re.sub(r"\n{3,}", "\n\n", cleaned)).strip()
        return cleaned, ("\n\n".join(chunks) if chunks else None)


def _with_schema(output_schema: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    # Upstream-style sync connections (0.2/0.3) take no output_schema: pass it only if given.
    return kwargs if output_schema is None else {**kwargs, "output_schema": output_schema}


class RemoteChatModelConnection(RemoteService, BaseChatModelConnection):
    """A chat model served over the network: bounded in-flight requests, retries with backoff
    honouring ``Retry-After``, and a timeout per request (the fields of ``RemoteService``).
    A subclass implements one request (``_request``) and says which errors are retryable
    (``_classify``); the retries made are in the answer's ``extra_args`` (``retry_count``,
    ``retry_wait_sec``).
    """

    async def achat(
        self,
        messages: Sequence[ChatMessage],
        tools: list[Tool] | None = None,
        output_schema: Any = None,
        **kwargs: Any,
    ) -> ChatMessage:
        outcome = RetryOutcome()
        answer = await self.call_with_retries(
            functools.partial(self._request, list(messages), tools or [], output_schema, kwargs),
            self._classify,
            outcome,
        )
        if outcome.retries:
            answer.extra_args["retry_count"] = outcome.retries
            answer.extra_args["retry_wait_sec"] = outcome.waited
        return answer

    @abstractmethod
    async def _request(
        self,
        messages: list[ChatMessage],
        tools: list[Tool],
        output_schema: Any,
        kwargs: dict[str, Any],
    ) -> ChatMessage:
        """One request to the service (retries and limits are done around it)."""

    @abstractmethod
    def _classify(self, error: BaseException) -> Retryable | None:
        """Whether ``error`` of a request is worth retrying, and the server's wait hint."""


class BaseChatModelSetup(Resource, ABC):
    """What to ask which model: a connection (by resource name), the model, a prompt and
    tools (by resource name or as objects), and sampling arguments (``model_kwargs``)."""

    connection: str
    model: str | None = None
    prompt: Prompt | str | None = None
    tools: list[str] | list[Tool] | None = Field(default_factory=list)
    # Upstream 0.3's skills are not supported here (refused at open() when given).
    skills: list[str] | None = None
    allowed_commands: list[str] = Field(default_factory=list)
    allowed_script_dirs: list[str] = Field(default_factory=list)
    _resolved_connection: BaseChatModelConnection | None = PrivateAttr(default=None)
    _resolved_prompt: Prompt | None = PrivateAttr(default=None)
    _resolved_tools: list[Tool] | None = PrivateAttr(default=None)

    @classmethod
    def resource_type(cls) -> ResourceType:
        return ResourceType.CHAT_MODEL

    @property
    @abstractmethod
    def model_kwargs(self) -> dict[str, Any]:
        """The arguments every request of this setup passes (``model``, ``temperature``...)."""

    # -- resolving the resources this setup names -----------------------------------------

    def open(self) -> None:
        if self.skills:
            raise ResourceError(
                f"chat model setup {type(self).__name__}: skills are not supported by "
                "flink-agents-async; give the tools to the setup instead"
            )
        self._resolved_connection = self._connection()
        self._resolved_prompt = self._prompt()
        self._resolved_tools = self._tools()

    def _lookup(self, name: str, resource_type: ResourceType) -> Any:
        return self.find_resource("chat model setup", name, resource_type)

    def _connection(self) -> BaseChatModelConnection:
        if self._resolved_connection is not None:
            return self._resolved_connection
        connection = self._lookup(self.connection, ResourceType.CHAT_MODEL_CONNECTION)
        if not isinstance(connection, BaseChatModelConnection):
            raise ResourceError(
                f"chat model setup {type(self).__name__}: resource {self.connection!r} is a "
                f"{type(connection).__name__}, not a chat model connection"
            )
        return connection

    def _prompt(self) -> Prompt | None:
        if self._resolved_prompt is not None or self.prompt is None:
            return self._resolved_prompt
        prompt = self.prompt
        if isinstance(prompt, str):
            prompt = self._lookup(prompt, ResourceType.PROMPT)
        if not isinstance(prompt, Prompt):
            raise ResourceError(
                f"chat model setup {type(self).__name__}: its prompt {self.prompt!r} is a "
                f"{type(prompt).__name__}, not a Prompt"
            )
        return prompt

    def _tools(self) -> list[Tool]:
        if self._resolved_tools is not None:
            return self._resolved_tools
        tools = []
        for tool in self.tools or ():
            if isinstance(tool, str):
                tool = self._lookup(tool, ResourceType.TOOL)
            if not isinstance(tool, Tool):
                raise ResourceError(
                    f"chat model setup {type(self).__name__}: its tool {tool!r} is not a Tool"
                )
            tools.append(tool)
        return tools

    # -- asking the model -----------------------------------------------------------------

    def prepare(
        self, messages: Sequence[ChatMessage], prompt_args: Mapping[str, Any] | None = None
    ) -> list[ChatMessage]:
        """The messages sent to the model: the prompt filled with the request's arguments,
        then the request's messages (those left empty only carried prompt arguments)."""
        prompt = self._prompt()
        if prompt is None:
            return list(messages)
        filled = prompt.format_messages(
            MessageRole.SYSTEM, **prompt_arguments(messages, prompt_args)
        )
        return _with_request_messages(filled, messages)

    async def aprepare(
        self, messages: Sequence[ChatMessage], prompt_args: Mapping[str, Any] | None = None
    ) -> list[ChatMessage]:
        """``prepare`` without blocking the loop on a prompt fetched from a server."""
        prompt = self._prompt()
        if prompt is None:
            return list(messages)
        filled = await prompt.aformat_messages(
            MessageRole.SYSTEM, **prompt_arguments(messages, prompt_args)
        )
        return _with_request_messages(filled, messages)

    async def achat(
        self,
        messages: Sequence[ChatMessage],
        prompt_args: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        """The model's answer to ``messages`` with this setup's prompt, tools and arguments."""
        arguments = {**self.model_kwargs, **kwargs}
        return await self._connection().achat(
            await self.aprepare(messages, prompt_args), tools=self._tools(), **arguments
        )

    def chat(
        self,
        messages: Sequence[ChatMessage],
        prompt_args: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> ChatMessage:
        """Sync ``achat`` (upstream's entry point): the connection's sync ``chat``."""
        arguments = {**self.model_kwargs, **kwargs}
        return self._connection().chat(
            self.prepare(messages, prompt_args), tools=self._tools(), **arguments
        )


def _with_request_messages(
    filled: list[ChatMessage], messages: Sequence[ChatMessage]
) -> list[ChatMessage]:
    """The filled prompt, then the request's messages (those left empty only carried prompt
    arguments)."""
    filled.extend(
        message
        for message in messages
        if message.content or message.role == MessageRole.ASSISTANT or message.tool_calls
    )
    return filled


def is_sync_setup(setup: BaseChatModelSetup) -> bool:
    """Whether a setup answers only through a sync ``chat`` of its own (upstream's style), so
    the chat action runs it in the thread pool."""
    cls = type(setup)
    return overrides(cls, "chat", BaseChatModelSetup) and not overrides(
        cls, "achat", BaseChatModelSetup
    )

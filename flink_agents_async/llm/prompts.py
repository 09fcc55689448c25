"""Prompts: text or message templates with ``{name}`` placeholders.

``Prompt.from_text("Summarise {input}")`` and ``Prompt.from_messages([...])`` make a
``LocalPrompt``. ``format_string(**args)`` fills a template into one string, and
``format_messages(role, **args)`` into chat messages. A placeholder is ``{name}``: the whole text
between the braces is the argument's name. One whose name was not given stays as written, so
JSON examples in a prompt (``{"score": 5}``) need no escaping. A chat model setup fills its prompt
with the request's ``prompt_args`` (and the ``extra_args`` of its messages, as upstream 0.2 did).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from ..resources import ResourceType, SerializableResource
from .messages import ChatMessage, MessageRole

__all__ = ["LocalPrompt", "Prompt", "format_string"]

_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


def format_string(template: str, /, **args: Any) -> str:
    """``template`` with each ``{name}`` whose name is in ``args`` replaced by ``str(value)``;
    other braces are left exactly as they are."""
    if not args:
        return template

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(args[name]) if name in args else match.group(0)

    return _PLACEHOLDER.sub(fill, template)


class Prompt(SerializableResource, ABC):
    """A prompt template, declared with ``@prompt`` or ``add_resource(..., PROMPT, ...)``."""

    @classmethod
    def resource_type(cls) -> ResourceType:
        return ResourceType.PROMPT

    @staticmethod
    def from_text(text: str) -> Prompt:
        """A prompt from one text template (it becomes one message when formatted as
        messages)."""
        return LocalPrompt(template=text)

    @staticmethod
    def from_messages(messages: Sequence[ChatMessage]) -> Prompt:
        """A prompt from message templates (each keeps its role when formatted)."""
        return LocalPrompt(template=list(messages))

    @abstractmethod
    def format_string(self, **kwargs: Any) -> str:
        """The template filled into one string."""

    @abstractmethod
    def format_messages(
        self, role: MessageRole = MessageRole.SYSTEM, **kwargs: Any
    ) -> list[ChatMessage]:
        """The template filled into chat messages; a text template becomes one message of
        ``role``."""

    async def aformat_messages(
        self, role: MessageRole = MessageRole.SYSTEM, **kwargs: Any
    ) -> list[ChatMessage]:
        """``format_messages`` for async callers; a prompt that fetches its template (an MCP
        server's) overrides it to fetch without blocking the loop."""
        return self.format_messages(role, **kwargs)


class LocalPrompt(Prompt):
    """A prompt whose template is held here: a string or a list of ``ChatMessage``."""

    template: str | list[ChatMessage]

    def format_string(self, **kwargs: Any) -> str:
        if isinstance(self.template, str):
            return format_string(self.template, **kwargs)
        lines = []
        for message in self.template:
            line = f"{message.role.value}: {format_string(message.content, **kwargs)}"
            if message.extra_args:
                line += str(message.extra_args)
            lines.append(line)
        return "\n".join(lines)

    def format_messages(
        self, role: MessageRole = MessageRole.SYSTEM, **kwargs: Any
    ) -> list[ChatMessage]:
        if isinstance(self.template, str):
            return [ChatMessage(role=role, content=format_string(self.template, **kwargs))]
        return [
            ChatMessage(role=message.role, content=format_string(message.content, **kwargs))
            for message in self.template
        ]


def prompt_arguments(
    messages: Sequence[ChatMessage], prompt_args: Mapping[str, Any] | None
) -> dict[str, str]:
    """The values a setup fills its prompt with: the ``extra_args`` of the request's messages
    (upstream 0.2 passed them so), then ``prompt_args`` (0.3 on) over them, all as text."""
    values: dict[str, str] = {}
    for message in messages:
        for name, value in message.extra_args.items():
            values[name] = str(value)
    for name, value in (prompt_args or {}).items():
        values[name] = str(value)
    return values

"""Chat messages: what a chat model is asked and what it answers.

``ChatMessage(role, content, tool_calls, extra_args)`` is plain pydantic, so it round-trips
through JSON and through the journal (a model's answer is a durable call's result). A tool call
inside ``tool_calls`` is a dict::

    {"id": <uuid>, "type": "function",
     "function": {"name": <tool name>, "arguments": {<parsed arguments>}},
     "original_id": <the provider's id for the call, when it has one>}

A tool's result goes back to the model as ``ChatMessage(role=TOOL, content=str(result),
extra_args={"external_id": original_id})``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

from pydantic import BaseModel, Field

__all__ = ["ChatMessage", "MessageRole", "find_first_system_message"]


class MessageRole(str, Enum):  # noqa: UP042 - str-mixin as upstream's (a plain string in JSON)
    """Who speaks a message."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class ChatMessage(BaseModel):
    """One message of a chat: a role, text, the tool calls an assistant asks for, and extra
    provider- or runtime-specific data (token counts, ``external_id`` of a tool result...)."""

    role: MessageRole = MessageRole.USER
    content: str = Field(default_factory=str)
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    extra_args: dict[str, Any] = Field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.role.value}: {self.content}"


def find_first_system_message(messages: Sequence[ChatMessage]) -> int:
    """The index of the first system message, or -1."""
    for index, message in enumerate(messages):
        if message.role == MessageRole.SYSTEM:
            return index
    return -1

"""``ReActAgent``: upstream's built-in agent that reasons with a chat model and its tools.

Give it a chat model setup (a ``ResourceDescriptor`` whose ``tools`` name the tools it may
use), optionally a prompt and an output schema. Each input becomes a chat request: a primitive
input fills the prompt's ``{input}`` (or is the user message itself without a prompt), a dict,
model or row fills the prompt's placeholders by field name. The built-in chat action runs the
tool rounds; the final answer (the validated structured output, or the text) is the output.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ..agent import Agent, action
from ..context import RunnerContext
from ..events import ChatRequestEvent, ChatResponseEvent, InputEvent, OutputEvent
from ..resources import ResourceDescriptor, ResourceType
from .messages import ChatMessage, MessageRole, find_first_system_message
from .prompts import Prompt
from .schema import STRUCTURED_OUTPUT, OutputSchema, StructuredOutput

__all__ = ["ReActAgent"]

_CHAT_MODEL = "_default_chat_model"
_SCHEMA_PROMPT = "_default_schema_prompt"
_USER_PROMPT = "_default_user_prompt"
_PRIMITIVES = (str, int, float, bool, type(None))


class ReActAgent(Agent):
    """A chat model with tools answering each input; see the module doc."""

    def __init__(
        self,
        *,
        chat_model: ResourceDescriptor,
        prompt: Prompt | None = None,
        output_schema: Any = None,
    ) -> None:
        super().__init__()
        self.add_resource(_CHAT_MODEL, ResourceType.CHAT_MODEL, chat_model)
        schema = None
        if output_schema is not None:
            schema = output_schema if isinstance(output_schema, OutputSchema) else (
                OutputSchema(output_schema=output_schema)
            )  # fmt: skip
            self.add_resource(_SCHEMA_PROMPT, ResourceType.PROMPT, _schema_prompt(schema))
        if prompt is not None:
            self.add_resource(_USER_PROMPT, ResourceType.PROMPT, prompt)
        self.add_action("start_action", [InputEvent], _start_action, output_schema=schema)

    @action(ChatResponseEvent)
    @staticmethod
    def stop_action(event: ChatResponseEvent, ctx: RunnerContext) -> None:
        """The final answer is the output: its structured output if validated, else text."""
        response = event.response
        output = response.extra_args.get(STRUCTURED_OUTPUT, response.content)
        ctx.send_event(OutputEvent(output=output))


def _schema_prompt(schema: OutputSchema) -> Prompt:
    described = StructuredOutput(schema.output_schema).json_schema()
    return Prompt.from_text(
        "The final answer must be a JSON object that follows this JSON schema, and nothing "
        f"else: {described}"
    )


def _start_action(event: InputEvent, ctx: RunnerContext) -> None:
    value = InputEvent.from_event(event).input
    prompt = _optional_prompt(ctx, _USER_PROMPT)
    if isinstance(value, _PRIMITIVES):
        text = str(value)
        messages = (
            prompt.format_messages(MessageRole.USER, input=text)
            if prompt is not None
            else [ChatMessage(role=MessageRole.USER, content=text)]
        )
    else:
        if prompt is None:
            raise TypeError(
                f"ReActAgent: an input of type {type(value).__name__} needs a prompt whose "
                "placeholders name its fields"
            )
        fields = {name: str(item) for name, item in _fields_of(value).items()}
        messages = prompt.format_messages(MessageRole.USER, **fields)
    schema_prompt = _optional_prompt(ctx, _SCHEMA_PROMPT)
    if schema_prompt is not None:
        first_system = find_first_system_message(messages)
        messages[first_system + 1 : first_system + 1] = schema_prompt.format_messages()
    ctx.send_event(
        ChatRequestEvent(
            model=_CHAT_MODEL,
            messages=messages,
            output_schema=ctx.get_action_config_value("output_schema"),
        )
    )


def _optional_prompt(ctx: RunnerContext, name: str) -> Prompt | None:
    try:
        return ctx.get_resource(name, ResourceType.PROMPT)
    except LookupError:
        return None


def _fields_of(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump()
    as_dict = getattr(value, "as_dict", None)  # a PyFlink Row
    if callable(as_dict):
        return as_dict(recursive=True)
    return dict(vars(value))

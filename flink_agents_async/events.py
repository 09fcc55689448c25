"""Events: what actions receive and send.

Two styles work side by side:

* typed subclasses with fields, ``class Step(Event): n: int``, routed by the class's type string
  (its ``EVENT_TYPE`` if the class sets one, else ``"module.QualName"``);
* untyped events, ``Event(type="Step", attributes={"n": 1})``, routed by ``type``.

An untyped event whose type string belongs to a typed class is turned into that class when it is
sent, so an action declared with ``@action(Step)`` always receives a ``Step``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Annotated, Any, ClassVar
from uuid import UUID, SafeUUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .llm.messages import ChatMessage

__all__ = [
    "ChatRequestEvent",
    "ChatResponseEvent",
    "Event",
    "EventType",
    "InputEvent",
    "OutputEvent",
    "ToolRequestEvent",
    "ToolResponseEvent",
    "event_type_of",
    "typed_event_class",
]

_ModelMetaclass = type(BaseModel)

_VERSION_4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_4_SET = (4 << 76) | (0x8000 << 48)
_new_object = object.__new__
_set_slot = object.__setattr__
_random_bits = random.getrandbits
_UNKNOWN_SAFETY = SafeUUID.unknown


def new_event_id() -> UUID:
    """A random (version 4) UUID for an event id, at half the cost of ``uuid.uuid4()``.

    Event ids need uniqueness, not secrecy, so the bits come from ``random`` (reseeded in forked
    children) instead of ``os.urandom``, and the UUID is assembled without re-validating them.
    """
    event_id = _new_object(UUID)
    _set_slot(event_id, "int", (_random_bits(128) & _VERSION_4_CLEAR) | _VERSION_4_SET)
    _set_slot(event_id, "is_safe", _UNKNOWN_SAFETY)
    return event_id


# Type string -> typed Event subclass, filled as subclasses are defined.
_TYPED_EVENTS: dict[str, type[Event]] = {}


def _class_type_string(name: str, namespace: dict[str, Any]) -> str:
    declared = namespace.get("EVENT_TYPE")
    if isinstance(declared, str) and declared:
        return declared
    # cloudpickle rebuilds classes of __main__ (shipped to Flink workers) from a bare namespace
    # and restores the rest, the type default included, right after.
    module = namespace.get("__module__", "__main__")
    return f"{module}.{namespace.get('__qualname__', name)}"


class _EventMeta(_ModelMetaclass):  # type: ignore[misc, valid-type]
    """Gives every typed subclass a ``type`` default equal to its type string.

    Doing it when the class is created keeps event construction as cheap as a plain pydantic
    model: no custom ``__init__`` or validator runs per event.
    """

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any):
        is_subclass = any(isinstance(base, _EventMeta) for base in bases)
        annotations = namespace.setdefault("__annotations__", {})
        if is_subclass and "type" not in annotations:
            annotations["type"] = "str"
            namespace["type"] = _class_type_string(name, namespace)
        cls = super().__new__(mcs, name, bases, namespace, **kwargs)
        if is_subclass:
            _TYPED_EVENTS[cls.model_fields["type"].default] = cls
        return cls


class Event(BaseModel, metaclass=_EventMeta):
    """An event. Subclass it with typed fields, or use it directly with ``type`` and
    ``attributes``.

    Extra keyword fields are allowed and kept (``Event(type="x", note="hi").note``).
    """

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)

    EVENT_TYPE: ClassVar[str | None] = None

    id: UUID = Field(default_factory=new_event_id)
    type: str
    attributes: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def event_type(cls) -> str:
        """The type string events of this class are routed by."""
        if cls is Event:
            raise TypeError("Event itself has no fixed type string; pass type=... per event")
        return cls.model_fields["type"].default

    def get_type(self) -> str:
        """The type string this event is routed by."""
        return self.type

    def get_attr(self, name: str) -> Any:
        """An attribute by name: from ``attributes``, else a field of the same name, else None."""
        if name in self.attributes:
            return self.attributes[name]
        if name in type(self).model_fields:
            return getattr(self, name)
        extra = self.__pydantic_extra__
        return extra.get(name) if extra else None

    def set_attr(self, name: str, value: Any) -> None:
        """Set an entry of ``attributes``."""
        self.attributes[name] = value

    @classmethod
    def from_event(cls, event: Event) -> Event:
        """This class's view of ``event``: itself if it already is one, else rebuilt from the
        event's fields and attributes."""
        if isinstance(event, cls):
            return event
        data = event.model_dump(exclude={"type"})
        data.update(data.pop("attributes", {}))
        data["id"] = event.id
        if cls is not Event:
            data["type"] = cls.event_type()
        else:
            data = {"id": event.id, "type": event.type, "attributes": dict(event.attributes)}
        return cls.model_validate(data)

    @classmethod
    def from_json(cls, json_str: str | bytes) -> Event:
        """Rebuild an event from ``model_dump_json()`` output, as its typed class if known."""
        data = json.loads(json_str)
        if not isinstance(data, dict) or not data.get("type"):
            raise ValueError("Event JSON must be an object with a non-empty 'type' field")
        target = _TYPED_EVENTS.get(data["type"], cls) if cls is Event else cls
        return target.model_validate(data)


def typed_event_class(type_string: str) -> type[Event] | None:
    """The typed Event subclass registered for a type string, if any."""
    return _TYPED_EVENTS.get(type_string)


def event_type_of(trigger: Any) -> str:
    """The type string of an action trigger: an Event subclass or a string."""
    if isinstance(trigger, str):
        return trigger
    if isinstance(trigger, type) and issubclass(trigger, Event) and trigger is not Event:
        return trigger.event_type()
    raise TypeError(f"{trigger!r} is not an Event subclass or an event-type string")


class InputEvent(Event):
    """The event that starts a run: carries one input value."""

    EVENT_TYPE: ClassVar[str] = "_input_event"
    input: Any = None


def _assembled_input_event(value: Any) -> InputEvent:
    event = _new_object(InputEvent)
    _set_slot(
        event,
        "__dict__",
        {"id": new_event_id(), "type": InputEvent.EVENT_TYPE, "attributes": {}, "input": value},
    )
    _set_slot(event, "__pydantic_fields_set__", {"input"})
    _set_slot(event, "__pydantic_extra__", {})
    _set_slot(event, "__pydantic_private__", None)
    return event


def _validated_input_event(value: Any) -> InputEvent:
    return InputEvent(input=value)


def _input_event_factory() -> Callable[[Any], InputEvent]:
    """Every run starts with an ``InputEvent``, and validating one costs twice as much as
    assembling it, as ``input`` takes any value. The assembled event is used only if it comes
    out exactly as the validated one with this pydantic version; otherwise, validate."""
    try:
        value = object()
        assembled, validated = _assembled_input_event(value), _validated_input_event(value)
        same = all(
            getattr(assembled, slot) == getattr(validated, slot)
            for slot in ("__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")
        ) and {**assembled.__dict__, "id": None} == {**validated.__dict__, "id": None}
    except Exception:
        same = False
    return _assembled_input_event if same else _validated_input_event


new_input_event: Callable[[Any], InputEvent] = _input_event_factory()
"""``InputEvent(input=value)`` for the runtime's hot path (the same event, made faster)."""


class OutputEvent(Event):
    """An output of the run. Each one becomes one ``{key: output}`` entry."""

    EVENT_TYPE: ClassVar[str] = "_output_event"
    output: Any = None


class _PositionalEvent(Event):
    """An event that also takes its fields positionally, in ``_POSITIONAL`` order (upstream
    0.3's chat and tool events do: ``ChatRequestEvent("model", messages)``)."""

    _POSITIONAL: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *args: Any, **data: Any) -> None:
        names = type(self)._POSITIONAL
        if len(args) > len(names):
            raise TypeError(
                f"{type(self).__name__} takes at most {len(names)} positional arguments "
                f"({', '.join(names)}), got {len(args)}"
            )
        for name, value in zip(names, args, strict=False):
            if name in data:
                raise TypeError(f"{type(self).__name__} got {name!r} twice")
            data[name] = value
        super().__init__(**data)


class ChatRequestEvent(_PositionalEvent):
    """Ask a chat model setup (by resource name) to answer ``messages``: its prompt is filled
    with ``prompt_args``, and with ``output_schema`` the answer is validated JSON."""

    EVENT_TYPE: ClassVar[str] = "_chat_request_event"
    _POSITIONAL: ClassVar[tuple[str, ...]] = ("model", "messages", "prompt_args", "output_schema")
    model: str
    messages: list[ChatMessage] = Field(default_factory=list)
    prompt_args: dict[str, Any] = Field(default_factory=dict)
    output_schema: Any = None

    @field_validator("prompt_args", mode="before")
    @classmethod
    def _no_args(cls, value: Any) -> Any:
        return {} if value is None else value


class ChatResponseEvent(_PositionalEvent):
    """A chat model's final answer to the request with id ``request_id`` (after any tool
    rounds), with the retries its model calls needed."""

    EVENT_TYPE: ClassVar[str] = "_chat_response_event"
    _POSITIONAL: ClassVar[tuple[str, ...]] = (
        "request_id", "response", "retry_count", "total_retry_wait_sec",
    )  # fmt: skip
    request_id: UUID
    response: ChatMessage
    retry_count: int = 0
    total_retry_wait_sec: float = 0


class ToolRequestEvent(_PositionalEvent):
    """The tool calls a model asked for (``ChatMessage.tool_calls`` dicts)."""

    EVENT_TYPE: ClassVar[str] = "_tool_request_event"
    _POSITIONAL: ClassVar[tuple[str, ...]] = ("model", "tool_calls")
    model: str
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)


CallId = Annotated[UUID | str, Field(union_mode="left_to_right")]
"""A tool call's id: a UUID (what the built-in connections give calls, also after a JSON round
trip), or a custom connection's own string id, kept as it is."""


class ToolResponseEvent(_PositionalEvent):
    """The results of the tool calls of request ``request_id`` (a ``ToolRequestEvent``'s id),
    by call id: whether each succeeded, the error of those that did not, and the provider's id
    of each call (``external_ids``)."""

    EVENT_TYPE: ClassVar[str] = "_tool_response_event"
    _POSITIONAL: ClassVar[tuple[str, ...]] = (
        "request_id", "responses", "external_ids", "success", "error",
    )  # fmt: skip
    request_id: UUID
    responses: dict[CallId, Any] = Field(default_factory=dict)
    external_ids: dict[CallId, str | None] = Field(default_factory=dict)
    success: dict[CallId, bool] = Field(default_factory=dict)
    error: dict[CallId, str] = Field(default_factory=dict)

    @field_validator("external_ids", "error", mode="before")
    @classmethod
    def _empty_when_none(cls, value: Any) -> Any:
        return {} if value is None else value

    @model_validator(mode="after")
    def _success_by_default(self) -> ToolResponseEvent:
        for call_id in self.responses:
            self.success.setdefault(call_id, call_id not in self.error)
        return self


class EventType:
    """The type strings of the built-in events, for ``@action(EventType.InputEvent)``."""

    InputEvent = InputEvent.EVENT_TYPE
    OutputEvent = OutputEvent.EVENT_TYPE
    ChatRequestEvent = ChatRequestEvent.EVENT_TYPE
    ChatResponseEvent = ChatResponseEvent.EVENT_TYPE
    ToolRequestEvent = ToolRequestEvent.EVENT_TYPE
    ToolResponseEvent = ToolResponseEvent.EVENT_TYPE

"""Events: what actions receive and send.

Two styles work side by side:

* typed subclasses with fields, ``class Step(Event): n: int``, routed by the class's type string
  (its ``EVENT_TYPE`` if the class sets one, else ``"module.QualName"``);
* untyped events, ``Event(type="Step", attributes={"n": 1})``, routed by ``type``.

An untyped event whose type string belongs to a typed class is turned into that class when it is
sent, so an action declared with ``@action(Step)`` always receives a ``Step``.

As upstream, every field of an event must serialise to JSON (PyFlink rows included, as
``{"type": "Row", "values": [...], "fields": [...]}``): this is checked when the event is made
(a pydantic ``ValidationError``) and when a field is assigned (a
``PydanticSerializationError``, the event left as it was). The ``InputEvent`` the runtime
makes for each input carries the input as it is, unchecked. When an action sends an event, the
runtime records where it came from in ``upstream_event_id`` and ``upstream_action_name``.
"""

from __future__ import annotations

import json
import random
import types
import typing
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Self
from uuid import UUID, SafeUUID

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticSerializationError

from . import rows
from .llm.messages import ChatMessage
from .llm.vector_stores import Document

__all__ = [
    "ChatRequestEvent",
    "ChatResponseEvent",
    "ContextRetrievalRequestEvent",
    "ContextRetrievalResponseEvent",
    "Event",
    "EventType",
    "InputEvent",
    "OutputEvent",
    "ToolRequestEvent",
    "ToolResponseEvent",
    "event_type_of",
    "mark_lineage",
    "typed_event_class",
]

if TYPE_CHECKING:
    from pydantic._internal._model_construction import ModelMetaclass as _ModelMetaclass
else:
    _ModelMetaclass = type(BaseModel)  # the same class, without importing pydantic internals

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


# Types whose values always serialise: a field typed as one of them (pydantic validated it)
# needs no check, nor does a value of one of them.
_SERIALIZABLE = frozenset({str, int, float, bool, type(None), UUID})


def _closed(annotation: Any) -> bool:
    """Whether a field of this annotation only holds values that serialise (pydantic has
    validated them to these types)."""
    if annotation in _SERIALIZABLE:
        return True
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and all(
        member in _SERIALIZABLE for member in typing.get_args(annotation)
    )


class _EventMeta(_ModelMetaclass):
    """Gives every typed subclass a ``type`` default equal to its type string.

    Doing it when the class is created keeps event construction as cheap as a plain pydantic
    model: no custom ``__init__`` or validator runs per event.
    """

    def __new__(
        mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any
    ) -> _EventMeta:
        is_subclass = any(isinstance(base, _EventMeta) for base in bases)
        annotations = namespace.setdefault("__annotations__", {})
        if is_subclass and "type" not in annotations:
            annotations["type"] = "str"
            namespace["type"] = _class_type_string(name, namespace)
        cls: Any = super().__new__(mcs, name, bases, namespace, **kwargs)
        if is_subclass:
            _TYPED_EVENTS[cls.model_fields["type"].default] = cls
        # Fields whose type lets them hold anything: the only ones checked for serialising.
        cls._OPEN_FIELDS = tuple(
            name for name, field in cls.model_fields.items() if not _closed(field.annotation)
        )
        if is_subclass and cls._PAYLOAD_IN_ATTRIBUTES:
            cls._PAYLOAD_FIELDS = tuple(
                name for name in cls.model_fields if name not in Event.model_fields
            )
        return cls


_LINEAGE = (
    ("upstream_event_id", "upstreamEventId"),
    ("upstream_action_name", "upstreamActionName"),
)


def _json_fallback(value: Any) -> Any:
    """What pydantic cannot serialise itself: a PyFlink row as upstream writes it."""
    if rows.is_row(value):
        return rows.to_json(value)
    raise PydanticSerializationError(f"Unable to serialize unknown type: {type(value)}")


class Event(BaseModel, metaclass=_EventMeta):
    """An event. Subclass it with typed fields, or use it directly with ``type`` and
    ``attributes``.

    Extra keyword fields are allowed and kept (``Event(type="x", note="hi").note``); like every
    field, they must serialise to JSON. ``id`` is fixed when the event is made (``id=None``
    makes a fresh one). ``upstream_event_id`` and ``upstream_action_name`` (``upstreamEventId``
    and ``upstreamActionName`` in JSON, left out when empty) name the event and action that
    sent this one; the runtime fills them in.
    """

    model_config = ConfigDict(extra="allow", arbitrary_types_allowed=True)

    EVENT_TYPE: ClassVar[str | None] = None
    _OPEN_FIELDS: ClassVar[tuple[str, ...]] = ()
    # Built-in events serialise their fields under "attributes", as upstream 0.3+ writes them.
    _PAYLOAD_IN_ATTRIBUTES: ClassVar[bool] = False
    _PAYLOAD_FIELDS: ClassVar[tuple[str, ...]] = ()
    LEGACY_TYPE: ClassVar[str] = "flink_agents_async.events.Event"
    """The type of an ``Event(...)`` made without one (0.2 style, deprecated)."""

    id: UUID = Field(default_factory=new_event_id, frozen=True)
    type: str = LEGACY_TYPE
    attributes: dict[str, Any] = Field(default_factory=dict)
    upstream_event_id: UUID | None = Field(
        default=None, validation_alias=AliasChoices("upstream_event_id", "upstreamEventId")
    )
    upstream_action_name: str | None = Field(
        default=None, validation_alias=AliasChoices("upstream_action_name", "upstreamActionName")
    )

    @field_validator("id", mode="before")
    @classmethod
    def _fresh_id_for_none(cls, value: Any) -> Any:
        return new_event_id() if value is None else value

    @model_validator(mode="after")
    def _check_serializable(self) -> Self:
        # Runs for every event made: scalars and empty dicts are settled inline, anything
        # else by the fuller check, and only what that cannot settle is serialised.
        cls = type(self)
        fields = self.__dict__
        scalar = _SERIALIZABLE
        for name in cls._OPEN_FIELDS:
            value = fields[name]
            if type(value) not in scalar and (type(value) is not dict or value):
                if not _surely_serializable(self):
                    self.model_dump_json()  # raises PydanticSerializationError, a ValueError
                break
        else:
            if self.__pydantic_extra__ and not _surely_serializable(self):
                self.model_dump_json()
        if cls is Event and "type" not in self.__pydantic_fields_set__:
            # Upstream 0.2 events had no type field: route them by their class, and say so.
            warnings.warn(
                "an Event without a type is the 0.2 style and is routed as "
                f'{Event.LEGACY_TYPE!r}: pass type="..." (or subclass Event)',
                DeprecationWarning,
                stacklevel=3,  # the Event(...) call (via BaseModel.__init__)
            )
        return self

    @model_serializer(mode="wrap")
    def _lineage_by_upstream_names(self, handler: SerializerFunctionWrapHandler) -> Any:
        serialized = handler(self)
        if isinstance(serialized, dict):
            for name, alias in _LINEAGE:
                value = serialized.pop(name, None)
                if value is not None:
                    serialized[alias] = value
            payload = type(self)._PAYLOAD_FIELDS
            attributes = serialized.get("attributes")
            if payload and isinstance(attributes, dict):
                moved = {name: serialized.pop(name) for name in payload if name in serialized}
                serialized["attributes"] = {**attributes, **moved}
        return serialized

    def model_dump_json(self, **kwargs: Any) -> str:
        """JSON of the event; a PyFlink row becomes ``{"type": "Row", "values": [...]}`` (with
        ``"fields"`` when it has names), unless a ``fallback`` of your own is given."""
        kwargs.setdefault("fallback", _json_fallback)
        return super().model_dump_json(**kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        if type(value) in _SERIALIZABLE:
            super().__setattr__(name, value)
            return
        extra = self.__pydantic_extra__
        assert extra is not None  # extra="allow"
        was_field = name in self.__dict__
        missing = object()
        old = self.__dict__.get(name, missing) if was_field else extra.get(name, missing)
        super().__setattr__(name, value)
        try:
            self.model_dump_json()
        except PydanticSerializationError:
            if was_field:
                self.__dict__[name] = old
            elif old is missing:
                extra.pop(name, None)
            else:
                extra[name] = old
            raise

    def reconstruct_from(self, source: Event) -> Self:
        """A copy of this event that is the same occurrence as ``source``: its id and lineage
        (upstream's idiom for a typed view in ``from_event``)."""
        return self.model_copy(
            update={
                "id": source.id,
                "upstream_event_id": source.upstream_event_id,
                "upstream_action_name": source.upstream_action_name,
            }
        )

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
    def from_event(cls, event: Event) -> Self:
        """This class's view of ``event``: itself if it already is one, else rebuilt from the
        event's fields and attributes (the same occurrence: id and lineage kept)."""
        if isinstance(event, cls):
            return event
        if cls is Event:
            data: dict[str, Any] = {"type": event.type, "attributes": dict(event.attributes)}
        else:
            data = event.model_dump(exclude={"type", "id", *dict(_LINEAGE)})
            data.update(data.pop("attributes", {}))
            data["type"] = cls.event_type()
        return cls.model_validate(data).reconstruct_from(event)

    @classmethod
    def from_json(cls, json_str: str | bytes) -> Event:
        """Rebuild an event from ``model_dump_json()`` output, as its typed class if known
        (PyFlink rows come back as rows)."""
        data = json.loads(json_str)
        if not isinstance(data, dict) or not data.get("type"):
            raise ValueError("Event JSON must be an object with a non-empty 'type' field")
        target = _TYPED_EVENTS.get(data["type"], cls) if cls is Event else cls
        data = {name: rows.from_json(value) for name, value in data.items()}
        return target.model_validate(_payload_lifted(target, data))


def _payload_lifted(cls: type[Event], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with the payload fields a built-in event serialises under ``attributes``
    moved back to the top level (where they are not there already)."""
    attributes = data.get("attributes")
    if not cls._PAYLOAD_FIELDS or not isinstance(attributes, dict):
        return data
    lifted = {
        name: attributes[name]
        for name in cls._PAYLOAD_FIELDS
        if name in attributes and name not in data
    }
    if not lifted:
        return data
    rest = {key: value for key, value in attributes.items() if key not in lifted}
    return {**data, **lifted, "attributes": rest}


def _surely_serializable(event: Event) -> bool:
    """Whether every field that may hold anything holds plain data (scalars, and small lists
    and dicts of them with string keys): the common case, decided without serialising."""
    serializable = _SERIALIZABLE
    budget: list[int] | None = None
    fields = event.__dict__
    extra = event.__pydantic_extra__
    values = [fields[name] for name in type(event)._OPEN_FIELDS]
    if extra:
        values.extend(extra.values())
    for value in values:
        if type(value) in serializable or (type(value) is dict and not value):
            continue
        if budget is None:
            budget = [_PLAIN_BUDGET]
        if not _plain(value, budget):
            return False
    return True


# Values (scalars, list items, dict entries) one event may hold and still be judged plain
# without serialising: beyond that, one JSON serialisation is the cheaper check.
_PLAIN_BUDGET = 64


def _plain(value: Any, budget: list[int]) -> bool:
    value_type = type(value)
    if value_type in _SERIALIZABLE:
        return True
    if value_type is dict:
        budget[0] -= len(value)
        if budget[0] < 0:
            return False
        for key, item in value.items():
            if type(key) is not str or not _plain(item, budget):
                return False
        return True
    if value_type is list:
        budget[0] -= len(value)
        if budget[0] < 0:
            return False
        return all(_plain(item, budget) for item in value)
    return False


def mark_lineage(event: Event, upstream_event_id: UUID, action_name: str) -> None:
    """Record that the action ``action_name``, handling event ``upstream_event_id``, sent
    ``event`` (written directly: both are plain values the runtime owns)."""
    fields = event.__dict__
    fields["upstream_event_id"] = upstream_event_id
    fields["upstream_action_name"] = action_name


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


class _BuiltInEvent(Event):
    """A built-in event: typed fields in Python, under ``attributes`` in its serialised form
    (upstream 0.3+'s wire shape); ``from_json`` and ``from_event`` read either place."""

    _PAYLOAD_IN_ATTRIBUTES: ClassVar[bool] = True


class InputEvent(_BuiltInEvent):
    """The event that starts a run: carries one input value."""

    EVENT_TYPE: ClassVar[str] = "_input_event"
    input: Any = None


def _assembled_input_event(value: Any) -> InputEvent:
    event = _new_object(InputEvent)
    _set_slot(
        event,
        "__dict__",
        {
            "id": new_event_id(),
            "type": InputEvent.EVENT_TYPE,
            "attributes": {},
            "upstream_event_id": None,
            "upstream_action_name": None,
            "input": value,
        },
    )
    _set_slot(event, "__pydantic_fields_set__", {"input"})
    _set_slot(event, "__pydantic_extra__", {})
    _set_slot(event, "__pydantic_private__", None)
    return event


def _validated_input_event(value: Any) -> InputEvent:
    return InputEvent.model_construct(input=value)


def _input_event_factory() -> Callable[[Any], InputEvent]:
    """Every run starts with an ``InputEvent``, and constructing one through pydantic costs
    twice as much as assembling it, as ``input`` takes any value (unchecked: the input is the
    user's, as it came). The assembled event is used only if it comes out exactly as the
    constructed one with this pydantic version; otherwise, construct."""
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


class OutputEvent(_BuiltInEvent):
    """An output of the run. Each one becomes one ``{key: output}`` entry."""

    EVENT_TYPE: ClassVar[str] = "_output_event"
    output: Any = None


class _PositionalEvent(_BuiltInEvent):
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

    @field_serializer("output_schema", when_used="json")
    def _schema_as_json(self, schema: Any) -> Any:
        # A model class or a PyFlink RowTypeInfo: its JSON schema, or how it prints.
        if schema is None or isinstance(schema, dict | str):
            return schema
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            return schema.model_json_schema()
        return str(schema)


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


class ContextRetrievalRequestEvent(_PositionalEvent):
    """Ask the vector store named ``vector_store`` (a resource) for the ``max_results``
    documents closest in meaning to ``query``; the built-in context-retrieval action answers
    with a ``ContextRetrievalResponseEvent``."""

    EVENT_TYPE: ClassVar[str] = "_context_retrieval_request_event"
    _POSITIONAL: ClassVar[tuple[str, ...]] = ("query", "vector_store", "max_results")
    query: str
    vector_store: str
    max_results: int = Field(default=3, ge=1)


class ContextRetrievalResponseEvent(_PositionalEvent):
    """The documents found for the ``ContextRetrievalRequestEvent`` with id ``request_id``,
    best first."""

    EVENT_TYPE: ClassVar[str] = "_context_retrieval_response_event"
    _POSITIONAL: ClassVar[tuple[str, ...]] = ("request_id", "query", "documents")
    request_id: UUID
    query: str
    documents: list[Document] = Field(default_factory=list)


class EventType:
    """The type strings of the built-in events, for ``@action(EventType.InputEvent)``."""

    InputEvent = InputEvent.EVENT_TYPE
    OutputEvent = OutputEvent.EVENT_TYPE
    ChatRequestEvent = ChatRequestEvent.EVENT_TYPE
    ChatResponseEvent = ChatResponseEvent.EVENT_TYPE
    ToolRequestEvent = ToolRequestEvent.EVENT_TYPE
    ToolResponseEvent = ToolResponseEvent.EVENT_TYPE
    ContextRetrievalRequestEvent = ContextRetrievalRequestEvent.EVENT_TYPE
    ContextRetrievalResponseEvent = ContextRetrievalResponseEvent.EVENT_TYPE

"""Tools: functions a chat model may ask to call.

A ``Tool`` has ``ToolMetadata``: its name, a description and a pydantic model of its arguments,
whose JSON schema (``get_parameters_dict()``) is what providers show the model. ``FunctionTool``
wraps a Python function (``@tool`` on an agent method, or ``Tool.from_callable(func)``); its
schema comes from the function's signature, type hints (``Annotated[int, "the count"]`` or a
pydantic ``Field``) and docstring (Google, NumPy or reST style, via ``docstring_parser``).

Arguments the model sends are validated against that model before the function runs (a bad call
goes back to the model as an error, not into the function). ``injected_args`` name parameters the
runtime fills itself, from the configuration or from memory: the model never sees them, and a
value it sends for one is overridden.
"""

from __future__ import annotations

import inspect
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Annotated, Any

import docstring_parser
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from ..errors import AgentDefinitionError
from ..resources import ResourceType, SerializableResource

__all__ = [
    "FunctionTool",
    "InjectedArg",
    "Tool",
    "ToolMetadata",
    "ToolParameterSource",
    "ToolType",
    "create_model_from_schema",
    "create_schema_from_function",
]

_SCHEMA_KEYS = ("type", "properties", "required", "definitions", "$defs")


class ToolType(Enum):
    """Where a tool runs."""

    MODEL_BUILT_IN = "model_built_in"
    FUNCTION = "function"
    REMOTE_FUNCTION = "remote_function"
    MCP = "mcp"


class ToolParameterSource(str, Enum):  # noqa: UP042 - str-mixin as upstream's
    """Where an injected tool argument comes from."""

    CONFIG = "config"
    SENSORY_MEMORY = "sensory_memory"
    SHORT_TERM_MEMORY = "short_term_memory"

    @classmethod
    def _missing_(cls, value: object) -> ToolParameterSource | None:
        if isinstance(value, str):
            for member in cls:
                if value.lower() in (member.value, member.name.lower()):
                    return member
        return None


class InjectedArg(BaseModel):
    """A tool argument the runtime fills (from ``source`` at ``key``; the parameter's own
    name when no key is given), hidden from the model."""

    source: ToolParameterSource = ToolParameterSource.SENSORY_MEMORY
    key: str | None = None

    @staticmethod
    def from_config(key: str) -> InjectedArg:
        return InjectedArg(source=ToolParameterSource.CONFIG, key=key)

    @staticmethod
    def from_sensory_memory(path: str) -> InjectedArg:
        return InjectedArg(source=ToolParameterSource.SENSORY_MEMORY, key=path)

    @staticmethod
    def from_short_term_memory(path: str) -> InjectedArg:
        return InjectedArg(source=ToolParameterSource.SHORT_TERM_MEMORY, key=path)

    def with_default_key(self, name: str) -> InjectedArg:
        return self if self.key else self.model_copy(update={"key": name})


class ToolMetadata(BaseModel):
    """A tool's name, description and the pydantic model of its arguments."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str
    description: str
    args_schema: type[BaseModel]

    @field_validator("args_schema", mode="before")
    @classmethod
    def _schema_from_dict(cls, value: Any) -> Any:
        if isinstance(value, Mapping):  # a JSON schema (from a serialized metadata)
            return create_model_from_schema(str(value.get("title") or "default"), value)
        return value

    @field_serializer("args_schema")
    def _schema_to_dict(self, value: type[BaseModel]) -> dict[str, Any]:
        return value.model_json_schema()

    def get_parameters_dict(self) -> dict[str, Any]:
        """The JSON schema of the arguments, as providers take a function's parameters."""
        schema = self.args_schema.model_json_schema()
        parameters = {key: schema[key] for key in _SCHEMA_KEYS if key in schema}
        parameters.setdefault("type", "object")
        parameters.setdefault("properties", {})
        return parameters

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ToolMetadata):
            return NotImplemented
        return (self.name, self.description, self.args_schema.model_json_schema()) == (
            other.name,
            other.description,
            other.args_schema.model_json_schema(),
        )

    __hash__ = None  # type: ignore[assignment]


class Tool(SerializableResource, ABC):
    """Something a chat model can call. Subclasses say how (``call``) and what kind they are
    (``tool_type``)."""

    metadata: ToolMetadata | None = None

    @classmethod
    def resource_type(cls) -> ResourceType:
        return ResourceType.TOOL

    @property
    def name(self) -> str:
        if self.metadata is None:
            raise AgentDefinitionError(f"{type(self).__name__} has no metadata, so no name")
        return self.metadata.name

    @property
    def description(self) -> str:
        return self.metadata.description if self.metadata is not None else ""

    @classmethod
    @abstractmethod
    def tool_type(cls) -> ToolType:
        """What kind of tool this is."""

    @abstractmethod
    def call(self, *args: Any, **kwargs: Any) -> Any:
        """Run the tool (may return an awaitable: async tools run on the event loop)."""

    @property
    def is_async(self) -> bool:
        """Whether ``call`` returns an awaitable (so the runtime awaits it on the loop instead
        of running it in the thread pool)."""
        return inspect.iscoroutinefunction(self.call)

    def validate_arguments(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments a model sent, checked against the schema and converted to the
        parameters' types. Raises ``ValueError`` naming what is wrong."""
        if self.metadata is None:
            return dict(arguments)
        try:
            validated = self.metadata.args_schema.model_validate(dict(arguments))
        except ValidationError as error:
            raise ValueError(f"invalid arguments for tool {self.name!r}: {error}") from None
        return _fields_of(validated)

    @staticmethod
    def from_callable(
        func: Callable[..., Any],
        *,
        injected_args: Mapping[str, InjectedArg | Mapping[str, Any]] | None = None,
    ) -> FunctionTool:
        """A ``FunctionTool`` for ``func``; ``injected_args`` (parameter -> where its value
        comes from) join those given with ``@tool(injected_args=...)``."""
        declared = dict(getattr(func, "_injected_args", None) or {})
        for name, spec in (injected_args or {}).items():
            spec = spec if isinstance(spec, InjectedArg) else InjectedArg.model_validate(spec)
            if name in declared and declared[name] != spec:
                raise ValueError(
                    f"tool {func.__name__!r}: injected argument {name!r} is declared twice, "
                    "differently"
                )
            declared[name] = spec
        try:
            return FunctionTool(func=func, injected_args=declared)
        except ValidationError as error:
            # Our own error, unwrapped: it names the tool and says what to fix.
            for detail in error.errors():
                cause = (detail.get("ctx") or {}).get("error")
                if isinstance(cause, AgentDefinitionError):
                    raise cause from None
            raise


def _fields_of(model: BaseModel) -> dict[str, Any]:
    """A validated argument model's values, keeping nested models as models."""
    return {name: getattr(model, name) for name in type(model).model_fields}


class FunctionTool(Tool):
    """A Python function as a tool (what ``@tool`` declares)."""

    func: Callable[..., Any] = Field(exclude=True)
    injected_args: dict[str, InjectedArg] = Field(default_factory=dict)
    _is_coroutine: bool = PrivateAttr(default=False)

    @classmethod
    def tool_type(cls) -> ToolType:
        return ToolType.FUNCTION

    @model_validator(mode="after")
    def _derive_metadata(self) -> FunctionTool:
        self.injected_args = normalized_injected_args(self.func, self.injected_args)
        if self.metadata is None:
            name = getattr(self.func, "__name__", type(self.func).__name__)
            description, args_schema = create_schema_from_function(
                name, self.func, skip=set(self.injected_args)
            )
            self.metadata = ToolMetadata(
                name=name, description=description, args_schema=args_schema
            )
        self._is_coroutine = inspect.iscoroutinefunction(self.func)
        return self

    @classmethod
    def from_callable(
        cls,
        func: Callable[..., Any],
        *,
        injected_args: Mapping[str, InjectedArg | Mapping[str, Any]] | None = None,
    ) -> FunctionTool:
        return Tool.from_callable(func, injected_args=injected_args)

    @property
    def is_async(self) -> bool:
        return self._is_coroutine

    def call(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)


def normalized_injected_args(
    func: Callable[..., Any], injected: Mapping[str, InjectedArg | Mapping[str, Any]]
) -> dict[str, InjectedArg]:
    """Injected arguments checked against ``func``'s parameters, each with its key."""
    result: dict[str, InjectedArg] = {}
    parameters = _parameters(func)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for name, spec in injected.items():
        if not isinstance(spec, InjectedArg):
            spec = InjectedArg.model_validate(spec)
        if name not in parameters and not takes_any:
            raise AgentDefinitionError(
                f"tool {getattr(func, '__name__', func)!r}: injected argument {name!r} is not "
                f"one of its parameters ({', '.join(parameters) or 'none'})"
            )
        result[name] = spec.with_default_key(name)
    return result


def _parameters(func: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return {}


# -- schemas ----------------------------------------------------------------------------------


def create_schema_from_function(
    name: str, func: Callable[..., Any], skip: set[str] | frozenset[str] = frozenset()
) -> tuple[str, type[BaseModel]]:
    """The description and argument model of a function, from its docstring, signature and
    type hints. Raises ``AgentDefinitionError`` naming the tool when no schema can be made."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as error:
        raise AgentDefinitionError(
            f"tool {name!r}: its signature cannot be read: {error}"
        ) from error
    docstring = docstring_parser.parse(inspect.getdoc(func) or "")
    documented = {param.arg_name: param.description or "" for param in docstring.params}
    description = "\n\n".join(
        part for part in (docstring.short_description, docstring.long_description) if part
    )
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as error:
        raise AgentDefinitionError(
            f"tool {name!r}: its type hints cannot be resolved ({type(error).__name__}: "
            f"{error}); a type named in a hint must be importable from the function's module"
        ) from error
    fields: dict[str, Any] = {}
    for parameter in signature.parameters.values():
        if parameter.name in skip or parameter.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            continue
        annotation = hints.get(parameter.name, parameter.annotation)
        fields[parameter.name] = _field(parameter, annotation, documented.get(parameter.name))
    try:
        model = create_model(name, **fields)
        model.model_json_schema()  # what the model is offered: fails here, not at the call
    except Exception as error:
        raise AgentDefinitionError(
            f"tool {name!r}: no argument schema can be made from its signature: "
            f"{type(error).__name__}: {error}"
        ) from error
    return description, model


def _field(parameter: inspect.Parameter, annotation: Any, documented: str | None) -> Any:
    """``(type, FieldInfo)`` of one parameter for ``create_model``."""
    if annotation is inspect.Parameter.empty:
        annotation = Any
    description = documented or f"Parameter: {parameter.name}"
    if typing.get_origin(annotation) is Annotated:
        base, *extras = typing.get_args(annotation)
        for extra in extras:
            if isinstance(extra, str):
                description = extra
            elif isinstance(extra, FieldInfo) and extra.description:
                description = extra.description
        annotation = base
    default = parameter.default
    if isinstance(default, FieldInfo):
        return annotation, default
    if default is inspect.Parameter.empty:
        return annotation, Field(description=description)
    return annotation, Field(default=default, description=description)


_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "null": type(None),
}


def create_model_from_schema(name: str, schema: Mapping[str, Any]) -> type[BaseModel]:
    """A pydantic model from a JSON schema of an object (what a tool's ``args_schema`` and a
    structured-output schema given as a dict become). Covers the JSON types, arrays, nested
    objects, enums, ``$defs`` references and required fields."""
    definitions = dict(schema.get("$defs") or schema.get("definitions") or {})
    return _object_model(name, schema, definitions)


def _object_model(
    name: str, schema: Mapping[str, Any], definitions: Mapping[str, Any]
) -> type[BaseModel]:
    required = set(schema.get("required") or ())
    fields: dict[str, Any] = {}
    for field_name, field_schema in (schema.get("properties") or {}).items():
        annotation = _json_type(f"{name}_{field_name}", field_schema, definitions)
        description = field_schema.get("description") if isinstance(field_schema, Mapping) else None
        if field_name in required:
            fields[field_name] = (annotation, Field(description=description))
        else:
            default = field_schema.get("default") if isinstance(field_schema, Mapping) else None
            fields[field_name] = (
                annotation | None,
                Field(default=default, description=description),
            )
    return create_model(name, **fields)


def _json_type(name: str, schema: Any, definitions: Mapping[str, Any]) -> Any:
    if not isinstance(schema, Mapping):
        return Any
    reference = schema.get("$ref")
    if isinstance(reference, str):
        target = reference.rsplit("/", 1)[-1]
        if target in definitions:
            return _json_type(target, definitions[target], definitions)
        return Any
    if "enum" in schema:
        return typing.Literal[tuple(schema["enum"])]
    for combined in ("anyOf", "oneOf"):
        if combined in schema:
            options = [_json_type(name, option, definitions) for option in schema[combined]]
            return typing.Union[tuple(options)]  # noqa: UP007
    kind = schema.get("type")
    if isinstance(kind, list):
        options = [_json_type(name, {**schema, "type": one}, definitions) for one in kind]
        return typing.Union[tuple(options)]  # noqa: UP007
    if kind == "array":
        return list[_json_type(f"{name}_item", schema.get("items", {}), definitions)]  # type: ignore[misc]
    if kind == "object":
        if schema.get("properties"):
            return _object_model(str(schema.get("title") or name), schema, definitions)
        return dict[str, Any]
    return _JSON_TYPES.get(str(kind), Any)

"""Resources: what actions fetch with ``ctx.get_resource(name, type)``.

An agent (or environment) declares a resource as a ready instance or as a ``ResourceDescriptor``
(a class plus constructor arguments). The runtime creates each descriptor's instance lazily, the
first time any key asks for it, opens it, shares it across all keys, and closes it at shutdown.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from .errors import ResourceError
from .llm.names import UPSTREAM_CLASS_PATHS

if TYPE_CHECKING:
    from .metrics import MetricGroup

__all__ = [
    "Resource",
    "ResourceContext",
    "ResourceDescriptor",
    "ResourceNotFoundError",
    "ResourceType",
    "SerializableResource",
]


class ResourceType(Enum):
    """The kinds of resource an agent can declare."""

    CHAT_MODEL = "chat_model"
    CHAT_MODEL_CONNECTION = "chat_model_connection"
    TOOL = "tool"
    EMBEDDING_MODEL = "embedding_model"
    EMBEDDING_MODEL_CONNECTION = "embedding_model_connection"
    VECTOR_STORE = "vector_store"
    PROMPT = "prompt"
    MCP_SERVER = "mcp_server"


class ResourceNotFoundError(ResourceError, KeyError):
    """No resource of that name and type was declared."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ResourceContext:
    """What a resource sees of its runtime: its sibling resources (upstream 0.3's
    ``resource_context.get_resource(name, type)``)."""

    def __init__(self, get_resource: Callable[[str, ResourceType], Any]) -> None:
        self._get_resource = get_resource

    def get_resource(self, name: str, resource_type: ResourceType) -> Any:
        return self._get_resource(name, resource_type)


class Resource(BaseModel):
    """Base class of resources that the runtime creates from a ``ResourceDescriptor``.

    Subclasses say what they are with ``resource_type()``. ``open()`` runs once after creation,
    ``close()`` once at shutdown (``aclose()``, which calls ``close()`` unless overridden, when
    the runtime shuts down on an event loop). ``get_resource`` (upstream 0.2's spelling) and
    ``resource_context.get_resource`` (0.3's) let a resource look up its siblings.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    get_resource: Callable[[str, ResourceType], Any] | None = Field(default=None, exclude=True)
    resource_context: ResourceContext | None = Field(default=None, exclude=True)
    _metric_group: MetricGroup | None = PrivateAttr(default=None)

    @classmethod
    def resource_type(cls) -> ResourceType:
        raise NotImplementedError(f"{cls.__name__} must implement resource_type()")

    def set_metric_group(self, metric_group: MetricGroup | None) -> None:
        self._metric_group = metric_group

    @property
    def metric_group(self) -> MetricGroup | None:
        return self._metric_group

    def open(self) -> None:
        """Called once, after the runtime created the resource."""

    def close(self) -> None:
        """Called once, when the runtime shuts down."""

    async def aclose(self) -> None:
        """Called once, instead of ``close()``, by a runtime shutting down on its event loop;
        override it to release what must be closed on the loop (async clients)."""
        self.close()


class SerializableResource(Resource):
    """A resource whose fields are plain data, declared as a ready instance."""


class ResourceDescriptor(BaseModel):
    """How to build a resource: a class (or its ``"module.Class"`` path) and its arguments.

    ``ResourceDescriptor(clazz=MyModel, base_url="...")`` or
    ``ResourceDescriptor(clazz="pkg.mod.MyModel", arguments={"base_url": "..."})``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    target_module: str
    target_clazz: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    _clazz: type | None = PrivateAttr(default=None)

    def __init__(
        self,
        *,
        clazz: type | str | None = None,
        target_module: str | None = None,
        target_clazz: str | None = None,
        arguments: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        resolved: type | None = None
        if isinstance(clazz, type):
            resolved = clazz
            target_module, target_clazz = clazz.__module__, clazz.__qualname__
        elif isinstance(clazz, str):
            target_module, _, target_clazz = clazz.rpartition(".")
        if not target_module or not target_clazz:
            raise ValueError(
                "ResourceDescriptor needs the resource class: pass clazz=TheClass or "
                "clazz='package.module.TheClass'"
            )
        merged = dict(arguments or {})
        merged.update(kwargs)
        super().__init__(target_module=target_module, target_clazz=target_clazz, arguments=merged)
        self._clazz = resolved

    @property
    def clazz(self) -> type:
        """The resource class, imported on first use."""
        if self._clazz is None:
            path = f"{self.target_module}.{self.target_clazz}"
            module_name, _, class_name = UPSTREAM_CLASS_PATHS.get(path, path).rpartition(".")
            if path not in UPSTREAM_CLASS_PATHS:
                module_name, class_name = self.target_module, self.target_clazz
            try:
                module = importlib.import_module(module_name)
                target: Any = module
                for part in class_name.split("."):
                    target = getattr(target, part)
            except (ImportError, AttributeError) as error:
                raise ResourceError(
                    f"cannot import resource class {self.target_module}.{self.target_clazz}: "
                    f"{error}"
                ) from error
            self._clazz = target
        return self._clazz


class ResourceCache:
    """Creates declared resources lazily, once per runtime, and closes them at shutdown.

    Thread-safe, because a durable function running in the thread pool may ask for one too.
    """

    def __init__(
        self,
        declarations: dict[tuple[ResourceType, str], Any],
        metric_group: MetricGroup | None = None,
        defaults: Callable[[type], dict[str, Any]] | None = None,
    ) -> None:
        """``defaults(cls)``: constructor arguments the configuration gives a resource class
        (a descriptor's own arguments win)."""
        self._declarations = declarations
        self._defaults = defaults
        self._instances: dict[tuple[ResourceType, str], Any] = {}
        self._lock = threading.RLock()
        self._metric_group = metric_group
        self._closed = False

    def get(self, name: str, resource_type: ResourceType | str) -> Any:
        slot = (_as_resource_type(resource_type), name)
        instance = self._instances.get(slot)
        if instance is not None:
            return instance
        with self._lock:
            if slot in self._instances:
                return self._instances[slot]
            if self._closed:
                raise ResourceError(f"resource {name!r} requested after the runtime closed")
            if slot not in self._declarations:
                known = sorted(f"{kind.value}:{known}" for kind, known in self._declarations)
                raise ResourceNotFoundError(
                    f"Resource not found: {name!r} of type {slot[0].value}; declared: "
                    f"{', '.join(known) or 'none'}"
                )
            instance = self._create(slot, self._declarations[slot])
            self._instances[slot] = instance
            return instance

    def _create(self, slot: tuple[ResourceType, str], declaration: Any) -> Any:
        resource_type, name = slot
        try:
            if isinstance(declaration, ResourceDescriptor):
                instance = _instantiate(declaration, self.get, self._defaults)
            else:
                instance = declaration
            if isinstance(instance, Resource):
                if instance.get_resource is None:
                    instance.get_resource = self.get
                if instance.resource_context is None:
                    instance.resource_context = ResourceContext(self.get)
            if isinstance(instance, Resource) and self._metric_group is not None:
                instance.set_metric_group(self._metric_group.get_sub_group(name))
            opener = getattr(instance, "open", None)
            if callable(opener):
                opener()
        except ResourceError:
            raise
        except Exception as error:
            raise ResourceError(
                f"cannot create resource {name!r} of type {resource_type.value}: "
                f"{type(error).__name__}: {error}"
            ) from error
        return instance

    def close(self) -> list[BaseException]:
        """Close every created resource; returns the errors instead of stopping at the first."""
        errors: list[BaseException] = []
        for instance in self._take_all():
            closer = getattr(instance, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception as error:  # keep closing the others
                    errors.append(error)
        return errors

    async def aclose(self) -> list[BaseException]:
        """Close every created resource on the running loop, awaiting each ``Resource``'s
        ``aclose()``; returns the errors instead of stopping at the first."""
        errors: list[BaseException] = []
        for instance in self._take_all():
            try:
                if isinstance(instance, Resource):
                    await instance.aclose()
                elif callable(closer := getattr(instance, "close", None)):
                    closer()
            except Exception as error:  # keep closing the others
                errors.append(error)
        return errors

    def _take_all(self) -> list[Any]:
        """The created resources, newest first, and no more handed out."""
        with self._lock:
            self._closed = True
            instances, self._instances = list(self._instances.values()), {}
        return list(reversed(instances))


def _as_resource_type(value: ResourceType | str) -> ResourceType:
    if isinstance(value, ResourceType):
        return value
    try:
        return ResourceType(value)
    except ValueError:
        valid = ", ".join(kind.value for kind in ResourceType)
        raise ResourceError(f"{value!r} is not a resource type; use one of: {valid}") from None


def _instantiate(
    descriptor: ResourceDescriptor,
    get_resource: Callable[..., Any],
    defaults: Callable[[type], dict[str, Any]] | None,
) -> Any:
    clazz = descriptor.clazz
    arguments = dict(defaults(clazz)) if defaults is not None and isinstance(clazz, type) else {}
    arguments.update(descriptor.arguments)
    if isinstance(clazz, type) and issubclass(clazz, Resource):
        arguments.setdefault("get_resource", get_resource)
    return clazz(**arguments)


def configured_arguments(config: Any) -> Callable[[type], dict[str, Any]]:
    """The constructor arguments a configuration gives resource classes, as upstream does:
    each key ``<ClassName>.<field>`` for a field of the class (``OpenAIChatModelConnection.
    timeout: 30``), and ``retry-wait-interval`` for connections that retry."""
    data: dict[str, Any] = config.to_dict()

    def arguments(clazz: type) -> dict[str, Any]:
        fields = getattr(clazz, "model_fields", {})
        found: dict[str, Any] = {}
        if "retry_wait_interval" in fields and "retry-wait-interval" in data:
            found["retry_wait_interval"] = data["retry-wait-interval"]
        prefix = f"{clazz.__name__}."
        for key, value in data.items():
            if key.startswith(prefix) and key[len(prefix) :] in fields:
                found[key[len(prefix) :]] = value
        return found

    return arguments

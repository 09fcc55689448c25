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

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from .errors import ResourceError
from .llm.names import UPSTREAM_CLASS_PATHS
from .logging import library_logger

if TYPE_CHECKING:
    from .metrics import MetricGroup

logger = library_logger()

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
    _resource_name: str | None = PrivateAttr(default=None)

    @classmethod
    def resource_type(cls) -> ResourceType:
        raise NotImplementedError(f"{cls.__name__} must implement resource_type()")

    def set_metric_group(self, metric_group: MetricGroup | None) -> None:
        self._metric_group = metric_group

    @property
    def metric_group(self) -> MetricGroup | None:
        return self._metric_group

    @property
    def resource_name(self) -> str | None:
        """The name the resource was declared under (set by the runtime that created it)."""
        return self._resource_name

    def find_resource(self, role: str, name: str, resource_type: ResourceType) -> Any:
        """The resource ``name`` of ``resource_type`` that this one names (a setup its
        connection, a store its embedding model), from the runtime that created this one.
        Errors say ``role`` (what this resource is: "chat model setup"...) and what it looked
        for."""
        owner = f"{role} {type(self).__name__}"
        context = self.resource_context
        lookup = context.get_resource if context is not None else self.get_resource
        if lookup is None:
            raise ResourceError(
                f"{owner} cannot find the {resource_type.value} {name!r}: it was not created by "
                "a runtime (declare it on the agent or the environment)"
            )
        try:
            return lookup(name, resource_type)
        except ResourceNotFoundError as error:
            raise ResourceNotFoundError(
                f"{owner} names the {resource_type.value} {name!r}, which is not declared: {error}"
            ) from None

    def provide(self, resource_type: ResourceType, name: str) -> Any:
        """A resource this one provides under its own name (an MCP server's tools and
        prompts): the runtime asks its ``MCP_SERVER`` resources for a tool or prompt no one
        declared. Raises ``ResourceNotFoundError`` (saying what it does provide) otherwise."""
        raise ResourceNotFoundError(f"{type(self).__name__} provides no {resource_type.value}s")

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
            if slot in self._declarations:
                instance = self._create(slot, self._declarations[slot])
            elif (filed := self._filed_under_another_type(slot)) is not None:
                instance = self._create(slot, filed)
            else:
                instance = self._provided(slot)
            self._instances[slot] = instance
            return instance

    def _filed_under_another_type(self, slot: tuple[ResourceType, str]) -> Any:
        """A descriptor named ``name`` registered under another type than its class's.

        Upstream types a descriptor by its class (``clazz.resource_type()``), whatever type it
        was registered under, and its 0.2 and 0.3 RAG example registers its chat model
        connection as ``ResourceType.EMBEDDING_MODEL``: such a declaration is found by its
        class's type too."""
        resource_type, name = slot
        for (kind, known), declaration in self._declarations.items():
            if known != name or kind is resource_type:
                continue
            if not isinstance(declaration, ResourceDescriptor):
                continue
            try:
                declared_type = getattr(declaration.clazz, "resource_type", None)
                if declared_type is None or declared_type() is not resource_type:
                    continue
            except Exception:  # not importable, or not typed: not this one
                continue
            return declaration
        return None

    def _provided(self, slot: tuple[ResourceType, str]) -> Any:
        """A tool or prompt no one declared, from the declared MCP servers that provide it."""
        resource_type, name = slot
        known = sorted(f"{kind.value}:{known}" for kind, known in self._declarations)
        message = (
            f"Resource not found: {name!r} of type {resource_type.value}; declared: "
            f"{', '.join(known) or 'none'}"
        )
        providers = [
            provider
            for kind, provider in self._declarations
            if kind is ResourceType.MCP_SERVER
            and resource_type in (ResourceType.TOOL, ResourceType.PROMPT)
        ]
        notes: list[str] = []
        unreachable: ResourceError | None = None
        for provider in providers:
            try:
                server = self.get(provider, ResourceType.MCP_SERVER)
                if not callable(getattr(server, "provide", None)):
                    continue  # not a Resource: it provides nothing
                return server.provide(resource_type, name)
            except ResourceNotFoundError as error:
                notes.append(str(error))
            except ResourceError as error:
                unreachable = unreachable or error
                notes.append(str(error))
        if unreachable is not None:  # it may be the one that has it
            raise ResourceError(
                f"{resource_type.value} {name!r} is not declared, and the MCP servers cannot "
                f"provide it: {'; '.join(notes)}"
            ) from unreachable
        raise ResourceNotFoundError("; ".join([message, *notes]))

    async def warm_up(self, resource_type: ResourceType) -> None:
        """Create the declared resources of ``resource_type`` now, each in a worker thread, so
        that opening them (an MCP server connecting) does not hold up the event loop later. One
        that fails is logged, and created (or failing) again when first used."""
        for kind, name in list(self._declarations):
            if kind is resource_type:
                try:
                    await anyio.to_thread.run_sync(self.get, name, kind)
                except Exception as error:
                    logger.warning("resource could not be opened", resource=name, error=str(error))

    def _create(self, slot: tuple[ResourceType, str], declaration: Any) -> Any:
        resource_type, name = slot
        try:
            if isinstance(declaration, ResourceDescriptor):
                instance = _instantiate(declaration, self.get, self._defaults)
            else:
                instance = declaration
            if isinstance(instance, Resource):
                instance._resource_name = name
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

    async def release_loop(self) -> None:
        """Let every created resource release what it made for the running event loop (a
        sync call ran on a loop of its own, which closes next)."""
        with self._lock:
            instances = list(self._instances.values())
        for instance in instances:
            release = getattr(instance, "release_loop", None)
            if callable(release):
                await release()

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

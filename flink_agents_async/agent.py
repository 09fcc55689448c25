"""Agent definition: ``Agent``, ``@action``, the resource decorators, and the compiled plan.

Decorators only mark functions; nothing is checked until the agent is applied, when
``AgentPlan.from_agent`` validates every action (signature, triggers, duplicate names) and every
resource, and raises ``AgentDefinitionError`` naming the culprit. The plan is what the runtime
executes: event type string -> listening actions, in plan order.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .errors import AgentDefinitionError, TriggerError
from .events import Event, OutputEvent
from .llm.actions import BUILT_IN_ACTIONS
from .llm.tools import FunctionTool
from .resources import ResourceDescriptor, ResourceType

__all__ = [
    "ActionSpec",
    "Agent",
    "AgentPlan",
    "action",
    "chat_model_connection",
    "chat_model_setup",
    "embedding_model_connection",
    "embedding_model_setup",
    "mcp_server",
    "prompt",
    "tool",
    "vector_store",
]

_TRIGGERS_ATTR = "_listen_events"


def _unwrap(member: Any) -> Any:
    return member.__func__ if isinstance(member, (staticmethod, classmethod)) else member


def action(*triggers: type[Event] | str) -> Callable[[Any], Any]:
    """Mark a function as an action that runs on events of the given types.

    Each trigger is an ``Event`` subclass or an event-type string (``EventType.InputEvent``,
    ``"Step"``). The function takes ``(event, ctx)`` and may be ``def`` or ``async def``. It can
    sit above or below ``@staticmethod``. A missing or malformed trigger is a ``TypeError``
    naming the function, raised when it is decorated.
    """

    def mark(member: Any) -> Any:
        target = _unwrap(member)
        _check_triggers(getattr(target, "__qualname__", repr(target)), triggers)
        setattr(target, _TRIGGERS_ATTR, tuple(triggers))
        target._trigger_conditions = tuple(triggers)  # upstream main's name for them
        return member

    return mark


def _resource_marker(resource_type: ResourceType, flag: str) -> Callable[[Any], Any]:
    def mark(member: Any) -> Any:
        target = _unwrap(member)
        target._resource_type = resource_type
        setattr(target, flag, True)
        return member

    mark.__name__ = flag.removeprefix("_is_")
    mark.__doc__ = (
        f"Declare a {resource_type.value} resource: the decorated function takes no arguments and "
        "returns a ResourceDescriptor (or an instance); the attribute name is the resource name."
    )
    return mark


chat_model_connection = _resource_marker(
    ResourceType.CHAT_MODEL_CONNECTION, "_is_chat_model_connection"
)
chat_model_setup = _resource_marker(ResourceType.CHAT_MODEL, "_is_chat_model_setup")
embedding_model_connection = _resource_marker(
    ResourceType.EMBEDDING_MODEL_CONNECTION, "_is_embedding_model_connection"
)
embedding_model_setup = _resource_marker(ResourceType.EMBEDDING_MODEL, "_is_embedding_model_setup")
prompt = _resource_marker(ResourceType.PROMPT, "_is_prompt")
vector_store = _resource_marker(ResourceType.VECTOR_STORE, "_is_vector_store")
mcp_server = _resource_marker(ResourceType.MCP_SERVER, "_is_mcp_server")


def tool(member: Any) -> Any:
    """Declare a tool: the decorated function itself is the tool, named after the attribute."""
    target = _unwrap(member)
    target._resource_type = ResourceType.TOOL
    target._is_tool = True
    return member


class Agent:
    """Base class of agents: actions (decorated methods or ``add_action``) and resources.

    Subclass it and declare actions with ``@action``, or build one at run time with
    ``add_action`` / ``add_resource`` (both return the agent, so calls chain).
    """

    def __init__(self) -> None:
        self._actions: dict[str, tuple[list[Any], Callable[..., Any], dict[str, Any] | None]] = {}
        self._resources: dict[ResourceType, dict[str, Any]] = {kind: {} for kind in ResourceType}

    @property
    def actions(self) -> dict[str, tuple[list[Any], Callable[..., Any], dict[str, Any] | None]]:
        """Actions added with ``add_action``: name -> (triggers, function, config or None)."""
        return self._actions

    @property
    def resources(self) -> dict[ResourceType, dict[str, Any]]:
        """Resources added with ``add_resource``: type -> name -> instance or descriptor."""
        return self._resources

    def add_action(
        self,
        name: str,
        trigger_conditions: list[type[Event] | str] | None = None,
        func: Callable[..., Any] | None = None,
        *,
        events: list[type[Event] | str] | None = None,
        **config: Any,
    ) -> Agent:
        """Add an action named ``name`` running ``func(event, ctx)`` on the given triggers.

        The triggers are ``trigger_conditions`` (upstream's main branch) or ``events`` (its
        0.2 and 0.3 releases), by keyword or by position; give one of them. Other keyword
        arguments become the action's config (``ctx.get_action_config_value``).
        """
        if trigger_conditions is not None and events is not None:
            raise TypeError(
                f"add_action({name!r}): give the triggers once, as trigger_conditions= or as "
                "events= (its older name), not both"
            )
        triggers = trigger_conditions if trigger_conditions is not None else events
        if triggers is None:
            raise TypeError(f"add_action({name!r}): missing the triggers (trigger_conditions=)")
        if func is None:
            raise TypeError(f"add_action({name!r}): missing the action function (func=)")
        if name in self._actions:
            raise ValueError(f"Action {name} already defined")
        self._actions[name] = (list(triggers), func, config or None)
        return self

    def add_resource(self, name: str, resource_type: ResourceType, instance: Any) -> Agent:
        """Add a resource: a ready instance or a ``ResourceDescriptor``."""
        add_resource_to(self._resources, name, resource_type, instance)
        return self


def add_resource_to(
    registry: dict[ResourceType, dict[str, Any]],
    name: str,
    resource_type: ResourceType,
    instance: Any,
) -> None:
    """Register a resource in a type -> name -> instance map, refusing duplicates."""
    if not isinstance(resource_type, ResourceType):
        raise TypeError(
            f"resource {name!r}: resource_type must be a ResourceType, got {resource_type!r}"
        )
    if name in registry[resource_type]:
        raise ValueError(f"{resource_type.value} {name} already defined")
    registry[resource_type][name] = instance


@dataclass(slots=True, frozen=True, eq=False)
class ActionSpec:
    """One validated action of a plan; ``index`` is its position in plan order."""

    index: int
    name: str
    triggers: tuple[str, ...]
    func: Callable[..., Any]
    config: dict[str, Any] | None


def _class_members(agent: Agent) -> Iterator[tuple[str, Any]]:
    """Attributes of the agent's class and its bases, base first, subclass overrides winning."""
    seen: dict[str, Any] = {}
    for klass in reversed(type(agent).__mro__):
        for name, member in vars(klass).items():
            seen[name] = member
    yield from seen.items()


def _check_signature(name: str, func: Callable[..., Any]) -> None:
    if not callable(func):
        raise AgentDefinitionError(f"action {name!r} is not callable: {func!r}")
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise AgentDefinitionError(
            f"action {name!r} is a generator function (it uses `yield`), so its body would "
            "never run: an action is a plain function or an `async def` coroutine. Instead of "
            "`yield from ctx.execute_async(fn, ...)` write `await ctx.durable_execute_async(fn, "
            "...)` in an `async def` action"
        )
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return  # builtins and C callables: trust them
    try:
        signature.bind(None, None)
    except TypeError:
        raise AgentDefinitionError(
            f"action {name!r} must take two arguments (event, ctx); its signature is "
            f"{name}{signature}"
        ) from None


def _check_triggers(name: str, triggers: Any) -> tuple[str, ...]:
    if not isinstance(triggers, (list, tuple)) or not triggers:
        raise TriggerError(
            f"action {name!r} has no trigger: pass at least one Event subclass or event-type "
            "string, e.g. @action(InputEvent) or @action(EventType.InputEvent)"
        )
    type_strings: list[str] = []
    for trigger in triggers:
        if isinstance(trigger, str):
            if not trigger.strip():
                raise TriggerError(f"action {name!r} has an empty event-type string")
            if _CONDITION_EXPRESSION.search(trigger):
                raise TriggerError(
                    f"action {name!r} has trigger {trigger!r}, a condition expression: they are "
                    "not supported here. Trigger on the event type and test the attribute in "
                    "the action"
                )
            type_strings.append(trigger)
        elif isinstance(trigger, type) and issubclass(trigger, Event) and trigger is not Event:
            type_strings.append(trigger.event_type())
        else:
            raise TriggerError(
                f"action {name!r} has trigger {trigger!r}, which is neither an Event subclass nor "
                "an event-type string (a trigger must be a string or an Event subclass)"
            )
    return tuple(dict.fromkeys(type_strings))


# Upstream main's trigger-condition expressions ("type == X && score > 5"), told apart from
# event-type names, which hold no spaces, parentheses or operators ("<locals>" may appear).
_CONDITION_EXPRESSION = re.compile(r"==|!=|&&|\|\||<=|>=|[()!\s]")


def _declared_resource(name: str, member: Any) -> tuple[ResourceType, Any] | None:
    target = _unwrap(member)
    resource_type = getattr(target, "_resource_type", None)
    if not isinstance(resource_type, ResourceType):
        return None
    if resource_type is ResourceType.TOOL:
        return resource_type, FunctionTool.from_callable(target)
    try:
        declared = target()
    except Exception as error:
        raise AgentDefinitionError(
            f"resource {name!r} ({resource_type.value}): calling its declaring function failed: "
            f"{type(error).__name__}: {error}"
        ) from error
    if declared is None:
        raise AgentDefinitionError(
            f"resource {name!r} ({resource_type.value}): its declaring function returned None; "
            "return a ResourceDescriptor or a resource instance"
        )
    return resource_type, declared


class AgentPlan:
    """The validated, executable form of an agent: actions in plan order, indexed by the event
    type strings they listen to, and the resource declarations."""

    def __init__(
        self,
        actions: list[ActionSpec],
        resources: dict[tuple[ResourceType, str], Any],
        agent_name: str,
    ) -> None:
        self.actions = actions
        self.agent_name = agent_name
        self.resources = MappingProxyType(resources)
        listeners: dict[str, list[ActionSpec]] = {}
        for spec in actions:
            for type_string in spec.triggers:
                listeners.setdefault(type_string, []).append(spec)
        self.listeners: dict[str, tuple[ActionSpec, ...]] = {
            type_string: tuple(specs) for type_string, specs in listeners.items()
        }
        self.has_output_listeners = OutputEvent.EVENT_TYPE in self.listeners

    def action(self, name: str) -> ActionSpec:
        for spec in self.actions:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @classmethod
    def from_agent(
        cls,
        agent: Agent,
        extra_resources: dict[ResourceType, dict[str, Any]] | None = None,
    ) -> AgentPlan:
        """Validate ``agent`` and compile it; ``extra_resources`` (the environment's) are used
        where the agent declares no resource of the same type and name."""
        if not isinstance(agent, Agent):
            raise AgentDefinitionError(
                f"apply() takes an Agent instance, got {type(agent).__name__}: {agent!r}"
            )
        if not hasattr(agent, "_actions") or not hasattr(agent, "_resources"):
            raise AgentDefinitionError(
                f"agent {type(agent).__name__} was not initialised as an Agent: its __init__ "
                "must call super().__init__()"
            )
        specs: list[ActionSpec] = []
        names: set[str] = set()
        resources: dict[tuple[ResourceType, str], Any] = {}

        def add_spec(name: str, triggers: Any, func: Any, config: dict[str, Any] | None) -> None:
            if name in names:
                raise AgentDefinitionError(f"Action {name} already defined (duplicate action name)")
            names.add(name)
            type_strings = _check_triggers(name, triggers)
            _check_signature(name, func)
            specs.append(ActionSpec(len(specs), name, type_strings, func, config))

        for name, member in _class_members(agent):
            target = _unwrap(member)
            triggers = getattr(target, _TRIGGERS_ATTR, None)
            if triggers is not None:
                add_spec(name, triggers, getattr(agent, name), None)
                continue
            declared = _declared_resource(name, member)
            if declared is not None:
                resources[(declared[0], name)] = declared[1]

        for name, (triggers, func, config) in agent.actions.items():
            add_spec(name, triggers, func, config)

        for resource_type, by_name in agent.resources.items():
            for name, instance in by_name.items():
                if (resource_type, name) in resources:
                    raise AgentDefinitionError(
                        f"{resource_type.value} {name} already defined (declared both by a "
                        "decorator and by add_resource)"
                    )
                resources[(resource_type, name)] = instance
        for resource_type, by_name in (extra_resources or {}).items():
            for name, instance in by_name.items():
                resources.setdefault((resource_type, name), instance)

        for (resource_type, name), declaration in resources.items():
            _check_resource_declaration(resource_type, name, declaration)
        if not specs:
            raise AgentDefinitionError(
                f"agent {type(agent).__name__} has no actions: mark methods with @action(...) "
                "or call add_action()"
            )
        for name, triggers, func in BUILT_IN_ACTIONS:  # every plan answers chat requests
            if name in names:
                raise AgentDefinitionError(
                    f"Action {name} already defined: the name belongs to a built-in action"
                )
            specs.append(ActionSpec(len(specs), name, triggers, func, None))
        return cls(specs, resources, type(agent).__name__)


def _check_resource_declaration(resource_type: ResourceType, name: str, declaration: Any) -> None:
    if declaration is None or isinstance(declaration, type):
        raise AgentDefinitionError(
            f"resource {name!r} ({resource_type.value}) must be declared as an instance or a "
            f"ResourceDescriptor, got {declaration!r}"
        )
    if isinstance(declaration, ResourceDescriptor):
        return

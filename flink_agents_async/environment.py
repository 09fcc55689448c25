"""``AgentsExecutionEnvironment`` and ``AgentBuilder``: where agents meet their inputs.

``AgentsExecutionEnvironment.get_execution_environment()`` returns the local asyncio environment;
given a PyFlink ``StreamExecutionEnvironment`` it returns the Flink environment of the ``bridge``
package. Both share this interface; each environment owns its configuration and resources.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .agent import Agent, add_resource_to
from .config import Configuration, load_agent_config_file
from .hosts import load_host
from .resources import ResourceType
from .serve_settings import DEFAULT_SERVE_SETTINGS

if TYPE_CHECKING:
    from collections.abc import AsyncIterable

__all__ = ["AgentBuilder", "AgentsExecutionEnvironment"]


class AgentBuilder(ABC):
    """Connects an agent to the inputs of an environment and exposes its outputs."""

    @abstractmethod
    def apply(self, agent: Agent) -> AgentBuilder:
        """Run ``agent`` on this builder's inputs. Validates the agent now."""

    def to_list(self) -> list[dict[Any, Any]]:
        """The outputs as ``[{key: output}, ...]`` in emission order, filled by ``execute()``."""
        raise NotImplementedError(
            f"{type(self).__name__} has no to_list(); it is available in the local environment"
        )

    def to_datastream(self, output_type: Any = None) -> Any:
        """The outputs as a PyFlink DataStream (Flink environment only)."""
        raise NotImplementedError(
            "to_datastream() needs the Flink environment: pass a StreamExecutionEnvironment to "
            "get_execution_environment()"
        )

    def to_table(self, schema: Any, output_type: Any) -> Any:
        """The outputs as a PyFlink Table (Flink environment only)."""
        raise NotImplementedError(
            "to_table() needs the Flink environment: pass a StreamExecutionEnvironment and a "
            "StreamTableEnvironment to get_execution_environment()"
        )


class AgentsExecutionEnvironment(ABC):
    """Base of the execution environments. Get one with ``get_execution_environment()``."""

    def __init__(self) -> None:
        self._resources: dict[ResourceType, dict[str, Any]] = {kind: {} for kind in ResourceType}
        self._config = Configuration()

    @staticmethod
    def get_execution_environment(
        env: Any = None, t_env: Any = None, **kwargs: Any
    ) -> AgentsExecutionEnvironment:
        """The local asyncio environment, or with a PyFlink ``env`` the Flink environment.

        Keyword arguments configure the runtime, e.g. ``num_async_threads=16``,
        ``error_handling_strategy="retry"``, or ``config={"some.key": value}``.
        """
        if env is None:
            if t_env is not None:
                raise ValueError(
                    "t_env was given without env: pass the StreamExecutionEnvironment the table "
                    "environment was created from as env"
                )
            environment: AgentsExecutionEnvironment = load_host("local")(None, None, **kwargs)
            return environment
        try:
            create = load_host("flink")
        except ImportError as error:  # pragma: no cover - bridge ships with this package
            raise ImportError(
                "the Flink environment needs the bridge package and PyFlink: "
                "pip install 'flink-agents-async[flink]'"
            ) from error
        environment = create(env, t_env, **kwargs)
        return environment

    @property
    def resources(self) -> dict[ResourceType, dict[str, Any]]:
        """Resources added to the environment: type -> name -> instance or descriptor."""
        return self._resources

    def add_resource(
        self, name: str, resource_type: ResourceType, instance: Any
    ) -> AgentsExecutionEnvironment:
        """Offer a resource to every agent of this environment (an agent's own one of the same
        type and name wins)."""
        add_resource_to(self._resources, name, resource_type, instance)
        return self

    def get_config(self, path: str | Path | None = None) -> Configuration:
        """This environment's configuration; with ``path``, first load the ``agent:`` section of
        that YAML file into it (nested keys joined with dots)."""
        if path is not None:
            self._config.update(load_agent_config_file(path))
        return self._config

    def from_list(self, input: list[dict[str, Any]]) -> AgentBuilder:
        """Inputs from a list of ``{"key": ..., "value": ...}`` dicts (local environment)."""
        raise NotImplementedError(
            f"{type(self).__name__} takes no from_list(); use from_datastream() or from_table()"
        )

    def from_iterable(self, input: Iterable[Any] | AsyncIterable[Any]) -> AgentBuilder:
        """Inputs from any iterable or async iterable of input dicts (local environment)."""
        raise NotImplementedError(
            f"{type(self).__name__} takes no from_iterable(); use from_datastream() or from_table()"
        )

    def from_datastream(self, input: Any, key_selector: Any = None) -> AgentBuilder:
        """Inputs from a PyFlink DataStream (Flink environment)."""
        raise NotImplementedError(
            "from_datastream() needs the Flink environment: pass a StreamExecutionEnvironment to "
            "get_execution_environment()"
        )

    def from_table(self, input: Any, key_selector: Any = None) -> AgentBuilder:
        """Inputs from a PyFlink Table (Flink environment)."""
        raise NotImplementedError(
            "from_table() needs the Flink environment: pass a StreamExecutionEnvironment to "
            "get_execution_environment()"
        )

    @abstractmethod
    def execute(self, job_name: str | None = None) -> Any:
        """Run everything to completion: ``await env.execute()`` in async code, a plain call
        (which blocks) where no event loop runs. ``job_name`` names the Flink job."""

    def serve(
        self,
        agent: Agent,
        *,
        drain_timeout: float = DEFAULT_SERVE_SETTINGS.drain_timeout,
        max_pending: int = DEFAULT_SERVE_SETTINGS.max_pending,
        busy_policy: str = DEFAULT_SERVE_SETTINGS.busy_policy,
        idle_timeout: float | None = DEFAULT_SERVE_SETTINGS.idle_timeout,
    ) -> Any:
        """A long-lived runtime for ``agent`` inside the caller's event loop:
        ``async with env.serve(agent) as runtime: await runtime.send(key, value)`` (see the
        local environment's ``serve`` for the options)."""
        raise NotImplementedError(f"{type(self).__name__} does not offer serve()")

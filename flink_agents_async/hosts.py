"""Hosts by name: what ``get_execution_environment()`` runs an agent on.

The abstract environment never imports a host (the local asyncio runtime, the Flink bridge): it
asks for one by name here. A host is a factory ``(env, t_env, **kwargs) -> environment``,
published under the entry-point group ``flink_agents_async.hosts`` (the package publishes
``local`` and ``flink``; another package may add its own). A source checkout that is not
installed has no entry points, so the two built-in hosts are also known by module path.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

__all__ = ["ENTRY_POINT_GROUP", "load_host"]

ENTRY_POINT_GROUP = "flink_agents_async.hosts"

_BUILT_IN = {
    "local": "flink_agents_async.local.environment:create_environment",
    "flink": "bridge:create_environment",
}

HostFactory = Callable[..., Any]


def load_host(name: str) -> HostFactory:
    """The environment factory of the host called ``name``."""
    for entry in entry_points(group=ENTRY_POINT_GROUP, name=name):
        factory: HostFactory = entry.load()
        return factory
    target = _BUILT_IN.get(name)
    if target is None:
        known = sorted(
            {*_BUILT_IN, *(entry.name for entry in entry_points(group=ENTRY_POINT_GROUP))}
        )
        raise ValueError(f"no host named {name!r}; the hosts are {', '.join(known)}")
    module, _, attribute = target.partition(":")
    factory = getattr(importlib.import_module(module), attribute)
    return factory

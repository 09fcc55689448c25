"""The PyFlink host of flink-agents-async (import name ``bridge``).

It maps each key's actor mailbox onto a PyFlink keyed process function and keeps memory, pending
inputs and the journal in Flink keyed state, reusing the core's actor, context, memory and journal
code. It is not part of this release yet: ``create_environment`` says so clearly.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_environment"]


def create_environment(env: Any, t_env: Any = None, **kwargs: Any) -> Any:
    """The Flink ``AgentsExecutionEnvironment`` for a PyFlink ``StreamExecutionEnvironment``."""
    raise NotImplementedError(
        "the Flink host (bridge) is not available in this version of flink-agents-async; run "
        "agents locally with AgentsExecutionEnvironment.get_execution_environment() for now"
    )

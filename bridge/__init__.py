"""The PyFlink host of flink-agents-async (import name ``bridge``).

Each key's actor mailbox maps onto a PyFlink keyed process function; short-term memory, the
inputs not yet committed and the durable-call journal live in Flink keyed state, so Flink
checkpoints make them exactly-once. The actors, contexts, memory and journal are the core's;
only the scheduling (``bridge.function``, ``bridge.host``) and the store are Flink's.

Use it through the core's entry point::

    env = StreamExecutionEnvironment.get_execution_environment()
    agents_env = AgentsExecutionEnvironment.get_execution_environment(env)
    outputs = agents_env.from_datastream(stream, key_selector=...).apply(agent).to_datastream()
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_environment"]

_MISSING_PYFLINK = (
    "the Flink environment needs PyFlink, which is not installed: "
    "pip install 'flink-agents-async[flink]' (it installs apache-flink; Java 17 must be on PATH)"
)


def create_environment(env: Any, t_env: Any = None, **kwargs: Any) -> Any:
    """The Flink ``AgentsExecutionEnvironment`` for a PyFlink ``StreamExecutionEnvironment``."""
    try:
        import pyflink.datastream  # noqa: F401
    except ImportError as error:
        raise ImportError(_MISSING_PYFLINK) from error
    from .environment import create

    return create(env, t_env, **kwargs)

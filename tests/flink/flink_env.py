"""The StreamExecutionEnvironment the MiniCluster tests start from (a module of its own, so
that Flink's Python workers import it by a name no other ``conftest`` shadows)."""

from __future__ import annotations

from typing import Any


def stream_env(mode: str = "thread", parallelism: int = 2, **options: str) -> Any:
    """A fresh StreamExecutionEnvironment in ``mode`` with extra configuration ``options``."""
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment

    config = Configuration()
    config.set_string("python.execution-mode", mode)
    for key, value in options.items():
        config.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(parallelism)
    return env

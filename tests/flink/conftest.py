"""MiniCluster tests of the Flink bridge. Each test runs real PyFlink jobs (a few seconds each),
so cases are batched into as few jobs as possible."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("pyflink", reason="the Flink tests need the flink extra (apache-flink)")


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

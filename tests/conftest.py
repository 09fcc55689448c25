"""Fixtures shared by the whole suite.

* ``model_server`` / ``server``: one local model server per test module (it speaks the OpenAI,
  Anthropic and Ollama wire protocols on 127.0.0.1), reset before each test.
* ``clock``: a ``MockClock`` for the runtime (``get_execution_environment(clock=clock)``), so
  TTL and passivation tests move time themselves instead of sleeping.
* ``project_root``: the checkout, for tests that run its scripts, examples and tools.

Tests marked ``slow`` (benchmark-shaped: many keys, many jobs, real crashes) run in
``make test`` like every other; ``make test-fast`` leaves them out.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from flink_agents_async.clock import MockClock

if TYPE_CHECKING:
    from flink_agents_async.testing import ModelServer

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model_server() -> Iterator[ModelServer]:
    from flink_agents_async.testing import ModelServer  # the llm extra: only when asked for

    with ModelServer() as server:
        yield server


@pytest.fixture
def server(model_server: ModelServer) -> ModelServer:
    model_server.reset()
    return model_server


@pytest.fixture(scope="session", autouse=True)
def stop_parity_servers() -> Iterator[None]:
    """Stop the servers the parity cases started, before pytest closes its output (an MCP
    server stopped at interpreter exit logs to a closed stream)."""
    yield
    cases = sys.modules.get("parity_cases")
    if cases is not None:
        cases.stop_servers()


@pytest.fixture
def clock() -> MockClock:
    return MockClock()


@pytest.fixture
def project_root() -> Path:
    return PROJECT_ROOT

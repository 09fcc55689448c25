"""The core imports and runs with no optional extra installed, and each integration whose extra
is missing says which extra to install."""

from __future__ import annotations

import subprocess
import sys

import pytest

OPTIONAL = (
    "openai", "anthropic", "ollama", "mcp", "chromadb", "apsw", "sqlite_vec", "numpy",
    "tokenizers", "safetensors", "pyflink",
)  # fmt: skip

HIDE = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in OPTIONAL)


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HIDE + code], capture_output=True, text=True, timeout=120
    )


def test_the_core_runs_an_agent_without_any_extra() -> None:
    result = run(
        "from flink_agents_async import *\n"
        "import flink_agents_async as fa\n"
        "class Echo(fa.Agent):\n"
        "    @fa.action(fa.InputEvent)\n"
        "    @staticmethod\n"
        "    def echo(event, ctx):\n"
        "        ctx.send_event(fa.OutputEvent(output=event.input))\n"
        "env = fa.AgentsExecutionEnvironment.get_execution_environment()\n"
        "out = env.from_list([{'key': 'k', 'value': 1}]).apply(Echo()).to_list()\n"
        "env.execute()\n"
        "assert out == [{'k': 1}], out\n"
        "print('ok')\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("openai", "openai"),
        ("ollama", "ollama"),
        ("anthropic", "anthropic"),
        ("mcp", "mcp"),
        ("chroma", "chroma"),
        ("local_vector_store", "sqlite-vec"),
        ("local_embeddings", "local-embeddings"),
    ],
)
def test_an_integration_without_its_extra_names_it(module: str, extra: str) -> None:
    result = run(f"import flink_agents_async.integrations.{module}\n")
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert f"flink-agents-async[{extra}]" in result.stderr, result.stderr

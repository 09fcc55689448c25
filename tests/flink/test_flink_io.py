"""Flink inputs and outputs: DataStream and Table round trips, concurrency across keys, errors,
configuration, and ``await env.execute()``."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from flink_agents import (
    BrokenAgent,
    Prefix,
    RendezvousAgent,
    RowAgent,
    SometimesSlowAgent,
    TagAgent,
)
from flink_env import stream_env

from bridge.environment import FlinkJobError
from flink_agents_async import (
    AgentsExecutionEnvironment,
    ConfigurationError,
    ExecutionError,
    InputError,
)


def test_keyed_datastream_round_trip() -> None:
    from pyflink.common import Types

    env = stream_env()
    words = ["a1", "b1", "a2", "c1", "a3", "b2"]
    keyed = env.from_collection(words, type_info=Types.STRING()).key_by(lambda w: w[0])
    agents_env = AgentsExecutionEnvironment.get_execution_environment(env)
    outputs = agents_env.from_datastream(keyed).apply(TagAgent()).to_datastream(Types.STRING())
    got = list(outputs.execute_and_collect())
    per_key = {key: [out for out in got if out.startswith(key)] for key in "abc"}
    assert per_key == {
        "a": ["a:a1#1", "a:a2#2", "a:a3#3"],
        "b": ["b:b1#1", "b:b2#2"],
        "c": ["c:c1#1"],
    }


def test_a_key_selector_object_is_opened_where_the_agent_runs() -> None:
    from pyflink.common import Types

    env = stream_env()
    words = env.from_collection(["a1", "b1", "a2"], type_info=Types.STRING())
    agents_env = AgentsExecutionEnvironment.get_execution_environment(env)
    builder = agents_env.from_datastream(words, key_selector=Prefix()).apply(TagAgent())
    got = sorted(builder.to_datastream(Types.STRING()).execute_and_collect())
    assert got == ["a:a1#1", "a:a2#2", "b:b1#1"]


def test_table_round_trip() -> None:
    from pyflink.common import Types
    from pyflink.table import DataTypes, Schema, StreamTableEnvironment

    env = stream_env()
    t_env = StreamTableEnvironment.create(env)
    table = t_env.from_elements(
        [(1, "tea"), (2, "jam"), (1, "cake")],
        DataTypes.ROW(
            [DataTypes.FIELD("id", DataTypes.INT()), DataTypes.FIELD("text", DataTypes.STRING())]
        ),
    )
    agents_env = AgentsExecutionEnvironment.get_execution_environment(env, t_env)
    output_type = Types.ROW_NAMED(["id", "text", "n"], [Types.INT(), Types.STRING(), Types.INT()])
    schema = (
        Schema.new_builder()
        .column("id", DataTypes.INT())
        .column("text", DataTypes.STRING())
        .column("n", DataTypes.INT())
        .build()
    )
    result = (
        agents_env.from_table(table, key_selector=lambda row: row.id)
        .apply(RowAgent())
        .to_table(schema, output_type)
    )
    with result.execute().collect() as rows:
        got = sorted((row[0], row[1], row[2]) for row in rows)
    assert got == [(1, "CAKE", 2), (1, "TEA", 1), (2, "JAM", 1)]


def test_runs_of_different_keys_await_concurrently() -> None:
    env = stream_env(parallelism=1)
    keys = 100
    inputs = [{"n": n, "expected": keys} for n in range(keys)]
    agents_env = AgentsExecutionEnvironment.get_execution_environment(env)
    outputs = (
        agents_env.from_datastream(env.from_collection(inputs), key_selector=lambda v: v["n"])
        .apply(RendezvousAgent())
        .to_datastream()
    )
    assert sorted(outputs.execute_and_collect()) == list(range(keys))


@pytest.mark.timeout(120)
def test_a_key_whose_runs_ended_inline_takes_inputs_while_other_keys_await() -> None:

    # "a1" ends inside process_element; "b" then awaits, so the loop thread drives the loop
    # while "a2" and "a3" reach key "a", whose actor stayed on the loop from "a1".
    inputs = [("a1", 0), ("b", 0.5), ("a2", 0), ("a3", 0)]
    env = stream_env(parallelism=1)
    agents_env = AgentsExecutionEnvironment.get_execution_environment(env)
    outputs = (
        agents_env.from_datastream(env.from_collection(inputs), key_selector=lambda i: i[0][0])
        .apply(SometimesSlowAgent())
        .to_datastream(with_key=True)
    )
    got = list(outputs.execute_and_collect())
    assert [output for key, output in got if key == "a"] == ["a1", "a2", "a3"]
    assert [output for key, output in got if key == "b"] == ["b"]


@pytest.mark.parametrize("mode", ["thread", "process"])
async def test_a_failing_run_fails_the_job_with_an_execution_error(mode: str) -> None:
    from pyflink.common import Types

    env = stream_env(mode, parallelism=1)
    agents_env = AgentsExecutionEnvironment.get_execution_environment(env)
    numbers = env.from_collection([1, 2, 3, 4], type_info=Types.INT())
    agents_env.from_datastream(numbers, key_selector=lambda n: n % 2).apply(
        BrokenAgent()
    ).to_datastream()
    with pytest.raises(ExecutionError) as failure:
        await agents_env.execute("broken job")
    assert isinstance(failure.value, FlinkJobError)
    message = str(failure.value)
    assert message.startswith("the Flink job 'broken job' failed: run ")
    assert "key 1" in message and "'explode'" in message
    assert "input three is not welcome" in message
    assert type(failure.value.__cause__).__name__ == "Py4JJavaError"


@pytest.mark.parametrize(
    ("key_selector", "complaint"),
    [
        (lambda n: random.random(), "a key selector must be deterministic"),
        (lambda n: [n], "not hashable"),
    ],
    ids=["not-deterministic", "unhashable"],
)
async def test_a_bad_key_selector_fails_the_job_naming_the_key(
    key_selector: Any, complaint: str
) -> None:
    from pyflink.common import Types

    env = stream_env(parallelism=1)
    agents_env = AgentsExecutionEnvironment.get_execution_environment(env)
    numbers = env.from_collection([7, 8], type_info=Types.INT())
    agents_env.from_datastream(numbers, key_selector=key_selector).apply(TagAgent()).to_datastream()
    with pytest.raises(FlinkJobError, match=complaint) as failure:
        await agents_env.execute("bad keys")
    assert "input 7" in str(failure.value)


async def test_awaited_execute_runs_the_job(tmp_path: Path) -> None:
    from pyflink.common import Types

    out_file = tmp_path / "out.txt"
    env = stream_env(parallelism=1)
    agents_env = AgentsExecutionEnvironment.get_execution_environment(env)
    numbers = env.from_collection(["x", "y", "x"], type_info=Types.STRING())
    outputs = agents_env.from_datastream(numbers, key_selector=lambda w: w).apply(TagAgent())
    outputs.to_datastream(Types.STRING()).map(
        lambda line, path=str(out_file): _append(path, line), Types.STRING()
    )
    await agents_env.execute("awaited job")
    assert sorted(out_file.read_text().split()) == ["x:x#1", "x:x#2", "y:y#1"]


def _append(path: str, line: str) -> str:
    with open(path, "a", encoding="utf-8") as file:
        file.write(line + "\n")
    return line


# -- bad input and configuration (no job needed) ----------------------------------------------


def test_a_stream_that_is_not_keyed_needs_a_key_selector() -> None:
    env = stream_env()
    agents_env = AgentsExecutionEnvironment.get_execution_environment(env)
    with pytest.raises(InputError, match="not keyed and no key_selector"):
        agents_env.from_datastream(env.from_collection([1, 2]))
    with pytest.raises(InputError, match="needs a key_selector"):
        agents_env.from_table(object())


def test_unknown_and_local_only_keywords_are_refused() -> None:
    with pytest.raises(TypeError, match="journal_dir"):
        AgentsExecutionEnvironment.get_execution_environment(stream_env(), journal_dir="/tmp/x")


@pytest.mark.parametrize(
    ("key", "value", "minimum"),
    [
        ("bridge.idle-actors", -5, 0),
        ("bridge.poll.min-interval-ms", 0, 1),
        ("bridge.poll.max-interval-ms", 0, 1),
        ("mailbox-capacity", 0, 1),
    ],
)
def test_bridge_options_out_of_range_are_refused_before_the_job(
    key: str, value: int, minimum: int
) -> None:
    env = stream_env()
    agents_env = AgentsExecutionEnvironment.get_execution_environment(env, config={key: value})
    builder = agents_env.from_datastream(env.from_collection([1, 2]), key_selector=lambda n: n)
    with pytest.raises(ConfigurationError, match=f"'{key}' must be at least {minimum}, got"):
        builder.apply(TagAgent()).to_datastream()


def test_config_comes_from_flink_conf_dir(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "config.yaml").write_text(
        "parallelism.default: 1\nagent:\n  max-retries: 7\n  chat:\n    model: tiny\n"
    )
    monkeypatch.setenv("FLINK_CONF_DIR", str(tmp_path))
    config = AgentsExecutionEnvironment.get_execution_environment(stream_env()).get_config()
    assert config.get_int("max-retries", 0) == 7
    assert config.get_str("chat.model", "") == "tiny"


def test_legacy_flink_conf_yaml_is_read(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "flink-conf.yaml").write_text(
        "taskmanager.numberOfTaskSlots: 1\nagent.max-retries: 5\n"
    )
    monkeypatch.setenv("FLINK_CONF_DIR", str(tmp_path))
    config = AgentsExecutionEnvironment.get_execution_environment(stream_env()).get_config()
    assert config.get_int("max-retries", 0) == 5


def test_an_agent_the_workers_cannot_import_is_refused(tmp_path: Path, monkeypatch) -> None:
    import importlib.util

    module_file = tmp_path / "hidden_agents.py"
    module_file.write_text(
        textwrap.dedent(
            """
            from flink_agents_async import Agent, InputEvent, OutputEvent, action

            class HiddenAgent(Agent):
                @action(InputEvent)
                @staticmethod
                def echo(event, ctx):
                    ctx.send_event(OutputEvent(output=event.input))
            """
        )
    )
    spec = importlib.util.spec_from_file_location("hidden_agents", module_file)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "hidden_agents", module)
    spec.loader.exec_module(module)
    env = stream_env()
    agents_env = AgentsExecutionEnvironment.get_execution_environment(env)
    builder = agents_env.from_datastream(env.from_collection([1]), key_selector=lambda n: n)
    with pytest.raises(ConfigurationError, match=r"hidden_agents.*cannot import"):
        builder.apply(module.HiddenAgent())


def test_missing_pyflink_gives_an_install_hint() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["pyflink"] = None  # as if apache-flink were not installed
        from flink_agents_async import AgentsExecutionEnvironment
        try:
            AgentsExecutionEnvironment.get_execution_environment(object())
        except ImportError as error:
            print(error)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert "pip install 'flink-agents-async[flink]'" in done.stdout

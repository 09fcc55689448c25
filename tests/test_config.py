"""Configuration: YAML loading, typed getters, ConfigOption, and ctx.config inside actions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flink_agents_async import (
    Agent,
    AgentConfigOptions,
    AgentExecutionOptions,
    AgentsExecutionEnvironment,
    ConfigOption,
    Configuration,
    ConfigurationError,
    ErrorHandlingStrategy,
    InputEvent,
    OutputEvent,
    RunnerContext,
)


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- loading YAML -------------------------------------------------------------------------------


def test_get_config_loads_the_agent_section_with_dotted_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
taskmanager:
  memory: 4g
agent:
  greeting: hello
  num-async-threads: 8
  short-term-memory:
    state-ttl:
      ms: 5
  nested:
    flag: false
    ratio: 0.25
other:
  greeting: not this one
""",
    )
    env = AgentsExecutionEnvironment.get_execution_environment()
    config = env.get_config(path)
    assert config is env.get_config()
    assert config.get_str("greeting") == "hello"
    assert config.get_int("num-async-threads") == 8
    assert config.get_int("short-term-memory.state-ttl.ms") == 5
    assert config.get_bool("nested.flag") is False
    assert config.get_float("nested.ratio") == 0.25
    assert config.to_dict() == {
        "greeting": "hello",
        "num-async-threads": 8,
        "short-term-memory.state-ttl.ms": 5,
        "nested.flag": False,
        "nested.ratio": 0.25,
    }
    # Sections other than agent: are ignored.
    assert not config.contains("taskmanager.memory")
    assert not config.contains("memory")
    assert not config.contains("other.greeting")
    assert not config.contains("short-term-memory")


def test_get_config_accepts_a_string_path(tmp_path: Path) -> None:
    path = write(tmp_path, "agent:\n  a: 1\n")
    env = AgentsExecutionEnvironment.get_execution_environment()
    assert env.get_config(str(path)).get_int("a") == 1


def test_get_config_path_merges_into_existing_configuration(tmp_path: Path) -> None:
    env = AgentsExecutionEnvironment.get_execution_environment(num_async_threads=3)
    env.get_config().set_str("kept", "yes")
    env.get_config(write(tmp_path, "agent:\n  extra: 1\n  num-async-threads: 9\n"))
    config = env.get_config()
    assert config.get_str("kept") == "yes"
    assert config.get_int("extra") == 1
    assert config.get_int("num-async-threads") == 9


def test_loaded_file_only_affects_its_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "agent:\n  only-here: 1\n")
    first = AgentsExecutionEnvironment.get_execution_environment()
    second = AgentsExecutionEnvironment.get_execution_environment()
    first.get_config(path)
    assert first.get_config().contains("only-here")
    assert not second.get_config().contains("only-here")


@pytest.mark.parametrize(
    "text",
    ["", "other:\n  a: 1\n", "agent:\n", "agent: {}\n", "# only a comment\n"],
)
def test_file_without_agent_entries_loads_nothing(tmp_path: Path, text: str) -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    assert env.get_config(write(tmp_path, text)).to_dict() == {}


def test_missing_file_raises_configuration_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "does-not-exist.yaml"
    env = AgentsExecutionEnvironment.get_execution_environment()
    with pytest.raises(ConfigurationError) as info:
        env.get_config(path)
    assert "does-not-exist.yaml" in str(info.value)


def test_invalid_yaml_raises_configuration_error_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "agent:\n  a: [1, 2\n  b: : :\n", name="broken.yaml")
    env = AgentsExecutionEnvironment.get_execution_environment()
    with pytest.raises(ConfigurationError) as info:
        env.get_config(path)
    assert "broken.yaml" in str(info.value)


@pytest.mark.parametrize("section", ["agent: [1, 2, 3]\n", "agent: just a string\n", "agent: 5\n"])
def test_non_mapping_agent_section_raises_naming_the_file(tmp_path: Path, section: str) -> None:
    path = write(tmp_path, section, name="bad-section.yaml")
    env = AgentsExecutionEnvironment.get_execution_environment()
    with pytest.raises(ConfigurationError) as info:
        env.get_config(path)
    assert "bad-section.yaml" in str(info.value)
    assert "agent" in str(info.value)


def test_non_mapping_document_raises_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "- a\n- b\n", name="list-doc.yaml")
    env = AgentsExecutionEnvironment.get_execution_environment()
    with pytest.raises(ConfigurationError, match=r"list-doc\.yaml"):
        env.get_config(path)


def test_failed_load_leaves_configuration_unchanged(tmp_path: Path) -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    env.get_config().set_str("before", "x")
    with pytest.raises(ConfigurationError):
        env.get_config(write(tmp_path, "agent: [1]\n"))
    assert env.get_config().to_dict() == {"before": "x"}


# -- typed getters ------------------------------------------------------------------------------


def test_typed_getters_convert_values() -> None:
    config = Configuration(
        {"i": "42", "f": "2.5", "fi": 3, "s": 17, "b_true": True, "i_float": 4.0, "neg": "-3"}
    )
    assert config.get_int("i") == 42
    assert config.get_int("neg") == -3
    assert config.get_int("i_float") == 4
    assert config.get_float("f") == 2.5
    assert config.get_float("fi") == 3.0
    assert isinstance(config.get_float("fi"), float)
    assert config.get_str("s") == "17"
    assert config.get_str("i") == "42"
    assert config.get_bool("b_true") is True


@pytest.mark.parametrize("word", ["true", "True", "TRUE", "yes", "1", " true "])
def test_get_bool_true_words(word: str) -> None:
    assert Configuration({"flag": word}).get_bool("flag") is True


@pytest.mark.parametrize("word", ["false", "False", "no", "0", "off"])
def test_get_bool_false_words(word: str) -> None:
    config = Configuration({"flag": word})
    assert config.get_bool("flag") is False
    assert config.get_bool("flag", True) is False


def test_get_bool_on_int_values() -> None:
    config = Configuration({"one": 1, "zero": 0})
    assert config.get_bool("one") is True
    assert config.get_bool("zero") is False


def test_getters_return_default_when_missing() -> None:
    config = Configuration()
    assert config.get_int("missing") is None
    assert config.get_int("missing", 7) == 7
    assert config.get_float("missing", 1.5) == 1.5
    assert config.get_str("missing", "d") == "d"
    assert config.get_bool("missing") is None
    assert config.get_bool("missing", True) is True
    assert not config.contains("missing")


def test_getters_prefer_stored_value_over_default() -> None:
    config = Configuration({"n": 0, "s": "", "b": False})
    assert config.get_int("n", 9) == 0
    assert config.get_str("s", "default") == ""
    assert config.get_bool("b", True) is False


@pytest.mark.parametrize(
    ("value", "getter"),
    [
        ("abc", "get_int"),
        ("1.5", "get_int"),
        (1.5, "get_int"),
        (True, "get_int"),
        ([1], "get_int"),
        ("x1", "get_float"),
        (False, "get_float"),
        ("maybe", "get_bool"),
        ("2", "get_bool"),
        (2, "get_bool"),
    ],
)
def test_invalid_conversion_raises_configuration_error_naming_the_key(
    value: Any, getter: str
) -> None:
    config = Configuration({"my.special-key": value})
    with pytest.raises(ConfigurationError, match=r"my\.special-key"):
        getattr(config, getter)("my.special-key")


def test_setters_round_trip() -> None:
    config = Configuration()
    config.set_str("s", "v")
    config.set_int("i", 3)
    config.set_float("f", 0.5)
    config.set_bool("b", True)
    assert config.get_str("s") == "v"
    assert config.get_int("i") == 3
    assert config.get_float("f") == 0.5
    assert config.get_bool("b") is True
    assert config.to_dict() == {"s": "v", "i": 3, "f": 0.5, "b": True}


def test_to_dict_and_copy_are_independent() -> None:
    config = Configuration({"a": 1})
    snapshot = config.to_dict()
    snapshot["a"] = 2
    copy = config.copy()
    copy.set_int("a", 3)
    assert config.get_int("a") == 1
    assert copy.get_int("a") == 3


def test_configuration_does_not_alias_the_initial_mapping() -> None:
    data = {"a": 1}
    config = Configuration(data)
    data["a"] = 2
    assert config.get_int("a") == 1


# -- ConfigOption -------------------------------------------------------------------------------


def test_config_option_accessors() -> None:
    option = ConfigOption("my.option", int, 10)
    assert option.get_key() == "my.option"
    assert option.get_type() is int
    assert option.get_default_value() == 10
    no_default = ConfigOption("other", str)
    assert no_default.get_default_value() is None


def test_config_get_option_returns_default_or_converted_value() -> None:
    int_option = ConfigOption("threads", int, 4)
    bool_option = ConfigOption("enabled", bool, True)
    float_option = ConfigOption("ratio", float, 0.5)
    config = Configuration()
    assert config.get(int_option) == 4
    assert config.get(bool_option) is True
    assert config.get(float_option) == 0.5
    config.update({"threads": "12", "enabled": "false", "ratio": "2"})
    assert config.get(int_option) == 12
    assert config.get(bool_option) is False
    assert config.get(float_option) == 2.0
    assert config.get(ConfigOption("absent", str)) is None


def test_config_get_option_invalid_value_names_the_key() -> None:
    config = Configuration({"threads": "many"})
    with pytest.raises(ConfigurationError, match="threads"):
        config.get(ConfigOption("threads", int, 4))


def test_config_set_option() -> None:
    option = ConfigOption("threads", int, 4)
    config = Configuration()
    config.set(option, 9)
    assert config.get(option) == 9
    assert config.get_int("threads") == 9


def test_builtin_options() -> None:
    assert AgentExecutionOptions.NUM_ASYNC_THREADS.get_key() == "num-async-threads"
    assert AgentExecutionOptions.NUM_ASYNC_THREADS.get_default_value() == 64
    assert AgentExecutionOptions.ERROR_HANDLING_STRATEGY.get_default_value() is (
        ErrorHandlingStrategy.FAIL
    )
    assert AgentConfigOptions.MAX_RETRIES.get_type() is int
    env = AgentsExecutionEnvironment.get_execution_environment(num_async_threads=3)
    assert env.get_config().get(AgentExecutionOptions.NUM_ASYNC_THREADS) == 3
    assert env.get_config().get(AgentExecutionOptions.MAX_RETRIES) == 3


# -- ctx.config ---------------------------------------------------------------------------------


def _config_reader_agent() -> Agent:
    def read(event: InputEvent, ctx: RunnerContext) -> None:
        config = ctx.config
        ctx.send_event(
            OutputEvent(
                output={
                    "greeting": config.get_str("greeting"),
                    "ttl": config.get_int("short-term-memory.state-ttl.ms"),
                    "flag": config.get_bool("feature.enabled", False),
                }
            )
        )

    return Agent().add_action("read", [InputEvent], read)


async def test_ctx_config_sees_the_environment_configuration(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
agent:
  greeting: hello from yaml
  short-term-memory:
    state-ttl:
      ms: 5
""",
    )
    env = AgentsExecutionEnvironment.get_execution_environment()
    env.get_config(path)
    env.get_config().set_str("feature.enabled", "yes")
    outputs = env.from_list([{"key": "a", "value": 1}]).apply(_config_reader_agent()).to_list()
    await env.execute()
    assert outputs == [{"a": {"greeting": "hello from yaml", "ttl": 5, "flag": True}}]


async def test_ctx_config_is_per_environment() -> None:
    first = AgentsExecutionEnvironment.get_execution_environment(config={"greeting": "one"})
    second = AgentsExecutionEnvironment.get_execution_environment(config={"greeting": "two"})
    first_out = first.from_list([{"key": "k", "value": 0}]).apply(_config_reader_agent()).to_list()
    second_out = (
        second.from_list([{"key": "k", "value": 0}]).apply(_config_reader_agent()).to_list()
    )
    await first.execute()
    await second.execute()
    assert first_out == [{"k": {"greeting": "one", "ttl": None, "flag": False}}]
    assert second_out == [{"k": {"greeting": "two", "ttl": None, "flag": False}}]


async def test_invalid_runtime_option_raises_configuration_error_at_execute() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment(config={"num-async-threads": "x"})
    env.from_list([{"key": "a", "value": 1}]).apply(_config_reader_agent())
    with pytest.raises(ConfigurationError, match="num-async-threads"):
        await env.execute()

"""Upstream's configuration constants and enums: the same keys, defaults and behaviour, set
by upstream's constant, by this project's name, or as strings."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog
from pydantic import BaseModel

from flink_agents_async import (
    Agent,
    AgentConfigOptions,
    AgentExecutionOptions,
    AgentsExecutionEnvironment,
    ConfigurationError,
    ErrorHandlingStrategy,
    Event,
    EventType,
    InputEvent,
    OutputEvent,
    RunnerContext,
    ShortTermMemoryTtlUpdate,
    ShortTermMemoryTtlVisibility,
    action,
)
from flink_agents_async.clock import MockClock
from flink_agents_async.config import OPTIONS_WITHOUT_EFFECT, Configuration, ShortTermMemoryOptions


def test_upstreams_execution_options_keep_upstreams_keys_and_defaults() -> None:
    options = AgentExecutionOptions
    expected = {
        options.ERROR_HANDLING_STRATEGY: ("error-handling-strategy", ErrorHandlingStrategy.FAIL),
        options.MAX_RETRIES: ("max-retries", 3),
        options.RETRY_WAIT_INTERVAL: ("retry-wait-interval", 1),
        options.CHAT_ASYNC: ("chat.async", True),
        options.TOOL_CALL_ASYNC: ("tool-call.async", True),
        options.RAG_ASYNC: ("rag.async", True),
        options.AGENT_RUN_BEGIN_EVENT: ("agent-run.begin-event", False),
        options.SHORT_TERM_MEMORY_STATE_TTL_MS: ("short-term-memory.state-ttl.ms", 0),
        options.SHORT_TERM_MEMORY_STATE_TTL_UPDATE_TYPE: (
            "short-term-memory.state-ttl.update-type",
            ShortTermMemoryTtlUpdate.ON_READ_AND_WRITE,
        ),
        options.SHORT_TERM_MEMORY_STATE_TTL_VISIBILITY: (
            "short-term-memory.state-ttl.visibility",
            ShortTermMemoryTtlVisibility.NEVER_RETURN_EXPIRED,
        ),
    }
    for option, (key, default) in expected.items():
        assert (option.key, option.default) == (key, default)
    assert options.SHORT_TERM_MEMORY_STATE_TTL_MS is ShortTermMemoryOptions.STATE_TTL_MS


def test_every_upstream_config_option_is_recognised() -> None:
    upstream_keys = {
        "EVENT_LOGGER_TYPE": "eventLoggerType",
        "CONDITION_EVALUATION_FAILURE_STRATEGY": (
            "action.trigger-condition.evaluate-failure-strategy"
        ),
        "BASE_LOG_DIR": "baseLogDir",
        "PRETTY_PRINT": "prettyPrint",
        "ACTION_STATE_STORE_BACKEND": "actionStateStoreBackend",
        "KAFKA_BOOTSTRAP_SERVERS": "kafkaBootstrapServers",
        "KAFKA_ACTION_STATE_TOPIC": "kafkaActionStateTopic",
        "KAFKA_ACTION_STATE_TOPIC_NUM_PARTITIONS": "kafkaActionStateTopicNumPartitions",
        "KAFKA_ACTION_STATE_TOPIC_REPLICATION_FACTOR": "kafkaActionStateTopicReplicationFactor",
        "FLUSS_BOOTSTRAP_SERVERS": "flussBootstrapServers",
        "FLUSS_ACTION_STATE_DATABASE": "flussActionStateDatabase",
        "FLUSS_ACTION_STATE_TABLE": "flussActionStateTable",
        "FLUSS_ACTION_STATE_TABLE_BUCKETS": "flussActionStateTableBuckets",
        "FLUSS_SECURITY_PROTOCOL": "flussSecurityProtocol",
        "FLUSS_SASL_MECHANISM": "flussSaslMechanism",
        "FLUSS_SASL_JAAS_CONFIG": "flussSaslJaasConfig",
        "FLUSS_SASL_USERNAME": "flussSaslUsername",
        "FLUSS_SASL_PASSWORD": "flussSaslPassword",
        "JOB_IDENTIFIER": "job-identifier",
        "EVENT_LOG_LEVEL": "event-log.level",
        "EVENT_LOG_TRACE_ENABLED": "event-log.trace.enabled",
        "EVENT_LOG_MAX_STRING_LENGTH": "event-log.standard.max-string-length",
        "EVENT_LOG_MAX_ARRAY_ELEMENTS": "event-log.standard.max-array-elements",
        "EVENT_LOG_MAX_DEPTH": "event-log.standard.max-depth",
        "EVENT_LISTENERS": "event-listeners",
    }
    for name, key in upstream_keys.items():
        option = getattr(AgentConfigOptions, name)
        assert option.key == key
        assert key in OPTIONS_WITHOUT_EFFECT  # none of them acts here: each is reported
    assert AgentConfigOptions.KAFKA_BOOTSTRAP_SERVERS.default == "localhost:9092"


@pytest.mark.parametrize(
    "value", [ErrorHandlingStrategy.IGNORE, "ignore", "IGNORE", ErrorHandlingStrategy.IGNORE.name]
)
def test_an_enum_option_takes_the_enum_or_its_string(value: Any) -> None:
    config = Configuration()
    config.set(AgentExecutionOptions.ERROR_HANDLING_STRATEGY, value)
    assert config.get(AgentExecutionOptions.ERROR_HANDLING_STRATEGY) is ErrorHandlingStrategy.IGNORE
    assert config.get_str("error-handling-strategy") in ("ignore", "IGNORE")


def test_an_unknown_enum_value_names_the_key_and_the_choices() -> None:
    config = Configuration({"short-term-memory.state-ttl.update-type": "ON_WHIM"})
    with pytest.raises(ConfigurationError, match="Invalid value for short-term-memory") as caught:
        config.get(AgentExecutionOptions.SHORT_TERM_MEMORY_STATE_TTL_UPDATE_TYPE)
    assert "ON_CREATE_AND_WRITE, ON_READ_AND_WRITE" in str(caught.value)


def failing_once_agent(attempts: list[int]) -> Agent:
    def act(event: InputEvent, ctx: RunnerContext) -> None:
        attempts.append(event.input)
        if len(attempts) == 1:
            raise ValueError("first attempt fails")
        ctx.send_event(OutputEvent(output="done"))

    return Agent().add_action("act", [InputEvent], act)


@pytest.mark.parametrize("strategy", [ErrorHandlingStrategy.RETRY, "retry"])
async def test_the_error_strategy_acts_set_by_enum_or_by_string(strategy: Any) -> None:
    attempts: list[int] = []
    env = AgentsExecutionEnvironment.get_execution_environment()
    env.get_config().set(AgentExecutionOptions.ERROR_HANDLING_STRATEGY, strategy)
    outputs = env.from_list([{"key": "k", "value": 1}]).apply(failing_once_agent(attempts))
    collected = outputs.to_list()
    await asyncio.wait_for(env.execute(), 20)
    assert collected == [{"k": "done"}] and attempts == [1, 1]


async def test_an_option_without_effect_is_accepted_and_logged_once() -> None:
    import flink_agents_async.config as config_module

    config_module._reported_without_effect.discard("actionStateStoreBackend")
    with structlog.testing.capture_logs() as logs:
        for _ in range(2):
            env = AgentsExecutionEnvironment.get_execution_environment()
            env.get_config().set(AgentConfigOptions.ACTION_STATE_STORE_BACKEND, "kafka")
            outputs = env.from_list([{"key": "k", "value": 1}]).apply(echo_agent()).to_list()
            await asyncio.wait_for(env.execute(), 20)
            assert outputs == [{"k": 1}]
    reports = [log for log in logs if log.get("key") == "actionStateStoreBackend"]
    assert len(reports) == 1
    assert reports[0]["log_level"] == "warning" and "no effect" in reports[0]["event"]


def echo_agent() -> Agent:
    def echo(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(OutputEvent(output=event.input))

    return Agent().add_action("echo", [InputEvent], echo)


# -- upstream's five short-term-memory TTL scenarios ---------------------------------------------


class TtlInput(BaseModel):
    event_key: str
    sleep_ms: int


class TtlAgent(Agent):
    clock: MockClock  # the runtime's clock, moved by the agent instead of by sleeping

    @action(EventType.InputEvent)
    @staticmethod
    def count(event: Event, ctx: RunnerContext) -> None:
        data = TtlInput.model_validate(InputEvent.from_event(event).input)
        memory = ctx.short_term_memory
        existing = memory.get(data.event_key)
        memory.set(data.event_key, (existing or 0) + 1)
        TtlAgent.clock.advance(data.sleep_ms / 1000)  # what upstream's time.sleep does
        ctx.send_event(
            OutputEvent(output=f"{data.event_key}|{'NEW' if existing is None else 'EXISTING'}")
        )


def run_ttl_scenario(
    ttl_ms: int,
    sleep_ms: int,
    *,
    configure_ttl_ms: bool,
    configure_ttl_options: bool,
    by_upstream_constants: bool,
) -> list[Any]:
    clock = TtlAgent.clock = MockClock()
    env = AgentsExecutionEnvironment.get_execution_environment(clock=clock)
    config = env.get_config()
    if by_upstream_constants:
        ttl, update, visibility = (
            AgentExecutionOptions.SHORT_TERM_MEMORY_STATE_TTL_MS,
            AgentExecutionOptions.SHORT_TERM_MEMORY_STATE_TTL_UPDATE_TYPE,
            AgentExecutionOptions.SHORT_TERM_MEMORY_STATE_TTL_VISIBILITY,
        )
        values: tuple[Any, Any] = (
            ShortTermMemoryTtlUpdate.ON_CREATE_AND_WRITE,
            ShortTermMemoryTtlVisibility.NEVER_RETURN_EXPIRED,
        )
    else:  # this project's names, the values as strings
        ttl, update, visibility = (
            ShortTermMemoryOptions.STATE_TTL_MS,
            ShortTermMemoryOptions.STATE_TTL_UPDATE_TYPE,
            ShortTermMemoryOptions.STATE_TTL_VISIBILITY,
        )
        values = ("ON_CREATE_AND_WRITE", "NEVER_RETURN_EXPIRED")
    if configure_ttl_ms:
        config.set(ttl, ttl_ms)
    if configure_ttl_options:
        config.set(update, values[0])
        config.set(visibility, values[1])
    inputs = [
        {"key": "test_key", "value": TtlInput(event_key=name, sleep_ms=sleep_ms)}
        for name in ("event1", "event2", "event1")
    ]
    outputs = env.from_list(inputs).apply(TtlAgent()).to_list()
    env.execute()
    return [value for entry in outputs for value in entry.values()]


SCENARIOS = {
    "visible before expiry": (1000, 0, True, True, ["event1|NEW", "event2|NEW", "event1|EXISTING"]),
    "zero ttl is off": (0, 50, True, True, ["event1|NEW", "event2|NEW", "event1|EXISTING"]),
    "off by default": (0, 50, False, True, ["event1|NEW", "event2|NEW", "event1|EXISTING"]),
    "expires after ttl": (50, 200, True, True, ["event1|NEW", "event2|NEW", "event1|NEW"]),
    "default options": (50, 200, True, False, ["event1|NEW", "event2|NEW", "event1|NEW"]),
}


@pytest.mark.parametrize("by_upstream_constants", [True, False], ids=["upstream", "own-names"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_upstreams_short_term_memory_ttl_scenarios(
    scenario: str, by_upstream_constants: bool
) -> None:
    ttl_ms, sleep_ms, configure_ttl_ms, configure_options, expected = SCENARIOS[scenario]
    results = run_ttl_scenario(
        ttl_ms,
        sleep_ms,
        configure_ttl_ms=configure_ttl_ms,
        configure_ttl_options=configure_options,
        by_upstream_constants=by_upstream_constants,
    )
    assert results == expected

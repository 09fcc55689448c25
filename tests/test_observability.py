"""Observability: logging is never configured on import, structlog lines, metrics."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from flink_agents_async import (
    Agent,
    AgentsExecutionEnvironment,
    Counter,
    Event,
    EventType,
    Gauge,
    Histogram,
    InputEvent,
    Meter,
    MetricGroup,
    OutputEvent,
    RunnerContext,
    configure_logging,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def reset_structlog() -> Iterator[None]:
    try:
        yield
    finally:
        structlog.reset_defaults()


# -- logging is not configured on import --------------------------------------------------------


def test_import_does_not_configure_logging() -> None:
    script = (
        "import json, logging, structlog\n"
        "import flink_agents_async\n"
        "root = logging.getLogger()\n"
        "print(json.dumps({\n"
        "    'handlers': len(root.handlers),\n"
        "    'level': root.level,\n"
        "    'structlog': structlog.is_configured(),\n"
        "    'lib_handlers': len(logging.getLogger('flink_agents_async').handlers),\n"
        "}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
        check=True,
    )
    state = json.loads(result.stdout.strip().splitlines()[-1])
    assert state == {
        "handlers": 0,
        "level": 30,  # logging.WARNING, the untouched default
        "structlog": False,
        "lib_handlers": 0,
    }
    assert result.stderr == ""


_QUIET_SCRIPT = """
import sys
from flink_agents_async import Agent, AgentsExecutionEnvironment, InputEvent, configure_logging
from flink_agents_async.logging import library_logger

if sys.argv[1] == "configured":
    configure_logging(level=10, stream=sys.stdout)
log = library_logger()
log.debug("detail-line", step=1)
log.info("info-line", step=2)

def fail(event, ctx):
    raise ValueError("boom")

env = AgentsExecutionEnvironment.get_execution_environment()
env.from_list([{"key": "k", "value": 1}]).apply(Agent().add_action("fail", [InputEvent], fail))
try:
    env.execute()
except ValueError:
    pass
"""


def run_quiet_script(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _QUIET_SCRIPT, mode],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
        check=True,
    )


def test_without_logging_configured_only_warnings_and_up_reach_stderr() -> None:
    result = run_quiet_script("plain")
    assert result.stdout == ""  # structlog's default would print every level here
    assert "detail-line" not in result.stderr and "info-line" not in result.stderr
    assert "run failed" in result.stderr and "key='k'" in result.stderr
    assert "ValueError('boom')" in result.stderr


def test_configured_logging_shows_every_level_with_bound_fields() -> None:
    result = run_quiet_script("configured")
    assert "detail-line" in result.stdout and "info-line" in result.stdout
    assert "run failed" in result.stdout and "step" in result.stdout


# -- metric types -------------------------------------------------------------------------------


def test_counter() -> None:
    counter = Counter()
    assert counter.get_count() == 0
    counter.inc()
    counter.inc(5)
    counter.dec()
    counter.dec(2)
    assert counter.get_count() == 3


def test_meter() -> None:
    meter = Meter()
    assert meter.get_rate() == 0.0
    meter.mark()
    meter.mark(4)
    assert meter.get_count() == 5
    assert meter.get_rate() > 0


def test_gauge() -> None:
    gauge = Gauge()
    assert gauge.get_value() is None
    gauge.update(3)
    gauge.update("latest")
    assert gauge.get_value() == "latest"


def test_histogram_statistics() -> None:
    histogram = Histogram()
    assert histogram.get_mean() == 0
    for value in (4, 1, 7, 2, 6):
        histogram.update(value)
    assert histogram.get_count() == 5
    assert histogram.get_mean() == 4
    assert histogram.get_min() == 1
    assert histogram.get_max() == 7
    stats = histogram.get_statistics()
    assert stats["count"] == 5
    assert stats["min"] == 1
    assert stats["max"] == 7
    assert stats["mean"] == 4
    assert stats["p50"] == 4


def test_histogram_window_size() -> None:
    histogram = Histogram(window_size=3)
    for value in (100, 1, 2, 3, 4, 5):
        histogram.update(value)
    assert histogram.get_count() == 6  # every update is counted
    assert histogram.get_min() == 3  # but the statistics cover the last 3 only
    assert histogram.get_max() == 5
    assert histogram.get_mean() == 4
    assert histogram.get_statistics()["max"] == 5


def test_histogram_rejects_an_empty_window() -> None:
    with pytest.raises(ValueError):
        Histogram(window_size=0)


def test_metric_group_returns_the_same_metric_for_the_same_name() -> None:
    group = MetricGroup("agent")
    assert group.get_counter("c") is group.get_counter("c")
    assert group.get_meter("m") is group.get_meter("m")
    assert group.get_gauge("g") is group.get_gauge("g")
    assert group.get_histogram("h") is group.get_histogram("h")
    assert group.get_sub_group("s") is group.get_sub_group("s")
    group.get_counter("c").inc(2)
    assert group.get_counter("c").get_count() == 2


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("get_counter", "get_meter"),
        ("get_counter", "get_gauge"),
        ("get_gauge", "get_histogram"),
        ("get_histogram", "get_counter"),
        ("get_meter", "get_counter"),
    ],
)
def test_metric_group_same_name_different_kind_raises(first: str, second: str) -> None:
    group = MetricGroup()
    getattr(group, first)("name")
    with pytest.raises(TypeError, match="name"):
        getattr(group, second)("name")


def test_metric_group_snapshot_flattens_sub_groups() -> None:
    group = MetricGroup("agent")
    group.get_counter("top").inc(2)
    sub = group.get_sub_group("child")
    sub.get_gauge("g").update(7)
    sub.get_sub_group("grand").get_counter("deep").inc()
    histogram = sub.get_histogram("h", window_size=2)
    for value in (1, 10, 20):
        histogram.update(value)
    group.get_meter("rate").mark(3)
    snapshot = group.snapshot()
    assert snapshot["top"] == 2
    assert snapshot["child.g"] == 7
    assert snapshot["child.grand.deep"] == 1
    assert snapshot["child.h"]["count"] == 3
    assert snapshot["child.h"]["mean"] == 15
    assert snapshot["rate"] > 0
    assert set(snapshot) == {"top", "child.g", "child.grand.deep", "child.h", "rate"}
    assert sub.snapshot()["grand.deep"] == 1


# -- built-in and user metrics of a run ---------------------------------------------------------


class Middle(Event):
    value: Any


def _two_action_agent() -> Agent:
    def first(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.agent_metric_group.get_counter("inputs_seen").inc()
        ctx.action_metric_group.get_counter("calls").inc()
        ctx.action_metric_group.get_histogram("sizes").update(len(str(event.input)))
        ctx.send_event(Middle(value=event.input))

    def second(event: Middle, ctx: RunnerContext) -> None:
        ctx.action_metric_group.get_counter("calls").inc(2)
        ctx.action_metric_group.get_gauge("last").update(event.value)
        ctx.send_event(OutputEvent(output=event.value))

    return Agent().add_action("first", [InputEvent], first).add_action("second", [Middle], second)


async def test_builtin_and_user_metrics_after_a_run() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    assert env.metrics() == {}  # type: ignore[attr-defined]
    inputs = [{"key": "a", "value": 1}, {"key": "b", "value": 22}, {"key": "a", "value": 333}]
    outputs = env.from_list(inputs).apply(_two_action_agent()).to_list()
    await env.execute()
    assert outputs == [{"a": 1}, {"b": 22}, {"a": 333}]
    snapshot = env.metrics()  # type: ignore[attr-defined]
    # Per input: InputEvent, Middle and OutputEvent are processed; first and second execute.
    assert snapshot["numOfEventProcessed"] == 9
    assert snapshot["numOfActionsExecuted"] == 6
    assert snapshot["first.numOfActionsExecuted"] == 3
    assert snapshot["second.numOfActionsExecuted"] == 3
    assert snapshot["numOfEventProcessedPerSec"] > 0
    assert snapshot["numOfActionsExecutedPerSec"] > 0
    assert snapshot["first.numOfActionsExecutedPerSec"] > 0
    assert snapshot["second.numOfActionsExecutedPerSec"] > 0
    # User metrics land under the agent group and the action sub-groups.
    assert snapshot["inputs_seen"] == 3
    assert snapshot["first.calls"] == 3
    assert snapshot["second.calls"] == 6
    assert snapshot["second.last"] == 333
    assert snapshot["first.sizes"]["count"] == 3
    assert snapshot["first.sizes"]["max"] == 3
    assert snapshot["first.sizes"]["mean"] == 2
    assert "first.inputs_seen" not in snapshot


async def test_metrics_count_failed_runs_and_are_per_environment() -> None:
    def flaky(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.agent_metric_group.get_counter("attempts").inc()
        if event.input == "bad":
            raise ValueError("boom")
        ctx.send_event(OutputEvent(output=event.input))

    agent = Agent().add_action("flaky", [InputEvent], flaky)
    env = AgentsExecutionEnvironment.get_execution_environment()
    env.from_list([{"key": "a", "value": "bad"}, {"key": "b", "value": "ok"}]).apply(agent)
    with pytest.raises(ValueError, match="boom") as caught:
        await env.execute()
    assert [failure.key for failure in caught.value.execution_failures] == ["a"]
    snapshot = env.metrics()  # type: ignore[attr-defined]
    assert snapshot["flaky.numOfActionsExecuted"] == 2
    assert snapshot["attempts"] == 2

    other = AgentsExecutionEnvironment.get_execution_environment()
    other.from_list([{"key": "c", "value": "ok"}]).apply(agent)
    await other.execute()
    assert other.metrics()["attempts"] == 1  # type: ignore[attr-defined]
    assert other.metrics()["flaky.numOfActionsExecuted"] == 1  # type: ignore[attr-defined]


async def test_builder_metrics_match_environment_metrics() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    builder = env.from_list([{"key": "a", "value": 1}]).apply(_two_action_agent())
    assert builder.metrics() == {}  # type: ignore[attr-defined]
    await env.execute()
    builder_snapshot = builder.metrics()  # type: ignore[attr-defined]
    assert builder_snapshot["numOfActionsExecuted"] == 2
    assert builder_snapshot["numOfEventProcessed"] == 3


# -- structured logs ----------------------------------------------------------------------------


def _failing_agent() -> Agent:
    def explode(event: InputEvent, ctx: RunnerContext) -> None:
        if event.input == "bad":
            raise ValueError("kaboom")
        ctx.send_event(OutputEvent(output=event.input))

    return Agent().add_action("explode", [InputEvent], explode)


async def test_failing_run_is_logged_with_key_run_action_and_event_type() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment()
    inputs = [{"key": "k1", "value": "fine"}, {"key": "k1", "value": "bad"}]
    env.from_list(inputs).apply(_failing_agent())
    with structlog.testing.capture_logs() as logs, pytest.raises(ValueError, match="kaboom"):
        await env.execute()
    failures = [entry for entry in logs if entry["log_level"] == "error"]
    assert len(failures) == 1, logs
    entry = failures[0]
    assert entry["key"] == "k1"
    assert entry["run"] == 2  # the second run of key k1
    assert entry["action"] == "explode"
    assert entry["event_type"] == EventType.InputEvent
    assert "kaboom" in entry["error"]


async def test_ignored_failure_is_logged_as_a_warning() -> None:
    env = AgentsExecutionEnvironment.get_execution_environment(error_handling_strategy="ignore")
    outputs = (
        env.from_list([{"key": "x", "value": "bad"}, {"key": "y", "value": 1}])
        .apply(_failing_agent())
        .to_list()
    )
    with structlog.testing.capture_logs() as logs:
        await env.execute()
    assert outputs == [{"y": 1}]
    assert not [entry for entry in logs if entry["log_level"] == "error"]
    (entry,) = [entry for entry in logs if entry.get("action") == "explode"]
    assert entry["log_level"] == "warning"
    assert entry["key"] == "x"
    assert entry["run"] == 1
    assert entry["event_type"] == EventType.InputEvent


async def test_unrouted_event_type_is_warned_once() -> None:
    def send_unrouted(event: InputEvent, ctx: RunnerContext) -> None:
        ctx.send_event(Event(type="nobody-listens", attributes={}))
        ctx.send_event(OutputEvent(output=event.input))

    agent = Agent().add_action("send_unrouted", [InputEvent], send_unrouted)
    env = AgentsExecutionEnvironment.get_execution_environment()
    outputs = env.from_list([{"key": i, "value": i} for i in range(3)]).apply(agent).to_list()
    with structlog.testing.capture_logs() as logs:
        await env.execute()
    assert outputs == [{0: 0}, {1: 1}, {2: 2}]
    warnings = [entry for entry in logs if entry.get("event_type") == "nobody-listens"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"


def test_configure_logging_json_emits_json_lines(reset_structlog: None) -> None:
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    logger = structlog.get_logger("test")
    logger.info("hello", answer=42, key="k")
    logger.debug("filtered out at INFO")
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "hello"
    assert record["answer"] == 42
    assert record["key"] == "k"
    assert record["level"] == "info"
    assert "timestamp" in record


def test_configure_logging_json_carries_run_failures(reset_structlog: None) -> None:
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    env = AgentsExecutionEnvironment.get_execution_environment()
    env.from_list([{"key": "json-key", "value": "bad"}]).apply(_failing_agent())
    with pytest.raises(ValueError, match="kaboom") as caught:
        env.execute()
    assert [failure.key for failure in caught.value.execution_failures] == ["json-key"]
    records = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    failures = [record for record in records if record.get("level") == "error"]
    assert len(failures) == 1
    assert failures[0]["key"] == "json-key"
    assert failures[0]["action"] == "explode"
    assert failures[0]["event_type"] == EventType.InputEvent
    assert failures[0]["run"] == 1


def test_configure_logging_console_is_not_json(reset_structlog: None) -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    structlog.get_logger("test").warning("plain line", detail="d")
    text = stream.getvalue()
    assert "plain line" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.strip().splitlines()[-1])

"""Metrics: ``MetricGroup`` with counters, meters, gauges and histograms, readable in process.

The agent's group is shared by all keys of a runtime; each action has a sub-group named after it.
``snapshot()`` returns every metric below a group as a flat ``{"dotted.name": value}`` dict, so
tests, health endpoints and Prometheus exporters can read them without a metrics backend. On Flink
the bridge maps the same calls onto Flink's metric groups.
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Any

__all__ = ["Counter", "Gauge", "Histogram", "Meter", "MetricGroup"]


class Counter:
    """A count that goes up (and down)."""

    __slots__ = ("_count",)

    def __init__(self) -> None:
        self._count = 0

    def inc(self, n: int = 1) -> None:
        self._count += n

    def dec(self, n: int = 1) -> None:
        self._count -= n

    def get_count(self) -> int:
        return self._count

    def snapshot(self) -> int:
        return self._count


class Meter:
    """Events per second, averaged over a sliding window (60 s, as Flink's ``MeterView``).

    ``mark`` only adds; the rate is computed from samples of the running total taken at most
    once a second, so marking costs next to nothing.
    """

    __slots__ = ("_count", "_samples", "_window")

    def __init__(self, window_seconds: float = 60.0) -> None:
        self._count = 0
        self._window = window_seconds
        self._samples: deque[tuple[float, int]] = deque([(time.monotonic(), 0)])

    def mark(self, n: int = 1) -> None:
        self._count += n

    def get_count(self) -> int:
        return self._count

    def get_rate(self) -> float:
        now = time.monotonic()
        samples = self._samples
        if now - samples[-1][0] >= 1.0:
            samples.append((now, self._count))
        while len(samples) > 1 and now - samples[1][0] >= self._window:
            samples.popleft()
        start_time, start_count = samples[0]
        elapsed = now - start_time
        return (self._count - start_count) / elapsed if elapsed > 0 else 0.0

    def snapshot(self) -> float:
        return self.get_rate()


class Gauge:
    """The last value set."""

    __slots__ = ("_value",)

    def __init__(self) -> None:
        self._value: Any = None

    def update(self, value: Any) -> None:
        self._value = value

    def get_value(self) -> Any:
        return self._value

    def snapshot(self) -> Any:
        return self._value


class Histogram:
    """Statistics over the last ``window_size`` values."""

    __slots__ = ("_count", "_values")

    def __init__(self, window_size: int = 100) -> None:
        if window_size < 1:
            raise ValueError(f"histogram window_size must be at least 1, got {window_size}")
        self._values: deque[float] = deque(maxlen=window_size)
        self._count = 0

    def update(self, value: float) -> None:
        self._values.append(value)
        self._count += 1

    def get_count(self) -> int:
        return self._count

    def recent(self, count: int) -> list[float]:
        """The last ``count`` values still in the window (fewer if it holds fewer), oldest
        first: what a reporter that saw ``get_count() - count`` values has not seen yet."""
        values = self._values
        count = max(0, min(count, len(values)))
        return list(values)[len(values) - count :]

    def get_mean(self) -> float:
        return sum(self._values) / len(self._values) if self._values else 0.0

    def get_max(self) -> float:
        return max(self._values) if self._values else 0

    def get_min(self) -> float:
        return min(self._values) if self._values else 0

    def get_quantile(self, quantile: float) -> float:
        if not self._values:
            return 0.0
        ordered = sorted(self._values)
        index = min(len(ordered) - 1, max(0, math.ceil(quantile * len(ordered)) - 1))
        return ordered[index]

    def get_statistics(self) -> dict[str, float]:
        return {
            "count": self._count,
            "min": self.get_min(),
            "max": self.get_max(),
            "mean": self.get_mean(),
            "p50": self.get_quantile(0.5),
            "p95": self.get_quantile(0.95),
            "p99": self.get_quantile(0.99),
        }

    def snapshot(self) -> dict[str, float]:
        return self.get_statistics()


_Metric = Counter | Meter | Gauge | Histogram


class MetricGroup:
    """A named group of metrics and sub-groups. Getters create on first use and then return
    the same object, so holding a reference is as good as asking again."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._metrics: dict[str, _Metric] = {}
        self._groups: dict[str, MetricGroup] = {}

    def get_sub_group(self, name: str, value: str | None = None) -> MetricGroup:
        """The sub-group ``name`` (made on first use); with ``value``, the key/value group
        ``name`` = ``value`` (``get_sub_group("model", "gpt-4o")``), which is the group
        ``value`` inside the group ``name``: ``model.gpt-4o.promptTokens`` in a snapshot."""
        group = self._groups.get(name)
        if group is None:
            group = self._groups[name] = MetricGroup(name)
        return group if value is None else group.get_sub_group(str(value))

    def _get(self, name: str, kind: type, *args: Any) -> Any:
        metric = self._metrics.get(name)
        if metric is None:
            metric = self._metrics[name] = kind(*args)
        elif type(metric) is not kind:
            raise TypeError(
                f"metric {name!r} is already a {type(metric).__name__}, not a {kind.__name__}"
            )
        return metric

    def get_counter(self, name: str) -> Counter:
        return self._get(name, Counter)

    def get_meter(self, name: str) -> Meter:
        return self._get(name, Meter)

    def get_gauge(self, name: str) -> Gauge:
        return self._get(name, Gauge)

    def get_histogram(self, name: str, window_size: int = 100) -> Histogram:
        return self._get(name, Histogram, window_size)

    def metrics(self) -> list[tuple[str, Counter | Meter | Gauge | Histogram]]:
        """The metrics of this group (not of its sub-groups), by name."""
        return list(self._metrics.items())

    def sub_groups(self) -> list[tuple[str, MetricGroup]]:
        """The sub-groups of this group, by name."""
        return list(self._groups.items())

    def snapshot(self) -> dict[str, Any]:
        """Every metric below this group, by dotted name relative to it."""
        values: dict[str, Any] = {name: metric.snapshot() for name, metric in self._metrics.items()}
        for group_name, group in self._groups.items():
            for name, value in group.snapshot().items():
                values[f"{group_name}.{name}"] = value
        return values

    def __repr__(self) -> str:
        return f"MetricGroup({self.name!r})"


class ActionMetrics:
    """The built-in metrics of one action: its group and ``numOfActionsExecuted`` (+ rate)."""

    __slots__ = ("executed", "executed_rate", "group")

    def __init__(self, group: MetricGroup) -> None:
        self.group = group
        self.executed = group.get_counter("numOfActionsExecuted")
        self.executed_rate = group.get_meter("numOfActionsExecutedPerSec")


class BuiltinMetrics:
    """The agent group of one runtime with its built-in metrics resolved once, so the hot path
    touches plain attributes instead of looking names up."""

    __slots__ = (
        "actions",
        "actions_executed",
        "actions_executed_rate",
        "agent",
        "events",
        "events_rate",
    )

    def __init__(self, action_names: list[str]) -> None:
        self.agent = MetricGroup("agent")
        self.events = self.agent.get_counter("numOfEventProcessed")
        self.events_rate = self.agent.get_meter("numOfEventProcessedPerSec")
        self.actions_executed = self.agent.get_counter("numOfActionsExecuted")
        self.actions_executed_rate = self.agent.get_meter("numOfActionsExecutedPerSec")
        self.actions = [ActionMetrics(self.agent.get_sub_group(name)) for name in action_names]

    def events_processed(self, count: int) -> None:
        self.events.inc(count)
        self.events_rate.mark(count)

    def action_executed(self, index: int) -> None:
        self.actions_executed.inc()
        self.actions_executed_rate.mark()
        action = self.actions[index]
        action.executed.inc()
        action.executed_rate.mark()

    def snapshot(self) -> dict[str, Any]:
        return self.agent.snapshot()

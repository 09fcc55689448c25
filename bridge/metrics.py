"""Mirrors the core's metric groups onto Flink's metric groups.

Actions record metrics in the core's in-process ``MetricGroup`` tree on the loop thread (so the
same agent code works on both hosts). The Flink thread copies what changed into Flink's groups
every so often: counters and meters by their increase, gauges through a callback that reads the
core value, histograms as Flink distributions fed with the values recorded since the last copy.
The tree keeps its shape: the core group ``agent.<action>.numOfActionsExecuted`` becomes the
Flink group ``agent`` / ``<action>`` with counter ``numOfActionsExecuted``.
"""

from __future__ import annotations

import time
from typing import Any

from flink_agents_async.metrics import Counter, Gauge, Histogram, Meter, MetricGroup

__all__ = ["FlinkMetricsMirror"]


def _gauge_reader(gauge: Gauge) -> Any:
    def read() -> int:
        value = gauge.get_value()
        return int(value) if isinstance(value, int | float) else 0

    return read


class FlinkMetricsMirror:
    """Copies a core metric tree into a Flink metric group (call ``sync`` on the Flink
    thread; it does the work at most once per ``interval`` seconds unless forced)."""

    def __init__(self, core: MetricGroup, flink_group: Any, interval: float = 1.0) -> None:
        self._core = core
        self._flink_root = flink_group
        self._interval = interval
        self._last_sync = 0.0
        self._groups: dict[tuple[str, ...], Any] = {(): flink_group}
        self._metrics: dict[tuple[str, ...], tuple[Any, int]] = {}  # path -> flink metric, seen

    def sync(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_sync < self._interval:
            return
        self._last_sync = now
        self._copy(self._core, ())

    def _copy(self, group: MetricGroup, path: tuple[str, ...]) -> None:
        for name, metric in group.metrics():
            self._copy_metric(path, name, metric)
        for name, sub in group.sub_groups():
            self._copy(sub, (*path, name))

    def _flink_group(self, path: tuple[str, ...]) -> Any:
        group = self._groups.get(path)
        if group is None:
            group = self._groups[path] = self._flink_group(path[:-1]).add_group(path[-1])
        return group

    def _copy_metric(self, path: tuple[str, ...], name: str, metric: Any) -> None:
        full = (*path, name)
        known = self._metrics.get(full)
        if known is None:
            known = self._metrics[full] = (self._register(path, name, metric), 0)
        flink_metric, seen = known
        if isinstance(metric, Counter):
            count = metric.get_count()
            if count > seen:
                flink_metric.inc(count - seen)
            elif count < seen:
                flink_metric.dec(seen - count)
        elif isinstance(metric, Meter):
            count = metric.get_count()
            if count > seen:
                flink_metric.mark_event(count - seen)
        elif isinstance(metric, Histogram):
            count = metric.get_count()
            for value in metric.recent(count - seen):
                flink_metric.update(int(value))
        else:
            count = 0
        self._metrics[full] = (flink_metric, count)

    def _register(self, path: tuple[str, ...], name: str, metric: Any) -> Any:
        group = self._flink_group(path)
        if isinstance(metric, Counter):
            return group.counter(name)
        if isinstance(metric, Meter):
            return group.meter(name)
        if isinstance(metric, Histogram):
            return group.distribution(name)
        group.gauge(name, _gauge_reader(metric))
        return None

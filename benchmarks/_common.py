"""Helpers shared by the benchmark scripts: timing and JSON output."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def best_of(repeats: int, measure: Callable[[], float]) -> float:
    """The best (lowest) of several timings: the least disturbed by the rest of the machine."""
    return min(measure() for _ in range(repeats))


def emit(name: str, results: dict[str, Any]) -> None:
    json.dump({"benchmark": name, "machine": machine(), **results}, sys.stdout, indent=2)
    sys.stdout.write("\n")


now = time.perf_counter


def percentiles(samples: list[float], unit: str = "ms") -> dict[str, float]:
    """p50 and p99 of durations in seconds, in ``unit`` ("ms" or "us")."""
    scale, digits = (1e3, 3) if unit == "ms" else (1e6, 2)
    ordered = sorted(samples)
    return {
        f"p50_{unit}": round(ordered[len(ordered) // 2] * scale, digits),
        f"p99_{unit}": round(ordered[int(len(ordered) * 0.99)] * scale, digits),
    }

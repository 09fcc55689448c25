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

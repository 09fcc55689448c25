"""The Flink example and benchmark run as a user runs them (each its own process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, capture_output=True, text=True, timeout=240
    )


def test_flink_example_replies_to_each_customer_in_order(tmp_path: Path) -> None:
    result = _run(str(ROOT / "examples" / "flink_job.py"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if "#" in line]
    assert [line for line in lines if line.startswith("alice")] == [
        "alice #1: re: where is my order?",
        "alice #2: re: it was due Monday",
    ]
    assert len(lines) == 5


@pytest.mark.slow
def test_flink_benchmark_prints_json(tmp_path: Path) -> None:
    """A small run only, so the script cannot rot; speed is not judged here."""
    result = _run(str(ROOT / "benchmarks" / "flink_bridge.py"), "--quick", "--modes", "thread",
                  cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["benchmark"] == "flink_bridge"

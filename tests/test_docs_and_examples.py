"""The README's code blocks and the examples run as a user would run them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def run_python(code_or_path: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(code_or_path)] if isinstance(code_or_path, Path) else [
        sys.executable, "-c", code_or_path
    ]  # fmt: skip
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_readme_has_runnable_examples() -> None:
    assert len(README_BLOCKS) >= 5


@pytest.mark.parametrize("block", README_BLOCKS, ids=lambda b: b.strip().splitlines()[0][:40])
def test_readme_block_runs(block: str, tmp_path: Path) -> None:
    result = run_python(block, tmp_path)
    assert result.returncode == 0, result.stderr


def test_quickstart_prints_each_keys_messages_in_order(tmp_path: Path) -> None:
    result = run_python(ROOT / "examples" / "quickstart.py", tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    alice = [line for line in lines if line.startswith("alice:")]
    assert alice == [
        "alice: message #1: hi",
        "alice: message #2: hi | how are you?",
        "alice: message #3: hi | how are you? | bye",
    ]
    assert len(lines) == 6


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "args", "field"),
    [
        ("dispatch.py", ["--inputs", "300", "--repeats", "1"], "runtime_inputs_per_s"),
        ("io_concurrency.py", ["--keys", "8", "--repeats", "1"], "wall_s"),
        ("loop_lag.py", ["--keys", "50", "--call-seconds", "0.01", "0.05"], "runtime"),
        ("durable.py", ["--keys", "50", "--calls", "4", "--sqlite-keys", "4"], "recovery"),
        (
            "serve.py",
            ["--requests", "300", "--http-requests", "64", "--memory-keys", "300"],
            "memory",
        ),
        (
            "llm.py",
            ["--requests", "20", "--latency", "0.01", "--rounds", "1", "--react-runs", "2"],
            "fan_out",
        ),
        ("knowledge.py", ["--quick"], "long_term_memory"),
    ],
)
def test_benchmark_scripts_print_json(
    script: str, args: list[str], field: str, tmp_path: Path
) -> None:
    """Small runs only, so the scripts cannot rot; speed itself is not judged here."""
    import json

    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["benchmark"] == script.removesuffix(".py")
    assert field in report


def test_durable_example_resumes_after_a_crash_without_charging_twice(tmp_path: Path) -> None:
    script = ROOT / "examples" / "durable.py"
    crashed = subprocess.run(
        [sys.executable, str(script), "--crash-after", "3"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert crashed.returncode == 137, crashed.stderr
    resumed = run_python(script, tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    payments = (tmp_path / "payments.txt").read_text().split("\n")
    charged = sorted(line.split()[0] for line in payments if line)
    assert charged == [f"order-{n}" for n in range(6)]  # each exactly once
    lines = resumed.stdout.splitlines()
    assert len(lines) == 6 and all("receipt for order-" in line for line in lines)
    listing = subprocess.run(
        [sys.executable, "-m", "flink_agents_async", "journal", "journal-demo"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert listing.returncode == 0 and "customer-0" in listing.stdout


LLM_EXAMPLES = {
    "review_analysis.py": ["p1: score 5", "p1: score 1", "p2: score 1", "p2: score 5"],
    "react_agent.py": ["p1: score 5", "p1: score 1", "p2: score 1", "p2: score 5"],
    "product_suggestion.py": ["p1: scores ['33%', '0%', '0%', '0%', '67%']", "p2: scores"],
    "parallel_chat.py": ["1: customers say", "2: customers say"],
    # Real semantic retrieval (the offline all-MiniLM-L6-v2 model): each question gets its own
    # document, and the second session answers from what the first one remembered.
    "rag_agent.py": [
        "What is Python? => From the knowledge base: Python is a high-level",
        "What is Apache Flink Agents? => From the knowledge base: Apache Flink Agents is",
        "What is Apache Flink? => From the knowledge base: Apache Flink is a framework",
    ],
    "support_memory.py": [
        "-- session 2\nalice: As you told me before: Please contact me by email",
        "bob: As you told me before: I am vegetarian",
    ],
}


@pytest.mark.parametrize("script", LLM_EXAMPLES)
def test_llm_examples_run_offline_against_the_local_model_server(
    script: str, tmp_path: Path
) -> None:
    result = run_python(ROOT / "examples" / "llm" / script, tmp_path)
    assert result.returncode == 0, result.stderr
    for expected in LLM_EXAMPLES[script]:
        assert expected in result.stdout, result.stdout
    if script in ("review_analysis.py", "react_agent.py"):  # the tool ran for the bad reviews
        assert result.stdout.count("the shipping manager hears about") == 2
